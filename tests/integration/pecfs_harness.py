# pecfs_harness.py - shared helpers for the integration tests: mount a real pecfs in a temporary
# folder through its command line, kill and remount it, and compare trees and bytes.
# Every Mount cleans up after itself (unmount, lazily if the daemon is dead, then remove the folder),
# even when a test fails. Python stdlib only; the tests run as root (FUSE mounts, tmpfs, drop caches).
import atexit
import ctypes
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

PECFS_BIN = os.environ.get("PECFS_BIN", "")
BASE_DIR = "/var/tmp"  # on the real disk: /tmp may be tmpfs elsewhere, and sizes here are real


def sanitized(path):
    """True when the binary or library at path is built with AddressSanitizer."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def preload_asan(env):
    """env for a program that is not built with AddressSanitizer (python) but loads a library that
    is: the ASan runtime preloaded (it must come first), leak checks off for the host program."""
    if "libasan" not in env.get("LD_PRELOAD", ""):
        asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
        env["LD_PRELOAD"] = ":".join(filter(None, [asan, env.get("LD_PRELOAD")]))
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0",
                                                 "alloc_dealloc_mismatch=0", "detect_odr_violation=0"]))
    return env


SANITIZED = sanitized(PECFS_BIN)
# Under AddressSanitizer everything is several times slower; timeouts scale with this.
SLOW = float(os.environ.get("PECFS_TEST_SLOWDOWN", "4" if SANITIZED else "1"))

# Sanitizer reports of every pecfs process (the daemon's stderr is gone once it daemonizes) land in
# files here; tests fail when one appears.
SAN_DIR = tempfile.mkdtemp(prefix="pecfs-sanitizer-", dir=BASE_DIR)
_seen_reports = set()


def _env():
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "log_path=%s/asan" % SAN_DIR]))
    env["UBSAN_OPTIONS"] = ":".join(filter(None, [env.get("UBSAN_OPTIONS"), "print_stacktrace=1",
                                                  "log_path=%s/ubsan" % SAN_DIR]))
    return env


def check_sanitizers():
    """Raises AssertionError with the text of any sanitizer report not seen before."""
    new = []
    for name in sorted(os.listdir(SAN_DIR)):
        if name not in _seen_reports:
            _seen_reports.add(name)
            with open(os.path.join(SAN_DIR, name), errors="replace") as f:
                new.append("%s:\n%s" % (name, f.read()[:20000]))
    if new:
        raise AssertionError("sanitizer report(s):\n" + "\n".join(new))


@atexit.register
def _remove_san_dir():
    if not os.listdir(SAN_DIR):
        os.rmdir(SAN_DIR)
    else:
        sys.stderr.write("sanitizer reports kept in %s\n" % SAN_DIR)


# ctest reports a test that exits with this code as skipped (SKIP_RETURN_CODE in tests/CMakeLists.txt).
SKIP_EXIT = 77


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_unless(missing, what):
    """A class decorator for tests that need an outside service: when `missing` names what is absent,
    the tests are skipped, except under CI (CI=true), where a missing service is a failure."""
    def wrap(cls):
        if not missing:
            return cls
        reason = "%s: %s" % (what, missing)
        if in_ci():
            def setUpClass(klass):
                raise RuntimeError("CI needs %s" % reason)
            cls.setUpClass = classmethod(setUpClass)
            return cls
        return unittest.skip(reason)(cls)
    return wrap


def main():
    """unittest.main for the integration tests: exits SKIP_EXIT when every test was skipped, so ctest
    shows the file as skipped rather than passed."""
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    if r.testsRun and len(r.skipped) == r.testsRun and r.wasSuccessful():
        sys.exit(SKIP_EXIT)
    sys.exit(0 if r.wasSuccessful() else 1)


def require_binary():
    if not PECFS_BIN or not os.access(PECFS_BIN, os.X_OK):
        sys.stderr.write("PECFS_BIN must name the built pecfs binary (got %r)\n" % PECFS_BIN)
        sys.exit(2)


def cli(*args, timeout=120, check=False, env=None, sanitizer_check=True):
    """Runs `pecfs ARGS`; returns the CompletedProcess (text output)."""
    require_binary()
    cp = subprocess.run([PECFS_BIN] + [str(a) for a in args], capture_output=True, text=True,
                        timeout=timeout * SLOW, env=env or _env())
    if sanitizer_check:
        check_sanitizers()
    if check and cp.returncode != 0:
        raise AssertionError("pecfs %s failed (%d): %s%s" % (" ".join(map(str, args)), cp.returncode,
                                                            cp.stdout, cp.stderr))
    return cp


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and fields[1].replace("\\040", " ") == path:
                return True
    return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of ours counts as gone.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(pred, timeout, step=0.02):
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def lazy_unmount(path):
    subprocess.run(["fusermount3", "-uz", path], capture_output=True)
    if is_mounted(path):
        subprocess.run(["umount", "-l", path], capture_output=True)


class Mount:
    """A pecfs mount in a fresh temporary folder: .base, .data (DATA_DIR), .mnt (mount point).

    options: extra `pecfs mount` options (list of strings). data: use this DATA_DIR instead of
    .base/data (e.g. a size-limited tmpfs the test prepared)."""

    def __init__(self, options=None, data=None, mount=True):
        require_binary()
        self.options = list(options or [])
        self.base = tempfile.mkdtemp(prefix="pecfs-test-", dir=BASE_DIR)
        self.data = data or os.path.join(self.base, "data")
        self.mnt = os.path.join(self.base, "mnt")
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.mnt)
        self._last_pid = None
        self._extra_mounts = []  # tmpfs and the like the test put under .base
        if mount:
            try:
                self.mount()
            except BaseException:
                self.cleanup()
                raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def mount(self, extra=None):
        cp = cli("mount", *(self.options + list(extra or [])), self.data, self.mnt, timeout=60)
        if cp.returncode != 0:
            raise AssertionError("pecfs mount failed (%d): %s%s" % (cp.returncode, cp.stdout, cp.stderr))
        if not is_mounted(self.mnt):
            raise AssertionError("pecfs mount returned 0 but %s is not mounted" % self.mnt)
        self._last_pid = self.pid()

    def pid(self):
        with open(os.path.join(self.data, "LOCK")) as f:
            return int(f.read().split()[0])

    def umount(self):
        """Clean unmount through the CLI; asserts success and that the daemon exited."""
        pid = self._last_pid
        cp = cli("umount", self.mnt, timeout=120)
        if cp.returncode != 0:
            raise AssertionError("pecfs umount failed (%d): %s%s" % (cp.returncode, cp.stdout, cp.stderr))
        if is_mounted(self.mnt):
            raise AssertionError("%s still mounted after pecfs umount" % self.mnt)
        # umount returns once the daemon let go of the data folder; its exit follows right after
        if pid is not None and not wait_until(lambda: not pid_alive(pid), 5):
            raise AssertionError("daemon %d still running 5 s after pecfs umount returned" % pid)
        check_sanitizers()  # leak reports are written as the daemon exits

    def remount(self, extra=None):
        self.umount()
        self.mount(extra)

    def kill9(self):
        """kill -9 of the daemon, then a lazy unmount of the dead mount point."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        if not wait_until(lambda: not pid_alive(pid), 30):
            raise AssertionError("daemon %d survived SIGKILL" % pid)
        lazy_unmount(self.mnt)
        if not wait_until(lambda: not is_mounted(self.mnt), 10):
            raise AssertionError("%s still mounted after lazy unmount" % self.mnt)

    def stats(self):
        with open(self.path(".pec", "stats")) as f:
            return json.load(f)

    def versions(self, run):
        with open(self.path(run, ".pec", "versions")) as f:
            return json.load(f)

    def version_state(self, run, name):
        for v in self.versions(run)["versions"]:
            if v["name"] == name:
                return v["state"]
        return None

    def fsck(self):
        return cli("fsck", self.data, timeout=300)

    def cleanup(self):
        if is_mounted(self.mnt):
            pid = None
            try:
                pid = self.pid()
            except (OSError, ValueError, IndexError):
                pass
            try:
                cli("umount", self.mnt, timeout=60, sanitizer_check=False)
            except subprocess.TimeoutExpired:
                pass
            if is_mounted(self.mnt):
                if pid and pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)
                    wait_until(lambda: not pid_alive(pid), 10)
                lazy_unmount(self.mnt)
        for m in reversed(self._extra_mounts):
            if is_mounted(m):
                subprocess.run(["umount", "-l", m], capture_output=True)
        if not is_mounted(self.mnt):
            shutil.rmtree(self.base, ignore_errors=True)
        else:
            sys.stderr.write("leaving %s: still mounted\n" % self.base)
        check_sanitizers()

    def mount_tmpfs(self, path, size):
        """Mounts a tmpfs of the given size (e.g. "96M") at path; unmounted by cleanup."""
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path], check=True)
        self._extra_mounts.append(path)


