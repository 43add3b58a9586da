# test_s3_cli.py - the commands that talk to the bucket, against a real S3 server (Ceph RGW, as in
# test_s3_tier.py): restore, fsck --remote and gc --remote with --json (the figures and findings a
# script needs), restore's progress bar with rate and ETA on a terminal (a pty), and the daemon's
# log at log-level debug: one JSON line per S3 request with method, key, status, latency, attempt.
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import BUCKET, MIB, RgwTestCase  # noqa: E402


class S3CliTest(RgwTestCase):
    def test_json_results_and_a_progress_bar_with_rate_and_eta(self):
        m = self.mount("clijson")
        files = {"a.bin": h.random_bytes(9 * MIB + 7, 501), "b.bin": h.random_bytes(2 * MIB, 502)}
        self.write_version(m, "run", "v1", files)
        self.seal_wait(m, "run", "v1")

        # restore --json, its progress bar on a terminal
        dest = os.path.join(self.scratch, "restored")
        rc, out, bar = h.on_a_terminal([h.PECFS_BIN, "restore", *self.tier_opts("clijson"), "--json",
                                      "--threads=2", "run@v1", dest], 120 * h.SLOW)
        self.assertEqual(rc, 0, bar)
        r = json.loads(out)
        self.assertEqual((r["run"], r["version"], r["files"], r["bytes"]), ("run", "v1", 2, 11 * MIB + 7))
        self.assertGreater(r["seconds"], 0)
        for name, data in files.items():
            self.assertEqual(h.read_file(os.path.join(dest, name)), data)
        self.assertIn("restoring [", bar)
        self.assertRegex(bar, r"\d+\.\d MiB/s")
        self.assertIn("100.0%", bar)

        # fsck --remote --json: clean, then one corrupt chunk object named in "report"
        def fsck():
            cp = h.cli("fsck", "--remote", *self.tier_opts("clijson"), "--json", timeout=180)
            return cp.returncode, json.loads(cp.stdout)
        rc, j = fsck()
        self.assertEqual((rc, j["check"], j["problems"], j["report"]), (0, "remote", 0, []))
        self.assertEqual(j["versions"], 1)
        self.assertEqual(j["chunks"], 4)
        d = h.sha256_bytes(files["b.bin"])
        key = "clijson/chunks/%s/%s" % (d[:2], d)
        obj = bytearray(self.s3("get", key).stdout)
        obj[64 + 999] ^= 0x11
        self.put_object(key, bytes(obj))
        rc, j = fsck()
        self.assertEqual((rc, j["problems"], j["corrupt"]), (1, 1, 1))
        self.assertEqual(len([x for x in j["report"] if key in x and "run/v1/b.bin" in x]), 1, j["report"])

        # gc --remote --json --dry-run: what it would delete, nothing deleted
        before = self.listing("clijson")
        cp = h.cli("gc", "--remote", *self.tier_opts("clijson"), "--grace", "0", "--dry-run", "--json")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        g = json.loads(cp.stdout)
        self.assertTrue(g["dry_run"])
        # a.bin's three chunks went up as one pack, b.bin's one chunk as its own object
        self.assertEqual((g["versions"], g["chunks"], g["chunks_live"]), (1, 1, 1))
        self.assertEqual((g["packs"], g["packs_live"], g["packs_deleted"]), (1, 1, 0))
        self.assertEqual(self.listing("clijson"), before)

    def test_gc_and_mount_from_show_progress_on_a_terminal(self):
        m = self.mount("cliprog")
        for i in range(3):
            self.write_version(m, "run%d" % i, "v1", {"a.bin": h.random_bytes(MIB + i, 600 + i)})
            self.seal_wait(m, "run%d" % i, "v1")
        m.umount()
        # a fresh node imports the three runs, with a bar on its terminal
        fresh = h.Mount(mount=False)
        self.addCleanup(fresh.cleanup)
        rc, _, bar = h.on_a_terminal([h.PECFS_BIN, "mount", "--from", "s3://%s/cliprog" % BUCKET, "--s3-endpoint",
                                    self.endpoint, "--s3-addressing", "path", fresh.data, fresh.mnt], 120 * h.SLOW)
        self.assertEqual(rc, 0, bar)
        self.assertIn("importing [", bar)
        self.assertIn("3/3 runs", bar)
        self.assertEqual(sorted(os.listdir(fresh.mnt)), ["run0", "run1", "run2"])
        # gc --remote: the versions read, then the chunk objects deleted
        rc, out, bar = h.on_a_terminal([h.PECFS_BIN, "gc", "--remote", *self.tier_opts("cliprog"), "--grace", "0",
                                      "--keep", "1"], 120 * h.SLOW)
        self.assertEqual(rc, 0, bar)
        self.assertIn("reading [", bar)
        self.assertRegex(bar, r"100\.0% 3/3 versions [\d.]+/s")
        self.assertIn("deleting [", bar)  # nothing to delete (one version per run, --keep 1): all done
        self.assertIn("100.0% 0/0 chunks", bar)

    def test_debug_log_has_a_json_line_per_s3_request(self):
        m = h.Mount(mount=False)
        self.addCleanup(m.cleanup)
        log = os.path.join(m.base, "stderr")
        with open(log, "w") as f:
            proc = subprocess.Popen([h.PECFS_BIN, "mount", "-f", "--log-level", "debug", "--log-format=json",
                                     *self.tier_opts("clilog"), m.data, m.mnt], stdout=subprocess.DEVNULL,
                                    stderr=f, env=h._env())
            self.assertTrue(h.wait_until(lambda: h.is_mounted(m.mnt), 60))
            self.write_version(m, "run", "v1", {"a.bin": h.random_bytes(5 * MIB, 77)})
            self.seal_wait(m, "run", "v1")
            h.cli("umount", m.mnt, check=True)
            self.assertEqual(proc.wait(timeout=120 * h.SLOW), 0)
        with open(log) as f:
            msgs = [json.loads(line)["msg"] for line in f if line.startswith("{")]
        req = re.compile(r"^S3 (GET|PUT|HEAD|DELETE|POST) %s/(\S*): HTTP (\d+) in \d+\.\d ms \(attempt (\d+)\)$"
                         % BUCKET)
        puts = [req.match(x) for x in msgs if req.match(x) and req.match(x).group(1) == "PUT"]
        keys = {p.group(2) for p in puts}
        self.assertIn("clilog/runs/run/v1/COMMIT", keys)
        # 5 MiB in two 4 MiB chunks of one file: one pack, one PUT.
        self.assertEqual(len([k for k in keys if k.startswith("clilog/packs/")]), 1, keys)
        self.assertEqual(len([k for k in keys if k.startswith("clilog/chunks/")]), 0, keys)
        self.assertTrue(all(p.group(3) == "200" and p.group(4) == "1" for p in puts), msgs)
        self.assertIn("sealed v1", " ".join(msgs))


if __name__ == "__main__":
    h.main()
