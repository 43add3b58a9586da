# test_posix_diff.py - pecfs against the local disk file system, one system call at a time. Every
# case below is a script of system calls; it runs in a fresh directory on the local disk and in a
# fresh directory inside an open pecfs version, and after every step the two must agree on the
# result (value or errno) and on the lstat of every path the case has named so far: type, mode bits
# (set-id and sticky included), nlink, owner, group, size, rdev, which object the path names, and
# whether atime, mtime and ctime changed since the step before. Every difference is printed in one
# table and fails the test, except the few in EXPECTED, which README documents. The machinery is in
# posix_diff.py. Runs as root; steps of other users run in forked children that drop to them. Set
# PECFS_DIFF_AGAINST=DIR to compare the local disk with DIR instead of pecfs (a tmpfs, say, to see
# which cases lean on one file system's habits).
import ctypes
import os
import shutil
import stat
import sys
import tempfile
import time
import unittest

import pecfs_harness as h
from posix_diff import (UTIME_NOW, UTIME_OMIT, Script, User, compare, fs_type, on_fd, outcome, run_cases,
                        table)

NOBODY = User(65534, 65534, ())
ALICE = User(4242, 4242, ())
BOB = User(4343, 4343, (5151,))  # also a member of SHARED_GID
SHARED_GID = 5151

# Differences README documents. (case, step label prefix, what differs, why); "what" is "result" or
# "PATH FIELD" as in the table.
EXPECTED = [
    ("xattr_outside_user_namespace", "setxattr(f, trusted.", "result",
     "README: extended attributes outside user.* are not supported (EOPNOTSUPP)"),
    ("xattr_outside_user_namespace", "setxattr(f, trusted.", "f ctime",
     "follows from the refused setxattr: nothing changed"),
    ("xattr_outside_user_namespace", "getxattr(f, trusted.", "result",
     "follows from the refused setxattr: nothing was stored"),
    ("fallocate_modes", "fallocate(f, collapse", "result",
     "README: collapse, insert and unshare ranges are EOPNOTSUPP (the tools that use them fall back)"),
    ("fallocate_modes", "fallocate(f, collapse", "f size", "follows from the refused collapse"),
    ("fallocate_modes", "fallocate(f, collapse", "f mtime", "follows from the refused collapse"),
    ("fallocate_modes", "fallocate(f, collapse", "f ctime", "follows from the refused collapse"),
    ("fallocate_modes", "read f after the collapse", "result", "follows from the refused collapse"),
    ("fallocate_modes", "read f after the collapse", "f atime", "follows from the refused collapse (relatime)"),
    ("special_files_in_use", "write and read /dev/null twin", "result",
     "README: the mount is nodev, a device node there never opens a device"),
    # The kernel answers these without asking the file system, so pecfs cannot see them (Linux FUSE):
    ("open_truncate", "read(f)", "f atime",
     "a read of a file the kernel knows is empty sends no request: nothing to update atime on"),
    ("special_files_in_use", "write and read through fifo", "fifo atime",
     "pipe I/O on a fifo updates the kernel's cached inode only; FUSE has no request to carry it"),
    ("special_files_in_use", "write and read through fifo", "fifo mtime", "as for atime"),
    ("special_files_in_use", "write and read through fifo", "fifo ctime", "as for atime"),
]


# ---- the cases ----

CASES = []


def case(fn):
    CASES.append((fn.__name__, fn))
    return fn


def public_dir(t, rel, mode=0o777):
    """A directory other users may create in (mkdir under umask 022, then chmod)."""
    t.mkdir(rel)
    t.chmod(rel, mode)


