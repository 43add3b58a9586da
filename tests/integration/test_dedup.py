# test_dedup.py - byte-identical replicas are stored once: eight processes write the same 32 MiB file
# at the same time (into different versions, with different write sizes) and the data folder grows by
# about one copy, measured both on disk (DATA_DIR/chunks) and through /.pec/stats.
import os
import subprocess
import sys
import unittest

import pecfs_harness as h

MiB = 1 << 20
SIZE = 32 * MiB
WRITERS = 8

WRITER = r"""
import os, random, sys
path, seed, size, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = random.Random(seed).randbytes(size)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
off = 0
while off < size:
    off += os.write(fd, data[off:off + bs])
os.fsync(fd)
os.close(fd)
"""


class Dedup(unittest.TestCase):
    def write_replicas(self, m, run, seed, block_sizes):
        procs = []
        for i, bs in enumerate(block_sizes):
            d = m.path(run, "rank%d" % i)
            os.makedirs(d)
            procs.append(subprocess.Popen([sys.executable, "-c", WRITER, os.path.join(d, "model.bin"),
                                           str(seed), str(SIZE), str(bs)]))
        for p in procs:
            self.assertEqual(p.wait(timeout=600 * h.SLOW), 0)

    def test_replicas_are_stored_once(self):
        with h.Mount() as m:
            os.makedirs(m.path("warm", "v"))
            h.write_file(m.path("warm", "v", "x"), b"warm-up", fsync=True)
            disk0, _ = h.du_bytes(os.path.join(m.data, "chunks"))
            st0 = m.stats()
            # different write sizes: chunks are cut at file offsets, so they must not matter
            sizes = [MiB, MiB, 4 * MiB, 128 * 1024, MiB + 4096, 3 * MiB, 65536 + 1, 2 * MiB]
            self.write_replicas(m, "dp", 77, sizes[:WRITERS])
            expect = h.sha256_bytes(h.random_bytes(SIZE, 77))
            for i in range(WRITERS):
                self.assertEqual(h.sha256_file(m.path("dp", "rank%d" % i, "model.bin")), expect)
            disk1, _ = h.du_bytes(os.path.join(m.data, "chunks"))
            st1 = m.stats()
            grew_disk = disk1 - disk0
            grew_stored = st1["stored_bytes"] - st0["stored_bytes"]
            print("\nchunks folder grew %d bytes, stored_bytes grew %d, for %d x %d logical"
                  % (grew_disk, grew_stored, WRITERS, SIZE))
            self.assertGreaterEqual(grew_stored, SIZE)
            self.assertLessEqual(grew_stored, SIZE * 1.01)
            self.assertGreaterEqual(grew_disk, SIZE)
            self.assertLessEqual(grew_disk, SIZE * 1.05)  # chunk headers are 4 KiB each
            chunks = SIZE // (4 * MiB)
            self.assertEqual(st1["chunks"] - st0["chunks"], chunks)
            self.assertGreaterEqual(st1["dedup_hits"] - st0["dedup_hits"], (WRITERS - 1) * chunks)
            digests = {os.getxattr(m.path("dp", "rank%d" % i, "model.bin"), "user.pec.digest")
                       for i in range(WRITERS)}
            self.assertEqual(len(digests), 1)
            # the run's accounting once sealed (open versions are covered by test_versions): logical
            # bytes of every replica, stored bytes of one copy at most
            for i in range(WRITERS):
                h.cli("seal", m.path("dp", "rank%d" % i), check=True)
            vs = {v["name"]: v for v in m.versions("dp")["versions"]}
            self.assertEqual(len(vs), WRITERS)
            for v in vs.values():
                self.assertEqual(v["logical_bytes"], SIZE)
                self.assertEqual(v["files"], 1)
                self.assertLessEqual(v["stored_bytes"], SIZE)
            # and again after a remount (reference counts rebuilt from the database)
            m.remount()
            disk2, _ = h.du_bytes(os.path.join(m.data, "chunks"))
            self.assertEqual(disk2, disk1)
            os.makedirs(m.path("dp", "rank-late"))
            h.write_file(m.path("dp", "rank-late", "model.bin"), h.random_bytes(SIZE, 77), fsync=True)
            disk3, _ = h.du_bytes(os.path.join(m.data, "chunks"))
            self.assertEqual(disk3, disk1)
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def test_identical_chunks_within_and_across_files(self):
        with h.Mount(["--chunk-size", "1M"]) as m:
            os.makedirs(m.path("r", "v"))
            block = h.random_bytes(MiB, 5)
            disk0, n0 = h.du_bytes(os.path.join(m.data, "chunks"))
            # one file made of the same chunk 10 times, a second with the same chunk at chunk offsets
            h.write_file(m.path("r", "v", "a"), block * 10, fsync=True)
            h.write_file(m.path("r", "v", "b"), block * 3 + b"tail", fsync=True)
            disk1, n1 = h.du_bytes(os.path.join(m.data, "chunks"))
            self.assertEqual(n1 - n0, 2)  # the block, and "tail"
            self.assertLess(disk1 - disk0, MiB + 64 * 1024)
            # overwriting one copy must not change the other
            with open(m.path("r", "v", "a"), "r+b") as f:
                f.seek(MiB + 10)
                f.write(b"CHANGED")
            self.assertEqual(h.read_file(m.path("r", "v", "b")), block * 3 + b"tail")
            expect = bytearray(block * 10)
            expect[MiB + 10:MiB + 17] = b"CHANGED"
            self.assertEqual(h.read_file(m.path("r", "v", "a")), bytes(expect))


if __name__ == "__main__":
    h.main()
