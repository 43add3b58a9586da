# test_posix_mmap.py - shared writable mmap of files open for writing, on a real pecfs mount.
# fsx-like runs drive one file with random reads, writes, mapped reads, mapped writes (+ msync),
# truncates, fsyncs and reopens against a bytearray model; every read is compared with the model, and
# once the run is done its version is sealed, the mount remounted, and the file must still equal the
# model. The seed of each run is printed (PECFS_FSX_SEED=N repeats one). Then the coherence cases one
# by one (direct I/O against the mapping, truncate while mapped, close before munmap, msync and crash),
# the seal's write-back of mapped pages, sealed files, and the page-cache fallback (direct-io-mmap off).
import ctypes
import errno
import mmap
import multiprocessing
import os
import random
import time
import unittest

import pecfs_harness as h

KiB, MiB = 1 << 10, 1 << 20
PAGE = mmap.PAGESIZE
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4

_libc = ctypes.CDLL(None, use_errno=True)
_libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


SYS_cachestat = 451  # x86_64 and the generic table, Linux 6.5+


def cached_pages(fd):
    """Pages of fd's file in the page cache (cachestat(2): counts without mapping or touching)."""
    rng = (ctypes.c_uint64 * 2)(0, 0)  # offset 0, length 0: the whole file
    stat = (ctypes.c_uint64 * 5)()     # nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted
    if _libc.syscall(ctypes.c_long(SYS_cachestat), ctypes.c_long(fd), rng, stat, ctypes.c_long(0)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return stat[0]


def address(mm):
    """Start address of a Python mmap (stays valid while mm is open)."""
    view = (ctypes.c_char * len(mm)).from_buffer(mm)
    addr = ctypes.addressof(view)
    del view  # mm.close() refuses while a buffer export is alive
    return addr


def msync(mm, flags):
    if _libc.msync(address(mm), len(mm), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class ReadMapping:
    """A read-only shared mapping made with libc (Python's mmap gives no address of one): .at(off, n)
    reads bytes, .resident() counts its pages in the page cache (mincore)."""

    def __init__(self, fd, length):
        self.length = length
        self.addr = _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if self.addr in (None, ctypes.c_void_p(-1).value):
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))

    def at(self, off, n):
        return ctypes.string_at(self.addr + off, n)

    def resident(self):
        vec = ctypes.create_string_buffer((self.length + PAGE - 1) // PAGE)
        if _libc.mincore(self.addr, self.length, vec) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return sum(b & 1 for b in vec.raw)

    def close(self):
        _libc.munmap(self.addr, self.length)


def seal(version_dir):
    # setxattr, not `pecfs seal`: a fork of a process with a dirty shared mapping writes its pages
    # back when the child execs (the kernel closes the child's copy of the mapping), which would hide
    # whether the seal itself writes them back.
    os.setxattr(version_dir, "user.pec.seal", b"1")


def close_if_still(fd, st):
    """Closes fd unless the test did: when it still names the file st describes."""
    try:
        same = os.path.samestat(os.fstat(fd), st)
    except OSError:
        return
    if same:
        os.close(fd)


def first_difference(got, want):
    for i in range(min(len(got), len(want))):
        if got[i] != want[i]:
            return i
    return min(len(got), len(want))


class Fsx:
    """One fsx-like run on path: ops, each checked against a bytearray model of the file.

    maxlen: largest file; maxop: longest read or write; aligned: offsets and lengths in whole pages;
    reopen_every: close and reopen after every that many ops (0: only as a random op); fsync_writes:
    fsync after each write; msync: "sync", "async", "invalidate" (MS_SYNC|MS_INVALIDATE) or "none"
    after a mapped write (none: munmap writes back); held: one mapping of maxlen kept for the whole
    run, stored into without msync and read while the file changes through direct I/O."""

    OPS = ("read", "write", "mapread", "mapwrite", "truncate", "fsync", "reopen")
    WEIGHTS = (5, 5, 4, 4, 1, 1, 1)

    def __init__(self, path, seed, ops, maxlen=256 * KiB, maxop=64 * KiB, aligned=False, reopen_every=0,
                 fsync_writes=False, msync="sync", held=False):
        self.path, self.seed, self.nops = path, seed, ops
        self.maxlen, self.maxop, self.aligned = maxlen, maxop, aligned
        self.reopen_every, self.fsync_writes, self.msync, self.held = reopen_every, fsync_writes, msync, held
        self.rng = random.Random(seed)
        self.model = bytearray()
        self.history = []
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.mm = None
        if held:
            os.ftruncate(self.fd, maxlen)
            self.mm = mmap.mmap(self.fd, maxlen, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            os.ftruncate(self.fd, 0)

    def close(self):
        if self.mm is not None:
            self.mm.close()
            self.mm = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def fail(self, what, off):
        raise AssertionError("fsx seed %d, %s: %s at file offset %d; last ops:\n  %s"
                             % (self.seed, self.path, what, off, "\n  ".join(self.history[-12:])))

    def check(self, got, off, op):
        want = bytes(self.model[off:off + len(got)]) if off < len(self.model) else b""
        if got != want:
            self.fail("%s at %d gave %d bytes, %d of them in the model; the first difference"
                      % (op, off, len(got), len(want)), off + first_difference(got, want))

    def span(self, limit):
        """A random (offset, length) with offset < limit, in whole pages when aligned."""
        if self.aligned:
            off = self.rng.randrange(0, max(1, limit // PAGE)) * PAGE
            n = self.rng.randrange(1, self.maxop // PAGE + 1) * PAGE
        else:
            off = self.rng.randrange(0, max(1, limit))
            n = self.rng.randrange(1, self.maxop + 1)
        return off, n

    def resize(self, size):
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))

    def op_read(self):
        off, n = self.span(self.maxlen)
        self.history.append("read %d+%d" % (off, n))
        self.check(os.pread(self.fd, n, off), off, "read")

    def op_write(self):
        off, n = self.span(self.maxlen)
        n = min(n, self.maxlen - off)
        data = self.rng.randbytes(n)
        self.history.append("write %d+%d" % (off, n))
        if os.pwrite(self.fd, data, off) != n:
            self.fail("short write", off)
        if off + n > len(self.model):
            self.resize(off + n)
        self.model[off:off + n] = data
        if self.fsync_writes:
            os.fsync(self.fd)

    def mapping(self, off, n, write):
        """(mmap, delta): a mapping that covers [off, off + n), delta its offset in it."""
        if self.held:
            return self.mm, off
        start = off - off % PAGE
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if write else 0)
        return mmap.mmap(self.fd, off - start + n, flags=mmap.MAP_SHARED, prot=prot, offset=start), off - start

    def op_mapread(self):
        if not self.model:
            return
        off, n = self.span(len(self.model))
        n = min(n, len(self.model) - off)
        self.history.append("mapread %d+%d" % (off, n))
        mm, d = self.mapping(off, n, False)
        got = mm[d:d + n]
        if mm is not self.mm:
            mm.close()
        self.check(got, off, "mapread")

    def op_mapwrite(self):
        off, n = self.span(self.maxlen)
        n = min(n, self.maxlen - off)
        data = self.rng.randbytes(n)
        self.history.append("mapwrite %d+%d (%s)" % (off, n, "held" if self.held else self.msync))
        if off + n > len(self.model):
            os.ftruncate(self.fd, off + n)  # a mapping reaches only as far as the file: grow it first
            self.resize(off + n)
        mm, d = self.mapping(off, n, True)
        mm[d:d + n] = data
        if mm is not self.mm:
            if self.msync == "sync":
                mm.flush()
            elif self.msync == "async":
                msync(mm, MS_ASYNC)
            elif self.msync == "invalidate":
                msync(mm, MS_SYNC | MS_INVALIDATE)
            mm.close()
        self.model[off:off + n] = data

    def op_truncate(self):
        size = self.rng.randrange(0, self.maxlen + 1)
        if self.aligned:
            size -= size % PAGE
        self.history.append("truncate %d" % size)
        os.ftruncate(self.fd, size)
        self.resize(size)

    def op_fsync(self):
        self.history.append("fsync")
        os.fsync(self.fd)

    def op_reopen(self):
        self.history.append("close+open")
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDWR)

    def run(self):
        for i in range(self.nops):
            op = self.rng.choices(self.OPS, self.WEIGHTS)[0]
            getattr(self, "op_" + op)()
            if self.reopen_every and (i + 1) % self.reopen_every == 0:
                self.op_reopen()
            size = os.fstat(self.fd).st_size
            if size != len(self.model):
                self.fail("size %d, the model has %d" % (size, len(self.model)), size)
        # the whole file, through a descriptor of its own
        with open(self.path, "rb") as f:
            self.check(f.read(), 0, "final read")
        return bytes(self.model)


def fsx_seed(default):
    return int(os.environ.get("PECFS_FSX_SEED", default))


def fsx_child(path, seed, ops, kw, conn):
    """Runs one Fsx in a forked process; sends back the model or the failure."""
    try:
        fx = Fsx(path, seed, ops, **kw)
        try:
            model = fx.run()
        finally:
            fx.close()
        conn.send(("ok", model))
    except BaseException as e:
        conn.send(("fail", "%s: %s" % (type(e).__name__, e)))
    finally:
        conn.close()


class MmapCase(unittest.TestCase):
    options = []

    @classmethod
    def setUpClass(cls):
        cls.m = h.Mount(cls.options)
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        cls.m.cleanup()

    def newversion(self):
        """A fresh open version directory: MNT/mm/vNN."""
        type(self).counter += 1
        d = self.m.path("mm", "v%02d" % self.counter)
        os.makedirs(d)
        return d

    def assertFileEquals(self, path, want, when):
        got = h.read_file(path)
        if got != want:
            self.fail("%s: %s has %d bytes, the model %d; first difference at offset %d"
                      % (when, path, len(got), len(want), first_difference(got, want)))

    def sealed_and_remounted(self, version, files):
        """Seals version, remounts, and checks every file (path -> model bytes) after each step."""
        seal(version)
        self.assertEqual(self.m.version_state("mm", os.path.basename(version)), "sealed")
        for p, model in files.items():
            self.assertFileEquals(p, model, "after the seal")
        self.m.remount()
        for p, model in files.items():
            self.assertFileEquals(p, model, "after a remount")

    def fsx(self, name, seed, ops, **kw):
        v = self.newversion()
        p = os.path.join(v, name)
        seed = fsx_seed(seed)
        print("fsx %s: seed %d, %d ops" % (name, seed, ops), flush=True)
        t0 = time.monotonic()
        fx = Fsx(p, seed, ops, **kw)
        try:
            model = fx.run()
        finally:
            fx.close()
        t1 = time.monotonic()
        self.sealed_and_remounted(v, {p: model})
        print("fsx %s: %d ops in %.1f s, seal + remount + check %.1f s, final size %d"
              % (name, ops, t1 - t0, time.monotonic() - t1, len(model)), flush=True)


class MmapFsx(MmapCase):
    """fsx's usual variants, with files open for writing on direct I/O."""

    def test_fsx_default(self):
        self.fsx("default", 1, 8000)

    def test_fsx_close_and_reopen_every_batch(self):
        self.fsx("reopen", 2, 4000, reopen_every=20)

    def test_fsx_16mib_file_with_1mib_ops(self):
        self.fsx("large", 3, 1000, maxlen=16 * MiB, maxop=MiB)

    def test_fsx_fsync_after_writes(self):
        self.fsx("fsync", 4, 3000, fsync_writes=True)

    def test_fsx_msync_async(self):
        self.fsx("msync-async", 5, 3000, msync="async")

    def test_fsx_msync_invalidate(self):
        self.fsx("msync-invalidate", 6, 3000, msync="invalidate")

    def test_fsx_munmap_without_msync(self):
        self.fsx("no-msync", 7, 3000, msync="none")

    def test_fsx_held_mapping_without_msync(self):
        self.fsx("held", 8, 5000, held=True)

    def test_fsx_page_aligned(self):
        self.fsx("aligned", 9, 4000, aligned=True)

    def test_fsx_four_processes_on_four_files(self):
        v = self.newversion()
        ctx = multiprocessing.get_context("fork")
        seed = fsx_seed(10)
        print("fsx 4 processes: seeds %d..%d, 2500 ops each" % (seed, seed + 3), flush=True)
        t0 = time.monotonic()
        runs = []
        for i in range(4):
            p = os.path.join(v, "proc%d" % i)
            kw = [{}, {"aligned": True}, {"msync": "none"}, {"held": True}][i]
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=fsx_child, args=(p, seed + i, 2500, kw, child))
            proc.start()
            child.close()
            runs.append((p, seed + i, proc, parent))
        files = {}
        for p, s, proc, conn in runs:
            try:
                status, value = conn.recv()
            except EOFError:  # it died without a word: a signal (SIGBUS from a mapping?)
                proc.join()
                status, value = "fail", "exit code %s" % proc.exitcode
            proc.join(60 * h.SLOW)
            self.assertEqual(status, "ok", "fsx seed %d in %s: %s" % (s, p, value))
            files[p] = value
        t1 = time.monotonic()
        self.sealed_and_remounted(v, files)
        print("fsx 4 processes: 4 x 2500 ops in %.1f s, seal + remount + check %.1f s"
              % (t1 - t0, time.monotonic() - t1), flush=True)


