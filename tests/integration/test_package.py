# test_package.py - the Debian package as an operator installs it: CPack builds the .deb from this
# build, `dpkg -i` installs it on this machine, and the installed pieces are used for real: the
# binary in /usr/bin (its --version is this build's), the PyTorch module and libpecgpu (imported by
# the system python), the man page (man), bash completion, the
# systemd unit (systemd-analyze verify, now that its ExecStart binary exists), the mount(8) helper
# links, and a mount through `mount -t fuse.pecfs` with the installed binary. `dpkg --purge` at the end
# leaves nothing behind. Refuses to run over a pecfs package that was installed before it.
import os
import shutil
import subprocess
import tempfile
import unittest

import pecfs_harness as h


def build_dir():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(h.PECFS_BIN))))


def run(*args, check=True, **kw):
    cp = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, **kw)
    if check and cp.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (" ".join(map(str, args)), cp.returncode, cp.stdout, cp.stderr))
    return cp


class Package(unittest.TestCase):
    def setUp(self):
        status = run("dpkg-query", "-W", "-f=${Status}", "pecfs", check=False).stdout
        if "ok installed" in status:
            self.fail("a pecfs package is installed already: this test would replace it (dpkg -r pecfs first)")
        self.work = tempfile.mkdtemp(prefix="pecfs-deb-", dir=h.BASE_DIR)
        self.addCleanup(shutil.rmtree, self.work, ignore_errors=True)

    def test_the_deb_installs_mounts_and_removes_cleanly(self):
        run("cpack", "-G", "DEB", "-B", self.work, cwd=build_dir())
        (deb,) = [f for f in os.listdir(self.work) if f.endswith(".deb")]
        info = run("dpkg-deb", "-f", os.path.join(self.work, deb), "Package", "Version", "Depends").stdout
        self.assertIn("Package: pecfs", info)
        self.assertIn("fuse3", info)
        built = run(h.PECFS_BIN, "--version").stdout
        self.assertIn("Version: %s" % built.split()[1], info)

        run("dpkg", "-i", os.path.join(self.work, deb))
        self.addCleanup(run, "dpkg", "--purge", "pecfs", check=False)
        self.assertEqual(run("/usr/bin/pecfs", "--version").stdout, built)
        for path in ("/usr/share/man/man1/pecfs.1.gz", "/usr/share/bash-completion/completions/pecfs",
                     "/usr/lib/systemd/system/pecfs@.service", "/usr/share/doc/pecfs/pecfs.conf.example",
                     "/usr/share/doc/pecfs/examples/k8s/daemonset.yaml"):
            self.assertTrue(os.path.exists(path), path)
        for link in ("/usr/sbin/mount.fuse.pecfs", "/usr/sbin/mount.pecfs"):
            self.assertEqual(os.path.realpath(link), "/usr/bin/pecfs", link)

        # the PyTorch module and libpecgpu come with it, importable by the system python
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PECGPU_LIB")}
        if h.sanitized("/usr/lib/python3/dist-packages/pecfs/libpecgpu.so"):  # a sanitizer build's package
            h.preload_asan(env)
        imp = run("/usr/bin/python3", "-c", "import pecfs, sys; print(pecfs.__file__); print(pecfs.library_version())",
                  env=env).stdout
        self.assertTrue(imp.startswith("/usr/lib/python3/dist-packages/pecfs/"), imp)
        self.assertIn("pecgpu", imp)
        self.assertTrue(os.path.exists("/usr/include/pecgpu.h"))
        # the man page has every command of --help; completion completes a command's options
        page = run("man", "-P", "cat", "pecfs", env=dict(os.environ, MANWIDTH="100")).stdout
        for cmd in ("mount", "umount", "seal", "status", "fsck", "gc", "gc --remote", "pin", "restore", "ping"):
            self.assertIn("\n   %s\n" % cmd, page, cmd)
        comp = run("bash", "-c", "source /usr/share/bash-completion/completions/pecfs; "
                   "COMP_WORDS=(pecfs restore --thr); COMP_CWORD=2; _pecfs; echo ${COMPREPLY[*]}").stdout
        self.assertEqual(comp.strip(), "--threads")
        unit = run("systemd-analyze", "verify", "/usr/lib/systemd/system/pecfs@mnt-ckpt.service", check=False)
        self.assertEqual((unit.returncode, unit.stdout, unit.stderr), (0, "", ""))
        with open("/usr/lib/systemd/system/pecfs@.service") as f:
            self.assertIn("ExecStart=/usr/bin/pecfs mount -f", f.read())

        # mount(8) finds the installed helper; the installed binary serves the mount
        m = h.Mount(mount=False)
        self.addCleanup(m.cleanup)
        run("mount", "-t", "fuse.pecfs", m.data, m.mnt, "-o", "chunk_size=1M,_netdev,nofail")
        self.assertTrue(h.is_mounted(m.mnt))
        with open("/proc/%d/cmdline" % m.pid(), "rb") as f:  # run by mount(8) as its helper
            self.assertTrue(f.read().split(b"\0")[0].endswith(b"/mount.fuse.pecfs"))
        self.assertEqual(os.path.realpath("/proc/%d/exe" % m.pid()), "/usr/bin/pecfs")
        os.makedirs(m.path("run", "v1"))
        data = h.random_bytes(3 << 20, seed=3)
        h.write_file(m.path("run", "v1", "f"), data, fsync=True)
        self.assertEqual(h.read_file(m.path("run", "v1", "f")), data)
        run("/usr/bin/pecfs", "umount", m.mnt)

        run("dpkg", "--purge", "pecfs")
        for path in ("/usr/bin/pecfs", "/usr/sbin/mount.fuse.pecfs", "/usr/lib/systemd/system/pecfs@.service"):
            self.assertFalse(os.path.lexists(path), path)


if __name__ == "__main__":
    h.main()