# ---- bytes, trees, chunks ----

def sha256_file(path, bs=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(bs)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data, fsync=False, bs=None):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        mv = memoryview(data)
        step = bs or max(1, len(mv))
        off = 0
        while off < len(mv):
            off += os.write(fd, mv[off:off + step])
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def random_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def du_bytes(path):
    """Bytes of all regular files under path (apparent sizes) and their count."""
    total = count = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
                count += 1
            except FileNotFoundError:
                pass
    return total, count


def chunk_files(data_dir):
    """{hex digest: path} of the chunk files in DATA_DIR/chunks/<2 hex>/<64 hex>."""
    out = {}
    root = os.path.join(data_dir, "chunks")
    for sub in os.listdir(root) if os.path.isdir(root) else []:
        d = os.path.join(root, sub)
        if len(sub) != 2 or not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                out[name] = os.path.join(d, name)
    return out


def chunk_digests(data, chunk_size):
    """SHA-256 hex of each chunk-aligned piece of data (what the store names them)."""
    return [sha256_bytes(data[i:i + chunk_size]) for i in range(0, len(data), chunk_size)]


def tree_snapshot(root, with_mode=True):
    """{relative path: description} for everything under root (not following symlinks). Special files
    are described, never opened; a file's description includes its link count."""
    snap = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            mode = st.st_mode & 0o7777 if with_mode else None
            if os.path.islink(p):
                snap[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                snap[rel] = ("dir", mode)
            elif stat.S_ISREG(st.st_mode):
                snap[rel] = ("file", mode, st.st_size, sha256_file(p), st.st_nlink)
            else:
                snap[rel] = ("special", stat.S_IFMT(st.st_mode), mode, st.st_rdev, st.st_nlink)
    return snap


def diff_trees(a, b):
    """Human-readable differences between two tree_snapshot results (empty list when equal)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            out.append("%s: %r != %r" % (k, a.get(k), b.get(k)))
    return out


# ---- system calls python does not wrap ----

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def renameat2(old, new, flags):
    """renameat2(2); raises OSError like os.rename."""
    r = _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def errno_of(fn, *args, **kw):
    """Calls fn; returns 0 on success or the errno it raised."""
    try:
        fn(*args, **kw)
        return 0
    except OSError as e:
        return e.errno


def errname(e):
    return errno.errorcode.get(e, str(e)) if e else "OK"


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def on_a_terminal(args, timeout, env=None):
    """Runs args with stderr on a pseudo-terminal (progress bars show only on one); returns
    (returncode, stdout bytes, what the terminal got as text)."""
    import pty
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=slave, env=env or _env())
    os.close(slave)
    out, _ = proc.communicate(timeout=timeout * SLOW)
    tty = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO once the other side is closed
            break
        if not chunk:
            break
        tty += chunk
    os.close(master)
    return proc.returncode, out, tty.decode(errors="replace")