class Coherence:
    """One behaviour at a time, bytes checked through every path that can see them (mixed into a
    MmapCase per way of opening files for writing)."""

    def open_mapped(self, size, seed):
        """A file of size random bytes open O_RDWR and mapped shared: (path, fd, mmap, bytes)."""
        p = os.path.join(self.newversion(), "f")
        data = bytearray(h.random_bytes(size, seed))
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(fd, data, 0)
        mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        # a failed test must not leave the file open: the next remount would find the mount busy
        self.addCleanup(close_if_still, fd, os.fstat(fd))
        self.addCleanup(mm.close)
        return p, fd, mm, data

    def test_shared_writable_mapping_of_a_file_open_for_writing(self):
        p, fd, mm, data = self.open_mapped(3 * PAGE, 20)
        mm[10:15] = b"hello"
        data[10:15] = b"hello"
        mm.close()
        os.close(fd)
        self.assertFileEquals(p, bytes(data), "after munmap and close")

    def test_pwrite_is_seen_through_the_mapping(self):
        p, fd, mm, data = self.open_mapped(4 * MiB, 21)
        other = os.open(p, os.O_WRONLY)  # before the pages are cached: an open drops the cache
        self.assertEqual(mm[:], bytes(data))  # every page cached
        for f, off in ((fd, 123), (other, 2 * MiB - 7)):
            os.pwrite(f, b"x" * 5000, off)
            data[off:off + 5000] = b"x" * 5000
            self.assertEqual(mm[off - 10:off + 5010], bytes(data[off - 10:off + 5010]))
        os.close(other)
        self.assertEqual(mm[:], bytes(data))
        mm.close()
        os.close(fd)

    def test_store_is_seen_by_pread_before_msync(self):
        p, fd, mm, data = self.open_mapped(2 * MiB, 22)
        mm[MiB - 3:MiB + 3] = b"abcdef"
        data[MiB - 3:MiB + 3] = b"abcdef"
        self.assertEqual(os.pread(fd, 16, MiB - 8), bytes(data[MiB - 8:MiB + 8]))
        with open(p, "rb") as f:  # another descriptor, read-only: the page cache
            f.seek(MiB - 8)
            self.assertEqual(f.read(16), bytes(data[MiB - 8:MiB + 8]))
        other = os.open(p, os.O_RDWR)  # another writer: direct I/O
        self.assertEqual(os.pread(other, 16, MiB - 8), bytes(data[MiB - 8:MiB + 8]))
        os.close(other)
        mm.close()
        os.close(fd)

    def test_truncate_while_mapped(self):
        p, fd, mm, data = self.open_mapped(4 * PAGE, 23)
        mm[PAGE:PAGE + 4] = b"keep"  # dirty, below the cut
        mm[3 * PAGE:3 * PAGE + 4] = b"gone"  # dirty, past it
        data[PAGE:PAGE + 4] = b"keep"
        os.ftruncate(fd, PAGE + 100)  # shrink into the second page
        del data[PAGE + 100:]
        self.assertEqual(os.fstat(fd).st_size, PAGE + 100)
        self.assertEqual(os.pread(fd, 4 * PAGE, 0), bytes(data))
        self.assertEqual(mm[:PAGE + 100], bytes(data))
        self.assertEqual(mm[PAGE + 100:2 * PAGE], bytes(PAGE - 100), "past EOF in the last page")
        os.ftruncate(fd, 4 * PAGE)  # grow: zeros, never the old bytes
        data.extend(bytes(3 * PAGE - 100))
        self.assertEqual(mm[:], bytes(data))
        self.assertEqual(os.pread(fd, 4 * PAGE, 0), bytes(data))
        mm[3 * PAGE:3 * PAGE + 4] = b"back"
        data[3 * PAGE:3 * PAGE + 4] = b"back"
        mm.close()
        os.close(fd)
        self.assertFileEquals(p, bytes(data), "after close")

    def test_stores_after_close_are_written_at_munmap(self):
        p, fd, mm, data = self.open_mapped(8 * PAGE, 24)
        v = os.path.dirname(p)
        mm[0:6] = b"before"
        data[0:6] = b"before"
        os.close(fd)  # close writes dirty pages back; the mapping keeps the file open
        self.assertFileEquals(p, bytes(data), "after close")
        mm[5 * PAGE:5 * PAGE + 5] = b"after"
        data[5 * PAGE:5 * PAGE + 5] = b"after"
        mm.close()  # munmap writes the rest back
        self.sealed_and_remounted(v, {p: bytes(data)})

    def test_msync_and_fsync_survive_a_crash(self):
        p, fd, mm, data = self.open_mapped(2 * MiB, 25)
        os.fsync(fd)
        mm[100:110] = b"msync-sync"
        data[100:110] = b"msync-sync"
        mm.flush()  # msync(MS_SYNC)
        mm[MiB:MiB + 5] = b"fsync"
        data[MiB:MiB + 5] = b"fsync"
        os.fsync(fd)  # fsync of the descriptor writes the mapping's dirty pages back too
        self.m.kill9()
        mm.close()  # writes nothing more: the daemon is gone
        self.assertEqual(h.errno_of(os.close, fd), errno.ENOTCONN)
        self.m.mount()
        self.assertFileEquals(p, bytes(data), "after kill -9 and a remount")

    def test_seal_writes_back_stores_not_yet_synced(self):
        p, fd, mm, data = self.open_mapped(MiB, 26)
        v = os.path.dirname(p)
        mm[4096:4101] = b"early"
        data[4096:4101] = b"early"
        seal(v)
        self.assertFileEquals(p, bytes(data), "sealed")
        # Stores after the seal cannot reach the sealed version: msync (or close) reports them, and
        # the page cache lets them go right after, so readers see the version as it was sealed.
        mm[8192:8196] = b"late"
        with self.assertRaises(OSError) as cm:
            mm.flush()
        self.assertEqual(cm.exception.errno, errno.EROFS)
        h.wait_until(lambda: mm[8192:8196] == data[8192:8196], 5)
        self.assertEqual(mm[8192:8196], bytes(data[8192:8196]), "a refused store left in the cache")
        mm[3 * PAGE:3 * PAGE + 5] = b"later"
        with self.assertRaises(OSError) as cm:
            os.close(fd)  # close writes the page back, which is refused
        self.assertIn(cm.exception.errno, (errno.EIO, errno.EROFS))
        h.wait_until(lambda: h.read_file(p) == data, 5)
        self.assertFileEquals(p, bytes(data), "sealed, after refused stores")
        mm.close()
        self.m.remount()
        self.assertFileEquals(p, bytes(data), "sealed, after a remount")

    def test_tracker_seal_writes_back_stores_not_yet_synced(self):
        p, fd, mm, data = self.open_mapped(MiB, 27)
        v = os.path.dirname(p)
        os.close(fd)
        mm[300:306] = b"mapped"  # after close, before munmap, no msync
        data[300:306] = b"mapped"
        with open(self.m.path("mm", "latest"), "w") as f:
            f.write(os.path.basename(v))
        self.assertEqual(self.m.version_state("mm", os.path.basename(v)), "sealed")
        mm.close()
        self.m.remount()
        self.assertFileEquals(p, bytes(data), "sealed by the tracker, after a remount")

    def test_rename_into_place_writes_back_stores_not_yet_synced(self):
        p, fd, mm, data = self.open_mapped(MiB, 28)
        v = os.path.dirname(p)
        tmp = v + "-step-5.tmp"
        os.close(fd)
        os.rename(v, tmp)  # not a seal: the version is not final yet
        mm[700:705] = b"final"  # after close, before munmap, no msync
        data[700:705] = b"final"
        final = v + "-step-5"
        os.rename(tmp, final)
        self.assertEqual(self.m.version_state("mm", os.path.basename(final)), "sealed")
        mm.close()
        self.m.remount()
        self.assertFileEquals(os.path.join(final, "f"), bytes(data), "sealed by a rename, after a remount")

    def test_sealed_file_maps_for_reading_only(self):
        v = self.newversion()
        p = os.path.join(v, "model.bin")
        data = h.random_bytes(MiB + 77, 28)
        h.write_file(p, data)
        seal(v)
        self.assertEqual(h.errno_of(os.open, p, os.O_RDWR), errno.EROFS)
        with open(p, "rb") as f:
            with self.assertRaises(OSError) as cm:
                mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            self.assertEqual(cm.exception.errno, errno.EACCES)
            with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ) as mm:
                self.assertEqual(mm[:], data)
            with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE) as mm:  # copy on write
                mm[0:4] = b"mine"
                self.assertEqual(mm[0:4], b"mine")
        self.assertFileEquals(p, data, "sealed, after a private mapping was written")


