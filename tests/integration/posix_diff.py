# posix_diff.py - the machinery of test_posix_diff.py: a Script runs one case's system calls in a
# fresh directory and records, after every step, the result and the lstat of every path the case has
# named; compare() lists where two such runs differ, table() prints them. Nothing here knows pecfs:
# the sides are just directories. Steps of other users run in forked children that drop to them
# (the caller must be root).
import collections
import ctypes
import errno
import os
import stat
import time

import pecfs_harness as h

# Long enough for both clocks to move between steps (the kernel's coarse clock ticks every 4 ms at
# HZ=250), so "did it change" is never hidden by an unchanged timestamp.
STEP_PAUSE = 0.005

User = collections.namedtuple("User", "uid gid groups")  # groups: the supplementary ones

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_SYMLINK_FOLLOW = 0x400
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def utimensat(path, atime, mtime, follow=True):
    """utimensat(2); atime and mtime are nanoseconds, UTIME_NOW or UTIME_OMIT."""
    def ts(v):
        return Timespec(0, v) if v in (UTIME_NOW, UTIME_OMIT) else Timespec(*divmod(v, 10 ** 9))
    times = (Timespec * 2)(ts(atime), ts(mtime))
    if _libc.utimensat(AT_FDCWD, os.fsencode(path), times, 0 if follow else AT_SYMLINK_NOFOLLOW) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)


def linkat(old, new, follow):
    """linkat(2): os.link calls link(2), which never follows a symlink, whatever it is told."""
    if _libc.linkat(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), AT_SYMLINK_FOLLOW if follow else 0):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def short(name):
    """A name fit for the table: long runs of one character as C*N."""
    def comp(c):
        if len(c) <= 24:
            return c
        if len(set(c)) == 1:
            return "%s*%d" % (c[0], len(c))
        return "%s..(%d bytes)" % (c[:12], len(os.fsencode(c)))
    return "/".join(comp(c) for c in name.split("/"))


OPEN_FLAGS = [("O_WRONLY", os.O_WRONLY), ("O_RDWR", os.O_RDWR), ("O_CREAT", os.O_CREAT),
              ("O_EXCL", os.O_EXCL), ("O_TRUNC", os.O_TRUNC), ("O_APPEND", os.O_APPEND),
              ("O_DIRECTORY", os.O_DIRECTORY), ("O_NOFOLLOW", os.O_NOFOLLOW)]


def flag_names(flags):
    names = [n for n, v in OPEN_FLAGS if flags & v]
    return "|".join(names) if names else "O_RDONLY"


def outcome(fn):
    """What a step returned, as text: OK, a value, or the errno name."""
    try:
        v = fn()
    except OSError as e:
        return h.errname(e.errno)
    except Exception as e:  # a slip of the script, not of the file system: callers look for these
        return "raised %s: %s" % (type(e).__name__, e)
    return "OK" if v is None else str(v)


