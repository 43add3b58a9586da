# test_exerciser.py - a seeded randomized exerciser: the same random operations (create, open, write at
# random offsets and sizes incl. tiny and chunk-crossing ones, read, truncate, fsync, rename, unlink,
# mkdir, rmdir, stat, readdir) go to a pecfs mount and to a plain directory, and every result (value
# or errno) must match; full trees are compared at checkpoints, across a remount in the middle and at
# the end. 64 KiB chunks so boundaries are crossed often. PECFS_SEED and PECFS_EXERCISER_OPS override.
import errno
import os
import random
import shutil
import stat
import unittest

import pecfs_harness as h

CHUNK = 64 * 1024
FILE_NAMES = ["a", "b", "c", "d"]
DIR_NAMES = ["D", "E", "F"]
MAX_HANDLES = 6
# Linux filesystems differ legitimately between these for renaming onto / removing a non-empty dir.
SAME = {errno.EEXIST: errno.ENOTEMPTY}


class Divergence(AssertionError):
    pass


def outcome(fn):
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", SAME.get(e.errno, e.errno))


def describe(r):
    if r[0] == "err":
        return "errno %s" % h.errname(r[1])
    v = r[1]
    if isinstance(v, (bytes, bytearray)):
        return "%d bytes sha %s" % (len(v), h.sha256_bytes(v)[:12])
    return repr(v)


