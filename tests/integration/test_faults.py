# test_faults.py - bad input and faults give a clear error and lose nothing: a full data disk (a 96 MiB
# tmpfs as DATA_DIR) gives the writer ENOSPC and the mount keeps working once space is freed; a chunk
# that could not be stored fails every later fsync, close and seal of its file until it is written
# again, and each seal trigger (tracker close, rename into place, a create in the next version) fails
# with the seal's ENOSPC and leaves the version open, and `pecfs umount` exits 1 when the daemon's
# final write-out fails; a chunk corrupted on disk reads as EIO and fsck names it and the file using
# it; bad command lines, a busy mount point and a second mount of one data folder exit 2 with a
# one-line message.
import errno
import os
import unittest

import pecfs_harness as h

MiB = 1 << 20


def one_line_error(tc, cp, what):
    tc.assertEqual(cp.returncode, 2, "%s: exit %d, stderr %r" % (what, cp.returncode, cp.stderr))
    msg = cp.stderr.strip()
    tc.assertTrue(msg, "%s: no message" % what)
    tc.assertEqual(len(msg.splitlines()), 1, "%s: message is not one line: %r" % (what, msg))
    return msg


class DiskFull(unittest.TestCase):
    def test_enospc_then_recovery(self):
        m = h.Mount(mount=False)
        with m:
            data = os.path.join(m.base, "small")
            m.mount_tmpfs(data, "96M")
            m.data = os.path.join(data, "d")
            os.makedirs(m.data)
            m.options = ["--chunk-size", "1M", "--reserve-free", "2M", "--write-buffers", "8"]
            m.mount()
            # a sealed version written before the disk fills up
            os.makedirs(m.path("run", "v1"))
            sealed = {"a": h.random_bytes(5 * MiB + 3, 1), "b": h.random_bytes(100, 2)}
            for n, b in sealed.items():
                h.write_file(m.path("run", "v1", n), b)
            h.cli("seal", m.path("run", "v1"), check=True)

            os.makedirs(m.path("run", "v2"))
            big = m.path("run", "v2", "big")
            got = 0
            written = 0
            fd = os.open(big, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                for i in range(300):  # 300 MiB of unique data cannot fit in 96 MiB
                    os.write(fd, h.random_bytes(MiB, 1000 + i))
                    written += MiB
                os.fsync(fd)
            except OSError as e:
                got = e.errno
            finally:
                try:
                    os.close(fd)
                except OSError as e:
                    got = got or e.errno
            self.assertEqual(h.errname(got), "ENOSPC", "after %d MiB" % (written // MiB))
            print("\nENOSPC after %d MiB written" % (written // MiB))
            # the mount still answers; metadata can still change; sealed data is intact
            self.assertIn("big", os.listdir(m.path("run", "v2")))
            for n, b in sealed.items():
                self.assertEqual(h.read_file(m.path("run", "v1", n)), b)
            # every chunk that could not be stored is counted
            self.assertGreaterEqual(m.stats()["write_errors"], 1)
            # free the space, reclaim the chunks, write again
            os.unlink(big)
            cp = h.cli("gc", m.data)
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            after = h.random_bytes(8 * MiB, 99)
            h.write_file(m.path("run", "v2", "after"), after, fsync=True)
            self.assertEqual(h.read_file(m.path("run", "v2", "after")), after)
            m.remount()
            for n, b in sealed.items():
                self.assertEqual(h.read_file(m.path("run", "v1", n)), b)
            self.assertEqual(h.read_file(m.path("run", "v2", "after")), after)
            self.assertEqual(m.version_state("run", "v1"), "sealed")
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)


def fill_to_reserve(tc, m, d):
    """Writes 1 MiB files of unique bytes into directory d, each fsynced, until the store refuses
    one (ENOSPC below the reserve); removes that one and returns the names of those kept."""
    kept = []
    for i in range(1000):
        p = os.path.join(d, "fill-%03d" % i)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        err = 0
        try:
            os.write(fd, h.random_bytes(MiB, 5000 + i))
            os.fsync(fd)
        except OSError as e:
            err = e.errno
        finally:
            try:
                os.close(fd)
            except OSError as e:
                err = err or e.errno
        if err:
            tc.assertEqual(h.errname(err), "ENOSPC")
            os.unlink(p)
            return kept
        kept.append(p)
    tc.fail("the disk never filled up")


def full_disk_mount(tc, *options):
    """A mount whose data folder is a 96 MiB tmpfs with a 2 MiB reserve; cleaned up by the test."""
    m = h.Mount(mount=False)
    tc.addCleanup(m.cleanup)
    data = os.path.join(m.base, "small")
    m.mount_tmpfs(data, "96M")
    m.data = os.path.join(data, "d")
    os.makedirs(m.data)
    m.options = ["--chunk-size", "1M", "--reserve-free", "2M", "--write-buffers", "8"] + list(options)
    m.mount()
    return m


class LostWrites(unittest.TestCase):
    def test_failed_chunk_write_fails_every_fsync_until_rewritten(self):
        m = full_disk_mount(self)
        os.makedirs(m.path("run", "fill"))
        fill = fill_to_reserve(self, m, m.path("run", "fill"))
        os.makedirs(m.path("run", "v2"))
        p = m.path("run", "v2", "f")
        data = h.random_bytes(3 * MiB + 100, 77)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            # writes are buffered and succeed; the chunks they fill cannot be stored
            self.assertEqual(os.write(fd, data), len(data))
            for attempt in range(3):  # the loss is not forgotten once reported
                self.assertEqual(h.errno_of(os.fsync, fd), errno.ENOSPC, "fsync %d" % attempt)
        finally:
            self.assertEqual(h.errno_of(os.close, fd), errno.ENOSPC)
        self.assertGreaterEqual(m.stats()["write_errors"], 3)
        h.drop_caches()  # the kernel forgets the file; the daemon must not
        # a reader never gets the older bytes or the hole in place of what was written
        self.assertEqual(h.errno_of(h.read_file, p), errno.EIO)
        cp = h.cli("seal", m.path("run", "v2"))
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertEqual(m.version_state("run", "v2"), "open", "sealed with lost bytes")
        # space alone does not bring the lost bytes back
        for q in fill[:20]:
            os.unlink(q)
        self.assertEqual(h.cli("gc", m.data).returncode, 0)
        self.assertEqual(h.cli("seal", m.path("run", "v2")).returncode, 1)
        self.assertEqual(m.version_state("run", "v2"), "open")
        # rewriting the first chunk leaves the others lost; rewriting them all clears the error
        fd = os.open(p, os.O_WRONLY)
        try:
            self.assertEqual(os.pwrite(fd, data[:MiB], 0), MiB)
            self.assertEqual(h.errno_of(os.fsync, fd), errno.ENOSPC)
            with open(p, "rb", buffering=0) as r:
                self.assertEqual(r.read(MiB), data[:MiB])  # the rewritten chunk reads back
                self.assertEqual(h.errno_of(r.read, MiB), errno.EIO)  # the next is still lost
            self.assertEqual(os.pwrite(fd, data[MiB:], MiB), len(data) - MiB)
            os.fsync(fd)
        finally:
            os.close(fd)
        cp = h.cli("seal", m.path("run", "v2"))
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertEqual(m.version_state("run", "v2"), "sealed")
        self.assertEqual(h.read_file(p), data)

    def test_truncate_forgets_the_lost_range(self):
        m = full_disk_mount(self)
        os.makedirs(m.path("run", "fill"))
        fill = fill_to_reserve(self, m, m.path("run", "fill"))
        os.makedirs(m.path("run", "v2"))
        p = m.path("run", "v2", "f")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, h.random_bytes(2 * MiB, 78))
            self.assertEqual(h.errno_of(os.fsync, fd), errno.ENOSPC)
        finally:
            self.assertEqual(h.errno_of(os.close, fd), errno.ENOSPC)
        for q in fill[:20]:
            os.unlink(q)
        self.assertEqual(h.cli("gc", m.data).returncode, 0)
        # a trainer's retry: the file written again from scratch (O_TRUNC)
        data = h.random_bytes(2 * MiB + 5, 79)
        h.write_file(p, data, fsync=True)
        self.assertEqual(h.cli("seal", m.path("run", "v2")).returncode, 0)
        self.assertEqual(h.read_file(p), data)


def write_lost(tc, path, data):
    """Writes data to path on a full disk: the close reports the chunks that could not be stored."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        tc.assertEqual(os.write(fd, data), len(data))
    finally:
        tc.assertEqual(h.errno_of(os.close, fd), errno.ENOSPC)


def free_space(m, fill):
    for q in fill[:20]:
        os.unlink(q)
    cp = h.cli("gc", m.data)
    assert cp.returncode == 0, cp.stdout + cp.stderr


class FailingSealTriggers(unittest.TestCase):
    """Every seal trigger fails with the seal's errno when the version cannot be made durable (here:
    a file in it lost bytes to ENOSPC below the reserve), and leaves it open."""

    def setUp(self):
        self.m = full_disk_mount(self, *self.extra_options())
        os.makedirs(self.m.path("fillrun", "fill"))
        self.fill = fill_to_reserve(self, self.m, self.m.path("fillrun", "fill"))
        self.data = h.random_bytes(2 * MiB + 9, 88)

    def extra_options(self):
        return ["--seal-on-next-version"] if "next_version" in self._testMethodName else []

    def test_tracker_close_fails(self):
        m = self.m
        os.makedirs(m.path("ds", "global_step2"))
        write_lost(self, m.path("ds", "global_step2", "model.pt"), self.data)
        f = open(m.path("ds", "latest"), "w")
        f.write("global_step2")
        with self.assertRaises(OSError) as cm:
            f.close()
        self.assertEqual(cm.exception.errno, errno.ENOSPC)
        self.assertEqual(m.version_state("ds", "global_step2"), "open")
        self.assertEqual(h.read_file(m.path("ds", "latest")), b"global_step2")  # kept as written
        free_space(m, self.fill)
        h.write_file(m.path("ds", "global_step2", "model.pt"), self.data)
        with open(m.path("ds", "latest"), "w") as f:
            f.write("global_step2")
        self.assertEqual(m.version_state("ds", "global_step2"), "sealed")
        self.assertEqual(h.read_file(m.path("ds", "global_step2", "model.pt")), self.data)

    def test_rename_into_place_fails_and_is_undone(self):
        m = self.m
        os.makedirs(m.path("run", "step-2.tmp"))
        write_lost(self, m.path("run", "step-2.tmp", "model.pt"), self.data)
        self.assertEqual(h.errno_of(os.rename, m.path("run", "step-2.tmp"), m.path("run", "step-2")),
                         errno.ENOSPC)
        self.assertEqual(sorted(os.listdir(m.path("run"))), ["step-2.tmp"])
        self.assertFalse(os.path.exists(m.path("run", "step-2")))
        self.assertEqual(m.version_state("run", "step-2.tmp"), "open")
        free_space(m, self.fill)
        h.write_file(m.path("run", "step-2.tmp", "model.pt"), self.data)
        os.rename(m.path("run", "step-2.tmp"), m.path("run", "step-2"))
        self.assertEqual(m.version_state("run", "step-2"), "sealed")
        self.assertEqual(h.read_file(m.path("run", "step-2", "model.pt")), self.data)

    def test_create_in_next_version_fails(self):
        m = self.m
        os.makedirs(m.path("run", "step-1"))
        write_lost(self, m.path("run", "step-1", "model.pt"), self.data)
        os.makedirs(m.path("run", "step-2"))
        p = m.path("run", "step-2", "model.pt")
        self.assertEqual(h.errno_of(h.write_file, p, b"next"), errno.ENOSPC)
        self.assertEqual(os.listdir(m.path("run", "step-2")), [], "the failed create made a file")
        self.assertEqual(h.errno_of(h.write_file, p, b"next"), errno.ENOSPC, "the seal is not retried")
        self.assertEqual(m.version_state("run", "step-1"), "open")
        free_space(m, self.fill)
        h.write_file(m.path("run", "step-1", "model.pt"), self.data)
        h.write_file(p, b"next")
        self.assertEqual(m.version_state("run", "step-1"), "sealed")
        self.assertEqual(h.read_file(m.path("run", "step-1", "model.pt")), self.data)
        self.assertEqual(h.read_file(p), b"next")


class UmountReport(unittest.TestCase):
    def test_umount_fails_when_the_final_write_out_fails(self):
        m = full_disk_mount(self)
        os.makedirs(m.path("run", "fill"))
        fill = fill_to_reserve(self, m, m.path("run", "fill"))
        os.makedirs(m.path("run", "v2"))
        write_lost(self, m.path("run", "v2", "f"), h.random_bytes(2 * MiB, 90))
        pid = m.pid()
        cp = h.cli("umount", m.mnt)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn(os.strerror(errno.ENOSPC), cp.stderr)
        self.assertEqual(len(cp.stderr.strip().splitlines()), 1, cp.stderr)
        self.assertFalse(h.is_mounted(m.mnt))
        self.assertTrue(h.wait_until(lambda: not h.pid_alive(pid), 5))
        # the next daemon's clean end is reported as such, not the old failure
        m.mount()
        self.assertEqual(len(os.listdir(m.path("run", "fill"))), len(fill))
        cp = h.cli("umount", m.mnt)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)


class Corruption(unittest.TestCase):
    def test_corrupt_chunk_reads_eio_and_fsck_names_it(self):
        with h.Mount(["--chunk-size", "1M"]) as m:
            os.makedirs(m.path("run", "v1"))
            data = h.random_bytes(3 * MiB, 7)
            h.write_file(m.path("run", "v1", "weights.bin"), data, fsync=True)
            h.write_file(m.path("run", "v1", "other.bin"), b"unrelated", fsync=True)
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, "clean store: " + cp.stdout + cp.stderr)
            digests = h.chunk_digests(data, MiB)
            files = h.chunk_files(m.data)
            for dg in digests:
                self.assertIn(dg, files, "chunk file named by SHA-256 of its payload")
            victim = files[digests[1]]
            with open(victim, "r+b") as f:
                f.seek(4096 + 12345)
                b = f.read(1)
                f.seek(4096 + 12345)
                f.write(bytes([b[0] ^ 0x40]))
            m.mount()
            p = m.path("run", "v1", "weights.bin")
            with open(p, "rb", buffering=0) as f:
                self.assertEqual(os.pread(f.fileno(), MiB, 0), data[:MiB])
                self.assertEqual(os.pread(f.fileno(), MiB, 2 * MiB), data[2 * MiB:])
                self.assertEqual(h.errno_of(os.pread, f.fileno(), 4096, MiB + 8192), errno.EIO)
                self.assertEqual(h.errno_of(os.pread, f.fileno(), 100, MiB + 12345 - 50), errno.EIO)
            self.assertEqual(h.errno_of(h.read_file, p), errno.EIO)
            self.assertEqual(h.read_file(m.path("run", "v1", "other.bin")), b"unrelated")
            self.assertGreaterEqual(m.stats()["corrupt_reads"], 1)
            m.umount()
            cp = m.fsck()
            out = cp.stdout + cp.stderr
            self.assertEqual(cp.returncode, 1, out)
            lines = [l for l in out.splitlines() if digests[1] in l]
            self.assertTrue(lines, "fsck does not name the corrupt chunk:\n" + out)
            self.assertTrue(any("/run/v1/weights.bin" in l for l in out.splitlines()),
                            "fsck does not name the file using it:\n" + out)
            for dg in (digests[0], digests[2]):
                self.assertFalse(any(dg in l for l in out.splitlines()), "healthy chunk reported:\n" + out)

    def test_corrupt_header_and_missing_chunk(self):
        with h.Mount(["--chunk-size", "1M"]) as m:
            os.makedirs(m.path("run", "v1"))
            a = h.random_bytes(MiB, 8)
            b = h.random_bytes(MiB, 9)
            h.write_file(m.path("run", "v1", "a"), a, fsync=True)
            h.write_file(m.path("run", "v1", "b"), b, fsync=True)
            m.umount()
            files = h.chunk_files(m.data)
            with open(files[h.sha256_bytes(a)], "r+b") as f:
                f.write(b"\0" * 64)  # header
            os.unlink(files[h.sha256_bytes(b)])
            m.mount()
            self.assertEqual(h.errno_of(h.read_file, m.path("run", "v1", "a")), errno.EIO)
            self.assertEqual(h.errno_of(h.read_file, m.path("run", "v1", "b")), errno.EIO)
            m.umount()
            cp = m.fsck()
            out = cp.stdout + cp.stderr
            self.assertEqual(cp.returncode, 1, out)
            self.assertIn(h.sha256_bytes(a), out)
            self.assertIn(h.sha256_bytes(b), out)


class BadInput(unittest.TestCase):
    def test_unknown_option(self):
        with h.Mount(mount=False) as m:
            cp = h.cli("mount", "--no-such-option", m.data, m.mnt)
            msg = one_line_error(self, cp, "unknown option")
            self.assertIn("no-such-option", msg)
            self.assertFalse(h.is_mounted(m.mnt))

    def test_bad_option_values(self):
        with h.Mount(mount=False) as m:
            for args in (["--chunk-size", "3M"], ["--chunk-size", "banana"], ["--chunk-size", "1K"],
                         ["--write-buffers", "0"], ["--allow-other=maybe"]):
                with self.subTest(args=args):
                    cp = h.cli("mount", *args, m.data, m.mnt)
                    one_line_error(self, cp, " ".join(args))
                    self.assertFalse(h.is_mounted(m.mnt))

    def test_malformed_config_file(self):
        with h.Mount(mount=False) as m:
            for text, needle in (("chunk-size = 4M\nthis line has no equals sign\n", ":2"),
                                 ("no-such-key = 1\n", "no-such-key"),
                                 ("chunk-size = lots\n", "chunk-size")):
                with self.subTest(text=text):
                    conf = os.path.join(m.base, "pecfs.conf")
                    with open(conf, "w") as f:
                        f.write(text)
                    cp = h.cli("mount", "--config", conf, m.data, m.mnt)
                    msg = one_line_error(self, cp, "config %r" % text)
                    self.assertIn(needle, msg)
                    self.assertFalse(h.is_mounted(m.mnt))
            cp = h.cli("mount", "--config", os.path.join(m.base, "absent.conf"), m.data, m.mnt)
            one_line_error(self, cp, "missing config file")

    def test_good_config_file_is_used(self):
        with h.Mount(mount=False) as m:
            conf = os.path.join(m.base, "pecfs.conf")
            with open(conf, "w") as f:
                f.write("# comment\n\nchunk-size = 1M\nwrite-buffers = 4\n")
            m.options = ["--config", conf]
            m.mount()
            os.makedirs(m.path("r", "v"))
            data = h.random_bytes(3 * MiB, 3)
            h.write_file(m.path("r", "v", "f"), data, fsync=True)
            files = h.chunk_files(m.data)
            for dg in h.chunk_digests(data, MiB):
                self.assertIn(dg, files, "config file's chunk-size 1M not applied")

    def test_missing_mount_point(self):
        with h.Mount(mount=False) as m:
            cp = h.cli("mount", m.data, os.path.join(m.base, "does-not-exist"))
            one_line_error(self, cp, "missing mount point")
            cp = h.cli("mount", m.data)
            self.assertEqual(cp.returncode, 2, cp.stderr)

    def test_busy_mount_point(self):
        with h.Mount() as m:
            other = os.path.join(m.base, "other-data")
            os.makedirs(other)
            cp = h.cli("mount", other, m.mnt)
            msg = one_line_error(self, cp, "busy mount point")
            self.assertIn(m.mnt, msg)
            os.makedirs(m.path("r", "v"))  # first mount unharmed
            h.write_file(m.path("r", "v", "f"), b"fine")
            self.assertEqual(h.read_file(m.path("r", "v", "f")), b"fine")

    def test_second_mount_of_same_data_folder(self):
        with h.Mount() as m:
            mnt2 = os.path.join(m.base, "mnt2")
            os.makedirs(mnt2)
            cp = h.cli("mount", m.data, mnt2)
            msg = one_line_error(self, cp, "data folder in use")
            self.assertIn(str(m.pid()), msg)
            self.assertFalse(h.is_mounted(mnt2))
            os.makedirs(m.path("r", "v"))
            h.write_file(m.path("r", "v", "f"), b"fine")
            self.assertEqual(h.read_file(m.path("r", "v", "f")), b"fine")

    def test_not_a_data_folder(self):
        with h.Mount(mount=False) as m:
            with open(os.path.join(m.data, "unrelated.txt"), "w") as f:
                f.write("someone else's files")
            os.makedirs(os.path.join(m.data, "meta"))
            with open(os.path.join(m.data, "meta", "CURRENT"), "w") as f:
                f.write("garbage\n")
            cp = h.cli("mount", m.data, m.mnt)
            self.assertNotEqual(cp.returncode, 0)
            self.assertTrue(cp.stderr.strip())
            self.assertFalse(h.is_mounted(m.mnt))

    def test_help_for_each_command(self):
        for cmd in ("mount", "umount", "seal", "status", "fsck", "gc"):
            with self.subTest(cmd):
                cp = h.cli(cmd, "--help")
                self.assertEqual(cp.returncode, 0, cp.stderr)
                self.assertIn(cmd, cp.stdout)
        cp = h.cli("--help")
        self.assertEqual(cp.returncode, 0)
        cp = h.cli("no-such-command")
        one_line_error(self, cp, "unknown command")

    def test_umount_of_dead_mount(self):
        with h.Mount() as m:
            pid = m.pid()
            os.kill(pid, 9)
            h.wait_until(lambda: not h.pid_alive(pid), 10)
            cp = h.cli("umount", m.mnt)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertFalse(h.is_mounted(m.mnt))
            m.mount()  # the lock died with the daemon
            self.assertTrue(h.is_mounted(m.mnt))


if __name__ == "__main__":
    h.main()