def outcome_as(user, fn):
    """outcome(fn) in a forked child running as user."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups(list(user.groups))
            os.setresgid(user.gid, user.gid, user.gid)
            os.setresuid(user.uid, user.uid, user.uid)
            text = outcome(fn)
        except BaseException as e:
            text = "raised in the child: %r" % e  # counted as a slip of the script
        try:
            os.write(w, text.encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def on_fd(path, flags, call, *args):
    """A step: open path, call(fd, *args), close; returns what call returned."""
    def fn():
        fd = os.open(path, flags)
        try:
            return call(fd, *args)
        finally:
            os.close(fd)
    return fn


TYPES = [(stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"),
         (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "blockdev")]


def type_of(mode):
    return next(name for test, name in TYPES if test(mode))


Step = collections.namedtuple("Step", "label result paths")


class Script:
    """Runs one case in a fresh directory root/CASE and records every step.

    Helpers take paths relative to the case directory; each path named becomes watched from then
    on (with its parents). Paths are resolved before a step runs, so steps of other users, which
    run in a forked child, name only resolved paths."""

    def __init__(self, root, case):
        self.dir = os.path.join(root, case)
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o755)
        self.watched = ["."]
        self.objects = {}   # st_ino -> "PATH@STEP": where and when the object was first seen
        self.prev = {}      # path -> its last os.stat_result
        self.steps = []
        self.observe(0)

    def p(self, rel):
        """The absolute path of rel; rel and its parents are watched from now on."""
        parts = rel.rstrip("/").split("/")
        for i in range(1, len(parts) + 1):
            key = "/".join(parts[:i])
            if key not in self.watched:
                self.watched.append(key)
        return os.path.join(self.dir, rel)

    def watch(self, rel):
        """Watch a path no step names (one a step makes through a symlink, say)."""
        self.p(rel)

    def observe(self, step):
        """{path: its fields, or "absent"} for every watched path after step number `step`."""
        snap, seen = {}, set()
        for rel in self.watched:
            try:
                st = os.lstat(os.path.join(self.dir, rel))
            except OSError as e:
                snap[rel] = "absent" if e.errno == errno.ENOENT else h.errname(e.errno)
                self.prev.pop(rel, None)
                continue
            if st.st_ino not in self.objects:
                self.objects[st.st_ino] = "%s@%d" % (short(rel), step)
            seen.add(st.st_ino)
            prev = self.prev.get(rel)
            same = prev is not None and prev.st_ino == st.st_ino
            fields = collections.OrderedDict()
            fields["type"] = type_of(st.st_mode)
            fields["mode"] = "%04o" % stat.S_IMODE(st.st_mode)
            fields["nlink"] = st.st_nlink
            fields["uid"] = st.st_uid
            fields["gid"] = st.st_gid
            # A directory's size is the file system's own business (ext4: blocks, tmpfs: entries).
            fields["size"] = "-" if stat.S_ISDIR(st.st_mode) else st.st_size
            fields["rdev"] = "%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
            fields["object"] = self.objects[st.st_ino]
            for f in ("atime", "mtime", "ctime"):
                a = getattr(st, "st_%s_ns" % f)
                fields[f] = "-" if not same else ("changed" if a != getattr(prev, "st_%s_ns" % f) else "kept")
            snap[rel] = fields
            self.prev[rel] = st
        # ext4 hands a freed inode number to the next new file; pecfs never reuses one. An object
        # no watched path shows any more is forgotten, so a new one is never taken for it.
        for ino in [i for i in self.objects if i not in seen]:
            del self.objects[ino]
        return snap

    def do(self, label, fn, user=None):
        time.sleep(STEP_PAUSE)
        if user is not None:
            label += " as uid %d" % user.uid
            result = outcome_as(user, fn)
        else:
            result = outcome(fn)
        self.steps.append(Step(label, result, self.observe(len(self.steps) + 1)))

    # ---- the system calls, one step each ----

    def open(self, rel, flags, mode=0o644, data=None, user=None):
        path = self.p(rel)

        def fn():
            fd = os.open(path, flags, mode)
            try:
                if data is not None:
                    os.write(fd, data)
            finally:
                os.close(fd)
        self.do("open(%s, %s, %04o)%s" % (short(rel), flag_names(flags), mode,
                                           " + write %d bytes" % len(data) if data is not None else ""),
                fn, user)

    def create(self, rel, mode=0o644, data=None, user=None):
        self.open(rel, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode, data, user)

    def mkdir(self, rel, mode=0o755, user=None):
        path = self.p(rel)
        self.do("mkdir(%s, %04o)" % (short(rel), mode), lambda: os.mkdir(path, mode), user)

    def rmdir(self, rel, user=None):
        path = self.p(rel)
        self.do("rmdir(%s)" % short(rel), lambda: os.rmdir(path), user)

    def unlink(self, rel, user=None):
        path = self.p(rel)
        self.do("unlink(%s)" % short(rel), lambda: os.unlink(path), user)

    def rename(self, a, b, flags=0, user=None):
        pa, pb = self.p(a), self.p(b)
        names = {h.RENAME_NOREPLACE: "NOREPLACE", h.RENAME_EXCHANGE: "EXCHANGE"}
        fl = "|".join(n for v, n in names.items() if flags & v) or "0"
        if flags:
            self.do("renameat2(%s, %s, %s)" % (short(a), short(b), fl), lambda: h.renameat2(pa, pb, flags), user)
        else:
            self.do("rename(%s, %s)" % (short(a), short(b)), lambda: os.rename(pa, pb), user)

    def link(self, a, b, follow=False, user=None):
        pa, pb = self.p(a), self.p(b)
        self.do("linkat(%s, %s%s)" % (short(a), short(b), ", AT_SYMLINK_FOLLOW" if follow else ""),
                lambda: linkat(pa, pb, follow), user)

    def symlink(self, target, rel, user=None):
        path = self.p(rel)
        self.do("symlink(%s, %s)" % (short(target), short(rel)), lambda: os.symlink(target, path), user)

    def readlink(self, rel, user=None):
        path = self.p(rel)
        self.do("readlink(%s)" % short(rel), lambda: os.readlink(path), user)

    def mknod(self, rel, mode, dev=0, user=None):
        path = self.p(rel)
        self.do("mknod(%s, %s|%04o, %d,%d)" % (short(rel), type_of(mode) if stat.S_IFMT(mode) else "0",
                                               stat.S_IMODE(mode), os.major(dev), os.minor(dev)),
                lambda: os.mknod(path, mode, dev), user)

    def mkfifo(self, rel, mode=0o644, user=None):
        path = self.p(rel)
        self.do("mkfifo(%s, %04o)" % (short(rel), mode), lambda: os.mkfifo(path, mode), user)

    def chmod(self, rel, mode, user=None):
        path = self.p(rel)
        self.do("chmod(%s, %04o)" % (short(rel), mode), lambda: os.chmod(path, mode), user)

    def fchmod(self, rel, mode, user=None):
        path = self.p(rel)
        self.do("fchmod(%s, %04o)" % (short(rel), mode), on_fd(path, os.O_RDONLY, os.fchmod, mode), user)

    def chown(self, rel, uid, gid, follow=True, user=None):
        path = self.p(rel)
        self.do("%s(%s, %d, %d)" % ("chown" if follow else "lchown", short(rel), uid, gid),
                lambda: os.chown(path, uid, gid, follow_symlinks=follow), user)

    def fchown(self, rel, uid, gid, user=None):
        path = self.p(rel)
        self.do("fchown(%s, %d, %d)" % (short(rel), uid, gid), on_fd(path, os.O_RDONLY, os.fchown, uid, gid), user)

    def truncate(self, rel, size, user=None):
        path = self.p(rel)
        self.do("truncate(%s, %d)" % (short(rel), size), lambda: os.truncate(path, size), user)

    def ftruncate(self, rel, size, flags=os.O_WRONLY, user=None):
        path = self.p(rel)
        self.do("ftruncate(open(%s, %s), %d)" % (short(rel), flag_names(flags), size),
                on_fd(path, flags, os.ftruncate, size), user)

    def write(self, rel, data, offset=0, user=None):
        path = self.p(rel)
        self.do("pwrite(%s, %d bytes at %d)" % (short(rel), len(data), offset),
                on_fd(path, os.O_WRONLY, os.pwrite, data, offset), user)

    def read(self, rel, user=None):
        path = self.p(rel)

        def fn():
            with open(path, "rb") as f:
                return repr(f.read())
        self.do("read(%s)" % short(rel), fn, user)

    def listdir(self, rel="."):
        """The names with the type readdir gives for each (d_type, no stat)."""
        path = self.p(rel)

        def fn():
            def kind(e):
                return "dir" if e.is_dir(follow_symlinks=False) else "symlink" if e.is_symlink() else \
                    "file" if e.is_file(follow_symlinks=False) else "other"
            with os.scandir(path) as it:
                return " ".join("%s:%s" % (short(e.name), kind(e)) for e in sorted(it, key=lambda e: e.name))
        self.do("readdir(%s)" % short(rel), fn)

    def utimens(self, rel, atime, mtime, follow=True, user=None):
        path = self.p(rel)

        def name(v):
            return {UTIME_NOW: "UTIME_NOW", UTIME_OMIT: "UTIME_OMIT"}.get(v, str(v))
        self.do("utimensat(%s, %s, %s%s)" % (short(rel), name(atime), name(mtime),
                                               "" if follow else ", AT_SYMLINK_NOFOLLOW"),
                lambda: utimensat(path, atime, mtime, follow), user)

    def times(self, rel):
        """A step that reads the atime and mtime themselves (after they were set explicitly)."""
        path = self.p(rel)

        def fn():
            st = os.lstat(path)
            return "atime %d mtime %d" % (st.st_atime_ns, st.st_mtime_ns)
        self.do("stat times(%s)" % short(rel), fn)

    def stat(self, rel, user=None):
        """stat(2), following symlinks: for the errors of path resolution."""
        path = self.p(rel)

        def fn():
            st = os.stat(path)
            return "%s %04o" % (type_of(st.st_mode), stat.S_IMODE(st.st_mode))
        self.do("stat(%s)" % short(rel), fn, user)

    def setxattr(self, rel, name, value, flags=0, follow=True, user=None):
        path = self.p(rel)
        fl = {0: "", os.XATTR_CREATE: ", XATTR_CREATE", os.XATTR_REPLACE: ", XATTR_REPLACE"}[flags]
        self.do("setxattr(%s, %s, %d bytes%s%s)" % (short(rel), name, len(value), fl,
                                                   "" if follow else ", no follow"),
                lambda: os.setxattr(path, name, value, flags, follow_symlinks=follow), user)

    def getxattr(self, rel, name, follow=True, user=None):
        path = self.p(rel)
        self.do("getxattr(%s, %s)" % (short(rel), name),
                lambda: repr(os.getxattr(path, name, follow_symlinks=follow)), user)

    def listxattr(self, rel, follow=True, user=None):
        """The user.* names, sorted. The local disk may carry security.* labels the test does not
        control, and pecfs lists its read-only user.pec.* facts on every file (README)."""
        path = self.p(rel)

        def fn():
            names = os.listxattr(path, follow_symlinks=follow)
            return " ".join(sorted(n for n in names if n.startswith("user.") and not n.startswith("user.pec.")))
        self.do("listxattr(%s)" % short(rel), fn, user)

    def removexattr(self, rel, name, follow=True, user=None):
        path = self.p(rel)
        self.do("removexattr(%s, %s)" % (short(rel), name),
                lambda: os.removexattr(path, name, follow_symlinks=follow), user)


def run_cases(root, cases):
    """{case: [Step]} for every case, each in root/CASE."""
    runs = {}
    for name, fn in cases:
        t = Script(root, name)
        fn(t)
        runs[name] = t.steps
    return runs


def compare(a, b):
    """Rows (case, step number, step label, what, value a, value b) where two runs differ.

    A difference in a path's state is shown at the step that made it; the steps after, which
    only carry it along, do not repeat it (that the test fails does not depend on this)."""
    rows = []
    for name in a:
        assert len(a[name]) == len(b[name]), name
        carried = {}
        for i, (sa, sb) in enumerate(zip(a[name], b[name]), 1):
            assert sa.label == sb.label, (sa.label, sb.label)
            if sa.result != sb.result:
                rows.append((name, i, sa.label, "result", sa.result, sb.result))
            now = {}
            for rel in sa.paths:
                pa, pb = sa.paths[rel], sb.paths[rel]
                if isinstance(pa, str) or isinstance(pb, str):
                    show = [v if isinstance(v, str) else "%s %s" % (v["type"], v["mode"]) for v in (pa, pb)]
                    now["%s exists" % short(rel)] = tuple(show)
                    continue
                for field in pa:
                    now["%s %s" % (short(rel), field)] = (str(pa[field]), str(pb[field]))
            for what, (va, vb) in now.items():
                if va != vb and carried.get(what) != (va, vb):
                    rows.append((name, i, sa.label, what, va, vb))
            carried = now
    return rows


def table(rows, names):
    """rows as an aligned text table with a header (cells cut at 48 characters)."""
    def cut(v):
        v = str(v)
        return v if len(v) <= 48 else v[:45] + "..."
    cells = [list(names)] + [[cut(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(names))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fs_type(path):
    """The file system type of the mount that holds path."""
    best, kind = "", "?"
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mnt = fields[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fields[2]
    return kind
