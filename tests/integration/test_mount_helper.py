# test_mount_helper.py - pecfs through mount(8): `mount -t fuse.pecfs DATA_DIR MNT -o ...` and an
# fstab line (`mount -T FSTAB MNT`, i.e. `mount MNT` with a test's own fstab), both going through
# Debian's mount.fuse3, which runs `pecfs DATA_DIR MNT -o OPTIONS` from the system PATH; and the
# binary run under a mount helper's name (mount.fuse.pecfs) with mount(8)'s own flags. Every setting
# is an -o option; _netdev, nofail and x-systemd.* are accepted; ro and unknown options are refused.
# Also `pecfs --version`: the build and the version of every library in use.
# mount.fuse3 finds `pecfs` only in the system PATH, so the test links the built binary as
# /usr/local/bin/pecfs for its duration and puts back whatever was there.
import contextlib
import os
import subprocess
import unittest

import pecfs_harness as h

SYSTEM_PECFS = "/usr/local/bin/pecfs"


@contextlib.contextmanager
def system_pecfs():
    saved = None
    if os.path.lexists(SYSTEM_PECFS):
        saved = SYSTEM_PECFS + ".saved-by-test"
        os.rename(SYSTEM_PECFS, saved)
    os.symlink(os.path.abspath(h.PECFS_BIN), SYSTEM_PECFS)
    try:
        yield
    finally:
        os.unlink(SYSTEM_PECFS)
        if saved:
            os.rename(saved, SYSTEM_PECFS)


def mountinfo_options(path):
    """The per-superblock options of the mount at path (the last field of /proc/self/mountinfo)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ")
            if left.split()[4] == path:
                return right.split()[0], right.split()[2].split(",")
    return None, None


class MountHelper(unittest.TestCase):
    def setUp(self):
        self.m = h.Mount(mount=False)
        self.addCleanup(self.m.cleanup)

    def run_cmd(self, *args):
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60 * h.SLOW)

    def write_and_check(self, name, size):
        data = h.random_bytes(size, seed=len(name))
        os.makedirs(self.m.path("run", "v1"), exist_ok=True)
        h.write_file(self.m.path("run", "v1", name), data, fsync=True)
        self.assertEqual(h.read_file(self.m.path("run", "v1", name)), data)
        return data

    def test_mount_t_fuse_pecfs_takes_every_setting_as_an_option(self):
        m = self.m
        with system_pecfs():
            cp = self.run_cmd("mount", "-t", "fuse.pecfs", m.data, m.mnt, "-o",
                              "allow_other,chunk_size=1M,hash-threads=1,_netdev,nofail,x-systemd.automount,"
                              "noatime,no-seal-on-rename")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertTrue(h.is_mounted(m.mnt))
        fstype, opts = mountinfo_options(m.mnt)
        self.assertEqual(fstype, "fuse.pecfs")
        self.assertIn("allow_other", opts)
        self.assertEqual(m.stats()["chunk_size"], 1 << 20)
        data = self.write_and_check("a.bin", 3 << 20)
        # the same daemon `pecfs mount` starts: `pecfs umount` knows it
        h.cli("umount", m.mnt, check=True)
        self.assertFalse(h.is_mounted(m.mnt))
        m.mount()
        self.assertEqual(h.read_file(m.path("run", "v1", "a.bin")), data)

    def test_an_fstab_line_mounts_with_mount_mountpoint(self):
        m = self.m
        fstab = os.path.join(m.base, "fstab")
        with open(fstab, "w") as f:
            f.write("# pecfs on the training node\n")
            f.write("%s %s fuse.pecfs _netdev,nofail,x-systemd.automount,chunk-size=2M,allow_other,"
                    "config=%s 0 0\n" % (m.data, m.mnt, os.path.join(m.base, "pecfs.conf")))
        with open(os.path.join(m.base, "pecfs.conf"), "w") as f:
            f.write("write-buffers = 6\n")
        with system_pecfs():
            cp = self.run_cmd("mount", "-T", fstab, m.mnt)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertTrue(h.is_mounted(m.mnt))
            self.assertEqual(m.stats()["chunk_size"], 2 << 20)
            with open(m.path(".pec", "metrics")) as f:  # from the config= file
                self.assertIn("\npecfs_write_buffers 6\n", f.read())
            data = self.write_and_check("b.bin", (5 << 20) + 17)
            # plain umount(8) stops it too, and the next fstab mount finds the bytes
            pid = m.pid()
            cp = self.run_cmd("umount", m.mnt)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertTrue(h.wait_until(lambda: not h.pid_alive(pid), 30))
            cp = self.run_cmd("mount", "-T", fstab, m.mnt)
            self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(h.read_file(m.path("run", "v1", "b.bin")), data)
        h.cli("umount", m.mnt, check=True)

    def test_bad_options_are_refused_before_mounting(self):
        m = self.m
        with system_pecfs():
            for opts, words in [("ro", "writable"), ("bogus=1", "bogus"), ("chunk_size=banana", "chunk-size"),
                                ("rw,sync", "sync")]:
                cp = self.run_cmd("mount", "-t", "fuse.pecfs", m.data, m.mnt, "-o", opts)
                self.assertNotEqual(cp.returncode, 0, opts)
                self.assertIn(words, cp.stderr, opts)
                self.assertFalse(h.is_mounted(m.mnt), opts)

    def test_run_as_a_mount_helper_takes_mount_8_flags(self):
        m = self.m
        helper = os.path.join(m.base, "mount.fuse.pecfs")
        os.symlink(os.path.abspath(h.PECFS_BIN), helper)
        # -f is mount(8)'s fake mount: everything checked, nothing mounted
        cp = self.run_cmd(helper, m.data, m.mnt, "-f", "-o", "rw,chunk_size=1M", "-t", "fuse.pecfs")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertFalse(h.is_mounted(m.mnt))
        self.assertIn("nothing mounted", cp.stdout)
        cp = self.run_cmd(helper, m.data, m.mnt, "-f", "-o", "rw,chunk_size=3M", "-t", "fuse.pecfs")
        self.assertEqual(cp.returncode, 2, cp.stdout)  # a fake mount still checks the settings
        cp = self.run_cmd(helper, m.data, m.mnt, "-n", "-s", "-o", "rw,chunk_size=1M", "-t", "fuse.pecfs")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertTrue(h.is_mounted(m.mnt))
        self.assertEqual(m.stats()["chunk_size"], 1 << 20)
        # the plain command line still says what is wrong with a mistyped command
        cp = h.cli("muont", m.data, m.mnt)
        self.assertEqual(cp.returncode, 2)
        self.assertIn("unknown command", cp.stderr)


class Version(unittest.TestCase):
    def test_version_names_the_build_and_every_library_in_use(self):
        cp = h.cli("--version", check=True)
        lines = cp.stdout.splitlines()
        self.assertRegex(lines[0], r"^pecfs \d+\.\d+\.\d+(\+g[0-9a-f]{7,}(\.dirty)?)?$")
        names = [l.split()[0] for l in lines[1:]]
        self.assertEqual(names, ["libfuse", "RocksDB", "OpenSSL", "libcurl", "jansson"])
        for l in lines[1:]:
            self.assertRegex(l, r"^\S+ \d+\.\d+", l)
        # the libfuse line is the library this process runs with
        pkg = subprocess.run(["pkg-config", "--modversion", "fuse3"], capture_output=True, text=True)
        if pkg.returncode == 0:
            self.assertEqual(lines[1], "libfuse " + pkg.stdout.strip())
        self.assertEqual(h.cli("-V", check=True).stdout, cp.stdout)


if __name__ == "__main__":
    h.main()
