# test_powercut.py - the durability contract under power loss. kill -9 of the daemon leaves the page
# cache intact, so it cannot catch a missing fsync; here the data folder lives on pecfs-powercut
# (tests/powercut/), a FUSE layer that at a simulated power cut forgets every write, create, rename
# and unlink that no fsync/fdatasync of the file or of its directory made durable (POSIX's weakest
# persistence). A self-check pins the layer's own model on plain files first.
#
# Then a writer makes checkpoint rounds (fsynced files; seals by `pecfs seal`, xattr, tracker file
# and rename into place; now and then an older version removed and `pecfs gc`), journaling each
# promise outside the mount once the call that makes it returned. At a random instant of a round
# (a fifth of the time: right after a collection) the power is cut (operations after it wait), the
# daemon is killed with -9, the waiting operations fail, the dead mount is detached and the layer
# restored: half the time to its durable state alone, half the time letting a random prefix of each
# file's and directory's unsynced changes survive. After a quarter of the cuts the power is cut
# once more while `pecfs fsck` opens the folder and recovers it, as every mount does. Then `pecfs
# fsck` must be clean and, after a remount, every journaled promise must read back bit for bit.
# Episodes of PECFS_POWERCUT_EPISODE (10) cuts share a data folder, so that checking every promise
# after every cut stays affordable; each starts on a fresh folder, every other one created by
# `pecfs mount` itself. PECFS_POWERCUT_ITERS sets the number of cuts in rounds (100, 15 under
# sanitizers); the seed is printed and PECFS_SEED repeats it. About 2 minutes on 2 cores.
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import checkpoint_writer
import pecfs_harness as h

HERE = os.path.dirname(os.path.abspath(__file__))


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

    def test_keep_lets_a_prefix_of_unsynced_changes_survive(self):
        """restore keep=1 seed=N: each directory keeps a random prefix of its unsynced entry
        changes (a rename within it whole or not at all), each file a random prefix of its unsynced
        appends at a 4 KiB boundary; what survived is durable from then on."""
        names, sizes = set(), set()
        with PowercutLayer() as pl:
            for seed in range(1, 13):
                d = os.path.join(pl.mnt, "d%d" % seed)
                os.mkdir(d)
                log = h.random_bytes(4096 + 4 * 8192, seed)
                write(os.path.join(d, "log"), log[:4096], sync=True)
                write(os.path.join(d, "a"), b"a", sync=True)
                fsync_path(d)
                fsync_path(pl.mnt)
                for name in ("f1", "f2", "f3", "f4"):        # four entry changes, bytes synced
                    write(os.path.join(d, name), name.encode(), sync=True)
                os.rename(os.path.join(d, "a"), os.path.join(d, "b"))   # the fifth
                write(os.path.join(d, "log"), log[4096:], flags=os.O_WRONLY | os.O_APPEND)
                pl.command("cut")
                pl.command("restore keep=1 seed=%d" % seed)
                got = sorted(os.listdir(d))
                kept = [f for f in ("f1", "f2", "f3", "f4") if f in got]
                self.assertEqual(kept, ["f1", "f2", "f3", "f4"][:len(kept)], "not a prefix: %r" % got)
                self.assertEqual(got, sorted(kept + ["log", "b" if len(kept) == 4 and "b" in got else "a"]),
                                 "a rename half kept, or out of order: %r" % got)
                data = h.read_file(os.path.join(d, "log"))
                self.assertEqual(len(data) % 4096, 0)
                self.assertEqual(data, log[:len(data)])
                names.add(len(got) + ("b" in got))
                sizes.add(len(data))
                pl.command("cut")
                pl.command("restore")                        # what survived is durable now
                self.assertEqual(sorted(os.listdir(d)), got)
                self.assertEqual(h.read_file(os.path.join(d, "log")), data)
        self.assertGreater(len(names), 2, "the seeds kept the same names every time")
        self.assertGreater(len(sizes), 2, "the seeds kept the same bytes every time")

    def test_random_changes_revert_to_the_last_sync(self):
        """Writes, truncates, hole punches and zeroed ranges at random, synced now and then: after
        each cut every file holds exactly its bytes as of its last fsync."""
        rng = random.Random(int(os.environ.get("PECFS_SEED", "0")) or 4242)
        punch_hole, keep_size, zero_range = 0x02, 0x01, 0x10  # linux/falloc.h
        with PowercutLayer() as pl:
            names = ["f%d" % i for i in range(3)]
            for name in names:
                write(os.path.join(pl.mnt, name), b"", sync=True)
            fsync_path(pl.mnt)
            durable = {name: b"" for name in names}
            for cut in range(6):
                live = dict(durable)
                fds = {name: os.open(os.path.join(pl.mnt, name), os.O_RDWR) for name in names}
                for _ in range(150):
                    name = rng.choice(names)
                    fd, cur = fds[name], bytearray(live[name])
                    op = rng.choice(["write", "write", "write", "truncate", "punch", "zero", "sync"])
                    off, n = rng.randrange(0, 96 << 10), rng.randrange(1, 24 << 10)
                    if op == "write":
                        data = rng.randbytes(n)
                        os.pwrite(fd, data, off)
                        cur[len(cur):off] = bytes(max(0, off - len(cur)))
                        cur[off:off + n] = data
                    elif op == "truncate":
                        os.ftruncate(fd, off)
                        cur = cur[:off] + bytes(max(0, off - len(cur)))
                    elif op in ("punch", "zero"):
                        mode = punch_hole | keep_size if op == "punch" else zero_range
                        if h._libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(n)) != 0:
                            self.fail("fallocate(%s): %s" % (op, os.strerror(ctypes.get_errno())))
                        end = min(off + n, len(cur)) if op == "punch" else off + n
                        cur[len(cur):end] = bytes(max(0, end - len(cur)))
                        cur[off:end] = bytes(max(0, end - off))
                    else:
                        os.fsync(fd)
                        durable[name] = bytes(cur)
                    live[name] = bytes(cur)
                    self.assertEqual(os.pread(fd, len(cur) + 1, 0), live[name], "live %s after %s" % (name, op))
                pl.command("cut")
                pl.command("restore")
                for name, fd in fds.items():
                    os.close(fd)
                    self.assertEqual(h.read_file(os.path.join(pl.mnt, name)), durable[name],
                                     "%s after cut %d" % (name, cut))


