# test_s3_faults.py - the S3 tier through a faulty network: pecfs talks to the test's Ceph RGW through
# faultproxy.FaultProxy, which resets connections mid-request, stalls them (once for longer than the
# client's 30 s low-speed timeout) and counts what it did. Every transfer must complete through
# retries: uploads reach "uploaded" with a consistent bucket (read through the direct endpoint),
# restores, `fsck --remote` and `mount --from` reads through the faults are bit-identical (or clean),
# a mount --from that cannot tell whether a version is committed fails instead of skipping it, and a
# spell of total failure shows as a retrying state that clears once the network is back.
import json
import os
import subprocess
import sys
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from faultproxy import FaultProxy  # noqa: E402
from s3_fixture import BUCKET, MIB, RgwTestCase, s3check_bin  # noqa: E402
import s3_fixture  # noqa: E402

# The tier's client gives up on a transfer below 1 KiB/s for 30 s (store/tier/tier_client.c, s3_client.h).
TIER_LOW_SPEED_S = 30
# libcurl measures the speed over the last ~5 s, so a stall right after a burst is cut this much later.
CURL_SPEED_WINDOW_S = 10


class S3FaultsTest(RgwTestCase):
    def setUp(self):
        self.proxy = FaultProxy(self.port, seed=zlib.crc32(self.id().encode()))
        self.addCleanup(self.proxy.close)

    def proxy_opts(self, prefix, *extra):
        return ["--s3", "s3://%s/%s" % (BUCKET, prefix), "--s3-endpoint", self.proxy.endpoint,
                "--s3-addressing", "path"] + list(extra)

    def mount_proxy(self, prefix, *extra):
        m = h.Mount(self.proxy_opts(prefix, *extra))
        self.addCleanup(m.cleanup)
        return m

    def s3_via_proxy(self, *args, check=True):
        env = dict(os.environ, PECS3_ENDPOINT=self.proxy.endpoint, PECS3_BUCKET=BUCKET,
                   AWS_ACCESS_KEY_ID=s3_fixture.ACCESS_KEY, AWS_SECRET_ACCESS_KEY=s3_fixture.SECRET_KEY)
        cp = subprocess.run([s3check_bin(), "--path-style"] + [str(a) for a in args], capture_output=True,
                            env=env, timeout=180)
        if check and cp.returncode:
            raise AssertionError("pecfs-s3check %s failed: %s" % (" ".join(map(str, args)), cp.stderr))
        return cp

    def assert_bucket_consistent(self, prefix):
        """Through the direct endpoint: every COMMIT has a manifest, every chunk a manifest names is
        there with its header and payload length. Returns the set of committed versions."""
        keys = self.listing(prefix)
        committed = {k.split("/")[-2] for k in keys if k.endswith("/COMMIT")}
        for v in committed:
            manifests = [k for k in keys if k.startswith("%s/runs/run/%s/" % (prefix, v)) and
                         k.endswith(".manifest")]
            self.assertTrue(manifests, "COMMIT of %s without a manifest" % v)
            for mk in manifests:
                for e in json.loads(self.s3("get", mk).stdout)["entries"]:
                    for x in e.get("extents", []):
                        if len(x) == 7:  # a member of a pack: the pack holds it at x[6]
                            pk = "%s/packs/%s/%s" % (prefix, x[5][:2], x[5])
                            self.assertIn(pk, keys, "%s names a missing pack" % mk)
                            self.assertGreaterEqual(keys[pk], x[6] + 64 + x[4], pk)
                            continue
                        ck = "%s/chunks/%s/%s" % (prefix, x[2][:2], x[2])
                        self.assertIn(ck, keys, "%s names a missing chunk" % mk)
                        self.assertEqual(keys[ck], 64 + x[4], ck)
        return committed

    def wait_uploaded(self, m, names, timeout):
        def done():
            vs = {v["name"]: v["state"] for v in m.versions("run")["versions"]}
            return all(vs.get(n) == "uploaded" for n in names)
        self.assertTrue(h.wait_until(done, timeout, 0.5), "not uploaded: %s, s3 %s, proxy %s" % (
            m.versions("run"), m.stats()["s3"], self.proxy.counters()))

    # ---- (a) uploads ----

    def test_uploads_complete_through_resets_and_stalls(self):
        # Resets anywhere in a request (a 4 MiB chunk PUT included), short stalls, and one stall in
        # the middle of a body that outlasts the client's low-speed timeout.
        self.proxy.set_faults(reset_prob=0.25, reset_after=(0, 5 * MIB), stall_prob=0.15,
                              stall_after=(0, 4 * MIB), stall_seconds=(0.2, 1.5))
        self.proxy.force_stall(TIER_LOW_SPEED_S + CURL_SPEED_WINDOW_S, after_bytes=MIB)
        self.proxy.force_reset(after_bytes=2 * MIB + 1000)
        m = self.mount_proxy("upload", "--upload-threads", "4")
        v1 = self.experts(21, n=4, size=6 * MIB)
        v2 = dict(v1)
        v2["layer_0/expert_1.pt"] = h.random_bytes(5 * MIB + 17, 2101)
        v2["optimizer.pt"] = h.random_bytes(9 * MIB, 2102)
        v3 = {"meta/config.json": b'{"step": 3}\n', "small.bin": h.random_bytes(70000, 2103),
              "layer_0/expert_0.pt": v1["layer_0/expert_0.pt"]}
        versions = {"step-1": v1, "step-2": v2, "step-3": v3}
        for name, files in versions.items():
            self.write_version(m, "run", name, files)
            self.assertEqual(h.cli("seal", m.path("run", name)).returncode, 0)
        self.wait_uploaded(m, versions, 150)
        c = self.proxy.counters()
        self.assertGreater(c["resets"], 0, c)
        self.assertGreater(c["stalls"], 1, c)
        self.assertGreaterEqual(c["abandoned"], 1, c)  # the client's timeout cut the long stall
        self.assertEqual(c["forced_pending"], 0, c)
        self.assertEqual(self.assert_bucket_consistent("upload"), set(versions))
        fsck = h.cli("fsck", "--remote", *self.tier_opts("upload"), timeout=120)
        self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)
        for name, files in versions.items():
            dest = os.path.join(self.scratch, "restored-upload-" + name)
            self.restore("upload", "run@" + name, dest)
            for rel, data in files.items():
                self.assertEqual(h.read_file(os.path.join(dest, rel)), data, "%s/%s" % (name, rel))
        self.assertIsNone(m.stats()["s3"]["error"])

    def test_multipart_upload_through_resets_and_a_timeout(self):
        # The client's multipart upload (parts retried on their own) through resets, stalls and a
        # bandwidth cap: the object is whole, no upload is left behind. A low-speed time of 2 s makes
        # a stall of 2 + 10 s a timeout.
        self.proxy.set_faults(reset_prob=0.3, reset_after=(0, 6 * MIB), stall_prob=0.1, stall_after=(0, 5 * MIB),
                              stall_seconds=(0.2, 1.0), bandwidth=32 * MIB)
        self.proxy.force_stall(2 + CURL_SPEED_WINDOW_S, after_bytes=2 * MIB)
        self.proxy.force_reset(after_bytes=3 * MIB)
        data = h.random_bytes(17 * MIB + 5, 2201)
        src = os.path.join(self.scratch, "mpu.src")
        with open(src, "wb") as f:
            f.write(data)
        self.s3_via_proxy("--low-speed-time", "2", "mpu", "mpu/object", src, 5 * MIB, 3)
        c = self.proxy.counters()
        self.assertGreater(c["resets"], 0, c)
        self.assertEqual(c["abandoned"], 1, c)
        self.assertGreater(c["throttled_s"], 0, c)
        self.assertEqual(h.sha256_bytes(self.s3("get", "mpu/object").stdout), h.sha256_bytes(data))
        self.assertEqual(self.s3("uploads", "mpu/").stdout, b"")

    # ---- (b) reads ----

    def test_restore_and_mount_from_read_through_faults(self):
        direct = self.mount("reads")
        files = self.experts(22, n=5, size=5 * MIB + 333)
        files["empty"] = b""
        self.write_version(direct, "run", "v", files)
        self.seal_wait(direct, "run", "v")
        self.proxy.set_faults(reset_prob=0.1, reset_after=(0, 5 * MIB), stall_prob=0.1, stall_after=(0, 4 * MIB),
                              stall_seconds=(0.2, 1.0))
        self.proxy.force_reset(after_bytes=MIB)
        dest = os.path.join(self.scratch, "restored-reads")
        cp = h.cli("restore", *self.proxy_opts("reads"), "run@v", dest, timeout=180)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(h.diff_trees(h.tree_snapshot(direct.path("run", "v")), h.tree_snapshot(dest)), [])
        fsck = h.cli("fsck", "--remote", *self.proxy_opts("reads"), timeout=180)  # its reads retry too
        self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)
        after_restore = self.proxy.counters()
        self.assertGreater(after_restore["resets"], 0, after_restore)
        self.proxy.force_reset(after_bytes=MIB + 3)
        fresh = h.Mount(["--from", "s3://%s/reads" % BUCKET, "--s3-endpoint", self.proxy.endpoint,
                         "--s3-addressing", "path"])
        self.addCleanup(fresh.cleanup)
        for rel, data in files.items():
            self.assertEqual(h.sha256_file(fresh.path("run", "v", rel)), h.sha256_bytes(data), rel)
        c = self.proxy.counters()
        self.assertGreater(c["resets"], after_restore["resets"], c)
        self.assertGreater(fresh.stats()["s3"]["fetched_chunks"], 0)

    def test_mount_from_never_skips_a_version_it_cannot_check(self):
        direct = self.mount("check")
        v1, v2 = {"a.bin": h.random_bytes(MIB, 2401)}, {"b.bin": h.random_bytes(MIB + 1, 2402)}
        self.write_version(direct, "run", "v1", v1)
        self.seal_wait(direct, "run", "v1")
        self.write_version(direct, "run", "v2", v2)
        self.seal_wait(direct, "run", "v2")
        # Every HEAD (import asks whether a version has its COMMIT) is cut: the mount must fail and say
        # so, not come up without the versions.
        self.proxy.force_reset(count=1000, match=b"HEAD ")
        fresh = h.Mount(["--from", "s3://%s/check" % BUCKET, "--s3-endpoint", self.proxy.endpoint,
                         "--s3-addressing", "path"], mount=False)
        self.addCleanup(fresh.cleanup)
        cp = h.cli("mount", *fresh.options, fresh.data, fresh.mnt, timeout=120)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("checking run/v1", cp.stderr)
        self.assertFalse(h.is_mounted(fresh.mnt))
        self.assertGreater(self.proxy.counters()["resets"], 0)
        self.proxy.set_faults()
        fresh.mount()
        self.assertEqual(h.read_file(fresh.path("run", "v1", "a.bin")), v1["a.bin"])
        self.assertEqual(h.read_file(fresh.path("run", "v2", "b.bin")), v2["b.bin"])

    # ---- (c) an outage by faults, then recovery ----

    def test_total_failure_shows_retrying_then_completes(self):
        m = self.mount_proxy("heavy")
        files = self.experts(23, n=3, size=4 * MIB)
        self.write_version(m, "run", "v", files)
        self.proxy.set_faults(reset_prob=1.0, reset_after=(0, 300))  # every request cut in its first bytes
        self.assertEqual(h.cli("seal", m.path("run", "v")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["state"] == "retrying", 60, 0.2), m.stats()["s3"])
        err = m.stats()["s3"]["error"]
        self.assertIn("run/v", err)
        self.assertIn("s3://%s/heavy" % BUCKET, err)
        st = h.cli("status", m.mnt)
        self.assertIn("retrying", st.stdout)
        self.assertNotIn("heavy/runs/run/v/COMMIT", self.listing("heavy"))
        self.assertEqual(self.version(m, "run", "v")["state"], "sealed")
        self.assertGreater(self.proxy.counters()["resets"], 3)
        time.sleep(3)  # a few more failed rounds
        self.proxy.set_faults()
        self.wait_uploaded(m, ["v"], 90)
        self.assertIsNone(m.stats()["s3"]["error"])
        self.assertEqual(self.assert_bucket_consistent("heavy"), {"v"})
        dest = os.path.join(self.scratch, "restored-heavy")
        self.restore("heavy", "run@v", dest)
        self.assertEqual(h.diff_trees(h.tree_snapshot(m.path("run", "v")), h.tree_snapshot(dest)), [])


if __name__ == "__main__":
    h.main()
