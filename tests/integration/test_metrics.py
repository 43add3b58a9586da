# test_metrics.py - the metrics-listen HTTP endpoint and /.pec/metrics on a real mount: Prometheus text
# that Debian's promtool accepts without a word, the same metric families in both, counters that
# follow what happened (bytes written and linked, seals timed into the histogram), 404/405 for
# anything but GET of /metrics, and a listen address that is malformed (exit 2) or taken (the mount
# fails, nothing mounted). The S3 figures are checked against a real server in test_s3_tier.py.
import os
import socket
import subprocess
import unittest
import urllib.error
import urllib.request

import pecfs_harness as h
from s3_fixture import free_port


def families(text):
    """{name: [(labels, value)]} from Prometheus text; asserts every sample has its TYPE."""
    types, out = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            types[name] = typ
        elif line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            name = series.split("{", 1)[0]
            base = name
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and name[: -len(suffix)] in types:
                    base = name[: -len(suffix)]
            assert base in types, "sample without TYPE: " + line
            out.setdefault(name, []).append((series[len(name):], float(value)))
    return out


def promtool(text):
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=60)


class Metrics(unittest.TestCase):
    def get(self, url, method="GET"):
        req = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get("Content-Type"), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read().decode()

    def test_endpoint_serves_what_happened_in_promtool_clean_text(self):
        port = free_port()
        url = "http://127.0.0.1:%d" % port
        with h.Mount(["--metrics-listen", "127.0.0.1:%d" % port, "--chunk-size", "1M"]) as m:
            status, ctype, text = self.get(url + "/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
            before = families(text)
            self.assertEqual(before["pecfs_seal_duration_seconds_count"], [("", 0.0)])
            os.makedirs(m.path("run", "v1"))
            data = h.random_bytes(5 * (1 << 20) + 123, seed=7)
            h.write_file(m.path("run", "v1", "a.bin"), data)
            self.assertEqual(h.cli("seal", m.path("run", "v1")).returncode, 0)
            status, _, text = self.get(url + "/metrics")
            self.assertEqual(status, 200)
            cp = promtool(text)
            self.assertEqual((cp.returncode, cp.stdout, cp.stderr), (0, "", ""), text)
            f = families(text)
            written = f["pecfs_written_bytes_total"][0][1] - before["pecfs_written_bytes_total"][0][1]
            self.assertEqual(written, len(data))
            self.assertEqual(f["pecfs_seal_duration_seconds_count"], [("", 1.0)])
            self.assertEqual(f["pecfs_seal_duration_seconds_bucket"][-1], ('{le="+Inf"}', 1.0))
            self.assertGreater(f["pecfs_seal_duration_seconds_sum"][0][1], 0)
            self.assertEqual(f["pecfs_sealed_versions"], [("", 1.0)])
            self.assertEqual(f["pecfs_chunks"], [("", 6.0)])
            self.assertNotIn("pecfs_s3_requests_total", f)  # no tier, no S3 figures
            # /.pec/metrics is the same text
            pec = h.read_file(m.path(".pec", "metrics")).decode()
            self.assertEqual(sorted(families(pec)), sorted(f))
            self.assertEqual(promtool(pec).returncode, 0)
            self.assertEqual(self.get(url + "/metrics", "HEAD")[0], 200)
            self.assertEqual(self.get(url + "/")[0], 404)
            self.assertEqual(self.get(url + "/metrics", "POST")[0], 405)
        # unmounted: the port is closed again
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()

    def test_bad_or_taken_listen_addresses_fail_the_mount(self):
        m = h.Mount(mount=False)
        self.addCleanup(m.cleanup)
        for bad in ("9567", "localhost:9567", "127.0.0.1:0", "127.0.0.1:99999", "[::1:9567"):
            cp = h.cli("mount", "--metrics-listen", bad, m.data, m.mnt)
            self.assertEqual(cp.returncode, 2, bad)
            self.assertIn("metrics-listen", cp.stderr)
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        cp = h.cli("mount", "--metrics-listen", "127.0.0.1:%d" % taken.getsockname()[1], m.data, m.mnt)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("Address already in use", cp.stderr)
        self.assertFalse(h.is_mounted(m.mnt))


if __name__ == "__main__":
    h.main()