def pwrite_and_count_resident(test, flags):
    """Pages of a 64-page file still cached in a reader's mapping after a 16-page pwrite through a
    descriptor opened with flags: 48 when the write went around the page cache (direct I/O drops the
    cached pages of its range), 64 when it went through it."""
    p = os.path.join(test.newversion(), "f")
    h.write_file(p, h.random_bytes(64 * PAGE, 29))
    fd = os.open(p, flags)
    try:
        with open(p, "rb") as r:
            mm = ReadMapping(r.fileno(), 64 * PAGE)
            try:
                test.assertEqual(len(mm.at(0, 64 * PAGE)), 64 * PAGE)
                test.assertEqual(mm.resident(), 64)
                os.pwrite(fd, b"y" * (16 * PAGE), 0)
                n = mm.resident()
                test.assertEqual(mm.at(0, 16 * PAGE), b"y" * (16 * PAGE))
                return n
            finally:
                mm.close()
    finally:
        os.close(fd)


def read_sealed_and_count_cached(test):
    """Reads a sealed 64-page file through one descriptor, then opens it again: (pages of the file in
    the page cache after the read, after the second open). The bytes must be the file's."""
    v = test.newversion()
    p = os.path.join(v, "sealed.bin")
    data = h.random_bytes(64 * PAGE, 30)
    h.write_file(p, data)
    seal(v)
    fd = os.open(p, os.O_RDONLY)
    try:
        got = b""
        while len(got) < len(data) + 1:
            chunk = os.read(fd, 128 * KiB)
            if not chunk:
                break
            got += chunk
        test.assertEqual(got, data)
        after_read = cached_pages(fd)
    finally:
        os.close(fd)
    fd = os.open(p, os.O_RDONLY)
    try:
        return after_read, cached_pages(fd)
    finally:
        os.close(fd)


