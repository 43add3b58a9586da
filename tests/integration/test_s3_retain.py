# test_s3_retain.py - retention with the S3 tier through a server outage: with user.pec.keep = 1 and
# the RGW stopped, three sealed versions all stay (none is in S3 yet, so the local copy is the only
# one), `pecfs gc` reclaims none of their bytes, and each reads back whole; once the server is back
# and the tier commits them, retention retires the two older ones on its own, and they restore from
# the bucket bit for bit.
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import MIB, RgwTestCase  # noqa: E402

NAMES = ["step-1", "step-2", "step-3"]


class S3RetainTest(RgwTestCase):
    def listed(self, m):
        return sorted(n for n in os.listdir(m.path("run")) if n.startswith("step-"))

    def check_local(self, m, name, files):
        for rel, data in files.items():
            self.assertEqual(h.read_file(m.path("run", name, rel)), data, "%s/%s" % (name, rel))

    def test_outage_keeps_uncommitted_versions_then_retires_them(self):
        m = self.mount("outage-keep", "--chunk-size", "1M")
        os.makedirs(m.path("run"))
        os.setxattr(m.path("run"), "user.pec.keep", b"1")
        files = {n: {"model.pt": h.random_bytes(2 * MIB + 17, 10 + i), "optim/state.pt":
                     h.random_bytes(MIB + 5, 20 + i)} for i, n in enumerate(NAMES)}

        self.rgw("rgw-stop")
        try:
            for i, name in enumerate(NAMES):
                self.write_version(m, "run", name, files[name])
                cp = h.cli("seal", m.path("run", name))
                self.assertEqual(cp.returncode, 0, cp.stderr)
                if i == 0:
                    self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["state"] == "retrying", 60),
                                    "the outage was not seen: %s" % m.stats()["s3"])
            # keep = 1, but no version is in S3: retiring any would lose it
            self.assertEqual(self.listed(m), NAMES)
            for name in NAMES:
                self.assertEqual(self.version(m, "run", name)["state"], "sealed")
            stored = m.stats()["stored_bytes"]
            cp = h.cli("gc", m.data)
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            self.assertEqual(m.stats()["stored_bytes"], stored, "gc reclaimed bytes of held versions")
            h.drop_caches()
            for name in NAMES:
                self.check_local(m, name, files[name])
        finally:
            self.rgw("rgw-start")

        # the tier commits them in seal order; each commit runs retention again
        def settled():
            return self.listed(m) == ["step-3"] and self.version(m, "run", "step-3")["state"] == "uploaded"
        self.assertTrue(h.wait_until(settled, 180, 1), "listed %s, s3 %s" % (self.listed(m), m.stats()["s3"]))
        self.check_local(m, "step-3", files["step-3"])
        keys = self.listing("outage-keep")
        for name in NAMES:
            self.assertIn("outage-keep/runs/run/%s/COMMIT" % name, keys)
        for name in NAMES[:2]:
            dest = os.path.join(self.scratch, "restored-%s-%d" % (name, time.monotonic_ns()))
            self.restore("outage-keep", "run@" + name, dest)
            for rel, data in files[name].items():
                self.assertEqual(h.read_file(os.path.join(dest, rel)), data, "%s/%s from S3" % (name, rel))
        # retired and committed: now gc may reclaim their local bytes
        stored = m.stats()["stored_bytes"]
        cp = h.cli("gc", m.data)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertLess(m.stats()["stored_bytes"], stored)
        self.check_local(m, "step-3", files["step-3"])


if __name__ == "__main__":
    h.main()
