# test_posix_nodes.py - hard links and special files (fifos, sockets, device nodes) on a real mount,
# through every version rule: link counts and names across link, unlink, rename and rename over a
# link; EXDEV between versions (and `cp -al`/`ln` falling back), EROFS once sealed; device numbers,
# fifos that really carry bytes, a socket a process listens on; everything still there and fsck
# clean after a remount; and what the metadata keeps when the recorded name of a file goes.
import errno
import os
import socket
import stat
import subprocess
import threading
import unittest

import pecfs_harness as h


class Nodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = h.Mount(["--chunk-size", "64K"])
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        cls.m.cleanup()

    def newdir(self, run="nodes"):
        type(self).counter += 1
        d = self.m.path(run, "v%02d" % self.counter)
        os.makedirs(d)
        return d

    def assertFsckClean(self):
        cp = self.m.fsck()
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def test_links_share_content_and_count_names(self):
        d = self.newdir()
        a, b, c = (os.path.join(d, n) for n in ("a", "b", "sub/c"))
        os.mkdir(os.path.join(d, "sub"))
        h.write_file(a, b"first bytes")
        ino = os.stat(a).st_ino
        os.link(a, b)
        os.link(b, c)
        for p in (a, b, c):
            st = os.stat(p)
            self.assertEqual((st.st_ino, st.st_nlink), (ino, 3), p)
        # a write through one name is seen through every other
        with open(c, "r+b") as f:
            f.seek(6)
            f.write(b"BYTES, longer now")
        for p in (a, b):
            self.assertEqual(h.read_file(p), b"first BYTES, longer now")
        self.assertEqual(h.errno_of(os.link, a, b), errno.EEXIST)
        self.assertEqual(h.errno_of(os.link, os.path.join(d, "sub"), os.path.join(d, "dirlink")), errno.EPERM)
        self.assertEqual(h.errno_of(os.link, os.path.join(d, "missing"), os.path.join(d, "x")), errno.ENOENT)
        # removing the name the file was created with keeps the others, in any order
        os.unlink(a)
        self.assertEqual(os.stat(b).st_nlink, 2)
        self.assertEqual(h.read_file(c), b"first BYTES, longer now")
        self.assertFsckClean()
        os.unlink(c)
        self.assertEqual(os.stat(b).st_nlink, 1)
        self.assertEqual(h.read_file(b), b"first BYTES, longer now")
        self.assertFsckClean()
        os.unlink(b)
        self.assertEqual(os.listdir(d), ["sub"])
        self.assertFsckClean()

    def test_open_file_outlives_its_names(self):
        d = self.newdir()
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        h.write_file(a, b"kept while open")
        os.link(a, b)
        with open(b, "rb") as f:
            os.unlink(a)
            os.unlink(b)
            self.assertEqual(os.fstat(f.fileno()).st_nlink, 0)
            self.assertEqual(f.read(), b"kept while open")
        self.assertEqual(os.listdir(d), [])
        self.assertFsckClean()

    def test_rename_of_and_over_links(self):
        d = self.newdir()
        a, b = os.path.join(d, "a"), os.path.join(d, "b")
        h.write_file(a, b"linked")
        os.link(a, b)
        ino = os.stat(a).st_ino
        # rename of a link over another name of the same file: nothing happens (POSIX)
        os.rename(a, b)
        self.assertTrue(os.path.exists(a) and os.path.exists(b))
        self.assertEqual(os.stat(a).st_nlink, 2)
        # each name moves on its own, into another directory too
        os.mkdir(os.path.join(d, "dir"))
        os.rename(b, os.path.join(d, "dir", "b2"))
        os.rename(a, os.path.join(d, "a2"))
        self.assertEqual(os.stat(os.path.join(d, "dir", "b2")).st_ino, ino)
        self.assertEqual(os.stat(os.path.join(d, "a2")).st_nlink, 2)
        self.assertFsckClean()
        # a file renamed over one name of a linked file takes that name; the other name keeps it
        h.write_file(os.path.join(d, "new"), b"replacement")
        os.rename(os.path.join(d, "new"), os.path.join(d, "a2"))
        self.assertEqual(h.read_file(os.path.join(d, "a2")), b"replacement")
        self.assertEqual(os.stat(os.path.join(d, "dir", "b2")).st_nlink, 1)
        self.assertEqual(h.read_file(os.path.join(d, "dir", "b2")), b"linked")
        # exchange of two names of different linked files
        os.link(os.path.join(d, "a2"), os.path.join(d, "a3"))
        h.renameat2(os.path.join(d, "a3"), os.path.join(d, "dir", "b2"), 2)  # RENAME_EXCHANGE
        self.assertEqual(h.read_file(os.path.join(d, "a3")), b"linked")
        self.assertEqual(h.read_file(os.path.join(d, "dir", "b2")), b"replacement")
        self.assertEqual(os.stat(os.path.join(d, "a2")).st_nlink, 2)
        self.assertFsckClean()

    def test_links_stay_in_their_version(self):
        v1, v2 = self.newdir(), self.newdir()
        a = os.path.join(v1, "a")
        h.write_file(a, b"version one")
        self.assertEqual(h.errno_of(os.link, a, os.path.join(v2, "a")), errno.EXDEV)
        # ln and cp -al fall back as they do between file systems
        r = subprocess.run(["cp", "-al", v1, os.path.join(v2, "copy")], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)  # cp -l does not copy: it reports the cross-device link
        self.assertIn("link", r.stderr)
        subprocess.run(["cp", "-a", a, os.path.join(v2, "a")], check=True)
        self.assertEqual(h.read_file(os.path.join(v2, "a")), b"version one")
        # a file with two names cannot be moved out of its version; one with a single name can
        os.link(a, os.path.join(v1, "b"))
        self.assertEqual(h.errno_of(os.rename, a, os.path.join(v2, "moved")), errno.EXDEV)
        r = subprocess.run(["mv", a, os.path.join(v2, "moved")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)  # mv copies and unlinks instead
        self.assertEqual(h.read_file(os.path.join(v2, "moved")), b"version one")
        self.assertEqual(os.stat(os.path.join(v1, "b")).st_nlink, 1)
        self.assertFsckClean()

    def test_sealed_version_refuses_links_and_nodes(self):
        d = self.newdir()
        h.write_file(os.path.join(d, "f"), b"sealed soon")
        os.link(os.path.join(d, "f"), os.path.join(d, "g"))
        os.mkfifo(os.path.join(d, "fifo"))
        cp = h.cli("seal", d)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(h.errno_of(os.link, os.path.join(d, "f"), os.path.join(d, "h")), errno.EROFS)
        self.assertEqual(h.errno_of(os.mkfifo, os.path.join(d, "fifo2")), errno.EROFS)
        self.assertEqual(h.errno_of(os.mknod, os.path.join(d, "sock"), stat.S_IFSOCK | 0o600), errno.EROFS)
        self.assertEqual(h.errno_of(os.rename, os.path.join(d, "g"), os.path.join(d, "h")), errno.EROFS)
        self.assertEqual(h.errno_of(os.chmod, os.path.join(d, "fifo"), 0o600), errno.EROFS)
        self.assertEqual(os.stat(os.path.join(d, "g")).st_nlink, 2)
        # the seal counts every name
        v = [x for x in self.m.versions("nodes")["versions"] if x["name"] == os.path.basename(d)][0]
        self.assertEqual(v["files"], 2)

    def test_special_files(self):
        d = self.newdir()
        fifo, sock, chr_, blk = (os.path.join(d, n) for n in ("fifo", "sock", "null", "disk"))
        old_umask = os.umask(0)
        self.addCleanup(os.umask, old_umask)
        os.mkfifo(fifo, 0o640)
        os.mknod(sock, stat.S_IFSOCK | 0o600)
        os.mknod(chr_, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(blk, stat.S_IFBLK | 0o600, os.makedev(259, 70000))
        os.mknod(os.path.join(d, "plain"), stat.S_IFREG | 0o644)
        self.assertEqual(h.errno_of(os.mkfifo, fifo), errno.EEXIST)
        expect = {"fifo": (stat.S_IFIFO, 0o640, 0), "sock": (stat.S_IFSOCK, 0o600, 0),
                  "null": (stat.S_IFCHR, 0o666, os.makedev(1, 3)),
                  "disk": (stat.S_IFBLK, 0o600, os.makedev(259, 70000)), "plain": (stat.S_IFREG, 0o644, 0)}

        def check():
            for name, (fmt, perm, rdev) in expect.items():
                st = os.lstat(os.path.join(d, name))
                self.assertEqual((stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_rdev, st.st_size),
                                 (fmt, perm, rdev, 0), name)
        check()
        # a fifo on the mount carries bytes between two processes
        got = []
        t = threading.Thread(target=lambda: got.append(h.read_file(fifo)))
        t.start()
        with open(fifo, "wb") as f:
            f.write(b"through the pipe")
        t.join(10)
        self.assertEqual(got, [b"through the pipe"])
        # a device node is a name only: the mount is nodev
        self.assertEqual(h.errno_of(open, chr_, "rb"), errno.EACCES)
        with open("/proc/self/mounts") as f:
            opts = [line.split()[3] for line in f if line.split()[1] == self.m.mnt][0]
        self.assertIn("nodev", opts.split(","))
        # a unix socket bound at a new name on the mount, used by a client
        addr = os.path.join(d, "live.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(addr)
        srv.listen(1)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli.connect(addr)
        conn, _ = srv.accept()
        cli.sendall(b"ping")
        self.assertEqual(conn.recv(4), b"ping")
        for s in (conn, cli, srv):
            s.close()
        self.assertTrue(stat.S_ISSOCK(os.lstat(addr).st_mode))
        # special files take links, renames and chmod like files
        os.link(fifo, os.path.join(d, "fifo-link"))
        self.assertEqual(os.lstat(fifo).st_nlink, 2)
        os.rename(sock, os.path.join(d, "sock2"))
        expect["sock2"] = expect.pop("sock")
        os.chmod(blk, 0o640)
        expect["disk"] = (stat.S_IFBLK, 0o640, os.makedev(259, 70000))
        expect["fifo-link"] = expect["fifo"]
        check()
        self.assertEqual(h.read_file(os.path.join(d, "plain")), b"")
        # everything survives a remount; fsck agrees
        self.m.remount()
        check()
        self.assertEqual(os.lstat(fifo).st_nlink, 2)
        self.assertFsckClean()
        os.unlink(fifo)
        self.assertEqual(os.lstat(os.path.join(d, "fifo-link")).st_nlink, 1)
        os.unlink(os.path.join(d, "fifo-link"))
        os.unlink(addr)
        self.assertFsckClean()

    def test_links_after_remount_and_rm_r(self):
        d = self.newdir()
        os.makedirs(os.path.join(d, "x/y"))
        h.write_file(os.path.join(d, "x/y/f"), b"deep")
        for i in range(5):
            os.link(os.path.join(d, "x/y/f"), os.path.join(d, "x", "l%d" % i))
        self.m.remount()
        self.assertEqual(os.stat(os.path.join(d, "x/l3")).st_nlink, 6)
        os.unlink(os.path.join(d, "x/y/f"))  # the recorded name, after a remount
        self.assertEqual(os.stat(os.path.join(d, "x/l0")).st_nlink, 5)
        self.assertFsckClean()
        subprocess.run(["rm", "-r", d], check=True)
        self.assertFalse(os.path.exists(d))
        self.assertFsckClean()


if __name__ == "__main__":
    h.main()