WRITER = r"""
import os, random, shutil, subprocess, sys, time
sys.path.insert(0, sys.argv[8])
from checkpoint_writer import Writer
pecfs, mnt, data_dir, journal = sys.argv[1:5]
seed, it, pause_at = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
mnt = Writer.open_root(mnt)
if mnt is None:
    sys.exit("not mounted")
rng = random.Random(seed)
w = Writer(pecfs, mnt, journal, rng, random.Random(12345).randbytes(1 << 20))
run = "run%d" % (it % 3)   # a few runs, so tracker files are rewritten across cuts
os.makedirs(os.path.join(mnt, run), exist_ok=True)
sealed = []
print("writing", flush=True)
for vnum in range(1000):
    # Now and then an older version goes, and its chunks with a collection: deletes are cut too.
    # At version pause_at, both happen and the writer waits, for a cut right after a collection.
    if sealed and (rng.random() < 0.15 or vnum == pause_at):
        old = sealed.pop(rng.randrange(len(sealed)))
        shutil.rmtree(os.path.join(mnt, run, old))
        w.record({"removed": "%s/%s" % (run, old)})
    if rng.random() < 0.05 or vnum == pause_at:
        subprocess.run([pecfs, "gc", data_dir], check=True, capture_output=True)
    if vnum == pause_at:
        print("collected", flush=True)
        time.sleep(3600)
    name = "step-%d" % (it * 1000 + vnum)
    if w.version(run, name, ["cli", "xattr", "tracker", "rename", "none"], max_files=4, max_size=1 << 20,
                 write_sizes=[1 << 20, 4096, 100000, 300000]) != "none":
        sealed.append(name)
"""


def restore(pl, rng):
    """Restores the layer after a cut: half the time keeping nothing unsynced (the weakest case),
    else letting a random prefix of each file's and directory's unsynced changes survive."""
    keep = 0.0 if rng.random() < 0.5 else 1.0
    pl.command("restore keep=%d seed=%d" % (keep, rng.randrange(1 << 62)))
    return keep