class MmapCoherence(Coherence, MmapCase):
    """Files opened for writing on direct I/O, mappable through FUSE_DIRECT_IO_ALLOW_MMAP."""

    def test_read_write_opens_keep_direct_io(self):
        self.assertEqual(pwrite_and_count_resident(self, os.O_RDWR), 48)

    def test_sealed_files_are_read_around_the_page_cache(self):
        """Their bytes are cached once, in the chunk files (shared by every file with the same
        content), not a second time under the file (sealed-direct-io)."""
        self.assertEqual(read_sealed_and_count_cached(self), (0, 0))


class MmapSealedPageCache(MmapCase):
    """sealed-direct-io off: sealed files are read through the page cache, kept across opens."""
    options = ["--no-sealed-direct-io"]

    def test_sealed_files_are_read_through_the_page_cache(self):
        self.assertEqual(read_sealed_and_count_cached(self), (64, 64))

    def test_sealed_file_maps_for_reading_only(self):
        Coherence.test_sealed_file_maps_for_reading_only(self)


class MmapPageCacheFallback(Coherence, MmapCase):
    """direct-io-mmap off, as on a kernel without FUSE_DIRECT_IO_ALLOW_MMAP: O_RDWR opens use the page
    cache so that they can be mapped, O_WRONLY opens keep direct I/O, and all of Coherence holds."""
    options = ["--no-direct-io-mmap"]

    def test_fsx_default(self):
        self.fsx("fallback", 11, 4000)

    def test_read_write_opens_use_the_page_cache(self):
        self.assertEqual(pwrite_and_count_resident(self, os.O_RDWR), 64)

    def test_write_only_opens_keep_direct_io(self):
        self.assertEqual(pwrite_and_count_resident(self, os.O_WRONLY), 48)

    def test_sealed_files_are_read_through_the_page_cache(self):
        """Without FUSE_DIRECT_IO_ALLOW_MMAP a direct-I/O file cannot be mapped shared: sealed files
        keep the page cache whatever sealed-direct-io says."""
        self.assertEqual(read_sealed_and_count_cached(self), (64, 64))


if __name__ == "__main__":
    h.main()
