# test_s3_read.py - reading through `pecfs mount --from` on a fresh data folder against a real S3 server
# (a throwaway Ceph RGW, see s3_fixture.py): read-ahead of remote chunks for sequential readers
# (s3-prefetch), random reads, a corrupt object ahead of the reader, and unmounting while read-ahead
# fetches are still in flight (through tests/integration/faultproxy.py with a bandwidth cap); and
# `pecfs restore` of odd file shapes (tails, holes, shared chunks, read-only files) and its failures.
# Chunks are uploaded in packs (s3-pack-size): restore and read-ahead fetch a run of members with one
# GET, counted here from the RGW's access log. Files are written with 1 MiB chunks so that a few MiB
# make many chunks.
import errno
import math
import os
import random
import struct
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


BLKIO = "/sys/fs/cgroup/blkio"


class throttled_writes:
    """Within the block: process pid's writes to the disk that holds folder are throttled to bps bytes
    a second (a cgroup v1 blkio throttle; direct I/O is throttled as it is issued)."""

    def __init__(self, pid, folder, bps):
        self.pid, self.bps = pid, bps
        dev = os.stat(folder).st_dev
        self.dev = "%d:%d" % (os.major(dev), os.minor(dev))
        if os.path.exists("/sys/dev/block/%s/partition" % self.dev):  # throttles apply to whole disks
            with open("/sys/dev/block/%s/../dev" % self.dev) as f:
                self.dev = f.read().strip()
        self.group = os.path.join(BLKIO, "pecfs-test-%d" % os.getpid())

    def __enter__(self):
        if not os.path.exists(os.path.join(BLKIO, "blkio.throttle.write_bps_device")):
            raise AssertionError("this test needs the cgroup v1 blkio throttle (%s)" % BLKIO)
        os.makedirs(self.group, exist_ok=True)
        with open(os.path.join(self.group, "blkio.throttle.write_bps_device"), "w") as f:
            f.write("%s %d" % (self.dev, self.bps))
        with open(os.path.join(self.group, "cgroup.procs"), "w") as f:
            f.write(str(self.pid))
        return self

    def __exit__(self, *exc):
        # Whatever is still in the group goes back to the root group: the daemon if it runs, or one
        # whose last threads are still exiting (its leader a zombie already). Then the group goes.
        def removed():
            with open(os.path.join(self.group, "cgroup.procs")) as f:
                pids = f.read().split()
            for pid in pids:
                try:
                    with open(os.path.join(BLKIO, "cgroup.procs"), "w") as f:
                        f.write(pid)
                except OSError:
                    pass  # it has just left
            try:
                os.rmdir(self.group)
                return True
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                return False
        if not h.wait_until(removed, 30, step=0.1):
            raise AssertionError("cgroup %s is still in use" % self.group)
        return False


