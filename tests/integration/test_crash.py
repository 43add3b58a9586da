# test_crash.py - the durability contract under kill -9: a writer process creates files (some fsynced)
# and seals versions (CLI, xattr, tracker file, rename into place), journaling each promise outside the
# mount only after the call that makes it returns; the daemon is killed at a random instant, the mount
# lazily unmounted, fsck must be clean, and after a remount every journaled file and sealed version
# must read back bit for bit. Seed printed; PECFS_SEED and PECFS_CRASH_ITERS override. Also: chunks a
# crash left past a file's recorded size never reappear when the file grows.
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import unittest

import checkpoint_writer
import pecfs_harness as h

HERE = os.path.dirname(os.path.abspath(__file__))

WRITER = r"""
import os, random, sys
sys.path.insert(0, sys.argv[6])
from checkpoint_writer import Writer
pecfs, mnt, journal, seed, it = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
mnt = Writer.open_root(mnt)
if mnt is None:
    sys.exit(0)  # killed before we started: nothing to do
w = Writer(pecfs, mnt, journal, random.Random(seed), random.Random(12345).randbytes(3 << 20))
run = "run%d" % (it % 3)   # a few runs, so tracker files are rewritten across iterations
os.makedirs(os.path.join(mnt, run), exist_ok=True)
for vnum in range(1000):
    w.version(run, "step-%d" % (it * 1000 + vnum), ["cli", "xattr", "tracker", "rename", "none", "none"],
              max_files=5, max_size=3 << 20, write_sizes=[1 << 20, 4096, 100000, 3 << 20])
"""


class UnsyncedSize(unittest.TestCase):
    def test_bytes_past_the_recorded_size_never_come_back(self):
        """A crash can leave a file's stored chunks past the size its record holds (the chunks are
        committed as they fill, the size when the file is flushed). Growing the file afterwards must
        expose zeros there, not the bytes that were never promised."""
        m = h.Mount(["--chunk-size", "1M"])
        self.addCleanup(m.cleanup)
        os.makedirs(m.path("r", "v"))
        p = m.path("r", "v", "f")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, h.random_bytes(3 << 20, 7))
        # The three full chunks are stored and committed in the background; no flush, no fsync.
        self.assertTrue(h.wait_until(lambda: m.stats()["stored_bytes"] >= 3 << 20, 30))
        time.sleep(0.5)  # each extent is committed right after its chunk is stored
        m.kill9()
        with contextlib.suppress(OSError):
            os.close(fd)  # the mount is gone: the close fails, the descriptor is released anyway
        m.mount()
        self.assertEqual(os.stat(p).st_size, 0)
        fd = os.open(p, os.O_WRONLY)
        os.pwrite(fd, b"e", 3 << 20)
        os.close(fd)
        data = h.read_file(p)
        self.assertEqual(len(data), (3 << 20) + 1)
        self.assertTrue(data == bytes(3 << 20) + b"e", "bytes past the recorded size came back")


class CrashLoop(unittest.TestCase):
    def test_kill9_at_random_points(self):
        seed = int(os.environ.get("PECFS_SEED", random.randrange(1 << 30)))
        iters = int(os.environ.get("PECFS_CRASH_ITERS", "24"))
        print("\ncrash loop seed %d (PECFS_SEED=%d to repeat), %d iterations" % (seed, seed, iters))
        rng = random.Random(seed)
        with h.Mount(["--chunk-size", "1M"]) as m:
            journal = os.path.join(m.base, "journal")
            open(journal, "w").close()
            promised_files = promised_versions = 0
            for it in range(iters):
                delay = rng.choice([0.0, rng.uniform(0, 0.3), rng.uniform(0.1, 2.5), rng.uniform(0.1, 2.5)])
                writer = subprocess.Popen([sys.executable, "-c", WRITER, h.PECFS_BIN, m.mnt, journal,
                                           str(rng.randrange(1 << 30)), str(it), HERE],
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                time.sleep(delay * h.SLOW)
                early = writer.poll()
                m.kill9()
                try:
                    out = writer.communicate(timeout=60)[0]
                except subprocess.TimeoutExpired:
                    writer.kill()
                    out = writer.communicate()[0]
                if early is not None:
                    self.fail("writer exited (%d) before the kill in iteration %d:\n%s" % (early, it, out))
                for marker in ("did not seal",):
                    self.assertNotIn(marker, out, "iteration %d" % it)
                cp = m.fsck()
                self.assertEqual(cp.returncode, 0, "fsck after kill in iteration %d (seed %d, delay %.3f):\n%s%s"
                                 % (it, seed, delay, cp.stdout, cp.stderr))
                m.mount()
                promised_files, promised_versions = self.verify(m, journal, it, seed)
            print("%d fsynced files and %d sealed versions promised and verified" %
                  (promised_files, promised_versions))
            self.assertGreater(promised_files + promised_versions, 0, "the writers never got a promise out")
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def verify(self, m, journal, it, seed):
        nfiles = nversions = 0
        with open(journal) as f:
            entries = [json.loads(l) for l in f if l.endswith("\n")]
        for e in entries:
            ctx = "iteration %d, seed %d: %r" % (it, seed, e)
            if checkpoint_writer.check_promise(self, m, e, "(%s)" % ctx, h.sha256_file) == "file":
                nfiles += 1
            else:
                nversions += 1
        return nfiles, nversions


if __name__ == "__main__":
    h.main()