@case
def open_create(t):
    t.create("f")
    t.create("g", 0o777)
    t.open("f", os.O_CREAT | os.O_WRONLY, 0o600)
    t.open("f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    t.open("missing", os.O_RDONLY)
    t.open("nodir/x", os.O_CREAT | os.O_WRONLY)
    t.open("f/x", os.O_CREAT | os.O_WRONLY)
    t.open("f/", os.O_RDONLY)
    t.open("f", os.O_RDONLY | os.O_DIRECTORY)
    t.mkdir("d")
    t.open("d", os.O_CREAT | os.O_WRONLY)
    t.open("d", os.O_WRONLY)
    t.open("d", os.O_RDONLY | os.O_DIRECTORY)
    t.open("d", os.O_RDWR)


@case
def open_create_mode_bits(t):
    t.create("all", 0o7777)
    t.create("setuid", 0o4755)
    t.create("sticky", 0o1644)
    t.create("none", 0o000)
    old = os.umask(0o077)
    try:
        t.create("masked", 0o666)  # the umask of the creating process applies
    finally:
        os.umask(old)


@case
def open_truncate(t):
    t.create("f", data=b"hello world")
    t.open("f", os.O_RDONLY)
    t.open("f", os.O_RDWR)
    t.open("f", os.O_WRONLY | os.O_TRUNC)
    t.open("f", os.O_WRONLY | os.O_TRUNC)  # already empty
    t.open("f", os.O_WRONLY | os.O_APPEND, data=b"abc")
    t.open("f", os.O_CREAT | os.O_WRONLY | os.O_TRUNC)
    t.open("f", os.O_RDONLY | os.O_TRUNC)
    t.read("f")


@case
def open_through_symlinks(t):
    t.symlink("target", "dangling")
    t.open("dangling", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    t.open("dangling", os.O_RDONLY)
    t.watch("target")
    t.open("dangling", os.O_CREAT | os.O_WRONLY, 0o640)  # creates "target"
    t.stat("target")
    t.symlink("target", "live")
    t.open("live", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    t.open("live", os.O_NOFOLLOW | os.O_RDONLY)
    t.open("live", os.O_WRONLY | os.O_TRUNC)
    t.symlink("loop2", "loop1")
    t.symlink("loop1", "loop2")
    t.open("loop1", os.O_RDONLY)
    t.open("loop1", os.O_CREAT | os.O_WRONLY)
    t.stat("loop1/x")


@case
def open_permissions(t):
    t.create("secret", 0o600, data=b"s")
    t.create("public", 0o644, data=b"p")
    t.open("secret", os.O_RDONLY, user=NOBODY)
    t.open("public", os.O_RDONLY, user=NOBODY)
    t.open("public", os.O_WRONLY, user=NOBODY)
    t.open("public", os.O_RDONLY | os.O_TRUNC, user=NOBODY)
    t.create("mine", user=NOBODY)  # the case directory is root's 0755
    public_dir(t, "pub")
    t.create("pub/mine", 0o640, user=NOBODY)
    t.open("pub/mine", os.O_WRONLY, user=ALICE)
    t.mkdir("closed", 0o700)
    t.create("closed/f")
    t.stat("closed/f", user=NOBODY)
    t.open("closed/f", os.O_RDONLY, user=NOBODY)
    t.open("pub/readonly", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o444, data=b"w", user=NOBODY)  # the creator may write
    t.open("pub/readonly", os.O_RDWR, user=NOBODY)
    paths = {rel: t.p(rel) for rel in ("public", "secret", "pub", "pub/mine")}

    def access():
        modes = (("R", os.R_OK), ("W", os.W_OK), ("X", os.X_OK))
        return " ".join("%s:%s" % (rel, "".join(n if os.access(p, m) else "-" for n, m in modes))
                        for rel, p in paths.items())
    t.do("access(R/W/X)", access)
    t.do("access(R/W/X)", access, user=NOBODY)


@case
def mkdir_basic(t):
    t.mkdir("d")
    t.mkdir("d/e", 0o700)
    t.mkdir("d")
    t.create("f")
    t.mkdir("f")
    t.symlink("nowhere", "s")
    t.mkdir("s")
    t.mkdir("bits", 0o7777)
    t.mkdir("nodir/x")
    t.mkdir("f/x")
    t.mkdir("d/e/")


@case
def rmdir_basic(t):
    t.mkdir("d")
    t.mkdir("d/e")
    t.create("d/e/f")
    t.rmdir("d")
    t.rmdir("d/e/f")
    t.rmdir("d/e/.")
    t.rmdir("d/e/..")
    t.rmdir("missing")
    t.symlink("d", "s")
    t.rmdir("s")
    t.unlink("d/e/f")
    t.rmdir("d/e")
    t.rmdir("d")
    t.rmdir("d")


@case
def setgid_directory(t):
    t.mkdir("g", 0o777)
    t.chown("g", 0, SHARED_GID)
    t.chmod("g", 0o2777)
    t.create("g/byroot")
    t.mkdir("g/sub")
    t.create("g/bynobody", 0o2755, user=NOBODY)  # not in the group: set-gid is dropped
    t.mkdir("g/dirbynobody", 0o755, user=NOBODY)
    t.create("g/bybob", 0o2755, user=BOB)        # in the group: kept
    t.mknod("g/fifo", stat.S_IFIFO | 0o644)
    t.symlink("x", "g/link")


@case
def unlink_basic(t):
    t.create("f", data=b"x")
    t.symlink("f", "s")
    t.unlink("s")
    t.unlink("f/")
    t.unlink("f")
    t.unlink("f")
    t.mkdir("d")
    t.unlink("d")
    t.unlink("d/")
    t.unlink("nodir/x")
    t.mkfifo("p")
    t.unlink("p")


@case
def unlink_open_file(t):
    path = t.p("f")
    t.create("f", data=b"data")

    def fn():
        fd = os.open(path, os.O_RDWR)
        try:
            os.unlink(path)
            os.write(fd, b"more")
            st = os.fstat(fd)
            return "nlink %d size %d" % (st.st_nlink, st.st_size)
        finally:
            os.close(fd)
    t.do("open(f), unlink(f), write, fstat", fn)


@case
def unlink_permissions(t):
    t.create("rootfile")
    t.unlink("rootfile", user=NOBODY)
    public_dir(t, "pub")
    t.create("pub/alice", user=ALICE)
    t.unlink("pub/alice", user=NOBODY)  # no sticky bit: write permission on the directory is enough
    t.mkdir("pub/d", user=ALICE)
    t.rmdir("pub/d", user=NOBODY)


@case
def rename_file_over_file(t):
    t.create("a", data=b"aa")
    t.create("b", data=b"bbb")
    t.rename("a", "b")
    t.read("b")
    t.rename("b", "b")
    t.rename("a", "c")
    t.rename("b", "a/")
    t.rename("b", "nodir/b")
    t.listdir()


@case
def rename_across_directories(t):
    t.mkdir("d1")
    t.mkdir("d2")
    t.create("d1/f")
    t.mkdir("d1/sub")
    t.create("d1/sub/inner")
    t.rename("d1/f", "d2/f")
    t.rename("d1/sub", "d2/sub")
    t.stat("d2/sub/inner")
    t.rename("d2/sub", "d1/sub2")
    t.mkdir("d1/empty")
    t.mkdir("d2/empty")
    t.rename("d1/empty", "d2/empty")  # over an empty directory in another parent


@case
def rename_directory_over_directory(t):
    t.mkdir("a")
    t.create("a/x")
    t.mkdir("b")
    t.rename("a", "b")
    t.mkdir("c")
    t.create("c/y")
    t.rename("b", "c")
    t.mkdir("e")
    t.rename("c", "e/")
    t.stat("e/y")


@case
def rename_file_and_directory_crossed(t):
    t.create("f")
    t.mkdir("d")
    t.rename("f", "d")
    t.rename("d", "f")
    t.rename("d/", "f")
    t.rename("f", "d/")
    t.symlink("d", "s")
    t.rename("d", "s")  # a symlink to a directory is no directory
    t.rename("s", "d")


@case
def rename_into_itself(t):
    t.mkdir("d")
    t.mkdir("d/sub")
    t.rename("d", "d/sub/x")
    t.rename("d", "d/sub")
    t.rename("d/sub", "d")
    t.rename("d", "d")
    t.rename("d/sub/..", "x")
    t.rename("d", "d/sub/.")


@case
def rename_flags(t):
    t.create("a", data=b"a")
    t.create("b", data=b"bb")
    t.mkdir("d")
    t.rename("a", "b", h.RENAME_NOREPLACE)
    t.rename("a", "c", h.RENAME_NOREPLACE)
    t.rename("c", "b", h.RENAME_EXCHANGE)
    t.rename("c", "d", h.RENAME_EXCHANGE)  # a file and a directory swap names
    t.rename("c", "missing", h.RENAME_EXCHANGE)
    t.rename("c", "b", h.RENAME_EXCHANGE | h.RENAME_NOREPLACE)
    t.mkdir("x")
    t.mkdir("x/inner")
    t.mkdir("y")
    t.rename("x/inner", "c", h.RENAME_EXCHANGE)  # directories in different parents
    t.rename("x", "y", h.RENAME_EXCHANGE)
    t.rename("y", "y/inner", h.RENAME_EXCHANGE)
    t.create("y/file")
    t.rename("c", "y/file", h.RENAME_EXCHANGE)  # a directory and a file in different parents: nlinks move
    t.listdir()


@case
def rename_symlinks(t):
    t.create("f")
    t.symlink("f", "s")
    t.rename("s", "s2")
    t.readlink("s2")
    t.create("g")
    t.rename("g", "s2")
    t.symlink("f", "t")
    t.rename("t", "f")


@case
def rename_hard_links(t):
    t.create("a", data=b"a")
    t.link("a", "b")
    t.rename("a", "b")  # two names of one inode: nothing happens
    t.rename("b", "a", h.RENAME_NOREPLACE)
    t.rename("b", "a", h.RENAME_EXCHANGE)
    t.create("c", data=b"c")
    t.link("c", "c2")
    t.rename("a", "c")  # c2 loses its other name
    t.rename("c", "c2")
    t.listdir()


@case
def rename_with_times(t):
    t.mkdir("d1")
    t.mkdir("d2")
    t.create("d1/f")
    t.mkdir("d1/sub")
    t.utimens("d1/f", 10 ** 9, 2 * 10 ** 9)
    t.utimens("d1/sub", 10 ** 9, 2 * 10 ** 9)
    t.rename("d1/f", "d1/g")
    t.times("d1/g")
    t.rename("d1/g", "d2/g")
    t.rename("d1/sub", "d2/sub")
    t.times("d2/sub")
    t.rename("d2/sub", "d2/sub2")


@case
def link_basic(t):
    t.create("a", data=b"one")
    t.link("a", "b")
    t.write("b", b"twotwo")
    t.read("a")
    t.chmod("b", 0o600)
    t.chown("a", ALICE.uid, ALICE.gid)
    t.mkdir("d")
    t.link("a", "d/c")
    t.unlink("a")
    t.unlink("b")
    t.read("d/c")
    t.truncate("d/c", 1)
    t.link("d/c", "a")


@case
def link_errors(t):
    t.create("a")
    t.create("b")
    t.mkdir("d")
    t.link("d", "dlink")
    t.link("a", "b")
    t.link("a", "d")
    t.link("missing", "x")
    t.link("a", "nodir/x")
    t.link("a", "a/x")
    t.link("a", "x" * 256)
    t.link("a", "y" * 255)


@case
def link_symlinks_and_special_files(t):
    t.create("f")
    t.symlink("f", "s")
    t.link("s", "s_hard")
    t.link("s", "f_hard", follow=True)
    t.readlink("s_hard")
    t.symlink("missing", "dangling")
    t.link("dangling", "d_hard")
    t.link("dangling", "x", follow=True)
    t.mkfifo("p")
    t.link("p", "p2")
    t.mknod("sock", stat.S_IFSOCK | 0o644)
    t.link("sock", "sock2")
    t.mknod("chr", stat.S_IFCHR | 0o600, os.makedev(12, 34))
    t.link("chr", "chr2")
    t.unlink("chr")


@case
def link_permissions(t):
    public_dir(t, "pub")
    t.create("pub/rootonly", 0o600)
    t.create("pub/rootread", 0o644)
    t.link("pub/rootonly", "pub/l1", user=NOBODY)  # protected_hardlinks: neither owner nor readable+writable
    t.link("pub/rootread", "pub/l2", user=NOBODY)
    t.create("pub/own", user=NOBODY)
    t.link("pub/own", "pub/l3", user=NOBODY)
    t.link("pub/own", "l4", user=NOBODY)  # no write permission on the case directory


@case
def symlink_basic(t):
    t.symlink("target", "s")
    t.readlink("s")
    t.symlink("other", "s")
    t.create("f")
    t.symlink("f", "f")
    t.readlink("f")
    t.readlink("missing")
    t.symlink("a" * 255, "long255")
    t.readlink("long255")
    t.symlink("/".join(["b" * 200] * 5), "long1004")
    t.symlink("c" * 4095, "long4095")
    t.readlink("long4095")
    t.symlink("c" * 4096, "long4096")
    t.symlink("", "empty")
    t.mkdir("d")
    t.symlink("d", "sd")
    t.stat("sd")
    t.watch("d/inside")
    t.create("sd/inside")


@case
def symlink_ownership(t):
    public_dir(t, "pub")
    t.symlink("x", "pub/s", user=NOBODY)
    t.create("pub/f")
    t.symlink("f", "pub/sf")
    t.chown("pub/sf", ALICE.uid, ALICE.gid, follow=False)
    t.chown("pub/sf", BOB.uid, BOB.gid)
    t.chmod("pub/sf", 0o600)


@case
def mknod_types(t):
    t.mkfifo("fifo")
    t.mknod("fifo2", stat.S_IFIFO | 0o600)
    t.mknod("sock", stat.S_IFSOCK | 0o640)
    t.mknod("chr", stat.S_IFCHR | 0o600, os.makedev(12, 34))
    t.mknod("blk", stat.S_IFBLK | 0o660, os.makedev(7, 200))
    t.mknod("bigdev", stat.S_IFCHR | 0o600, os.makedev(4095, 1048575))
    t.mknod("reg", stat.S_IFREG | 0o644, os.makedev(1, 2))
    t.mknod("plain", 0o644)
    t.mknod("fifo", stat.S_IFIFO | 0o644)
    t.mknod("dir", stat.S_IFDIR | 0o755)
    t.mknod("bits", stat.S_IFIFO | 0o7777)
    t.chmod("chr", 0o640)
    t.chown("blk", ALICE.uid, ALICE.gid)
    t.rename("blk", "blk2")
    t.truncate("fifo", 0)
    t.mknod("nodir/x", stat.S_IFIFO | 0o644)


@case
def special_files_in_use(t):
    fifo = t.p("fifo")
    t.mkfifo("fifo")

    def through_fifo():
        r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(w, b"ping")
            return repr(os.read(r, 10))
        finally:
            os.close(w)
            os.close(r)
    t.do("write and read through fifo", through_fifo)
    null = t.p("null")
    t.mknod("null", stat.S_IFCHR | 0o666, os.makedev(1, 3))

    def through_null():
        fd = os.open(null, os.O_RDWR)
        try:
            return "wrote %d, read %r" % (os.write(fd, b"gone"), os.read(fd, 10))
        finally:
            os.close(fd)
    t.do("write and read /dev/null twin", through_null)


@case
def mknod_permissions(t):
    public_dir(t, "pub")
    t.mknod("pub/chr", stat.S_IFCHR | 0o600, os.makedev(1, 3), user=NOBODY)
    t.mknod("pub/blk", stat.S_IFBLK | 0o600, os.makedev(7, 0), user=NOBODY)
    t.mkfifo("pub/fifo", user=NOBODY)
    t.mknod("pub/sock", stat.S_IFSOCK | 0o600, user=NOBODY)
    t.mkfifo("fifo", user=NOBODY)


@case
def chmod_bits(t):
    t.create("f")
    t.chmod("f", 0o7777)
    t.chmod("f", 0o0)
    t.chmod("f", 0o0)  # the same mode again: ctime still moves
    t.fchmod("f", 0o640)
    t.mkdir("d")
    t.chmod("d", 0o1777)
    t.chmod("d", 0o2755)
    t.symlink("f", "s")
    t.chmod("s", 0o604)
    t.chmod("missing", 0o644)
    t.chmod("f/", 0o644)


@case
def chmod_by_other_users(t):
    t.create("rootfile")
    t.chmod("rootfile", 0o777, user=NOBODY)
    public_dir(t, "pub")
    t.create("pub/alice", user=ALICE)
    t.chmod("pub/alice", 0o4755, user=ALICE)
    t.chmod("pub/alice", 0o2755, user=ALICE)  # her own group: kept
    t.chown("pub/alice", -1, SHARED_GID)
    t.chmod("pub/alice", 0o2755, user=ALICE)  # a group she is not in: silently dropped
    t.chmod("pub/alice", 0o1755, user=ALICE)
    t.create("pub/bob", user=BOB)
    t.chown("pub/bob", -1, SHARED_GID)
    t.chmod("pub/bob", 0o2750, user=BOB)  # a group he is in: kept
    t.mkdir("pub/alicedir", user=ALICE)
    t.chown("pub/alicedir", -1, SHARED_GID)
    t.chmod("pub/alicedir", 0o2755, user=ALICE)
    t.chmod("pub/bob", 0o644, user=ALICE)


@case
def chown_by_root(t):
    t.create("f")
    t.chown("f", ALICE.uid, ALICE.gid)
    t.chown("f", -1, SHARED_GID)
    t.chown("f", BOB.uid, -1)
    t.chown("f", -1, -1)
    t.fchown("f", 0, 0)
    t.symlink("f", "s")
    t.chown("s", ALICE.uid, -1, follow=False)
    t.chown("s", NOBODY.uid, NOBODY.gid)
    t.mkdir("d")
    t.chown("d", ALICE.uid, ALICE.gid)
    t.chown("missing", 0, 0)
    t.chown("f", 4000000000, 4000000001)


@case
def chown_clears_set_id_bits(t):
    t.create("f")
    t.chmod("f", 0o6755)
    t.chown("f", ALICE.uid, -1)
    t.chmod("f", 0o6755)
    t.chown("f", -1, SHARED_GID)
    t.chmod("f", 0o6755)
    t.chown("f", -1, -1)
    t.chmod("f", 0o2644)  # set-gid without group execute: a mandatory-locking mark, not a privilege
    t.chown("f", 0, 0)
    t.mkdir("d")
    t.chmod("d", 0o6755)
    t.chown("d", ALICE.uid, SHARED_GID)


@case
def chown_by_owner(t):
    public_dir(t, "pub")
    t.create("pub/bob", user=BOB)
    t.chmod("pub/bob", 0o6755, user=BOB)
    t.chown("pub/bob", -1, NOBODY.gid, user=BOB)  # not his group
    t.chown("pub/bob", ALICE.uid, -1, user=BOB)   # giving away
    t.chown("pub/bob", -1, -1, user=BOB)
    t.chown("pub/bob", BOB.uid, -1, user=BOB)     # to himself: allowed, bits still cleared?
    t.chmod("pub/bob", 0o6755, user=BOB)
    t.chown("pub/bob", -1, SHARED_GID, user=BOB)  # his supplementary group: allowed, bits cleared
    t.chown("pub/bob", -1, -1, user=ALICE)
    t.chown("pub/bob", -1, BOB.gid, user=ALICE)


@case
def truncate_sizes(t):
    t.create("f", data=b"hello")
    t.truncate("f", 100)
    t.read("f")
    t.truncate("f", 3)
    t.truncate("f", 3)
    t.read("f")
    t.ftruncate("f", 0)
    t.ftruncate("f", 0)
    t.ftruncate("f", 10, flags=os.O_RDONLY)
    t.truncate("f", -1)
    t.mkdir("d")
    t.truncate("d", 0)
    t.mkfifo("p")
    t.truncate("p", 0)
    t.truncate("missing", 0)
    t.symlink("f", "s")
    t.truncate("s", 7)


@case
def truncate_and_write_clear_set_id(t):
    t.create("f", 0o644, data=b"root")
    t.chmod("f", 0o6777)
    t.truncate("f", 1, user=ALICE)
    t.chmod("f", 0o6777)
    t.write("f", b"x", user=ALICE)
    t.chmod("f", 0o6777)
    t.ftruncate("f", 2, user=ALICE)
    t.chmod("f", 0o6666)  # set-gid without group execute
    t.write("f", b"y", user=ALICE)
    t.chmod("f", 0o6777)
    t.write("f", b"z")  # root keeps the bits (CAP_FSETID)
    t.chmod("f", 0o6777)
    t.truncate("f", 0)
    t.chmod("f", 0o6777)
    t.open("f", os.O_WRONLY | os.O_TRUNC)
    t.chmod("f", 0o6777)
    t.ftruncate("f", 3)
    t.chmod("f", 0o6777)
    t.open("f", os.O_WRONLY | os.O_TRUNC, user=ALICE)
    t.chown("f", -1, SHARED_GID)
    t.chmod("f", 0o6666)  # set-gid without group execute, and the writer in the group: kept
    t.write("f", b"v", user=BOB)
    t.chmod("f", 0o6666)
    t.truncate("f", 1, user=BOB)
    t.chmod("f", 0o644)
    t.truncate("f", 5, user=ALICE)
    t.write("f", b"w", user=ALICE)


@case
def removed_directory_still_open(t):
    d = t.p("d")
    t.mkdir("d")

    def fn():
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.rmdir(d)
            out = []
            for what, call in (("mkdirat", lambda: os.mkdir("x", dir_fd=fd)),
                               ("openat O_CREAT", lambda: os.close(os.open("y", os.O_CREAT | os.O_WRONLY, dir_fd=fd))),
                               ("mknodat fifo", lambda: os.mkfifo("z", dir_fd=fd)),
                               ("symlinkat", lambda: os.symlink("t", "s", dir_fd=fd))):
                out.append("%s %s" % (what, outcome(call)))
            out.append("nlink %d" % os.fstat(fd).st_nlink)
            out.append("entries %r" % os.listdir(fd))
            return ", ".join(out)
        finally:
            os.close(fd)
    t.do("open(d), rmdir(d), create in d", fn)


@case
def allocate_and_sparse(t):
    f = t.p("f")
    t.create("f", data=b"abc")

    t.do("posix_fallocate(f, 0, 100)", on_fd(f, os.O_RDWR, os.posix_fallocate, 0, 100))
    t.do("posix_fallocate(f, 10, 20)", on_fd(f, os.O_RDWR, os.posix_fallocate, 10, 20))  # inside: no size change
    t.read("f")
    t.truncate("f", 1 << 40)
    t.write("f", b"end", (1 << 40) - 3)

    def tail():
        with open(f, "rb") as fh:
            fh.seek((1 << 40) - 8)
            return repr(fh.read())
    t.do("read last 8 bytes of f", tail)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long)
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_ZERO_RANGE = 1, 2, 8, 16


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


@case
def fallocate_modes(t):
    f = t.p("f")
    t.create("f", data=bytes(range(256)) * 64)  # 16 KiB
    for label, mode, off, length in (
            ("punch 4096+4096 keep size", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096),
            ("punch past the end keep size", FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 12288, 65536),
            ("punch without keep size", FALLOC_FL_PUNCH_HOLE, 0, 4096),
            ("zero 100+50", FALLOC_FL_ZERO_RANGE, 100, 50),
            ("zero to 20000", FALLOC_FL_ZERO_RANGE, 15000, 5000),
            ("zero to 30000 keep size", FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 19000, 11000),
            ("keep size past the end", FALLOC_FL_KEEP_SIZE, 0, 1 << 20),
            ("zero length", 0, 0, 0)):
        t.do("fallocate(f, %s)" % label, on_fd(f, os.O_RDWR, fallocate, mode, off, length))
        t.read("f")
    t.do("fallocate(f) read-only", on_fd(f, os.O_RDONLY, fallocate, 0, 0, 100))
    t.do("fallocate(f, collapse 4096+4096)",
         on_fd(f, os.O_RDWR, fallocate, FALLOC_FL_COLLAPSE_RANGE, 4096, 4096))
    t.do("read f after the collapse", on_fd(f, os.O_RDONLY, lambda fd: repr(os.read(fd, 1 << 16))))


@case
def open_handles_see_each_other(t):
    f = t.p("f")
    t.create("f", data=b"aaaa")

    def fn():
        r = os.open(f, os.O_RDONLY)
        try:
            out = [os.pread(r, 100, 0)]
            w = os.open(f, os.O_WRONLY)
            try:
                os.pwrite(w, b"bb", 1)
                out.append(os.pread(r, 100, 0))
                os.pwrite(w, b"cc", 4)
                out.append(os.pread(r, 100, 0))
                os.ftruncate(w, 2)
                out.append(os.pread(r, 100, 0))
                out.append(os.fstat(r).st_size)
            finally:
                os.close(w)
            return repr(out)
        finally:
            os.close(r)
    t.do("read f, write through another handle, read again", fn)
    g = t.p("g")
    t.create("g", data=b"old")

    def replaced():
        r = os.open(g, os.O_RDONLY)
        try:
            os.rename(f, g)
            st = os.fstat(r)
            return "nlink %d, reads %r" % (st.st_nlink, os.pread(r, 100, 0))
        finally:
            os.close(r)
    t.do("open(g), rename(f, g), read the old g", replaced)


@case
def times_set_while_writing(t):
    f = t.p("f")
    t.create("f")

    def fn():
        fd = os.open(f, os.O_WRONLY)
        try:
            os.write(fd, b"data")
            os.utime(fd, ns=(1_000_000_000, 2_000_000_000))  # cp -p, tar: times last, then close
        finally:
            os.close(fd)
    t.do("open(f), write, futimens(fd, explicit), close", fn)
    t.times("f")


@case
def write_and_read_times(t):
    t.create("f")
    t.write("f", b"abc")
    t.write("f", b"", 0)
    t.write("f", b"xyz", 10)
    t.read("f")
    t.read("f")
    t.listdir()
    t.mkdir("d")
    t.listdir("d")


@case
def utimens(t):
    t.create("f")
    t.utimens("f", 1_000_000_001, 2_000_000_002)
    t.times("f")
    t.utimens("f", UTIME_NOW, UTIME_NOW)
    t.utimens("f", UTIME_OMIT, UTIME_OMIT)
    t.utimens("f", 3_000_000_003, 4_000_000_004)
    t.utimens("f", 123_456_789_012, UTIME_OMIT)
    t.times("f")
    t.utimens("f", UTIME_OMIT, 5_000_000_005)
    t.times("f")
    t.utimens("f", UTIME_OMIT, UTIME_NOW)
    t.utimens("f", -1_500_000_000, 4_102_444_800_999_999_999)  # 1969 and 2100
    t.times("f")
    t.utimens("f", 0, 999_999_999)
    t.times("f")
    t.symlink("f", "s")
    t.utimens("s", 5_000_000_000, 6_000_000_000, follow=False)
    t.times("s")
    t.times("f")
    t.mkdir("d")
    t.utimens("d", 7_000_000_000, 8_000_000_000)
    t.times("d")


@case
def utimens_by_other_users(t):
    t.create("open666", 0o644)
    t.chmod("open666", 0o666)
    t.create("closed644")
    t.utimens("open666", UTIME_NOW, UTIME_NOW, user=NOBODY)  # write permission suffices for "now"
    t.utimens("open666", UTIME_OMIT, UTIME_OMIT, user=NOBODY)
    t.utimens("open666", 1_000_000_000, 1_000_000_000, user=NOBODY)
    t.utimens("closed644", UTIME_NOW, UTIME_NOW, user=NOBODY)
    t.chown("closed644", NOBODY.uid, NOBODY.gid)
    t.utimens("closed644", 3_000_000_000, 4_000_000_000, user=NOBODY)
    t.times("closed644")


@case
def name_length_limits(t):
    n255, n256 = "n" * 255, "n" * 256
    t.create(n255)
    t.create(n256)
    t.stat(n256)
    t.mkdir("d" * 255)
    t.mkdir("d" * 256)
    t.symlink("x", "s" * 255)
    t.symlink("x", "s" * 256)
    t.mkfifo("p" * 256)
    t.rename(n255, "r" * 256)
    t.rename(n255, "r" * 255)
    t.link("r" * 255, "l" * 256)
    t.unlink(n256)
    t.unlink("r" * 255)
    t.create("\u20ac" * 85)  # 255 bytes in UTF-8
    t.create("\u20ac" * 86)  # 258 bytes
    t.listdir()


@case
def sticky_directory(t):
    public_dir(t, "tmp", 0o1777)
    t.create("tmp/alice", user=ALICE)
    t.mkdir("tmp/alicedir", user=ALICE)
    t.create("tmp/nobody", user=NOBODY)
    t.unlink("tmp/alice", user=NOBODY)
    t.rename("tmp/alice", "tmp/moved", user=NOBODY)
    t.rename("tmp/nobody", "tmp/alice", user=NOBODY)   # over someone else's file
    t.rmdir("tmp/alicedir", user=NOBODY)
    t.rename("tmp/nobody", "tmp/nobody2", user=NOBODY)  # his own: fine
    t.rename("tmp/alice", "tmp/alice2", user=ALICE)
    t.unlink("tmp/alice2", user=ALICE)
    t.unlink("tmp/nobody2")  # root may
    t.mkdir("own")
    t.chown("own", NOBODY.uid, NOBODY.gid)
    t.chmod("own", 0o1777)
    t.create("own/alice", user=ALICE)
    t.unlink("own/alice", user=NOBODY)  # the directory's owner may
    t.create("tmp/bob", user=BOB)
    t.chmod("tmp/bob", 0o666, user=BOB)
    t.open("tmp/bob", os.O_WRONLY | os.O_TRUNC, user=ALICE)
    t.rename("tmp/bob", "tmp/bob2", user=ALICE)
    t.create("tmp/alice3", user=ALICE)
    t.rename("tmp/bob", "tmp/alice3", h.RENAME_EXCHANGE, user=ALICE)


@case
def xattr_user_namespace(t):
    t.create("f")
    t.setxattr("f", "user.a", b"1")
    t.getxattr("f", "user.a")
    t.setxattr("f", "user.a", b"2", os.XATTR_CREATE)
    t.setxattr("f", "user.b", b"2", os.XATTR_REPLACE)
    t.setxattr("f", "user.a", b"22", os.XATTR_REPLACE)
    t.setxattr("f", "user.big", bytes(range(256)) * 15)
    t.setxattr("f", "user.empty", b"")
    t.getxattr("f", "user.empty")
    t.listxattr("f")
    t.removexattr("f", "user.a")
    t.removexattr("f", "user.a")
    t.getxattr("f", "user.a")
    t.mkdir("d")
    t.setxattr("d", "user.dir", b"yes")
    t.listxattr("d")
    t.symlink("f", "s")
    t.setxattr("s", "user.l", b"1", follow=False)
    t.getxattr("s", "user.big")
    t.mkfifo("p")
    t.setxattr("p", "user.p", b"1")
    t.getxattr("f", "user.big", user=NOBODY)
    t.setxattr("f", "user.c", b"1", user=NOBODY)
    t.removexattr("f", "user.big", user=NOBODY)


@case
def xattr_outside_user_namespace(t):
    t.create("f")
    t.setxattr("f", "trusted.x", b"1")
    t.getxattr("f", "trusted.x")
    t.getxattr("f", "security.none")
    t.setxattr("f", "bogus.x", b"1")


def expected_reason(row):
    for name, prefix, what, reason in EXPECTED:
        if row[0] == name and row[2].startswith(prefix) and row[3] == what:
            return reason
    return None


@unittest.skipUnless(os.geteuid() == 0, "needs root: other users' steps run in children that drop to them")
class PosixDiff(unittest.TestCase):
    def setUp(self):
        self.old_umask = os.umask(0o022)
        self.m = None
        self.base = tempfile.mkdtemp(prefix="pecfs-posixdiff-", dir=h.BASE_DIR)
        os.chmod(self.base, 0o755)  # other users must reach both sides

    def tearDown(self):
        if self.m:
            self.m.cleanup()
        shutil.rmtree(self.base, ignore_errors=True)
        os.umask(self.old_umask)

    def make_side(self, name):
        d = os.path.join(self.base, name)
        os.mkdir(d)
        os.chmod(d, 0o755)
        return d

    def other_side(self):
        """(label, root): the pecfs version directory, or PECFS_DIFF_AGAINST's directory."""
        against = os.environ.get("PECFS_DIFF_AGAINST")
        if against:
            d = tempfile.mkdtemp(prefix="posixdiff-", dir=against)
            os.chmod(d, 0o755)
            self.addCleanup(shutil.rmtree, d, True)
            return "%s (%s)" % (against, fs_type(d)), d
        self.m = h.Mount(["--allow-other"])
        os.chmod(self.m.base, 0o755)
        os.chmod(self.m.mnt, 0o755)
        d = self.m.path("posix", "v1")
        os.makedirs(d)
        return "pecfs", d

    def test_system_calls_behave_as_on_the_local_disk(self):
        start = time.monotonic()
        local = self.make_side("local")
        label, other = self.other_side()
        a = run_cases(local, CASES)
        b = run_cases(other, CASES)
        rows = compare(a, b)
        unexpected = [r for r in rows if expected_reason(r) is None]
        known = [r + (expected_reason(r),) for r in rows if expected_reason(r) is not None]
        steps = sum(len(s) for s in a.values())
        sys.stderr.write("\nlocal: %s (%s); other: %s; %d cases, %d steps, %.1f s\n"
                         % (local, fs_type(local), label, len(CASES), steps, time.monotonic() - start))
        if known:
            sys.stderr.write("\nexpected differences (documented):\n%s\n"
                             % table(known, ("case", "step", "call", "what", "local", "other", "why")))
        if unexpected:
            sys.stderr.write("\n%d differences:\n%s\n" % (len(unexpected),
                             table(unexpected, ("case", "step", "call", "what", "local", label))))
        # A step the script got wrong fails on the local disk as on pecfs, and would hide itself.
        slips = ["%s step %d: %s" % (name, i, s.result) for name, steps in a.items()
                 for i, s in enumerate(steps, 1) if s.result.startswith("raised ")]
        self.assertEqual(slips, [], "the script itself failed")
        if self.m:
            self.m.umount()
            cp = self.m.fsck()
            self.assertEqual(cp.returncode, 0, "fsck after the cases:\n" + cp.stdout + cp.stderr)
        if unexpected:
            self.fail("%d differences from the local disk (table above)" % len(unexpected))


class Comparison(unittest.TestCase):
    """The comparison itself: two sides that behave differently must show up as differences."""

    def test_a_different_behaviour_is_reported(self):
        base = tempfile.mkdtemp(prefix="pecfs-posixdiff-self-", dir=h.BASE_DIR)
        self.addCleanup(shutil.rmtree, base, True)
        runs = {}
        for side in ("a", "b"):
            root = os.path.join(base, side)
            os.mkdir(root)
            t = Script(root, "drift")
            t.create("f", data=b"x")
            # side b removes the wrong name, and gets the mode bits wrong
            missing, f = t.p("missing"), t.p("f")
            victim = missing if side == "a" else f
            t.do("unlink(missing)", lambda: os.unlink(victim))
            g, mode = t.p("g"), 0o640 if side == "a" else 0o600
            t.do("create(g)", lambda: os.close(os.open(g, os.O_CREAT | os.O_WRONLY, mode)))
            runs[side] = {"drift": t.steps}
        whats = {(r[1], r[3]) for r in compare(runs["a"], runs["b"])}
        self.assertIn((2, "result"), whats)
        self.assertIn((2, "f exists"), whats)
        self.assertIn((2, ". mtime"), whats)
        self.assertIn((3, "g mode"), whats)


if __name__ == "__main__":
    h.main()