class Exerciser:
    def __init__(self, roots, seed, log):
        self.roots = roots            # [mount side, reference side]
        self.rng = random.Random(seed)
        self.pattern = random.Random(seed ^ 0x5eed).randbytes(2 * CHUNK)  # repeated content: dedup
        self.handles = []             # [(description, fd on mount, fd on reference)]
        self.log = log
        self.count = 0

    # ---- choosing arguments ----
    def rel(self, kind="file"):
        """A path of directory names ending in a name of the kind wanted (now and then the other
        kind, so EISDIR, ENOTDIR and friends come up too)."""
        depth = self.rng.choice([0, 1, 1, 2])
        parts = [self.rng.choice(DIR_NAMES) for _ in range(depth)]
        if self.rng.random() < 0.04:
            kind = "dir" if kind == "file" else "file"
        parts.append(self.rng.choice(FILE_NAMES if kind == "file" else DIR_NAMES))
        return os.path.join(*parts)

    def offset(self, size_hint):
        r = self.rng.random()
        if r < 0.3:
            k = self.rng.randrange(0, 10)
            return max(0, k * CHUNK + self.rng.randrange(-16, 17))
        if r < 0.5:
            return size_hint
        if r < 0.6:
            return 0
        return self.rng.randrange(0, 600 * 1024)

    def data(self):
        size = self.rng.choice([self.rng.randrange(1, 17), self.rng.randrange(1, 4097),
                                self.rng.randrange(1, 70000), self.rng.randrange(1, 300000),
                                CHUNK, 2 * CHUNK])
        kind = self.rng.random()
        if kind < 0.2:
            return bytes(size)
        if kind < 0.4:
            start = self.rng.choice([0, 0, self.rng.randrange(0, CHUNK)])
            return (self.pattern * (size // len(self.pattern) + 2))[start:start + size]
        return self.rng.randbytes(size)

    def ref_size(self, rel):
        try:
            return os.stat(os.path.join(self.roots[1], rel)).st_size
        except OSError:
            return 0

    # ---- applying ----
    def both(self, desc, fn):
        """fn(side) -> value; applies it to both sides and compares."""
        self.count += 1
        self.log.append("%d: %s" % (self.count, desc))
        res = [outcome(lambda s=s: fn(s)) for s in (0, 1)]
        if res[0] != res[1]:
            raise Divergence("op %d %s: pecfs gave %s, the plain directory %s"
                             % (self.count, desc, describe(res[0]), describe(res[1])))
        return res[0]

    def step(self):
        rng = self.rng
        op = rng.choices(
            ["create", "write", "hwrite", "read", "hread", "truncate", "htruncate", "open", "close",
             "fsync", "rename", "unlink", "mkdir", "rmdir", "stat", "listdir", "chmod"],
            weights=[8, 14, 12, 8, 8, 4, 3, 6, 5, 2, 6, 5, 4, 4, 6, 3, 1])[0]
        R = self.roots
        if op == "create":
            rel = self.rel()
            flags = os.O_WRONLY | os.O_CREAT | rng.choice([0, os.O_TRUNC, os.O_EXCL])
            mode = rng.choice([0o644, 0o600, 0o755])
            self.both("create %s flags %o mode %o" % (rel, flags, mode),
                      lambda s: os.close(os.open(os.path.join(R[s], rel), flags, mode)))
        elif op == "write":
            rel = self.rel()
            off = self.offset(self.ref_size(rel))
            data = self.data()
            flags = os.O_WRONLY | (os.O_CREAT if rng.random() < 0.4 else 0)

            def fn(s):
                fd = os.open(os.path.join(R[s], rel), flags, 0o644)
                try:
                    return os.pwrite(fd, data, off)
                finally:
                    os.close(fd)
            self.both("write %s flags %o off %d len %d" % (rel, flags, off, len(data)), fn)
        elif op == "read":
            rel = self.rel()
            off = self.offset(self.ref_size(rel) // 2)
            n = rng.choice([1, 100, 4096, CHUNK + 1, 400000])

            def fn(s):
                with open(os.path.join(R[s], rel), "rb", buffering=0) as f:
                    return os.pread(f.fileno(), n, off)
            self.both("read %s off %d len %d" % (rel, off, n), fn)
        elif op == "truncate":
            rel = self.rel()
            size = rng.choice([0, self.ref_size(rel) // 2, self.ref_size(rel) + rng.randrange(1, 200000),
                               rng.randrange(0, 500000)])
            self.both("truncate %s %d" % (rel, size), lambda s: os.truncate(os.path.join(R[s], rel), size))
        elif op == "open":
            if len(self.handles) >= MAX_HANDLES:
                return
            rel = self.rel()
            flags = rng.choice([os.O_RDONLY, os.O_RDWR, os.O_WRONLY, os.O_RDWR | os.O_CREAT])
            fds = []

            def fn(s):
                fd = os.open(os.path.join(R[s], rel), flags, 0o644)
                fds.append(fd)
                return "fd"
            try:
                self.both("open %s flags %o -> h%d" % (rel, flags, len(self.handles)), fn)
            finally:
                if len(fds) == 1:
                    os.close(fds[0])
            if len(fds) == 2:
                self.handles.append(("%s/%o" % (rel, flags), fds[0], fds[1]))
        elif op in ("hwrite", "hread", "htruncate", "fsync", "close"):
            if not self.handles:
                return
            i = rng.randrange(len(self.handles))
            name, fa, fb = self.handles[i]
            fds = (fa, fb)
            size = os.fstat(fb).st_size
            if op == "hwrite":
                off = self.offset(size)
                data = self.data()
                self.both("h%d(%s) pwrite off %d len %d" % (i, name, off, len(data)),
                          lambda s: os.pwrite(fds[s], data, off))
            elif op == "hread":
                off = self.offset(size // 2)
                n = rng.choice([1, 4096, CHUNK - 1, 300000])
                self.both("h%d(%s) pread off %d len %d" % (i, name, off, n), lambda s: os.pread(fds[s], n, off))
            elif op == "htruncate":
                ns = rng.choice([0, size // 3, size + rng.randrange(1, 100000)])
                self.both("h%d(%s) ftruncate %d" % (i, name, ns), lambda s: os.ftruncate(fds[s], ns))
            elif op == "fsync":
                self.both("h%d(%s) fsync" % (i, name), lambda s: os.fsync(fds[s]))
            else:
                self.both("h%d(%s) close" % (i, name), lambda s: os.close(fds[s]))
                del self.handles[i]
            if op in ("hwrite", "htruncate"):
                # (a directory opened read-only is a handle too; its st_size is filesystem-specific)
                self.both("h%d(%s) fstat size" % (i, name), lambda s: (
                    os.fstat(fds[s]).st_size if stat.S_ISREG(os.fstat(fds[s]).st_mode) else "dir"))
        elif op == "rename":
            kind = self.rng.choice(["file", "file", "dir"])
            a, b = self.rel(kind), self.rel(kind)
            noreplace = rng.random() < 0.15
            if noreplace:
                self.both("rename NOREPLACE %s %s" % (a, b), lambda s: h.renameat2(
                    os.path.join(R[s], a), os.path.join(R[s], b), h.RENAME_NOREPLACE))
            else:
                self.both("rename %s %s" % (a, b), lambda s: os.rename(os.path.join(R[s], a), os.path.join(R[s], b)))
        elif op == "unlink":
            rel = self.rel()
            self.both("unlink %s" % rel, lambda s: os.unlink(os.path.join(R[s], rel)))
        elif op == "mkdir":
            rel = self.rel("dir")
            self.both("mkdir %s" % rel, lambda s: os.mkdir(os.path.join(R[s], rel), 0o755))
        elif op == "rmdir":
            rel = self.rel("dir")
            self.both("rmdir %s" % rel, lambda s: os.rmdir(os.path.join(R[s], rel)))
        elif op == "stat":
            rel = self.rel(rng.choice(["file", "dir"]))

            def fn(s):
                st = os.lstat(os.path.join(R[s], rel))
                if stat.S_ISDIR(st.st_mode):
                    return ("dir", st.st_mode, st.st_nlink)
                return ("file", st.st_mode, st.st_size, st.st_nlink)
            self.both("stat %s" % rel, fn)
        elif op == "listdir":
            rel = rng.choice(["", self.rel("dir")])
            self.both("listdir %s" % rel, lambda s: sorted(os.listdir(os.path.join(R[s], rel))))
        elif op == "chmod":
            rel = self.rel()
            mode = rng.choice([0o600, 0o644, 0o755, 0o700])
            self.both("chmod %s %o" % (rel, mode), lambda s: os.chmod(os.path.join(R[s], rel), mode))

    def close_all(self):
        while self.handles:
            name, fa, fb = self.handles.pop()
            self.both("close %s" % name, lambda s: os.close((fa, fb)[s]))

    def compare_trees(self, when):
        a, b = h.tree_snapshot(self.roots[0]), h.tree_snapshot(self.roots[1])
        diff = h.diff_trees(a, b)
        if diff:
            raise Divergence("trees differ %s (after op %d):\n  %s" % (when, self.count, "\n  ".join(diff[:20])))
        return len(a)


class RandomizedExerciser(unittest.TestCase):
    def test_mount_matches_plain_directory(self):
        seed = int(os.environ.get("PECFS_SEED", random.randrange(1 << 30)))
        nops = int(os.environ.get("PECFS_EXERCISER_OPS", "4000"))
        print("\nexerciser seed %d (PECFS_SEED=%d to repeat), %d operations" % (seed, seed, nops))
        log = []
        with h.Mount(["--chunk-size", "64K", "--write-buffers", "16"]) as m:
            ref = os.path.join(m.base, "ref")
            os.makedirs(ref)
            os.makedirs(m.path("ex", "v"))
            ex = Exerciser([m.path("ex", "v"), ref], seed, log)
            try:
                for i in range(nops):
                    ex.step()
                    if (i + 1) % 300 == 0:
                        ex.compare_trees("at checkpoint")
                    if i + 1 == nops // 2:
                        ex.close_all()
                        ex.compare_trees("before remount")
                        m.remount()
                        ex.compare_trees("after remount")
                ex.close_all()
                n = ex.compare_trees("at the end")
                m.remount()
                ex.compare_trees("after the final remount")
            except Divergence as e:
                for _name, fa, fb in ex.handles:
                    for fd in (fa, fb):
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                self.fail("seed %d: %s\nlast operations:\n  %s" % (seed, e, "\n  ".join(log[-25:])))
            print("%d operations, %d entries in the final tree" % (ex.count, n))
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            shutil.rmtree(ref)


if __name__ == "__main__":
    h.main()
