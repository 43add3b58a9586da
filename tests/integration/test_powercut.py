# test_powercut.py - the durability contract under power loss. kill -9 of the daemon leaves the page
# cache intact, so it cannot catch a missing fsync; here the data folder lives on pecfs-powercut
# (tests/powercut/), a FUSE layer that at a simulated power cut forgets every write, create, rename
# and unlink that no fsync/fdatasync of the file or of its directory made durable (POSIX's weakest
# persistence). This first part pins the layer's own model on plain files.
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import pecfs_harness as h


def powercut_bin():
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(h.PECFS_BIN))))
    return os.environ.get("PECFS_POWERCUT_BIN") or os.path.join(build, "tests", "pecfs-powercut")


class PowercutLayer:
    """pecfs-powercut mounted at .mnt over a fresh backing folder, switched through .command()."""

    def __init__(self):
        path = powercut_bin()
        if not os.access(path, os.X_OK):
            raise AssertionError("pecfs-powercut not found at %s (set PECFS_POWERCUT_BIN)" % path)
        self.base = tempfile.mkdtemp(prefix="pecfs-powercut-", dir=h.BASE_DIR)
        self.backing = os.path.join(self.base, "backing")
        self.mnt = os.path.join(self.base, "mnt")
        self.control = os.path.join(self.base, "control")
        os.makedirs(self.backing)
        os.makedirs(self.mnt)
        self.log = open(os.path.join(self.base, "log"), "w+")
        self.proc = subprocess.Popen([path, "--control", self.control, self.backing, self.mnt],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=h._env())
        if not h.wait_until(lambda: h.is_mounted(self.mnt) or self.proc.poll() is not None, 10):
            self.close()
            raise AssertionError("pecfs-powercut did not mount")
        if self.proc.poll() is not None:
            self.close()
            raise AssertionError("pecfs-powercut exited (%d): %s" % (self.proc.returncode, self.output()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def command(self, cmd):
        """Sends cut, down, restore or stats; returns the answer's key=value pairs as ints."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(60 * h.SLOW)
            s.connect(self.control)
            s.sendall(cmd.encode() + b"\n")
            reply = s.makefile().readline().strip()
        if not reply.startswith("ok"):
            raise AssertionError("pecfs-powercut %s: %r" % (cmd, reply))
        return {k: int(v) for k, v in (kv.split("=") for kv in reply.split()[1:])}

    def close(self):
        if self.proc.poll() is None:
            try:
                self.command("down")  # operations waiting for power would hold the unmount up
            except (OSError, AssertionError):
                pass
        if h.is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True)
            if h.is_mounted(self.mnt):
                h.lazy_unmount(self.mnt)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if not h.is_mounted(self.mnt):
            shutil.rmtree(self.base, ignore_errors=True)
        h.check_sanitizers()


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path, data, sync=False, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


class LayerModel(unittest.TestCase):
    """What pecfs-powercut keeps and forgets, checked on plain files (no pecfs)."""

    def test_cut_keeps_only_what_was_synced(self):
        with PowercutLayer() as pl:
            p = lambda *parts: os.path.join(pl.mnt, *parts)
            os.mkdir(p("d"))
            os.mkdir(p("e"))
            fsync_path(pl.mnt)                                   # d and e are durable, still empty
            write(p("d", "kept"), b"version one", sync=True)     # bytes durable ...
            write(p("d", "renamed"), b"old name", sync=True)
            write(p("d", "removed"), b"still here", sync=True)
            write(p("d", "truncated"), b"0123456789", sync=True)
            write(p("d", "no data"), b"never synced")
            os.mkdir(p("d", "sub"))
            write(p("d", "sub", "inner"), b"x", sync=True)
            fsync_path(p("d"))                                   # ... and now their names too
            write(p("e", "moved"), b"moved for good", sync=True)
            fsync_path(p("e"))
            # changes after the last syncs: every one of them must be forgotten ...
            write(p("d", "name lost"), b"synced bytes, unsynced name", sync=True)
            write(p("d", "kept"), b"VERSION TWO, longer", flags=os.O_WRONLY)
            os.rename(p("d", "renamed"), p("d", "new name"))
            os.unlink(p("d", "removed"))
            os.truncate(p("d", "truncated"), 3)
            write(p("d", "truncated"), b"abcdefghijklmnop", flags=os.O_WRONLY | os.O_APPEND)
            os.mkdir(p("newdir"))
            # ... except this rename, whose directory is synced
            os.rename(p("e", "moved"), p("e", "moved here"))
            fsync_path(p("e"))
            held = os.open(p("d", "kept"), os.O_RDWR)

            pl.command("cut")
            # after the cut nothing happens: an operation waits, then fails once the power is down
            result = {}
            t = threading.Thread(target=lambda: result.update(err=h.errno_of(os.write, held, b"late")))
            t.start()
            time.sleep(0.3 * h.SLOW)
            self.assertTrue(t.is_alive(), "a write went through after the cut: %r" % result)
            pl.command("down")
            t.join(10 * h.SLOW)
            self.assertEqual(h.errname(result.get("err")), "EIO")
            stats = pl.command("restore")

            self.assertEqual(sorted(os.listdir(pl.mnt)), ["d", "e"])
            self.assertEqual(sorted(os.listdir(p("d"))),
                             ["kept", "no data", "removed", "renamed", "sub", "truncated"])
            self.assertEqual(os.listdir(p("e")), ["moved here"])
            self.assertEqual(h.read_file(p("d", "kept")), b"version one")
            self.assertEqual(h.read_file(p("d", "renamed")), b"old name")
            self.assertEqual(h.read_file(p("d", "removed")), b"still here")
            self.assertEqual(h.read_file(p("d", "truncated")), b"0123456789")
            self.assertEqual(h.read_file(p("e", "moved here")), b"moved for good")
            self.assertEqual(h.read_file(p("d", "no data")), b"")
            self.assertEqual(os.listdir(p("d", "sub")), [])
            self.assertGreater(stats["files_reverted"], 0, stats)
            self.assertGreater(stats["nodes_dropped"], 0, stats)
            # a descriptor from before the cut is dead; new ones work, and a second cut works too
            self.assertEqual(h.errname(h.errno_of(os.pread, held, 4, 0)), "EIO")
            os.close(held)
            write(p("d", "kept"), b"version three", sync=True)
            write(p("d", "fresh"), b"fresh", sync=True)
            pl.command("cut")
            pl.command("restore")
            self.assertEqual(h.read_file(p("d", "kept")), b"version three")
            self.assertNotIn("fresh", os.listdir(p("d")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
