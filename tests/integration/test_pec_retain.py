# test_pec_retain.py - retention on a real mount: with user.pec.keep = 3 a DeepSpeed-style trainer
# saves 20 partial-expert rounds; after every seal the run lists exactly the versions retention keeps
# (the newest 3 complete ones, newer ones, pinned ones), the kept versions read back as full
# checkpoints, and after `pecfs gc` the stored bytes match what the kept compositions need (within 1 %).
import os
import unittest

import pecfs_harness as h
from test_pec_compose import Trainer

KEEP = 3


class PecRetain(unittest.TestCase):
    def setUp(self):
        self.m = h.Mount(["--chunk-size", "1M"])

    def tearDown(self):
        self.m.cleanup()

    def listed(self, t):
        return sorted(n for n in os.listdir(self.m.path(t.run)) if n.startswith("global_step"))

    def test_keep_three_over_twenty_rounds(self):
        m, t = self.m, Trainer(self, self.m)
        os.setxattr(m.path(t.run), "user.pec.keep", str(KEEP).encode())
        pinned = None
        for r in range(1, 21):
            name = t.write_round()
            if r == 5:
                pinned = name
                h.cli("pin", m.path(t.run, name), check=True)
                self.assertEqual(os.getxattr(m.path(t.run, name), "user.pec.pin"), b"1")
            if r == 15:
                h.cli("unpin", m.path(t.run, pinned), check=True)
            # complete versions are rounds 4 and later; until 3 of them exist nothing is retired
            complete = [i for i in range(4, r + 1)]
            if len(complete) < KEEP:
                want = list(range(1, r + 1))
            else:
                want = complete[-KEEP:]
                if 5 <= r < 16:  # pinned from round 5; unpinned at 15, retired at the next seal
                    want = sorted(set(want) | {5})
            want_names = sorted(t.name(i) for i in want)
            self.assertEqual(self.listed(t), want_names, "after round %d" % r)
            versions = [v["name"] for v in m.versions(t.run)["versions"]]
            self.assertEqual(sorted(versions), want_names)
            for gone in set(t.expect) - set(want_names):
                del t.expect[gone]
            t.removed = r - len(want_names)
            t.check_version(name)
        t.check_all()
        self.assertEqual(h.cli("gc", m.data).returncode, 0)
        t.check_all()
        # what the three kept compositions need: each distinct file content once (one chunk each)
        need = {}
        for name in t.expect:
            for data in t.expect[name].values():
                need[h.sha256_bytes(data)] = len(data)
        stored = m.stats()["stored_bytes"]
        self.assertLessEqual(abs(stored - sum(need.values())), 0.01 * sum(need.values()),
                             "stored %d, needed %d" % (stored, sum(need.values())))
        m.remount()
        t.check_all()
        self.assertEqual(m.fsck().returncode, 0)


if __name__ == "__main__":
    h.main()