class S3ReadTest(RgwTestCase):
    def upload(self, prefix, files, *extra):
        """Writes files as version run/v1 on a node with the tier on prefix, seals it, waits for COMMIT."""
        m = self.mount(prefix, "--chunk-size", "1M", *extra)
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

    def pack_members(self, prefix):
        """{chunk sha256 hex: (pack key, offset of its chunk object there, payload length)} from the member
        table of every pack under prefix (FORMAT.md section 5, "Packs")."""
        out = {}
        for key in self.listing(prefix + "/packs"):
            obj = self.s3("get", key).stdout
            self.assertEqual(obj[:8], b"PECS3PK1", key)
            n = struct.unpack_from("<I", obj, 16)[0]
            off = 32 + 40 * n
            for i in range(n):
                e = 32 + 40 * i
                length = struct.unpack_from("<Q", obj, e + 32)[0]
                out[obj[e:e + 32].hex()] = (key, off, length)
                off += 64 + length
            self.assertEqual(off, len(obj), key)
        return out

    def corrupt_object(self, prefix, chunk):
        """Flips one payload byte of the bucket's object for chunk bytes `chunk` (its own object, or its
        member of a pack); returns its digest."""
        hexd = h.sha256_bytes(chunk)
        key, at = "%s/chunks/%s/%s" % (prefix, hexd[:2], hexd), 0
        if key not in self.listing(prefix + "/chunks"):
            key, at, length = self.pack_members(prefix)[hexd]
            self.assertEqual(length, len(chunk))
        obj = bytearray(self.s3("get", key).stdout)
        obj[at + 64 + len(chunk) // 2] ^= 0x5A
        bad = os.path.join(self.scratch, "bad-%s.obj" % hexd[:8])
        with open(bad, "wb") as f:
            f.write(obj)
        self.s3("put", key, bad)
        return hexd

    def object_gets(self, prefix):
        """(GETs of chunk objects, GETs of packs) under prefix that the RGW has logged so far."""
        return self.requests_under("GET", prefix + "/chunks/"), self.requests_under("GET", prefix + "/packs/")

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

    def test_sequential_read_of_a_pack_gets_runs_of_members(self):
        """A --from reader of a file uploaded as one pack is served by read-ahead runs of half the window
        (4 chunks here), one GET each, instead of a GET per chunk; a restore of it takes one GET."""
        data = h.random_bytes(32 * CHUNK, 17)
        self.upload("seqpack", {"model.pt": data}, "--s3-pack-size", "32M")
        self.assertEqual(len(self.pack_members("seqpack")), 32)  # the whole file in one pack
        self.assertEqual(self.listing("seqpack/chunks"), {})
        chunks0, packs0 = self.object_gets("seqpack")
        m = self.from_mount("seqpack", "--s3-prefetch", "8")
        self.assertEqual(read_sequential(m.path("run", "v1", "model.pt")), data)
        chunks, packs = self.object_gets("seqpack")
        s = self.s3stats(m)
        self.assertEqual(s["fetched_chunks"], 32)
        self.assertGreater(s["prefetched_chunks"], 16)
        self.assertGreater(s["prefetch_hits"], 0)
        self.assertLessEqual(s["prefetch_hits"], s["prefetched_chunks"])
        self.assertEqual(s["fetch_corrupt"], 0)
        self.assertEqual(chunks, chunks0)
        # Runs of 1, 2, 4, then 4 at a time, and a demand read or two that got there first: about 10
        # (a GET per chunk was 32). Under a sanitizer the reader wins more of those races: 16 seen.
        self.assertLessEqual(packs - packs0, 20 if h.SANITIZED else 14)
        # The chunk files are written behind the reader, moments later.
        want = {h.sha256_bytes(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)}
        h.wait_until(lambda: h.chunk_files(m.data).keys() == want, 20)
        self.assertEqual(h.chunk_files(m.data).keys(), want)
        # restore: the whole pack (32 MiB of payload) with one GET.
        dest = os.path.join(self.scratch, "seqpack-restore")
        self.restore("seqpack", "run@v1", dest)
        self.assertEqual(h.sha256_file(os.path.join(dest, "model.pt")), h.sha256_bytes(data))
        self.assertEqual(self.object_gets("seqpack"), (chunks0, packs + 1))

    def test_a_slow_disk_does_not_hold_up_remote_reads(self):
        """A chunk fetched for a reader is handed to it from memory, and its local chunk file is written
        afterwards: with the daemon's disk writes throttled to 256 KiB/s, 8 MiB that the bucket serves in
        moments read in well under the 32 s their chunk files take to write, a second read fetches
        nothing again, and the unmount waits until every chunk file is written."""
        data = h.random_bytes(8 * CHUNK, 18)
        self.upload("slowdisk", {"model.pt": data})
        m = self.from_mount("slowdisk", "--s3-prefetch", "8")
        with throttled_writes(m.pid(), m.data, 256 << 10):
            t0 = time.monotonic()
            self.assertEqual(read_sequential(m.path("run", "v1", "model.pt")), data)
            took = time.monotonic() - t0
            self.assertLess(took, 8.0, "the reader waited for its chunk files to be written")
            self.assertEqual(h.sha256_file(m.path("run", "v1", "model.pt")), h.sha256_bytes(data))
            s = self.s3stats(m)
            self.assertEqual(s["fetched_chunks"], 8)
            self.assertEqual(s["fetch_corrupt"], 0)
            self.assertLess(len(h.chunk_files(m.data)), 8)  # still being written
            m.umount()
        self.assertEqual(h.chunk_files(m.data).keys(),
                         {h.sha256_bytes(data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)})
        fsck = m.fsck()
        self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)

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

    def test_restore_gets_each_pack_once(self):
        """Runs of pack members are fetched with one GET each: one per pack (8 MiB each here, under the
        restore's 32 MiB bound) and one per chunk object of its own, byte-identical, tails included."""
        files = {"a.bin": h.random_bytes(24 * CHUNK + 4567, 31), "b.bin": h.random_bytes(16 * CHUNK, 32),
                 "sub/c.bin": h.random_bytes(20 * CHUNK, 33), "d.bin": h.random_bytes(3 * CHUNK + 5, 34)}
        total = sum(len(v) for v in files.values())
        self.upload("rpack", files, "--s3-pack-size", "8M")
        packs, lone = self.listing("rpack/packs"), self.listing("rpack/chunks")
        self.assertEqual(len(packs), 3 + 2 + 3 + 1)  # 8 chunks a pack, a file's own chunks only
        self.assertEqual(len(lone), 1)  # the tail of a.bin, left alone: its own object
        chunks0, packs0 = self.object_gets("rpack")
        dest = os.path.join(self.scratch, "rpack")
        cp = self.restore("rpack", "run@v1", dest)
        self.assertIn("4 files, %d bytes" % total, cp.stdout)
        for rel, data in files.items():
            self.assertEqual(h.sha256_file(os.path.join(dest, rel)), h.sha256_bytes(data), rel)
        chunks, npacks = self.object_gets("rpack")
        self.assertEqual((chunks - chunks0, npacks - packs0), (len(lone), len(packs)))  # a GET per chunk was 65
        self.assertLessEqual(chunks - chunks0 + npacks - packs0, math.ceil(total / (8 * MIB)) + len(files))

    def test_pack_members_of_odd_lengths_read_right(self):
        """A file written in pieces with holes has chunks of odd lengths inside its pack: a run's payloads
        then move both down and up to reach 4 KiB boundaries (read-ahead) or down (restore)."""
        pieces = [(0, CHUNK + 1000), (2 * CHUNK + 123, 700000), (3 * CHUNK + 5, CHUNK - 5), (4 * CHUNK, 1),
                  (5 * CHUNK, 3 * CHUNK + 77)]
        m = self.mount("oddpack", "--chunk-size", "1M")
        os.makedirs(m.path("run", "v1"))
        want = bytearray(8 * CHUNK + 77)
        fd = os.open(m.path("run", "v1", "odd.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for i, (off, n) in enumerate(pieces):
                piece = h.random_bytes(n, 50 + i)
                os.pwrite(fd, piece, off)
                want[off:off + n] = piece
        finally:
            os.close(fd)
        self.seal_wait(m, "run", "v1")
        m.umount()
        members = sorted((off, n) for _, off, n in self.pack_members("oddpack").values())
        self.assertEqual(len(members), 9)  # one pack
        self.assertEqual([n for _, n in members[1:3]], [1000, 700123])  # odd lengths between others
        dest = os.path.join(self.scratch, "oddpack")
        self.restore("oddpack", "run@v1", dest)
        with open(os.path.join(dest, "odd.bin"), "rb") as f:
            self.assertEqual(f.read(), bytes(want))
        r = self.from_mount("oddpack", "--s3-prefetch", "16")
        self.assertEqual(read_sequential(r.path("run", "v1", "odd.bin")), bytes(want))
        self.assertEqual(self.s3stats(r)["fetch_corrupt"], 0)

    def test_corrupt_pack_member_fails_restore_and_its_reads_only(self):
        f, g = h.random_bytes(16 * CHUNK, 41), h.random_bytes(8 * CHUNK, 42)
        self.upload("rpbad", {"f.bin": f, "g.bin": g})
        self.assertEqual(len(self.listing("rpbad/packs")), 2)
        # Chunk 10: inside a read-ahead run (of 4, from chunk 8 or 9), and inside the restore's run.
        bad = self.corrupt_object("rpbad", f[10 * CHUNK:11 * CHUNK])
        # restore: fails naming the member, whose neighbours in the same GET are sound.
        cp = self.restore("rpbad", "run@v1", os.path.join(self.scratch, "rpbad"), check=False)
        self.assertEqual(cp.returncode, 1, cp.stdout)
        self.assertIn("chunk %s...:" % bad[:16], cp.stderr)
        self.assertIn("corrupt", cp.stderr)
        # --from: the read-ahead run that brings it refuses it alone.
        m = self.from_mount("rpbad", "--s3-prefetch", "8")
        fd = os.open(m.path("run", "v1", "f.bin"), os.O_RDONLY)
        try:
            for off in range(0, 10 * CHUNK, 256 << 10):
                self.assertEqual(os.pread(fd, 256 << 10, off), f[off:off + (256 << 10)])
            # The read-ahead has got there by now, or soon: refused, not stored.
            self.assertTrue(h.wait_until(lambda: self.s3stats(m)["fetch_corrupt"] >= 1, 20))
            self.assertNotIn(bad, h.chunk_files(m.data))
            with self.assertRaises(OSError) as cm:
                os.pread(fd, 4096, 10 * CHUNK + 4096)
            self.assertEqual(cm.exception.errno, errno.EIO)
            self.assertEqual(os.pread(fd, 5 * CHUNK, 11 * CHUNK), f[11 * CHUNK:])
        finally:
            os.close(fd)
        self.assertEqual(h.sha256_file(m.path("run", "v1", "g.bin")), h.sha256_bytes(g))
        # Chunk files are written behind the readers, moments later.
        h.wait_until(lambda: len(h.chunk_files(m.data)) == 16 + 8 - 1, 20)
        self.assertNotIn(bad, h.chunk_files(m.data))
        self.assertEqual(len(h.chunk_files(m.data)), 16 + 8 - 1)
        self.assertGreaterEqual(self.s3stats(m)["fetch_corrupt"], 2)  # read-ahead, then the reader's own try

if __name__ == "__main__":
    h.main()
