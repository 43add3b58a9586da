# test_s3_read.py - reading through `pecfs mount --from` on a fresh data folder against a real S3 server
# (a throwaway Ceph RGW, see s3_fixture.py): read-ahead of remote chunks for sequential readers
# (s3-prefetch), random reads, a corrupt object ahead of the reader, and unmounting while read-ahead
# fetches are still in flight (through tests/integration/faultproxy.py with a bandwidth cap); and
# `pecfs restore` of odd file shapes (tails, holes, shared chunks, read-only files) and its failures.
# Files are written with 1 MiB chunks so that a few MiB make many chunks.
import errno
import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from faultproxy import FaultProxy  # noqa: E402
from s3_fixture import BUCKET, MIB, RgwTestCase  # noqa: E402

CHUNK = MIB


def read_sequential(path, piece=128 << 10):
    out = bytearray()
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(piece)
            if not b:
                return bytes(out)
            out += b


class S3ReadTest(RgwTestCase):
    def upload(self, prefix, files):
        """Writes files as version run/v1 on a node with the tier on prefix, seals it, waits for COMMIT."""
        m = self.mount(prefix, "--chunk-size", "1M")
        self.write_version(m, "run", "v1", files)
        self.seal_wait(m, "run", "v1")
        m.umount()

    def from_mount(self, prefix, *extra, endpoint=None):
        """A fresh node: a new data folder mounted with --from prefix (imports, then reads lazily)."""
        m = h.Mount(["--from", "s3://%s/%s" % (BUCKET, prefix), "--s3-endpoint", endpoint or self.endpoint,
                     "--s3-addressing", "path", "--chunk-size", "1M"] + list(extra))
        self.addCleanup(m.cleanup)
        self.assertEqual(h.chunk_files(m.data), {})
        return m

    def s3stats(self, m):
        return m.stats()["s3"]

    def corrupt_object(self, prefix, chunk):
        """Flips one payload byte of the bucket's object for chunk bytes `chunk`; returns its digest."""
        hexd = h.sha256_bytes(chunk)
        key = "%s/chunks/%s/%s" % (prefix, hexd[:2], hexd)
        obj = bytearray(self.s3("get", key).stdout)
        obj[64 + len(chunk) // 2] ^= 0x5A
        bad = os.path.join(self.scratch, "bad-%s.obj" % hexd[:8])
        with open(bad, "wb") as f:
            f.write(obj)
        self.s3("put", key, bad)
        return hexd

    def test_sequential_read_prefetches_each_chunk_once(self):
        data = h.random_bytes(24 * CHUNK, 11)
        self.upload("seq", {"model.pt": data})
        m = self.from_mount("seq", "--s3-prefetch", "8")
        self.assertEqual(read_sequential(m.path("run", "v1", "model.pt")), data)
        s = self.s3stats(m)
        # Demand reads wait for a read-ahead of the same chunk instead of fetching it again.
        self.assertEqual(s["fetched_chunks"], 24)
        self.assertGreater(s["prefetched_chunks"], 0)
        self.assertGreater(s["prefetch_hits"], 0)
        self.assertLessEqual(s["prefetch_hits"], s["prefetched_chunks"])
        self.assertEqual(s["fetch_corrupt"], 0)
        status = h.cli("status", m.mnt, check=True).stdout
        self.assertIn("read-ahead hits", status)
        # Everything fetched is now local: a second read sends nothing.
        h.drop_caches()
        self.assertEqual(h.sha256_file(m.path("run", "v1", "model.pt")), h.sha256_bytes(data))
        self.assertEqual(self.s3stats(m)["fetched_chunks"], 24)

    def test_prefetch_zero_turns_read_ahead_off(self):
        data = h.random_bytes(8 * CHUNK, 12)
        self.upload("noprefetch", {"a.bin": data})
        m = self.from_mount("noprefetch", "--s3-prefetch", "0")
        self.assertEqual(read_sequential(m.path("run", "v1", "a.bin")), data)
        s = self.s3stats(m)
        self.assertEqual(s["fetched_chunks"], 8)
        self.assertEqual(s["prefetched_chunks"], 0)
        bad = h.cli("mount", "--s3-prefetch", "65", "--from", "s3://%s/noprefetch" % BUCKET, m.data, m.mnt)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("s3-prefetch", bad.stderr)

    def test_random_reads_are_right(self):
        files = {"x.bin": h.random_bytes(16 * CHUNK + 12345, 13), "y.bin": h.random_bytes(5 * CHUNK, 14)}
        self.upload("random", files)
        m = self.from_mount("random", "--s3-prefetch", "8")
        rng = random.Random(5)
        fds = {rel: os.open(m.path("run", "v1", rel), os.O_RDONLY) for rel in files}
        try:
            for i in range(300):
                rel = rng.choice(sorted(files))
                data = files[rel]
                if i % 50 < 10:  # a sequential stretch now and then, so read-ahead runs between the jumps
                    off = (i % 50) * 200000
                    n = 200000
                else:
                    off = rng.randrange(len(data) + 100)
                    n = rng.choice([1, 4096, 65536, 300000, 2 * CHUNK + 7])
                self.assertEqual(os.pread(fds[rel], n, off), data[off:off + n], "%s at %d+%d" % (rel, off, n))
        finally:
            for fd in fds.values():
                os.close(fd)
        for rel, data in files.items():
            self.assertEqual(h.sha256_file(m.path("run", "v1", rel)), h.sha256_bytes(data), rel)
        s = self.s3stats(m)
        self.assertLessEqual(s["fetched_chunks"], 16 + 1 + 5)  # each distinct chunk at most once
        self.assertEqual(s["fetch_corrupt"], 0)

    def test_corrupt_object_ahead_gives_eio_and_is_never_stored(self):
        data = h.random_bytes(16 * CHUNK, 15)
        self.upload("corrupt", {"f.bin": data})
        bad = self.corrupt_object("corrupt", data[6 * CHUNK:7 * CHUNK])
        m = self.from_mount("corrupt", "--s3-prefetch", "8")
        path = m.path("run", "v1", "f.bin")
        fd = os.open(path, os.O_RDONLY)
        try:
            for off in range(0, CHUNK, 128 << 10):  # sequential reads in chunk 0 start the read-ahead
                self.assertEqual(os.pread(fd, 128 << 10, off), data[off:off + (128 << 10)])
            # The read-ahead reaches chunk 6 before the reader does, and refuses it.
            self.assertTrue(h.wait_until(lambda: self.s3stats(m)["fetch_corrupt"] >= 1, 20))
            self.assertNotIn(bad, h.chunk_files(m.data))
            for off in range(CHUNK, 6 * CHUNK, 256 << 10):
                self.assertEqual(os.pread(fd, 256 << 10, off), data[off:off + (256 << 10)])
            with self.assertRaises(OSError) as cm:
                os.pread(fd, 4096, 6 * CHUNK + 8192)
            self.assertEqual(cm.exception.errno, errno.EIO)
            self.assertNotIn(bad, h.chunk_files(m.data))
            # The chunks after the bad one are still served.
            self.assertEqual(os.pread(fd, 9 * CHUNK, 7 * CHUNK), data[7 * CHUNK:])
        finally:
            os.close(fd)
        self.assertNotIn(bad, h.chunk_files(m.data))
        self.assertGreaterEqual(self.s3stats(m)["fetch_corrupt"], 2)  # read-ahead, then the reader's own try

    def test_unmount_while_prefetches_are_in_flight_is_clean(self):
        data = h.random_bytes(32 * CHUNK, 16)
        self.upload("inflight", {"big.bin": data})
        proxy = FaultProxy(self.port)
        self.addCleanup(proxy.close)
        m = self.from_mount("inflight", "--s3-prefetch", "16", endpoint=proxy.endpoint)
        proxy.set_faults(bandwidth=3 * MIB)  # 17 chunks ahead take about 6 s to arrive
        with open(m.path("run", "v1", "big.bin"), "rb", buffering=0) as f:
            self.assertEqual(f.read(128 << 10), data[:128 << 10])
            self.assertEqual(f.read(128 << 10), data[128 << 10:256 << 10])
        self.assertTrue(h.wait_until(lambda: proxy.counters()["bytes_down"] > 2 * CHUNK, 20))
        self.assertLess(self.s3stats(m)["prefetched_chunks"], 16)  # still arriving
        t0 = time.monotonic()
        m.umount()  # asserts a clean exit of the daemon (and no sanitizer report)
        self.assertLess(time.monotonic() - t0, 60)
        proxy.set_faults()
        fsck = m.fsck()
        self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)
        # Whatever arrived before the stop is whole; the rest is fetched on demand.
        m.mount()
        self.assertEqual(h.sha256_file(m.path("run", "v1", "big.bin")), h.sha256_bytes(data))

    # ---- restore: the same objects read by `pecfs restore` ----

    def test_restore_odd_shapes_is_bit_identical(self):
        m = self.mount("rshapes", "--chunk-size", "1M")
        same = h.random_bytes(2 * CHUNK, 21)
        self.write_version(m, "run", "v1", {"odd.bin": h.random_bytes(3 * CHUNK + 123, 22), "dup1.bin": same,
                                            "sub/dup2.bin": same, "empty.bin": b"", "ro.bin": b"read only\n",
                                            "sparse.bin": h.random_bytes(CHUNK, 23)})
        os.truncate(m.path("run", "v1", "sparse.bin"), 5 * CHUNK)  # a 4 MiB hole after the data
        os.chmod(m.path("run", "v1", "ro.bin"), 0o444)
        os.symlink("odd.bin", m.path("run", "v1", "link"))
        self.seal_wait(m, "run", "v1")
        want = h.tree_snapshot(m.path("run", "v1"))
        for where in ("disk", "tmpfs"):
            dest = os.path.join(self.scratch, "rshapes-" + where)
            if where == "tmpfs":  # another file system (before Linux 6.6 one without O_DIRECT)
                m.mount_tmpfs(dest, "64M")
            cp = self.restore("rshapes", "run@v1", dest)
            self.assertIn("6 files", cp.stdout)
            self.assertEqual(h.diff_trees(want, h.tree_snapshot(dest)), [], where)
            # The hole stays a hole: only files whose extents cover them are preallocated.
            self.assertLess(os.stat(os.path.join(dest, "sparse.bin")).st_blocks * 512, 3 * CHUNK, where)

    def test_restore_fails_cleanly(self):
        data = h.random_bytes(16 * CHUNK, 24)
        self.upload("rfail", {"f.bin": data})
        m = h.Mount(mount=False)
        self.addCleanup(m.cleanup)
        # A destination too small for the version is refused before the download.
        small = os.path.join(m.base, "small")
        m.mount_tmpfs(small, "4M")
        cp = self.restore("rfail", "run@v1", small, check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("No space left", cp.stderr)
        # A corrupt object fails the restore, naming the chunk.
        self.corrupt_object("rfail", data[9 * CHUNK:10 * CHUNK])
        cp = self.restore("rfail", "run@v1", os.path.join(m.base, "r2"), check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("corrupt", cp.stderr)


if __name__ == "__main__":
    h.main()
