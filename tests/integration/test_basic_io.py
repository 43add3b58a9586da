# test_basic_io.py - POSIX file operations on a real pecfs mount, driven with dd, cp and python's os
# module: bytes read back exactly however they were written, sizes, holes, truncation, metadata,
# symlinks, big directories, renames (incl. renameat2 flags), name limits, xattrs, statfs (hard links and special files:
# test_posix_nodes.py).
# A 1 MiB chunk size makes modest files span many chunks.
import errno
import mmap
import os
import random
import signal
import stat
import subprocess
import threading
import time
import unittest

import pecfs_harness as h

MiB = 1 << 20


class BasicIO(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = h.Mount(["--chunk-size", "1M"])
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        cls.m.cleanup()

    def newdir(self):
        """A fresh open version directory for one test: MNT/io/tNN."""
        type(self).counter += 1
        d = self.m.path("io", "t%02d" % self.counter)
        os.makedirs(d)
        return d

    def assertBytes(self, path, expect):
        got = h.read_file(path)
        self.assertEqual(len(got), len(expect), "size of %s" % path)
        if got != expect:
            first = next(i for i in range(len(got)) if got[i] != expect[i])
            self.fail("%s differs first at byte %d" % (path, first))

    def test_cp_and_dd_round_trip(self):
        d = self.newdir()
        src = os.path.join(self.m.base, "src.bin")
        data = h.random_bytes(5 * MiB + 12345, 1)
        h.write_file(src, data)
        subprocess.run(["cp", src, os.path.join(d, "cp.bin")], check=True)
        self.assertBytes(os.path.join(d, "cp.bin"), data)
        for bs in ("4k", "1M", "777", "3M"):
            dst = os.path.join(d, "dd-%s.bin" % bs)
            subprocess.run(["dd", "if=" + src, "of=" + dst, "bs=" + bs, "status=none"], check=True)
            self.assertBytes(dst, data)
            back = os.path.join(self.m.base, "back.bin")
            subprocess.run(["dd", "if=" + dst, "of=" + back, "bs=" + bs, "status=none"], check=True)
            self.assertEqual(h.read_file(back), data)
        self.assertEqual(subprocess.run(["cmp", src, os.path.join(d, "cp.bin")]).returncode, 0)

    def test_pwrite_at_random_offsets(self):
        d = self.newdir()
        p = os.path.join(d, "random.bin")
        rng = random.Random(2)
        model = bytearray()
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for _ in range(300):
                off = rng.randrange(0, 6 * MiB)
                size = rng.choice([1, 2, 7, 4096, rng.randrange(1, 300000), MiB + 3])
                buf = rng.randbytes(size)
                self.assertEqual(os.pwrite(fd, buf, off), size)
                if len(model) < off + size:
                    model.extend(bytes(off + size - len(model)))
                model[off:off + size] = buf
                # read back a random window while the file is still open for writing
                roff = rng.randrange(0, len(model))
                rlen = rng.randrange(1, 2 * MiB)
                self.assertEqual(os.pread(fd, rlen, roff), bytes(model[roff:roff + rlen]))
            self.assertEqual(os.fstat(fd).st_size, len(model))
        finally:
            os.close(fd)
        self.assertBytes(p, bytes(model))

    def test_one_byte_writes(self):
        d = self.newdir()
        p = os.path.join(d, "bytes.bin")
        data = h.random_bytes(20000, 3)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for i in range(len(data)):
                self.assertEqual(os.write(fd, data[i:i + 1]), 1)
        finally:
            os.close(fd)
        self.assertBytes(p, data)
        # one-byte writes straddling a chunk boundary, at an offset into an existing file
        fd = os.open(p, os.O_WRONLY)
        try:
            os.ftruncate(fd, 2 * MiB)
            for i in range(MiB - 5, MiB + 5):
                os.pwrite(fd, b"\xab", i)
        finally:
            os.close(fd)
        expect = bytearray(data + bytes(2 * MiB - len(data)))
        expect[MiB - 5:MiB + 5] = b"\xab" * 10
        self.assertBytes(p, bytes(expect))

    def test_unaligned_user_buffers(self):
        # The kernel splits direct-I/O writes from unaligned buffers into odd fragments.
        d = self.newdir()
        p = os.path.join(d, "unaligned.bin")
        raw = bytearray(h.random_bytes(8 * MiB + 64, 4))
        mv = memoryview(raw)
        expect = bytearray()
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for k in range(1, 8):
                piece = mv[k * 3:k * 3 + MiB]
                self.assertEqual(os.write(fd, piece), MiB)
                expect += piece
        finally:
            os.close(fd)
        self.assertBytes(p, bytes(expect))
        with open(p, "rb", buffering=0) as f:
            buf = bytearray(MiB + 17)
            f.seek(5)
            n = f.readinto(memoryview(buf)[17:])
            self.assertEqual(bytes(buf[17:17 + n]), bytes(expect[5:5 + n]))

    def test_sparse_file_and_truncate(self):
        d = self.newdir()
        p = os.path.join(d, "sparse.bin")
        head = h.random_bytes(1000, 5)
        tail = h.random_bytes(3000, 6)
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, head)
            os.pwrite(fd, tail, 10 * MiB + 77)
            size = 10 * MiB + 77 + len(tail)
            self.assertEqual(os.fstat(fd).st_size, size)
            self.assertEqual(os.pread(fd, 4096, 5 * MiB), bytes(4096))
            # truncate down into the tail, then up again: the cut bytes must read as zeros
            os.ftruncate(fd, 10 * MiB + 100)
            self.assertEqual(os.fstat(fd).st_size, 10 * MiB + 100)
            os.ftruncate(fd, 12 * MiB)
            got = os.pread(fd, 5000, 10 * MiB + 77)
            self.assertEqual(got, tail[:23] + bytes(5000 - 23))
            # truncate into the first chunk and back up
            os.ftruncate(fd, 500)
            os.ftruncate(fd, 3 * MiB)
        finally:
            os.close(fd)
        self.assertBytes(p, head[:500] + bytes(3 * MiB - 500))
        os.truncate(p, 0)
        self.assertEqual(os.stat(p).st_size, 0)
        self.assertEqual(h.read_file(p), b"")
        # truncate by path past the end of a closed file
        os.truncate(p, 12345)
        self.assertBytes(p, bytes(12345))

    def test_truncate_down_drops_buffered_bytes(self):
        d = self.newdir()
        p = os.path.join(d, "tr.bin")
        data = h.random_bytes(3 * MiB, 7)
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.ftruncate(fd, MiB + 10)
            os.pwrite(fd, b"x", 2 * MiB)  # extends again: bytes between must be zero
        finally:
            os.close(fd)
        self.assertBytes(p, data[:MiB + 10] + bytes(MiB - 10) + b"x")

    def test_append(self):
        d = self.newdir()
        p = os.path.join(d, "log.txt")
        expect = b""
        for i in range(50):
            line = (b"line %d " % i) * (i * 997 % 50000 + 1) + b"\n"
            with open(p, "ab") as f:
                f.write(line)
            expect += line
        self.assertBytes(p, expect)
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, b"END")
        finally:
            os.close(fd)
        self.assertBytes(p, expect + b"END")

    def test_large_file_across_many_chunks(self):
        d = self.newdir()
        p = os.path.join(d, "large.bin")
        data = h.random_bytes(24 * MiB + 999, 8)
        h.write_file(p, data, bs=1000 * 1000)
        self.assertEqual(os.stat(p).st_size, len(data))
        with open(p, "rb", buffering=0) as f:
            for rs in (4096, 65536 + 1, MiB, 3 * MiB - 1):
                f.seek(0)
                got = bytearray()
                while True:
                    b = f.read(rs)
                    if not b:
                        break
                    got += b
                self.assertEqual(h.sha256_bytes(got), h.sha256_bytes(data), "read size %d" % rs)
        self.assertEqual(h.sha256_file(p), h.sha256_bytes(data))

    def test_mmap_read_of_sealed_file(self):
        run = self.m.path("mm")
        os.makedirs(os.path.join(run, "v1"))
        p = os.path.join(run, "v1", "model.safetensors")
        data = h.random_bytes(3 * MiB + 4321, 9)
        h.write_file(p, data)
        cp = h.cli("seal", os.path.join(run, "v1"))
        self.assertEqual(cp.returncode, 0, cp.stderr)
        with open(p, "rb") as f:
            with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
                self.assertEqual(len(mm), len(data))
                self.assertEqual(mm[MiB - 3:MiB + 3], data[MiB - 3:MiB + 3])
                self.assertEqual(h.sha256_bytes(mm[:]), h.sha256_bytes(data))

    def test_mmap_read_of_open_file(self):
        d = self.newdir()
        p = os.path.join(d, "open.bin")
        data = h.random_bytes(MiB + 5, 10)
        h.write_file(p, data)
        with open(p, "rb") as f:
            with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
                self.assertEqual(mm[:], data)

    def test_stat_sizes_and_types(self):
        d = self.newdir()
        p = os.path.join(d, "f")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            st = os.fstat(fd)
            self.assertTrue(stat.S_ISREG(st.st_mode))
            self.assertEqual(st.st_size, 0)
            os.write(fd, b"a" * 3000)
            self.assertEqual(os.fstat(fd).st_size, 3000)
            self.assertEqual(os.stat(p).st_size, 3000)  # size visible by path while still open
        finally:
            os.close(fd)
        st = os.stat(p)
        self.assertEqual(st.st_size, 3000)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640 & ~_umask())
        self.assertEqual(st.st_nlink, 1)
        self.assertEqual(st.st_blocks, (3000 + 511) // 512)  # logical blocks, as du shows them
        os.mkdir(os.path.join(d, "sub"))
        self.assertTrue(stat.S_ISDIR(os.stat(os.path.join(d, "sub")).st_mode))
        self.assertEqual(os.stat(d).st_nlink, 3)  # ., its entry, sub/..

    def test_chmod_chown_utimens(self):
        d = self.newdir()
        p = os.path.join(d, "meta")
        h.write_file(p, b"hello")
        os.chmod(p, 0o4751)
        self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o4751)
        os.chown(p, 1234, 5678)
        st = os.stat(p)
        self.assertEqual((st.st_uid, st.st_gid), (1234, 5678))
        os.utime(p, ns=(1_500_000_000_123_456_789, 1_600_000_000_987_654_321))
        st = os.stat(p)
        self.assertEqual(st.st_atime_ns, 1_500_000_000_123_456_789)
        self.assertEqual(st.st_mtime_ns, 1_600_000_000_987_654_321)
        before = st.st_ctime_ns
        os.chmod(p, 0o600)
        self.assertGreaterEqual(os.stat(p).st_ctime_ns, before)
        os.chmod(d, 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(d).st_mode), 0o700)
        # mtime moves on write
        os.utime(p, ns=(0, 0))
        with open(p, "ab") as f:
            f.write(b"!")
        self.assertGreater(os.stat(p).st_mtime_ns, 0)

    def test_symlinks(self):
        d = self.newdir()
        h.write_file(os.path.join(d, "target"), b"through the link")
        os.symlink("target", os.path.join(d, "rel"))
        os.symlink("/nonexistent/x" * 10, os.path.join(d, "dangling"))
        self.assertEqual(os.readlink(os.path.join(d, "rel")), "target")
        self.assertEqual(os.readlink(os.path.join(d, "dangling")), "/nonexistent/x" * 10)
        self.assertTrue(stat.S_ISLNK(os.lstat(os.path.join(d, "rel")).st_mode))
        self.assertEqual(h.read_file(os.path.join(d, "rel")), b"through the link")
        self.assertEqual(h.errno_of(os.stat, os.path.join(d, "dangling")), errno.ENOENT)
        self.assertEqual(h.errno_of(os.symlink, "x", os.path.join(d, "rel")), errno.EEXIST)
        os.unlink(os.path.join(d, "rel"))
        self.assertTrue(os.path.exists(os.path.join(d, "target")))

    def test_readdir_of_1000_entries(self):
        d = self.newdir()
        names = set()
        for i in range(1000):
            n = "entry-%04d-%s" % (i, "x" * (i % 40))
            names.add(n)
            if i % 10 == 0:
                os.mkdir(os.path.join(d, n))
            else:
                open(os.path.join(d, n), "wb").close()
        self.assertEqual(set(os.listdir(d)), names)
        with os.scandir(d) as it:
            kinds = {e.name: e.is_dir(follow_symlinks=False) for e in it}
        self.assertEqual(set(kinds), names)
        self.assertEqual(sum(kinds.values()), 100)
        out = subprocess.run(["ls", "-la", d], capture_output=True, text=True, check=True).stdout
        self.assertEqual(len(out.splitlines()), 1000 + 3)  # total, ., ..
        self.assertEqual(h.errno_of(os.rmdir, d), errno.ENOTEMPTY)

    def test_pec_is_hidden_from_readdir(self):
        self.newdir()
        self.assertNotIn(".pec", os.listdir(self.m.mnt))
        self.assertNotIn(".pec", os.listdir(self.m.path("io")))
        self.assertTrue(os.path.isdir(self.m.path(".pec")))
        self.assertTrue(os.path.isdir(self.m.path("io", ".pec")))

    def test_rename_files(self):
        d = self.newdir()
        a, b, c = (os.path.join(d, n) for n in "abc")
        h.write_file(a, b"A" * 5000)
        h.write_file(b, b"B" * 7000)
        os.rename(a, c)
        self.assertFalse(os.path.exists(a))
        self.assertEqual(h.read_file(c), b"A" * 5000)
        os.rename(c, b)  # replaces b
        self.assertEqual(h.read_file(b), b"A" * 5000)
        self.assertEqual(sorted(os.listdir(d)), ["b"])
        h.write_file(a, b"new a")
        self.assertEqual(h.errno_of(h.renameat2, a, b, h.RENAME_NOREPLACE), errno.EEXIST)
        self.assertEqual(h.read_file(b), b"A" * 5000)
        h.renameat2(a, c, h.RENAME_NOREPLACE)
        self.assertEqual(h.read_file(c), b"new a")
        self.assertEqual(h.errno_of(os.rename, os.path.join(d, "missing"), a), errno.ENOENT)

    def test_rename_exchange(self):
        d = self.newdir()
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        h.write_file(a, b"first")
        os.mkdir(b)
        h.write_file(os.path.join(b, "inner"), b"inner")
        e = h.errno_of(h.renameat2, a, b, h.RENAME_EXCHANGE)
        # The contract allows a clear EINVAL instead of support, with nothing changed.
        self.assertIn(e, (0, errno.EINVAL), h.errname(e))
        if e == 0:
            self.assertEqual(h.read_file(b), b"first")
            self.assertEqual(h.read_file(os.path.join(a, "inner")), b"inner")
        else:
            self.assertEqual(h.read_file(a), b"first")
            self.assertEqual(h.read_file(os.path.join(b, "inner")), b"inner")
        self.assertEqual(h.errno_of(h.renameat2, a, os.path.join(d, "none"), h.RENAME_EXCHANGE),
                         errno.ENOENT)

    def test_rename_directory(self):
        d = self.newdir()
        src = os.path.join(d, "tree")
        os.makedirs(os.path.join(src, "x", "y"))
        files = {}
        for i, rel in enumerate(["f1", "x/f2", "x/y/f3"]):
            files[rel] = h.random_bytes(100000 + i, 20 + i)
            h.write_file(os.path.join(src, rel), files[rel])
        before = h.tree_snapshot(src)
        dst = os.path.join(d, "moved")
        os.rename(src, dst)
        self.assertFalse(os.path.exists(src))
        self.assertEqual(h.diff_trees(before, h.tree_snapshot(dst)), [])
        # over an empty directory: allowed; over a non-empty one: ENOTEMPTY; into itself: EINVAL
        os.mkdir(os.path.join(d, "empty"))
        os.rename(dst, os.path.join(d, "empty"))
        self.assertEqual(h.read_file(os.path.join(d, "empty", "x", "y", "f3")), files["x/y/f3"])
        os.makedirs(os.path.join(d, "full", "z"))
        self.assertIn(h.errno_of(os.rename, os.path.join(d, "empty"), os.path.join(d, "full")),
                      (errno.ENOTEMPTY, errno.EEXIST))
        self.assertEqual(h.errno_of(os.rename, os.path.join(d, "empty"),
                                    os.path.join(d, "empty", "x", "inside")), errno.EINVAL)
        # file over directory and directory over file
        self.assertEqual(h.errno_of(os.rename, os.path.join(d, "empty", "f1"), os.path.join(d, "full")),
                         errno.EISDIR)
        self.assertEqual(h.errno_of(os.rename, os.path.join(d, "full"), os.path.join(d, "empty", "f1")),
                         errno.ENOTDIR)
        # across directories
        os.rename(os.path.join(d, "empty", "x"), os.path.join(d, "full", "z", "x"))
        self.assertEqual(h.read_file(os.path.join(d, "full", "z", "x", "f2")), files["x/f2"])
        self.assertEqual(os.stat(os.path.join(d, "empty")).st_nlink, 2)

    def test_name_too_long(self):
        d = self.newdir()
        ok = "n" * 255
        h.write_file(os.path.join(d, ok), b"ok")
        self.assertEqual(h.read_file(os.path.join(d, ok)), b"ok")
        long = "n" * 256
        self.assertEqual(h.errno_of(open, os.path.join(d, long), "wb"), errno.ENAMETOOLONG)
        self.assertEqual(h.errno_of(os.mkdir, os.path.join(d, long)), errno.ENAMETOOLONG)
        self.assertEqual(h.errno_of(os.symlink, "t", os.path.join(d, long)), errno.ENAMETOOLONG)
        self.assertEqual(h.errno_of(os.rename, os.path.join(d, ok), os.path.join(d, long)),
                         errno.ENAMETOOLONG)
        self.assertEqual(h.errno_of(os.stat, os.path.join(d, long)), errno.ENAMETOOLONG)

    def test_timestamps_beyond_2262_are_clamped(self):
        d = self.newdir()
        p = os.path.join(d, "f")
        h.write_file(p, b"x")
        os.utime(p, ns=(2**31 * 10**9, 32503680000 * 10**9))  # 2038 and the year 3000
        st = os.stat(p)
        self.assertEqual(st.st_atime_ns, 2**31 * 10**9)
        self.assertEqual(st.st_mtime_ns, 2**63 - 1)  # the largest time nanoseconds hold, as ext4 clamps
        os.utime(p, ns=(-(2**62), 0))
        self.assertEqual(os.stat(p).st_atime_ns, -(2**62))

    def test_fuse_threads_bounds_the_request_threads(self):
        """fuse-threads is the most threads answering requests: 16 busy readers get no more."""
        with h.Mount(["--fuse-threads", "2", "--chunk-size", "1M"]) as m:
            d = m.path("r", "v")
            os.makedirs(d)
            for i in range(4):
                h.write_file(os.path.join(d, "f%d" % i), h.random_bytes(8 * MiB, 70 + i))
            pid = m.pid()

            def tasks():
                return len(os.listdir("/proc/%d/task" % pid))
            idle = tasks()
            stop = time.monotonic() + 3
            peak = [idle]

            def reader(k):
                while time.monotonic() < stop:
                    with open(os.path.join(d, "f%d" % (k % 4)), "rb", buffering=0) as f:
                        while f.read(1 << 20):
                            pass
            ts = [threading.Thread(target=reader, args=(k,)) for k in range(16)]
            for t in ts:
                t.start()
            while time.monotonic() < stop:
                peak[0] = max(peak[0], tasks())
                time.sleep(0.01)
            for t in ts:
                t.join()
            # one loop thread was there at idle; at most one more may start
            self.assertLessEqual(peak[0] - idle, 1, "threads: %d idle, %d under load" % (idle, peak[0]))

    def bdi_read_ahead_kb(self, mnt):
        with open("/proc/self/mountinfo") as f:
            dev = [line.split()[2] for line in f if line.split()[4] == mnt][-1]
        with open("/sys/class/bdi/%s/read_ahead_kb" % dev) as f:
            return int(f.read())

    def test_read_ahead_window_is_set_at_mount(self):
        self.assertEqual(self.bdi_read_ahead_kb(self.m.mnt), 4096)  # the default read-ahead, 4M
        with h.Mount(["--read-ahead", "0"]) as m:
            self.assertEqual(self.bdi_read_ahead_kb(m.mnt), 128)  # the kernel's for FUSE
        with h.Mount(["--read-ahead", "16M"]) as m:
            self.assertEqual(self.bdi_read_ahead_kb(m.mnt), 16384)

    def test_read_ahead_of_many_readers_is_not_throttled(self):
        # With 4 MiB read-ahead in 1 MiB requests, one sequential reader keeps 4 requests in flight:
        # the kernel's default limit of 12 serves three readers, not 8 data-parallel ranks loading.
        # Read from the kernel's side: fusectl.
        conns = "/sys/fs/fuse/connections"
        if not os.path.ismount(conns):
            subprocess.run(["mount", "-t", "fusectl", "none", conns], check=True)
        d = os.path.join(conns, str(os.stat(self.m.mnt).st_dev))
        with open(os.path.join(d, "max_background")) as f:
            self.assertEqual(int(f.read()), 64)
        with open(os.path.join(d, "congestion_threshold")) as f:
            self.assertEqual(int(f.read()), 48)

    def test_xattrs(self):
        d = self.newdir()
        p = os.path.join(d, "x")
        h.write_file(p, b"content for the digest")
        os.setxattr(p, "user.note", b"hello")
        os.setxattr(p, "user.big", bytes(range(256)) * 16)
        self.assertEqual(os.getxattr(p, "user.note"), b"hello")
        self.assertEqual(os.getxattr(p, "user.big"), bytes(range(256)) * 16)
        names = os.listxattr(p)
        self.assertIn("user.note", names)
        self.assertIn("user.big", names)
        self.assertEqual(h.errno_of(os.setxattr, p, "user.note", b"x", os.XATTR_CREATE), errno.EEXIST)
        self.assertEqual(h.errno_of(os.setxattr, p, "user.nope", b"x", os.XATTR_REPLACE), errno.ENODATA)
        os.removexattr(p, "user.note")
        self.assertEqual(h.errno_of(os.getxattr, p, "user.note"), errno.ENODATA)
        self.assertNotIn("user.note", os.listxattr(p))
        os.setxattr(d, "user.dir", b"on a directory")
        self.assertEqual(os.getxattr(d, "user.dir"), b"on a directory")
        # read-only facts
        version = os.path.basename(d)
        self.assertEqual(os.getxattr(p, "user.pec.version").rstrip(b"\0\n").decode(), version)
        self.assertEqual(os.getxattr(p, "user.pec.state").rstrip(b"\0\n"), b"open")
        digest = os.getxattr(p, "user.pec.digest").rstrip(b"\0\n").decode()
        self.assertRegex(digest, r"^[0-9a-f]{64}$")
        self.assertIn(h.errno_of(os.setxattr, p, "user.pec.digest", b"0" * 64),
                      (errno.EPERM, errno.EACCES, errno.EROFS, errno.ENOTSUP))
        self.assertEqual(os.getxattr(p, "user.pec.digest").rstrip(b"\0\n").decode(), digest)
        # same bytes written the same way: same content id; different bytes: different id
        q = os.path.join(d, "y")
        h.write_file(q, b"content for the digest")
        self.assertEqual(os.getxattr(q, "user.pec.digest").rstrip(b"\0\n").decode(), digest)
        h.write_file(q, b"other content")
        self.assertNotEqual(os.getxattr(q, "user.pec.digest").rstrip(b"\0\n").decode(), digest)

    def test_statfs(self):
        st = os.statvfs(self.m.mnt)
        self.assertGreater(st.f_bsize, 0)
        self.assertGreater(st.f_blocks, 0)
        self.assertLessEqual(st.f_bfree, st.f_blocks)
        self.assertLessEqual(st.f_bavail, st.f_bfree)
        self.assertEqual(st.f_namemax, 255)
        disk = os.statvfs(self.m.data)
        # free space reported is the data disk's, give or take the reserve and concurrent use
        self.assertLessEqual(st.f_bavail * st.f_frsize, disk.f_bavail * disk.f_frsize + (1 << 30))
        self.assertEqual(subprocess.run(["df", self.m.mnt], capture_output=True).returncode, 0)

    def test_directory_errors(self):
        d = self.newdir()
        os.mkdir(os.path.join(d, "sub"))
        h.write_file(os.path.join(d, "sub", "f"), b"1")
        self.assertEqual(h.errno_of(os.mkdir, os.path.join(d, "sub")), errno.EEXIST)
        self.assertEqual(h.errno_of(os.rmdir, os.path.join(d, "sub")), errno.ENOTEMPTY)
        self.assertEqual(h.errno_of(os.rmdir, os.path.join(d, "sub", "f")), errno.ENOTDIR)
        self.assertEqual(h.errno_of(os.unlink, os.path.join(d, "sub")), errno.EISDIR)
        self.assertEqual(h.errno_of(os.open, os.path.join(d, "sub", "f"), os.O_CREAT | os.O_EXCL | os.O_WRONLY),
                         errno.EEXIST)
        self.assertEqual(h.errno_of(os.open, os.path.join(d, "sub", "f", "x"), os.O_CREAT | os.O_WRONLY),
                         errno.ENOTDIR)
        self.assertEqual(h.errno_of(os.open, os.path.join(d, "nope"), os.O_RDONLY), errno.ENOENT)
        os.unlink(os.path.join(d, "sub", "f"))
        os.rmdir(os.path.join(d, "sub"))
        self.assertEqual(os.listdir(d), [])

    def test_unlinked_open_file_stays_readable(self):
        d = self.newdir()
        p = os.path.join(d, "gone")
        data = h.random_bytes(2 * MiB + 1, 30)
        h.write_file(p, data)
        fd = os.open(p, os.O_RDWR)
        try:
            os.unlink(p)
            self.assertFalse(os.path.exists(p))
            self.assertEqual(os.pread(fd, len(data) + 10, 0), data)
            os.pwrite(fd, b"still writable", 5)
            self.assertEqual(os.pread(fd, 14, 5), b"still writable")
        finally:
            os.close(fd)
        self.assertEqual(os.listdir(d), [])

    def test_removed_open_directory_stays_statable(self):
        d = self.newdir()
        sub = os.path.join(d, "sub")
        os.mkdir(sub)
        fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.rmdir(sub)
            self.assertFalse(os.path.exists(sub))
            st = os.fstat(fd)
            self.assertTrue(stat.S_ISDIR(st.st_mode))
            self.assertEqual(st.st_nlink, 0)
            self.assertEqual(os.listdir(fd), [])
            self.assertEqual(h.errno_of(os.open, os.path.join("/proc/self/fd/%d" % fd, "new"),
                                        os.O_CREAT | os.O_WRONLY, 0o644), errno.ENOENT)
        finally:
            os.close(fd)

    def test_fsync_and_fsyncdir(self):
        d = self.newdir()
        p = os.path.join(d, "synced")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"s" * 100000)
            os.fsync(fd)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        self.assertEqual(h.read_file(p), b"s" * 100000)

    def test_pec_files_are_json_and_text(self):
        self.newdir()
        st = self.m.stats()
        for key in ("stored_bytes", "chunks", "dedup_hits", "corrupt_reads"):
            self.assertIn(key, st)
            self.assertIsInstance(st[key], int)
        with open(self.m.path(".pec", "metrics")) as f:
            text = f.read()
        samples = [l for l in text.splitlines() if l and not l.startswith("#")]
        self.assertTrue(samples, "no metric samples")
        for line in samples:
            name, value = line.rsplit(" ", 1)
            float(value)
            self.assertRegex(name, r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?$")
        self.assertTrue(any(l.startswith("# TYPE ") for l in text.splitlines()))
        v = self.m.versions("io")
        self.assertEqual(v["run"], "io")
        self.assertTrue(all(x["state"] == "open" for x in v["versions"]))


def _umask():
    old = os.umask(0)
    os.umask(old)
    return old


class Listing(unittest.TestCase):
    """The kernel asks for a listing's first batch with attributes (READDIRPLUS), which loads the inode
    of every entry it carries; a plain listing of a large directory needs none of them."""

    def test_a_plain_listing_loads_the_inodes_of_a_small_directory_only(self):
        m = h.Mount()
        self.addCleanup(m.cleanup)
        small, large = m.path("r", "v", "small"), m.path("r", "v", "large")
        os.makedirs(small)
        os.makedirs(large)
        for i in range(300):
            open(os.path.join(small, "s%03d" % i), "wb").close()
        for i in range(3000):
            h.write_file(os.path.join(large, "f%04d" % i), b"x" * (i % 7))
        m.remount()  # the kernel and the daemon hold no entry of either directory

        def loaded():
            return m.stats()["inodes_loaded"]

        before = loaded()
        self.assertEqual(len(os.listdir(large)), 3000)
        self.assertLess(loaded() - before, 1100, "a plain listing of 3000 entries loaded their inodes")
        # A directory of up to 1024 entries still comes whole with its attributes.
        before = loaded()
        self.assertEqual(len(os.listdir(small)), 300)
        self.assertGreaterEqual(loaded() - before, 300)
        # A program that looks at every entry gets every entry's attributes right.
        with os.scandir(large) as it:
            sizes = {e.name: e.stat(follow_symlinks=False).st_size for e in it}
        self.assertEqual(sizes, {"f%04d" % i: i % 7 for i in range(3000)})
        out = subprocess.run(["ls", "-l", large], capture_output=True, text=True, check=True).stdout
        self.assertEqual(len(out.splitlines()), 3000 + 1)  # total


class WriteBackpressure(unittest.TestCase):
    """Writers that outrun hashing must wait for buffers, never deadlock: a tiny buffer pool, several
    files written at once, each writer watched by a timeout."""

    WRITER = (
        "import mmap, os, random, sys\n"
        "buf = mmap.mmap(-1, 1 << 20)\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)\n"
        "for i in range(int(sys.argv[2])):\n"
        "    buf[:16] = i.to_bytes(8, 'little') + int(sys.argv[3]).to_bytes(8, 'little')\n"
        "    assert os.write(fd, buf) == 1 << 20\n"
        "os.fsync(fd)\n"
        "os.close(fd)\n")

    def test_small_pool_does_not_deadlock(self):
        with h.Mount(["--chunk-size", "1M", "--write-buffers", "2", "--hash-threads", "2"]) as m:
            os.makedirs(m.path("bp", "v"))
            procs = [subprocess.Popen(["python3", "-c", self.WRITER, m.path("bp", "v", "f%d" % i), "48", str(i)])
                     for i in range(3)]
            try:
                for p in procs:
                    self.assertEqual(p.wait(timeout=60 * h.SLOW), 0)
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                self.fail("writers hung: the daemon stopped answering writes (buffer pool deadlock?)")
            for i in range(3):
                with open(m.path("bp", "v", "f%d" % i), "rb") as f:
                    for k in range(48):
                        self.assertEqual(f.read(1 << 20)[:16], k.to_bytes(8, "little") + i.to_bytes(8, "little"))


class Persistence(unittest.TestCase):
    def test_contents_survive_remount(self):
        with h.Mount(["--chunk-size", "1M"]) as m:
            os.makedirs(m.path("r", "v", "sub"))
            files = {"r/v/a": h.random_bytes(3 * MiB + 1, 40), "r/v/sub/b": b"small",
                     "r/v/empty": b""}
            for rel, data in files.items():
                h.write_file(m.path(rel), data)
            os.symlink("a", m.path("r", "v", "link"))
            os.setxattr(m.path("r/v/a"), "user.kept", b"yes")
            os.chmod(m.path("r/v/sub/b"), 0o600)
            before = h.tree_snapshot(m.mnt)
            m.remount()
            self.assertEqual(h.diff_trees(before, h.tree_snapshot(m.mnt)), [])
            self.assertEqual(os.getxattr(m.path("r/v/a"), "user.kept"), b"yes")
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)


    def test_removed_files_leave_no_records(self):
        """Every way a file goes (unlink, rmdir, rename over it, its last close after an unlink, the
        next mount after a file was left open and unlinked) takes all its records with it: fsck
        finds no target, xattr or orphan key of an inode that is gone."""
        with h.Mount(["--chunk-size", "1M"]) as m:
            d = m.path("r", "v")
            os.makedirs(os.path.join(d, "sub"))
            for name in ("plain", "xattrs", "linked", "over-me", "open-then-unlinked", "left-open"):
                h.write_file(os.path.join(d, name), name.encode() * 1000)
            os.setxattr(os.path.join(d, "xattrs"), "user.step", b"10")
            os.setxattr(os.path.join(d, "sub"), "user.dir", b"yes")
            os.link(os.path.join(d, "linked"), os.path.join(d, "linked2"))
            os.symlink("plain", os.path.join(d, "link"))
            os.symlink("plain", os.path.join(d, "link-over-me"))
            os.symlink("plain", os.path.join(d, "link-open"))
            fd = os.open(os.path.join(d, "open-then-unlinked"), os.O_RDONLY)
            left = os.open(os.path.join(d, "left-open"), os.O_RDONLY)
            for name in ("plain", "xattrs", "linked", "linked2", "link", "open-then-unlinked", "left-open"):
                os.unlink(os.path.join(d, name))
            os.rmdir(os.path.join(d, "sub"))
            h.write_file(os.path.join(d, "new"), b"new")
            os.rename(os.path.join(d, "new"), os.path.join(d, "over-me"))
            os.rename(os.path.join(d, "over-me"), os.path.join(d, "link-over-me"))
            self.assertEqual(os.read(fd, 4), b"open")
            os.close(fd)
            self.assertEqual(sorted(os.listdir(d)), ["link-open", "link-over-me"])
            os.unlink(os.path.join(d, "link-open"))
            # Checked while mounted (the daemon runs it): left-open is still open, so its inode and
            # orphan key stay, and belong. A data folder opened offline drops orphans first.
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            m.kill9()
            try:
                os.close(left)
            except OSError:
                pass  # ENOTCONN: the daemon is gone
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            m.mount()
            self.assertEqual(h.read_file(m.path("r", "v", "link-over-me")), b"new")
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def test_sigterm_with_files_open_writes_them_out_and_exits_cleanly(self):
        """systemd stops the daemon with SIGTERM, trainers may still hold files: no release comes
        for them. What was written through a handle still open is stored, the daemon unmounts and
        exits, and (under a sanitizer) frees every handle: no report. Leak checks are on for this
        daemon even where a test run turns them off for the others: a SIGTERM is a clean exit."""
        with h.Mount(["--chunk-size", "1M"], mount=False) as m:
            env = h._env()
            env["ASAN_OPTIONS"] += ":detect_leaks=1"  # the last setting wins
            h.cli("mount", *m.options, m.data, m.mnt, env=env, check=True)
            os.makedirs(m.path("r", "v"))
            data = h.random_bytes(2 * MiB + 4321, 41)  # two full chunks and a buffered tail
            h.write_file(m.path("r", "v", "read.bin"), b"read me")
            wfd = os.open(m.path("r", "v", "open.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
            rfd = os.open(m.path("r", "v", "read.bin"), os.O_RDONLY)
            try:
                self.assertEqual(os.write(wfd, data), len(data))
                self.assertEqual(os.read(rfd, 4), b"read")
                pid = m.pid()
                os.kill(pid, signal.SIGTERM)
                self.assertTrue(h.wait_until(lambda: not h.pid_alive(pid), 60 * h.SLOW),
                                "daemon %d still running 60 s after SIGTERM" % pid)
            finally:
                for fd in (wfd, rfd):
                    try:
                        os.close(fd)
                    except OSError:
                        pass  # ENOTCONN: the daemon is gone
            h.check_sanitizers()
            self.assertFalse(h.is_mounted(m.mnt), "the daemon left its mount behind")
            m.mount()
            self.assertEqual(h.read_file(m.path("r", "v", "open.bin")), data)
            self.assertEqual(h.read_file(m.path("r", "v", "read.bin")), b"read me")
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)


class Permissions(unittest.TestCase):
    """default_permissions: owner, group and mode are enforced as on a local filesystem."""

    def as_nobody(self, code):
        cp = subprocess.run(["python3", "-c", "import os,sys,errno\nos.setgid(65534); os.setuid(65534)\n" + code],
                            capture_output=True, text=True)
        return cp.stdout.strip()

    def test_modes_enforced_with_allow_other(self):
        with h.Mount(["--allow-other"]) as m:
            os.chmod(m.base, 0o755)  # mkdtemp makes it 0700: others could not even reach the mount
            os.chmod(m.mnt, 0o755)
            os.makedirs(m.path("p", "v"))
            os.chmod(m.path("p"), 0o755)
            os.chmod(m.path("p", "v"), 0o755)
            h.write_file(m.path("p/v/secret"), b"s")
            os.chmod(m.path("p/v/secret"), 0o600)
            h.write_file(m.path("p/v/public"), b"public")
            os.chmod(m.path("p/v/public"), 0o644)
            probe = ("def t(f):\n  try:\n    f(); return 'OK'\n  except OSError as e: return errno.errorcode[e.errno]\n"
                     "print(t(lambda: open(%r,'rb').read()), t(lambda: open(%r,'rb').read()),"
                     " t(lambda: open(%r,'ab')), t(lambda: open(%r,'wb')))"
                     % (m.path("p/v/secret"), m.path("p/v/public"), m.path("p/v/public"), m.path("p/v/new")))
            self.assertEqual(self.as_nobody(probe), "EACCES OK EACCES EACCES")
            os.chmod(m.path("p/v"), 0o777)
            self.assertEqual(self.as_nobody("open(%r,'wb').write(b'n'); print(os.stat(%r).st_uid)"
                                            % (m.path("p/v/new"), m.path("p/v/new"))), "65534")

    def test_other_users_locked_out_without_allow_other(self):
        with h.Mount() as m:
            os.chmod(m.base, 0o755)
            os.chmod(m.mnt, 0o777)
            out = self.as_nobody("try:\n  os.listdir(%r); print('OK')\nexcept OSError as e: print(errno.errorcode[e.errno])"
                                 % m.mnt)
            self.assertEqual(out, "EACCES")


if __name__ == "__main__":
    h.main()
