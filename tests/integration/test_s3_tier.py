# test_s3_tier.py - the S3 tier on real mounts against a real S3 server (a throwaway Ceph RGW that
# deploy/s3-rgw.sh starts in this test's scratch folder, on free loopback ports, stopped at the end):
# upload order, dedup across versions, restore, mount --from, eviction and read-through, a corrupt
# object, wrong credentials, kill -9 mid-upload, and a 30 s server outage. Each test uses its own
# prefix in one bucket. The bucket is read with pecfs-s3check (next to PECFS_BIN in the build).
import errno
import json
import os
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import BUCKET, MIB, SECRET_KEY, RgwTestCase, rgw_requests  # noqa: E402


class S3TierTest(RgwTestCase):
    # ---- upload ----

    def test_upload_order_and_layout(self):
        m = self.mount("order")
        files = self.experts(1, n=4)
        files["meta/config.json"] = b'{"a": 1}\n'
        self.write_version(m, "run", "step-10", files)
        os.symlink("layer_0", m.path("run", "step-10", "experts"))
        self.seal_wait(m, "run", "step-10")
        keys = self.listing("order")
        chunks = [k for k in keys if k.startswith("order/chunks/")]
        manifests = [k for k in keys if k.endswith(".manifest")]
        self.assertIn("order/runs/run/step-10/COMMIT", keys)
        self.assertEqual(len(manifests), 1)
        self.assertTrue(manifests[0].startswith("order/runs/run/step-10/"))
        want = set()
        for data in files.values():
            want.update(h.chunk_digests(data, 4 * MIB))
        got = {k.rsplit("/", 1)[1] for k in chunks}
        self.assertEqual(got, want)
        for k in chunks:  # chunks/<hex[0:2]>/<hex>, object = 64-byte header + payload
            hexd = k.rsplit("/", 1)[1]
            self.assertEqual(k.split("/")[-2], hexd[:2])
        manifest = json.loads(self.s3("get", manifests[0]).stdout)
        self.assertEqual(manifest["version"], "step-10")
        paths = {e["path"]: e for e in manifest["entries"]}
        self.assertEqual(paths["experts"]["target"], "layer_0")
        self.assertEqual(paths["meta/config.json"]["size"], 9)
        stats = m.stats()["s3"]
        self.assertEqual(stats["versions_pending"], 0)
        self.assertIsNone(stats["error"])
        # `pecfs status` shows the tier
        st = h.cli("status", m.mnt)
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertIn("s3://%s/order" % BUCKET, st.stdout)

    def test_a_sealed_version_starts_uploading_at_once(self):
        # The uploader looks for new versions once a second when idle; a seal wakes it at once. The
        # delay from each seal to the PUT of its chunk is read from the server's access log: a mean of
        # 0.5 s without the wake.
        m = self.mount("prompt")
        delays = []
        log = os.path.join(self.rgw_dir, "log", "client.rgw.a.log")
        for i in range(6):
            data = h.random_bytes(100000, 40 + i)
            self.write_version(m, "run", "step-%d" % i, {"f.bin": data})
            time.sleep(0.3)
            cp = h.cli("seal", m.path("run", "step-%d" % i))
            self.assertEqual(cp.returncode, 0, cp.stderr)
            sealed = time.time()
            d = h.sha256_bytes(data)
            key = "/%s/prompt/chunks/%s/%s" % (BUCKET, d[:2], d)
            puts = lambda: [when for when, kind, target, _ in rgw_requests(log, BUCKET)
                            if kind == "PUT" and target.split("?", 1)[0] == key]
            self.assertTrue(h.wait_until(lambda: puts(), 60))
            self.assertEqual(len(puts()), 1, puts())
            delays.append(max(0.0, puts()[0] - sealed))
        self.assertLess(sum(delays) / len(delays), 0.6 if h.SANITIZED else 0.3, delays)

    def test_second_version_uploads_only_changed_bytes(self):
        m = self.mount("dedup")
        v1 = self.experts(2)
        self.write_version(m, "run", "step-1", v1)
        self.seal_wait(m, "run", "step-1")
        sent1 = m.stats()["s3"]["bytes_uploaded"]
        v2 = dict(v1)
        v2["layer_0/expert_3.pt"] = h.random_bytes(3 * MIB, 999)
        self.write_version(m, "run", "step-2", v2)
        self.seal_wait(m, "run", "step-2")
        sent2 = m.stats()["s3"]["bytes_uploaded"] - sent1
        self.assertGreater(sent2, 0)
        self.assertLessEqual(sent2, 1.05 * 3 * MIB)

    def test_restore_is_bit_identical(self):
        m = self.mount("restore")
        files = self.experts(3, n=5, size=5 * MIB + 123)
        files["empty"] = b""
        self.write_version(m, "run", "step-5", files)
        self.seal_wait(m, "run", "step-5")
        self.write_version(m, "run", "step-6", {"x.bin": b"later"})
        self.seal_wait(m, "run", "step-6")
        dest = os.path.join(self.scratch, "restored-5")
        self.restore("restore", "run@step-5", dest)
        self.assertEqual(h.diff_trees(h.tree_snapshot(m.path("run", "step-5")), h.tree_snapshot(dest)), [])
        latest = os.path.join(self.scratch, "restored-latest")
        self.restore("restore", "run", latest)
        self.assertEqual(h.read_file(os.path.join(latest, "x.bin")), b"later")
        missing = self.restore("restore", "run@nope", os.path.join(self.scratch, "r-nope"), check=False)
        self.assertEqual(missing.returncode, 1)
        self.assertIn("no committed version", missing.stderr)

    def test_mount_from_on_fresh_node_reads_everything(self):
        m = self.mount("fromtest")
        files = self.experts(4, n=4)
        self.write_version(m, "run", "step-7", files)
        os.makedirs(m.path("run", "step-7", "empty_dir"))
        self.seal_wait(m, "run", "step-7")
        fresh = h.Mount(["--from", "s3://%s/fromtest" % BUCKET, "--s3-endpoint", self.endpoint,
                         "--s3-addressing", "path"])
        self.addCleanup(fresh.cleanup)
        self.assertEqual(h.chunk_files(fresh.data), {})
        self.assertEqual(h.diff_trees(h.tree_snapshot(m.path("run", "step-7")),
                                      h.tree_snapshot(fresh.path("run", "step-7"))), [])
        self.assertGreater(fresh.stats()["s3"]["fetched_chunks"], 0)
        self.assertEqual(fresh.version_state("run", "step-7"), "uploaded")

    def test_eviction_then_reads_fetch_back(self):
        m = self.mount("evict", "--cache-size", "4M")
        files = self.experts(5, n=4, size=4 * MIB)
        self.write_version(m, "run", "step-1", files)
        self.seal_wait(m, "run", "step-1")
        self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["evicted_chunks"] >= 3, 20))
        self.assertLessEqual(sum(os.path.getsize(p) for p in h.chunk_files(m.data).values()), 5 * MIB)
        h.drop_caches()
        for rel, data in files.items():
            self.assertEqual(h.sha256_file(m.path("run", "step-1", rel)), h.sha256_bytes(data), rel)
        self.assertGreater(m.stats()["s3"]["fetched_chunks"], 0)

    def test_corrupt_object_reads_eio(self):
        m = self.mount("corrupt", "--cache-size", "1M")
        data = h.random_bytes(4 * MIB, 77)
        self.write_version(m, "run", "v", {"f.bin": data})
        self.seal_wait(m, "run", "v")
        self.assertTrue(h.wait_until(lambda: h.chunk_files(m.data) == {}, 20))
        key = "corrupt/chunks/%s/%s" % (h.sha256_bytes(data)[:2], h.sha256_bytes(data))
        obj = bytearray(self.s3("get", key).stdout)
        obj[100000] ^= 0xFF
        bad = os.path.join(self.scratch, "bad.obj")
        with open(bad, "wb") as f:
            f.write(obj)
        self.s3("put", key, bad)
        h.drop_caches()
        with self.assertRaises(OSError) as cm:
            h.read_file(m.path("run", "v", "f.bin"))
        self.assertEqual(cm.exception.errno, errno.EIO)
        self.assertGreaterEqual(m.stats()["s3"]["fetch_corrupt"], 1)

    def test_two_nodes_write_one_version(self):
        # A version is the parts its COMMIT names: nodes that share one say how many (--s3-nodes).
        a = self.mount("nodes", "--node-id", "node-a", "--s3-nodes", "2")
        b = self.mount("nodes", "--node-id", "node-b", "--s3-nodes", "2")
        shared = h.random_bytes(4 * MIB, 11)  # non-expert state both nodes write: stored once in S3
        fa = {"rank0.pt": h.random_bytes(2 * MIB, 12), "common.pt": shared}
        fb = {"rank1.pt": h.random_bytes(2 * MIB, 13), "common.pt": shared}
        self.write_version(a, "run", "step-3", fa)
        self.write_version(b, "run", "step-3", fb)
        self.assertEqual(h.cli("seal", a.path("run", "step-3")).returncode, 0)
        self.seal_wait(b, "run", "step-3")
        self.assertTrue(h.wait_until(lambda: self.version(a, "run", "step-3")["state"] == "uploaded", 30))
        commit = json.loads(self.s3("get", "nodes/runs/run/step-3/COMMIT").stdout)
        self.assertEqual([p[0] for p in commit["manifests"]], ["node-a", "node-b"])
        keys = self.listing("nodes")
        self.assertIn("nodes/runs/run/step-3/node-a.manifest", keys)
        self.assertIn("nodes/runs/run/step-3/node-b.manifest", keys)
        self.assertIn("nodes/runs/run/step-3/COMMIT", keys)
        self.assertEqual(len([k for k in keys if k.startswith("nodes/chunks/")]), 3)
        dest = os.path.join(self.scratch, "restored-nodes")
        self.restore("nodes", "run@step-3", dest)
        for name, data in list(fa.items()) + list(fb.items()):
            self.assertEqual(h.read_file(os.path.join(dest, name)), data, name)
        c = h.Mount(["--from", "s3://%s/nodes" % BUCKET, "--s3-endpoint", self.endpoint, "--s3-addressing", "path"])
        self.addCleanup(c.cleanup)
        self.assertEqual(sorted(os.listdir(c.path("run", "step-3"))), ["common.pt", "rank0.pt", "rank1.pt"])
        self.assertEqual(h.read_file(c.path("run", "step-3", "rank1.pt")), fb["rank1.pt"])

    # ---- faults ----

    def test_wrong_credentials_then_fixed(self):
        os.environ["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-value"
        try:
            m = self.mount("creds")
        finally:
            os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
        data = h.random_bytes(2 * MIB, 5)
        self.write_version(m, "run", "v", {"a.bin": data})
        self.assertEqual(h.cli("seal", m.path("run", "v")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["state"] == "retrying", 30))
        err = m.stats()["s3"]["error"]
        # The server's refusal, with its reason: a signed PUT names the S3 error code, a HEAD only its status.
        self.assertRegex(err, r"SignatureDoesNotMatch|403")
        self.assertIn("secret key is wrong", err)
        self.assertNotIn("wrong-secret-value", err)
        st = h.cli("status", m.mnt)
        self.assertIn("retrying", st.stdout)
        self.assertEqual(h.read_file(m.path("run", "v", "a.bin")), data)  # the local tier works
        self.assertNotIn("creds/runs/run/v/COMMIT", self.listing("creds"))
        m.remount()
        self.seal_wait(m, "run", "v")
        self.assertIn("creds/runs/run/v/COMMIT", self.listing("creds"))

    def test_kill9_mid_upload_resumes(self):
        m = self.mount("kill", "--upload-bandwidth", "8M", "--upload-threads", "2")
        files = self.experts(6, n=8, size=4 * MIB)
        self.write_version(m, "run", "v", files)
        self.assertEqual(h.cli("seal", m.path("run", "v")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["chunks_uploaded"] >= 1, 30))
        m.kill9()
        self.assertNotIn("kill/runs/run/v/COMMIT", self.listing("kill"))
        m.options = self.tier_opts("kill")
        m.mount()
        self.seal_wait(m, "run", "v")
        dest = os.path.join(self.scratch, "restored-kill")
        self.restore("kill", "run@v", dest)
        self.assertEqual(h.diff_trees(h.tree_snapshot(m.path("run", "v")), h.tree_snapshot(dest)), [])

    def test_server_outage_30s_then_completes(self):
        m = self.mount("outage", "--upload-bandwidth", "8M", "--upload-threads", "2")
        files = self.experts(7, n=8, size=4 * MIB)
        self.write_version(m, "run", "v", files)
        self.assertEqual(h.cli("seal", m.path("run", "v")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["chunks_uploaded"] >= 1, 30))
        self.rgw("rgw-stop")
        try:
            self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["state"] == "retrying", 60))
            time.sleep(30)
        finally:
            self.rgw("rgw-start")
        self.assertTrue(h.wait_until(lambda: "outage/runs/run/v/COMMIT" in self.listing("outage"), 150, 1))
        keys = self.listing("outage")
        manifest = [k for k in keys if k.endswith(".manifest")][0]
        for e in json.loads(self.s3("get", manifest).stdout)["entries"]:
            for x in e.get("extents", []):
                self.assertIn("outage/chunks/%s/%s" % (x[2][:2], x[2]), keys)
        self.assertTrue(h.wait_until(lambda: self.version(m, "run", "v")["state"] == "uploaded", 30))


    def test_metrics_count_s3_requests_as_they_happen(self):
        from test_metrics import families, promtool
        from s3_fixture import free_port
        port = free_port()
        m = self.mount("metrics", "--metrics-listen", "127.0.0.1:%d" % port)
        files = self.experts(3, n=2)
        self.write_version(m, "run", "v", files)
        self.seal_wait(m, "run", "v")
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
            text = r.read().decode()
        cp = promtool(text)
        self.assertEqual((cp.returncode, cp.stdout, cp.stderr), (0, "", ""))
        f = families(text)
        req = {labels: v for labels, v in f["pecfs_s3_requests_total"]}
        chunks = [k for k in self.listing("metrics") if k.startswith("metrics/chunks/")]
        puts = req['{method="PUT",status="2xx"}']
        # every chunk object, the manifest and COMMIT went up with a PUT (plus node state and the like)
        self.assertGreaterEqual(puts, len(chunks) + 2)
        for method in ("GET", "PUT", "HEAD", "DELETE", "POST"):
            sent = sum(v for labels, v in req.items() if '"%s"' % method in labels)
            count = [v for labels, v in f["pecfs_s3_request_duration_seconds_count"] if method in labels]
            inf = [v for labels, v in f["pecfs_s3_request_duration_seconds_bucket"]
                   if method in labels and 'le="+Inf"' in labels]
            self.assertEqual(count, [sent], method)
            self.assertEqual(inf, [sent], method)
        stats = m.stats()["s3"]
        self.assertEqual(f["pecfs_s3_uploaded_bytes_total"], [("", float(stats["bytes_uploaded"]))])
        self.assertEqual(f["pecfs_s3_uploaded_chunks_total"], [("", float(len(chunks)))])
        self.assertEqual(f["pecfs_s3_versions_pending"], [("", 0.0)])
        self.assertEqual(f["pecfs_s3_versions_uploaded_total"], [("", 1.0)])

if __name__ == "__main__":
    h.main()
