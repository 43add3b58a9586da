# test_gc.py - `pecfs gc DATA_DIR` while mounted: chunks no file references any more (after deletes and
# overwrites) are removed from disk, chunks still shared with other files stay, everything reachable
# reads back, writes racing with gc lose nothing, and fsck is clean afterwards. The background
# collection (gc-garbage) keeps a file rewritten in place from filling the disk, and with it off the
# garbage grows as before.
import os
import random
import subprocess
import sys
import unittest

import pecfs_harness as h

MiB = 1 << 20


def chunk_state(m):
    return h.du_bytes(os.path.join(m.data, "chunks"))


class GarbageCollection(unittest.TestCase):
    def gc(self, m):
        cp = h.cli("gc", m.data, timeout=300)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        return cp.stdout

    def test_gc_reclaims_deleted_and_overwritten_chunks(self):
        with h.Mount(["--chunk-size", "1M"]) as m:
            d = m.path("run", "v1")
            os.makedirs(d)
            A = h.random_bytes(8 * MiB, 1)
            B = h.random_bytes(8 * MiB, 2)
            h.write_file(os.path.join(d, "a"), A, fsync=True)
            h.write_file(os.path.join(d, "b"), B, fsync=True)
            h.write_file(os.path.join(d, "c"), A, fsync=True)  # shares every chunk with a
            os.makedirs(m.path("run", "v0"))
            S = h.random_bytes(3 * MiB, 3)
            h.write_file(m.path("run", "v0", "sealed"), S)
            h.cli("seal", m.path("run", "v0"), check=True)
            self.gc(m)  # nothing to collect yet
            bytes0, n0 = chunk_state(m)
            self.assertEqual(n0, 8 + 8 + 3)

            os.unlink(os.path.join(d, "b"))
            self.gc(m)
            bytes1, n1 = chunk_state(m)
            self.assertEqual(n1, n0 - 8, "chunks of a deleted file are reclaimed")
            self.assertLess(bytes1, bytes0 - 8 * MiB + 1)
            for dg in h.chunk_digests(B, MiB):
                self.assertNotIn(dg, h.chunk_files(m.data))

            # overwrite a completely: its old chunks are still c's, so nothing goes
            A2 = h.random_bytes(8 * MiB, 4)
            h.write_file(os.path.join(d, "a"), A2, fsync=True)
            self.gc(m)
            _, n2 = chunk_state(m)
            self.assertEqual(n2, n1 + 8)
            self.assertEqual(h.read_file(os.path.join(d, "c")), A)

            # now c goes too: A's chunks are garbage
            os.unlink(os.path.join(d, "c"))
            self.gc(m)
            _, n3 = chunk_state(m)
            self.assertEqual(n3, n2 - 8)

            # a partial overwrite replaces one chunk
            with open(os.path.join(d, "a"), "r+b") as f:
                f.seek(3 * MiB + 100)
                f.write(b"patched")
                f.flush()
                os.fsync(f.fileno())
            self.gc(m)
            _, n4 = chunk_state(m)
            self.assertEqual(n4, n3, "one chunk replaced by one chunk")
            expect = bytearray(A2)
            expect[3 * MiB + 100:3 * MiB + 107] = b"patched"
            self.assertEqual(h.read_file(os.path.join(d, "a")), bytes(expect))
            self.assertNotIn(h.chunk_digests(A2, MiB)[3], h.chunk_files(m.data))

            # truncation drops the chunks past the end
            os.truncate(os.path.join(d, "a"), 2 * MiB)
            self.gc(m)
            _, n5 = chunk_state(m)
            self.assertEqual(n5, n4 - 6)
            self.assertEqual(h.read_file(os.path.join(d, "a")), A2[:2 * MiB])
            self.assertEqual(h.read_file(m.path("run", "v0", "sealed")), S)

            st = m.stats()
            self.assertEqual(st["chunks"], n5)
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            m.mount()
            self.assertEqual(h.read_file(m.path("run", "v0", "sealed")), S)
            self.assertEqual(h.read_file(os.path.join(d, "a")), A2[:2 * MiB])

    def test_files_removed_right_after_close_leave_nothing_behind(self):
        # Removing the last name of a closed file deletes its records and extents with the name. The
        # kernel releases a closed file after close(2) returns, so a removal right after a close
        # finds the file still open or not: either way nothing may stay behind. A file removed
        # while open keeps its chunks until its last close. Renaming over a file removes it too.
        with h.Mount(["--chunk-size", "1M"]) as m:
            d = m.path("run", "v1")
            os.makedirs(d)
            kept = h.random_bytes(2 * MiB, 50)
            h.write_file(os.path.join(d, "kept"), kept, fsync=True)
            self.gc(m)
            _, n_kept = chunk_state(m)
            for i in range(12):
                p = os.path.join(d, "f%d" % i)
                with open(p, "wb") as f:  # no fsync: the last chunks are stored at close
                    f.write(h.random_bytes(3 * MiB + 4096, 60 + i))
                if i % 3 == 2:
                    src = os.path.join(d, "new%d" % i)
                    h.write_file(src, h.random_bytes(MiB + 1, 80 + i))
                    os.rename(src, p)  # replaces f<i>; new<i> is then removed below
                os.unlink(p)
            held = open(os.path.join(d, "held"), "w+b")
            try:
                held.write(h.random_bytes(2 * MiB, 99))
                held.flush()
                os.fsync(held.fileno())
                os.unlink(os.path.join(d, "held"))
                self.gc(m)
                _, n_open = chunk_state(m)
                self.assertEqual(n_open, n_kept + 2, "a removed file still open keeps its chunks")
                held.seek(0)
                self.assertEqual(held.read(), h.random_bytes(2 * MiB, 99))
            finally:
                held.close()
            self.gc(m)
            _, n_end = chunk_state(m)
            self.assertEqual(n_end, n_kept, "every chunk of the removed files is reclaimed")
            self.assertEqual(os.listdir(d), ["kept"])
            self.assertEqual(m.stats()["chunks"], n_kept)
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            m.mount()
            self.assertEqual(h.read_file(os.path.join(d, "kept")), kept)

    def rewrite_in_place(self, m, path, rounds):
        """A 1 MiB file rewritten whole `rounds` times with new bytes (each round orphans 16 chunks)."""
        with open(path, "r+b", buffering=0) as f:
            for r in range(rounds):
                f.seek(0)
                f.write(h.random_bytes(MiB, 1000 + r))
                os.fsync(f.fileno())
        return h.random_bytes(MiB, 1000 + rounds - 1)

    def test_background_collection_bounds_the_garbage_of_rewrites(self):
        with h.Mount(["--chunk-size", "64K", "--gc-garbage", "4M"]) as m:
            os.makedirs(m.path("r", "v"))
            p = m.path("r", "v", "scratch.bin")
            h.write_file(p, b"")
            last = self.rewrite_in_place(m, p, 64)  # 64 MiB of superseded chunks in all
            # The garbage falls while a collection runs; its run and freed bytes count once it ends.
            def collected():
                st = m.stats()
                return st["garbage_bytes"] < 4 * MiB and st["gc_background_freed_bytes"] >= 56 * MiB
            self.assertTrue(h.wait_until(collected, 10), m.stats())
            st = m.stats()
            self.assertGreater(st["gc_background_runs"], 0)
            self.assertGreaterEqual(st["gc_background_freed_bytes"], 56 * MiB)
            self.assertLess(chunk_state(m)[0], 12 * MiB)
            self.assertEqual(h.read_file(p), last)
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def test_without_background_collection_garbage_waits_for_pecfs_gc(self):
        with h.Mount(["--chunk-size", "64K", "--gc-garbage", "0"]) as m:
            os.makedirs(m.path("r", "v"))
            p = m.path("r", "v", "scratch.bin")
            h.write_file(p, b"")
            self.rewrite_in_place(m, p, 16)
            h.wait_until(lambda: False, 2)  # time a background collection would have had
            st = m.stats()
            self.assertGreaterEqual(st["garbage_bytes"], 15 * MiB)
            self.assertEqual(st["gc_background_runs"], 0)
            cp = h.cli("gc", m.data)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertLess(m.stats()["garbage_bytes"], MiB)

    def test_gc_racing_with_writers_of_the_same_bytes(self):
        # Writers keep re-creating files whose chunks gc is collecting at the same moment: every file
        # must read back, and nothing may reference a removed chunk.
        writer = r"""
import os, random, sys
d, rounds = sys.argv[1], int(sys.argv[2])
blocks = [random.Random(s).randbytes(1 << 20) for s in range(6)]
for r in range(rounds):
    for i in range(3):
        p = os.path.join(d, "f%d" % i)
        data = b"".join(blocks[(r + i + k) % 6] for k in range(4))
        with open(p, "wb") as f:
            f.write(data)
        if r % 3 == 0:
            os.unlink(p)
"""
        with h.Mount(["--chunk-size", "1M"]) as m:
            d = m.path("run", "v")
            os.makedirs(d)
            w = subprocess.Popen([sys.executable, "-c", writer, d, "41"])  # the last round keeps its files
            gcs = 0
            while w.poll() is None:
                self.gc(m)
                gcs += 1
            self.assertEqual(w.wait(), 0)
            self.assertGreater(gcs, 1)
            blocks = [random.Random(s).randbytes(MiB) for s in range(6)]
            for i in range(3):
                p = os.path.join(d, "f%d" % i)
                expect = b"".join(blocks[(40 + i + k) % 6] for k in range(4))
                self.assertEqual(h.read_file(p), expect, p)
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            m.mount()
            self.gc(m)
            for i in range(3):
                p = os.path.join(d, "f%d" % i)
                self.assertEqual(h.sha256_file(p), h.sha256_bytes(
                    b"".join(blocks[(40 + i + k) % 6] for k in range(4))))


if __name__ == "__main__":
    h.main()