class PowerCuts(unittest.TestCase):
    def test_power_cuts_keep_every_promise(self):
        seed = int(os.environ.get("PECFS_SEED", random.randrange(1 << 30)))
        cuts = int(os.environ.get("PECFS_POWERCUT_ITERS", "15" if h.SANITIZED else "100"))
        episode = int(os.environ.get("PECFS_POWERCUT_EPISODE", "10"))
        print("\npower-cut seed %d (PECFS_SEED=%d to repeat), %d cuts, %d per data folder"
              % (seed, seed, cuts, episode))
        rng = random.Random(seed)
        start = time.monotonic()
        totals = {}
        promised = [0, 0]
        done = 0
        for index in range((cuts + episode - 1) // episode):
            n = min(episode, cuts - done)
            stats, files, versions = self.episode(rng, seed, index, done, n)
            for k, v in stats.items():
                totals[k] = totals.get(k, 0) + v
            promised[0] += files
            promised[1] += versions
            done += n
        elapsed = time.monotonic() - start
        print("%d cuts in rounds and %d in recoveries in %.1f s; %d fsynced files and %d sealed versions "
              "promised and verified; restores reverted %d files (%d bytes) and %d names, dropped %d files "
              "and directories, let %d names and %d bytes of unsynced changes survive"
              % (cuts, totals["cuts"] - cuts, elapsed, promised[0], promised[1], totals["files_reverted"],
                 totals["bytes_undone"], totals["names_reverted"], totals["nodes_dropped"],
                 totals["names_kept"], totals["bytes_kept"]))
        self.assertGreater(promised[0] + promised[1], 0, "the writers never got a promise out")
        # The cuts must have had something to forget, or they proved nothing.
        self.assertGreater(totals["bytes_undone"], 0, totals)
        self.assertGreater(totals["nodes_dropped"], 0, totals)

    def episode(self, rng, seed, index, first, cuts):
        """cuts power cuts on one fresh data folder (the layer's root, or every other time one that
        pecfs mount creates); returns the layer's counters and the promises checked last."""
        with PowercutLayer() as pl, h.Mount(["--chunk-size", "256K"], data=pl.mnt, mount=False) as m:
            if index % 2:
                m.data = os.path.join(pl.mnt, "new", "data")  # created, and made durable, by pecfs mount
            m.mount()
            journal = os.path.join(m.base, "journal")
            open(journal, "w").close()
            files = versions = 0
            for it in range(first, first + cuts):
                ctx = "cut %d (seed %d)" % (it, seed)
                pid = m.pid()
                # A fifth of the cuts fall right after a collection, the rest at a random instant.
                pause_at = rng.randrange(2, 20) if rng.random() < 0.2 else -1
                writer = subprocess.Popen([sys.executable, "-c", WRITER, h.PECFS_BIN, m.mnt, m.data, journal,
                                           str(rng.randrange(1 << 30)), str(it), str(pause_at), HERE],
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                first_line = writer.stdout.readline()
                if first_line != "writing\n":
                    self.fail("writer did not start, %s: %s%s" % (ctx, first_line, writer.communicate()[0]))
                if pause_at >= 0:
                    line = writer.stdout.readline()
                    if line != "collected\n":
                        self.fail("writer did not pause after a collection, %s: %s%s"
                                  % (ctx, line, writer.communicate()[0]))
                    ctx += ", right after a collection"
                else:
                    delay = rng.choice([rng.uniform(0, 0.05), rng.uniform(0, 0.5), rng.uniform(0, 1.5)])
                    time.sleep(delay * h.SLOW)
                    ctx += ", %.3f s into the round" % delay
                early = writer.poll()
                # the power cut: nothing after this instant reaches the disk; then the daemon dies
                pl.command("cut")
                os.kill(pid, signal.SIGKILL)
                pl.command("down")
                if not h.wait_until(lambda: not h.pid_alive(pid), 30):
                    self.fail("daemon %d survived SIGKILL, %s" % (pid, ctx))
                h.lazy_unmount(m.mnt)
                self.assertTrue(h.wait_until(lambda: not h.is_mounted(m.mnt), 10), ctx)
                if pause_at >= 0:
                    writer.kill()  # it waits for nothing now
                try:
                    out = writer.communicate(timeout=60 * h.SLOW)[0]
                except subprocess.TimeoutExpired:
                    writer.kill()
                    out = writer.communicate()[0]
                if early is not None:
                    self.fail("writer exited (%d) before the cut, %s:\n%s" % (early, ctx, out))
                self.assertNotIn("did not seal", out, ctx)
                ctx += ", restored with keep=%d" % restore(pl, rng)
                if rng.random() < 0.25:
                    ctx += ", cut again during recovery (%s)" % self.cut_during_recovery(pl, m, rng)
                cp = m.fsck()
                self.assertEqual(cp.returncode, 0, "fsck after %s:\n%s%s" % (ctx, cp.stdout, cp.stderr))
                m.mount()
                files, versions = self.verify(m, journal, ctx)
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            return pl.command("stats"), files, versions

    def cut_during_recovery(self, pl, m, rng):
        """Another cut while `pecfs fsck` opens the folder and recovers it, as every mount does."""
        fsck = subprocess.Popen([h.PECFS_BIN, "fsck", m.data], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=h._env())
        delay = rng.uniform(0, 0.1)
        time.sleep(delay * h.SLOW)
        pl.command("cut")
        fsck.send_signal(signal.SIGKILL)
        pl.command("down")
        fsck.wait(timeout=30 * h.SLOW)
        return "%.3f s in, restored with keep=%d" % (delay, restore(pl, rng))

    def verify(self, m, journal, ctx):
        nfiles = nversions = 0
        with open(journal) as f:
            entries = [json.loads(l) for l in f if l.endswith("\n")]
        # Promises about a version end with its removal (which may or may not have been durable).
        removed = {e["removed"] for e in entries if "removed" in e}
        for e in entries:
            what = "%s: %r" % (ctx, e)
            if "removed" in e or "/".join((e.get("fsynced") or e["sealed"]).split("/")[:2]) in removed:
                continue
            if checkpoint_writer.check_promise(self, m, e, "after " + what, h.sha256_file) == "file":
                nfiles += 1
            else:
                nversions += 1
        return nfiles, nversions


if __name__ == "__main__":
    h.main()
