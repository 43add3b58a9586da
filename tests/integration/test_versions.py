# test_versions.py - the version lifecycle seen through the mount: each seal trigger (pecfs seal, the
# user.pec.seal xattr, DeepSpeed's and Megatron's tracker files, renaming a temporary directory into
# place), EROFS for every kind of change after sealing, rm -r of a sealed version, the damaged state,
# RUN/.pec/versions and RUN/.pec/latest, ordering by step, and states kept across a remount.
import errno
import json
import mmap
import os
import shutil
import statistics
import subprocess
import threading
import time
import unittest

import pecfs_harness as h

MiB = 1 << 20


def make_version(m, run, name, nfiles=3, size=300000, seed=0):
    """Creates RUN/NAME with nfiles files; returns {relative path: bytes}."""
    d = m.path(run, name)
    os.makedirs(os.path.join(d, "sub"))
    files = {}
    for i in range(nfiles):
        rel = "file%d.bin" % i if i % 2 == 0 else "sub/file%d.bin" % i
        files[rel] = h.random_bytes(size + i, hash((run, name, seed, i)) & 0xffffffff)
        h.write_file(os.path.join(d, rel), files[rel])
    return files


def check_version(tc, m, run, name, files):
    d = m.path(run, name)
    for rel, data in files.items():
        tc.assertEqual(h.read_file(os.path.join(d, rel)), data, "%s/%s/%s" % (run, name, rel))


class Versions(unittest.TestCase):
    def setUp(self):
        self.m = h.Mount(["--chunk-size", "1M"])

    def tearDown(self):
        self.m.cleanup()

    def state(self, run, name):
        return self.m.version_state(run, name)

    def wait_state(self, run, name, want, timeout=5):
        h.wait_until(lambda: self.state(run, name) == want, timeout)
        self.assertEqual(self.state(run, name), want, "%s/%s" % (run, name))

    def test_seal_with_cli(self):
        m = self.m
        files = make_version(m, "run", "v1")
        self.assertEqual(self.state("run", "v1"), "open")
        self.assertEqual(os.getxattr(m.path("run", "v1", "file0.bin"), "user.pec.state").rstrip(b"\0\n"),
                         b"open")
        cp = h.cli("seal", m.path("run", "v1"))
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(self.state("run", "v1"), "sealed")
        self.assertEqual(os.getxattr(m.path("run", "v1", "file0.bin"), "user.pec.state").rstrip(b"\0\n"),
                         b"sealed")
        check_version(self, m, "run", "v1", files)
        self.assertEqual(os.readlink(m.path("run", ".pec", "latest")), "../v1")
        self.assertEqual(h.read_file(m.path("run", ".pec", "latest", "file0.bin")), files["file0.bin"])

    def test_seal_with_xattr(self):
        m = self.m
        files = make_version(m, "run", "v1")
        os.setxattr(m.path("run", "v1"), "user.pec.seal", b"1")
        self.assertEqual(self.state("run", "v1"), "sealed")
        check_version(self, m, "run", "v1", files)

    def test_seal_on_deepspeed_latest(self):
        m = self.m
        files = make_version(m, "ds", "global_step200")
        make_version(m, "ds", "global_step300")
        with open(m.path("ds", "latest"), "w") as f:
            f.write("global_step200")
        self.wait_state("ds", "global_step200", "sealed")
        self.assertEqual(self.state("ds", "global_step300"), "open")
        self.assertEqual(h.read_file(m.path("ds", "latest")), b"global_step200")  # an ordinary file
        check_version(self, m, "ds", "global_step200", files)
        v = {x["name"]: x for x in m.versions("ds")["versions"]}
        self.assertEqual(v["global_step200"]["step"], 200)
        self.assertEqual(v["global_step300"]["step"], 300)
        # the tracker moves on: the next version it names is sealed too
        with open(m.path("ds", "latest"), "w") as f:
            f.write("global_step300\n")
        self.wait_state("ds", "global_step300", "sealed")
        self.assertEqual(os.readlink(m.path("ds", ".pec", "latest")), "../global_step300")

    def test_seal_on_megatron_tracker(self):
        m = self.m
        files = make_version(m, "mg", "iter_0000200")
        make_version(m, "mg", "iter_0000100")
        with open(m.path("mg", "latest_checkpointed_iteration.txt"), "w") as f:
            f.write("200")
        self.wait_state("mg", "iter_0000200", "sealed")
        self.assertEqual(self.state("mg", "iter_0000100"), "open")
        check_version(self, m, "mg", "iter_0000200", files)
        v = {x["name"]: x for x in m.versions("mg")["versions"]}
        self.assertEqual(v["iter_0000200"]["step"], 200)

    def test_seal_on_rename_into_place(self):
        m = self.m
        files = make_version(m, "hf", "step-100.tmp")
        self.assertEqual(self.state("hf", "step-100.tmp"), "open")
        os.rename(m.path("hf", "step-100.tmp"), m.path("hf", "step-100"))
        self.assertEqual(self.state("hf", "step-100"), "sealed")
        self.assertIsNone(self.state("hf", "step-100.tmp"))
        check_version(self, m, "hf", "step-100", files)
        self.assertEqual(os.readlink(m.path("hf", ".pec", "latest")), "../step-100")

    def test_seal_makes_the_records_of_files_still_open_durable(self):
        """A seal writes back the records of its files that changed since they were last written
        (here a file still open, never closed or synced): a crash right after loses nothing."""
        m = self.m
        os.makedirs(m.path("run", "v1"))
        data = h.random_bytes(3 * MiB + 5, 12)
        fd = os.open(m.path("run", "v1", "open.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            h.write_file(m.path("run", "v1", "closed.bin"), b"closed")
            time.sleep(0.05)
            os.write(fd, b"tail")  # a write after the file was created, so its mtime moved on
            data += b"tail"
            mtime = os.fstat(fd).st_mtime_ns
            # Sealed from this process: a child would close its copy of fd at exec, and that close
            # (a FUSE flush) would write the record before the seal does.
            os.setxattr(m.path("run", "v1"), "user.pec.seal", b"1")
            m.kill9()
        finally:
            try:
                os.close(fd)
            except OSError:
                pass  # the daemon is gone
        m.mount()
        self.assertEqual(self.state("run", "v1"), "sealed")
        st = os.stat(m.path("run", "v1", "open.bin"))
        self.assertEqual(st.st_size, len(data))
        self.assertEqual(st.st_mtime_ns, mtime)
        self.assertEqual(h.read_file(m.path("run", "v1", "open.bin")), data)
        self.assertEqual(h.read_file(m.path("run", "v1", "closed.bin")), b"closed")

    def test_sealed_version_rejects_changes(self):
        m = self.m
        files = make_version(m, "run", "v1")
        os.makedirs(m.path("run", "v2"))
        h.write_file(m.path("run", "v2", "outside"), b"o")
        h.cli("seal", m.path("run", "v1"), check=True)
        d = m.path("run", "v1")
        f0 = os.path.join(d, "file0.bin")
        cases = {
            "open for write": lambda: os.open(f0, os.O_WRONLY),
            "open for append": lambda: os.open(f0, os.O_WRONLY | os.O_APPEND),
            "open O_TRUNC": lambda: os.open(f0, os.O_RDWR | os.O_TRUNC),
            "create": lambda: os.open(os.path.join(d, "new"), os.O_WRONLY | os.O_CREAT, 0o644),
            "create in subdir": lambda: open(os.path.join(d, "sub", "new"), "wb"),
            "truncate": lambda: os.truncate(f0, 10),
            "mkdir": lambda: os.mkdir(os.path.join(d, "newdir")),
            "symlink": lambda: os.symlink("file0.bin", os.path.join(d, "ln")),
            "rename inside": lambda: os.rename(f0, os.path.join(d, "renamed")),
            "rename out": lambda: os.rename(f0, m.path("run", "v2", "stolen")),
            "rename in": lambda: os.rename(m.path("run", "v2", "outside"), os.path.join(d, "outside")),
            "rename over": lambda: os.rename(m.path("run", "v2", "outside"), f0),
            "chmod": lambda: os.chmod(f0, 0o600),
            "chmod dir": lambda: os.chmod(d, 0o700),
            "chown": lambda: os.chown(f0, 1, 1),
            "utime": lambda: os.utime(f0, (1, 1)),
        }
        for what, fn in cases.items():
            with self.subTest(what):
                self.assertEqual(h.errname(h.errno_of(fn)), "EROFS")
        check_version(self, m, "run", "v1", files)
        self.assertEqual(sorted(os.listdir(d)), ["file0.bin", "file2.bin", "sub"])
        self.assertEqual(self.state("run", "v1"), "sealed")
        # (access(W_OK) is answered by the kernel from the mode bits under default_permissions, and
        # sealed files keep their write bits so that `rm -r` does not prompt: not checked here)
        self.assertTrue(os.access(f0, os.R_OK))
        # reading and mmap-style read-only opens still work
        with open(f0, "rb") as f:
            self.assertEqual(f.read(), files["file0.bin"])

    def test_rm_r_of_sealed_version(self):
        m = self.m
        make_version(m, "run", "v1")
        h.cli("seal", m.path("run", "v1"), check=True)
        shutil.rmtree(m.path("run", "v1"))
        self.assertFalse(os.path.exists(m.path("run", "v1")))
        self.assertIsNone(self.state("run", "v1"))
        self.assertEqual(os.listdir(m.path("run")), [])

    def test_unlink_in_sealed_version_marks_it_damaged(self):
        m = self.m
        f1 = make_version(m, "run", "step-100")
        make_version(m, "run", "step-200")
        h.cli("seal", m.path("run", "step-100"), check=True)
        h.cli("seal", m.path("run", "step-200"), check=True)
        self.assertEqual(os.readlink(m.path("run", ".pec", "latest")), "../step-200")
        os.unlink(m.path("run", "step-200", "file0.bin"))
        self.assertEqual(self.state("run", "step-200"), "damaged")
        self.assertEqual(os.readlink(m.path("run", ".pec", "latest")), "../step-100")
        self.assertEqual(m.versions("run")["latest"], "step-100")
        # still read-only
        self.assertEqual(h.errno_of(open, m.path("run", "step-200", "file0.bin"), "wb"), errno.EROFS)
        check_version(self, m, "run", "step-100", f1)
        m.remount()
        self.assertEqual(self.state("run", "step-200"), "damaged")
        self.assertEqual(os.readlink(m.path("run", ".pec", "latest")), "../step-100")

    def test_versions_file_and_ordering_by_step(self):
        m = self.m
        sizes = {}
        for name in ("step-300", "step-100", "step-200", "notes"):
            files = make_version(m, "run", name, nfiles=4, size=200000)
            sizes[name] = sum(len(b) for b in files.values())
        self.assertFalse(os.path.exists(m.path("run", ".pec", "latest")))  # nothing sealed yet
        h.cli("seal", m.path("run", "step-300"), check=True)
        h.cli("seal", m.path("run", "step-100"), check=True)
        doc = m.versions("run")
        self.assertEqual(doc["run"], "run")
        self.assertEqual(doc["latest"], "step-300")  # newest by step, not by the time it was sealed
        self.assertEqual(os.readlink(m.path("run", ".pec", "latest")), "../step-300")
        vs = {v["name"]: v for v in doc["versions"]}
        self.assertEqual(set(vs), {"step-100", "step-200", "step-300", "notes"})
        for name, v in vs.items():
            self.assertEqual(v["files"], 4, name)
            self.assertEqual(v["logical_bytes"], sizes[name], name)
            self.assertLessEqual(v["stored_bytes"], v["logical_bytes"] + 4 * 4096, name)
            self.assertGreater(v["stored_bytes"], 0, name)
        self.assertEqual(vs["step-100"]["state"], "sealed")
        self.assertEqual(vs["step-200"]["state"], "open")
        self.assertEqual(vs["step-300"]["state"], "sealed")
        self.assertEqual(vs["step-200"]["step"], 200)
        stepped = sorted((v for v in doc["versions"] if v["name"].startswith("step-")), key=lambda v: v["order"])
        self.assertEqual([v["name"] for v in stepped], ["step-100", "step-200", "step-300"])
        # tools see the virtual files as ordinary read-only files
        self.assertEqual(json.loads(h.read_file(m.path("run", ".pec", "versions")))["run"], "run")
        self.assertNotEqual(h.errno_of(open, m.path("run", ".pec", "versions"), "wb"), 0)

    def test_open_version_figures_are_read_without_a_walk(self):
        # RUN/.pec/versions shows an open version's figures from counters every commit keeps: reading
        # them must not walk the version's files (seconds for 100k) nor stall the mount meanwhile
        # (a walk under the namespace lock made every create wait for it).
        m = self.m
        d = m.path("run", "big")
        os.makedirs(d)
        for i in range(6000):
            with open(os.path.join(d, "f%05d" % i), "wb") as f:
                f.write(b"x")
        walks, stop = [], threading.Event()

        def reader():
            while not stop.is_set():
                t0 = time.monotonic()
                m.versions("run")
                walks.append(time.monotonic() - t0)
        th = threading.Thread(target=reader)
        th.start()
        try:
            h.wait_until(lambda: len(walks) >= 1, 30)
            creates = []
            deadline = time.monotonic() + 3
            i = 0
            while time.monotonic() < deadline or len(creates) < 20:
                t0 = time.monotonic()
                with open(os.path.join(d, "g%05d" % i), "wb") as f:
                    f.write(b"y")
                creates.append(time.monotonic() - t0)
                i += 1
        finally:
            stop.set()
            th.join()
        read, create = statistics.median(walks), statistics.median(creates)
        # A walk of these 6000 files takes about 100 ms here, and a create waiting for it as long.
        self.assertLess(read, 0.030, "reading the figures took %.1f ms: a walk?" % (read * 1000))
        self.assertLess(create, 0.010, "a create waited: median %.1f ms" % (create * 1000))
        doc = m.versions("run")
        self.assertEqual({v["name"]: v["files"] for v in doc["versions"]}["big"], 6000 + len(creates))

    def figures(self, run):
        return {v["name"]: (v["files"], v["logical_bytes"], v["stored_bytes"])
                for v in self.m.versions(run)["versions"]}

    def test_open_figures_are_kept_by_every_change(self):
        # An open version's figures come from counters every commit keeps; the seal counts them
        # again by walking the files. After any mix of changes the two must agree.
        m = self.m
        a, b = m.path("run", "a"), m.path("run", "b")
        os.makedirs(os.path.join(a, "sub"))
        os.makedirs(b)
        blob = os.urandom(3 << 20)
        h.write_file(os.path.join(a, "one"), blob)
        h.write_file(os.path.join(a, "sub", "same"), blob)          # the same chunks again
        h.write_file(os.path.join(a, "small"), os.urandom(5000))
        os.link(os.path.join(a, "small"), os.path.join(a, "sub", "small-link"))
        h.write_file(os.path.join(a, "moved"), os.urandom(2 << 20))
        os.rename(os.path.join(a, "moved"), os.path.join(b, "moved"))  # takes its chunks along
        with open(os.path.join(a, "one"), "r+b") as f:                 # overwrite inside a chunk
            f.seek(1500000)
            f.write(b"z" * 70000)
        os.truncate(os.path.join(a, "sub", "same"), 1 << 20)           # drop chunks
        os.truncate(os.path.join(a, "small"), 9000)                    # extend: a hole
        h.write_file(os.path.join(a, "punched"), os.urandom(3 << 20))
        subprocess.run(["fallocate", "--punch-hole", "--offset", str(1 << 20), "--length", str(1 << 20),
                        os.path.join(a, "punched")], check=True)
        fd = os.open(os.path.join(a, "gone-while-open"), os.O_RDWR | os.O_CREAT, 0o644)
        os.write(fd, os.urandom(1 << 20))
        os.fsync(fd)
        os.unlink(os.path.join(a, "gone-while-open"))
        os.close(fd)
        h.write_file(os.path.join(b, "gone"), os.urandom(100))
        os.unlink(os.path.join(b, "gone"))
        h.write_file(os.path.join(m.path("run"), "outside"), os.urandom(1000))  # in no version
        os.rename(os.path.join(m.path("run"), "outside"), os.path.join(b, "inside"))
        live = self.figures("run")
        self.assertEqual(live["a"][0], 5)  # one, sub/same, small, sub/small-link, punched
        m.remount()
        self.assertEqual(self.figures("run"), live, "the figures a new mount counts from the files")
        h.write_file(os.path.join(b, "after-remount"), os.urandom(4000))
        live = self.figures("run")
        m.remount()
        self.assertEqual(self.figures("run"), live, "figures kept since the last walk, against a new walk")
        for name in ("a", "b"):
            h.cli("seal", m.path("run", name), check=True)
        self.assertEqual(self.figures("run"), live, "the seal records the figures the version had")

    def test_seal_does_not_count_a_file_unlinked_while_open(self):
        # An open version's counters keep the chunks of a file unlinked while still open (they are
        # stored until it is freed); the sealed version does not hold it, and its figures say so.
        m = self.m
        os.makedirs(m.path("run", "v1"))
        h.write_file(m.path("run", "v1", "kept"), h.random_bytes(MiB + 7, 21))
        before = self.figures("run")["v1"]
        fd = os.open(m.path("run", "v1", "gone"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.write(fd, h.random_bytes(2 * MiB, 22))
            os.fsync(fd)
            os.unlink(m.path("run", "v1", "gone"))
            self.assertGreater(self.figures("run")["v1"][2], before[2], "the open file's chunks count while open")
            os.setxattr(m.path("run", "v1"), "user.pec.seal", b"1")  # from this process: fd stays open
            self.assertEqual(self.state("run", "v1"), "sealed")
            self.assertEqual(self.figures("run")["v1"], before)
        finally:
            os.close(fd)
        self.assertEqual(self.figures("run")["v1"], before)
        self.assertEqual((before[0], before[1]), (1, MiB + 7))

    def test_states_survive_remount(self):
        m = self.m
        f1 = make_version(m, "run", "step-1")
        f2 = make_version(m, "run", "step-2")
        make_version(m, "run", "step-3")
        h.cli("seal", m.path("run", "step-1"), check=True)
        h.cli("seal", m.path("run", "step-2"), check=True)
        os.unlink(m.path("run", "step-2", "file2.bin"))
        del f2["file2.bin"]
        before = {v["name"]: (v["state"], v["step"], v["files"], v["logical_bytes"])
                  for v in m.versions("run")["versions"]}
        m.remount()
        after = {v["name"]: (v["state"], v["step"], v["files"], v["logical_bytes"])
                 for v in m.versions("run")["versions"]}
        self.assertEqual(before, after)
        self.assertEqual(after["step-1"][0], "sealed")
        self.assertEqual(after["step-2"][0], "damaged")
        self.assertEqual(after["step-3"][0], "open")
        self.assertEqual(h.errno_of(open, m.path("run", "step-1", "new"), "wb"), errno.EROFS)
        h.write_file(m.path("run", "step-3", "more"), b"still open")
        check_version(self, m, "run", "step-1", f1)
        check_version(self, m, "run", "step-2", f2)
        self.assertEqual(os.readlink(m.path("run", ".pec", "latest")), "../step-1")
        m.umount()
        cp = m.fsck()
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def test_seal_on_next_version_when_enabled(self):
        m = self.m
        m.remount(["--seal-on-next-version"])
        f1 = make_version(m, "nv", "step-1")
        self.assertEqual(self.state("nv", "step-1"), "open")  # a new version without files yet
        os.makedirs(m.path("nv", "step-2"))
        h.write_file(m.path("nv", "step-2", "first"), b"first file of the next version")
        self.wait_state("nv", "step-1", "sealed")
        self.assertEqual(self.state("nv", "step-2"), "open")
        check_version(self, m, "nv", "step-1", f1)
        # a version with a file still open for writing is not sealed under the writer
        fd = os.open(m.path("nv", "step-2", "held"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"partial")
            os.makedirs(m.path("nv", "step-3"))
            h.write_file(m.path("nv", "step-3", "x"), b"x")
            self.assertEqual(self.state("nv", "step-2"), "open")
            os.write(fd, b" and the rest")
        finally:
            os.close(fd)
        self.assertEqual(h.read_file(m.path("nv", "step-2", "held")), b"partial and the rest")

    def test_seal_on_next_version_waits_for_files_closed_meanwhile(self):
        """close() returns before the kernel's release of the file reaches the daemon: the first create
        of the next version waits a moment for it instead of passing over the version."""
        m = self.m
        m.remount(["--seal-on-next-version"])
        f1 = make_version(m, "nv", "step-1")
        fd = os.open(m.path("nv", "step-1", "late"), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"written while the next version starts")
        os.makedirs(m.path("nv", "step-2"))
        done = []
        t = threading.Thread(target=lambda: done.append(
            h.write_file(m.path("nv", "step-2", "first"), b"first")))
        t.start()
        time.sleep(0.3)  # the create is waiting: the window a release in flight falls into
        os.close(fd)
        t.join(10)
        self.assertEqual(len(done), 1, "the create did not return")
        self.assertEqual(self.state("nv", "step-1"), "sealed")
        f1["late"] = b"written while the next version starts"
        check_version(self, m, "nv", "step-1", f1)
        # a version held longer is passed over after the wait, and the create goes on
        fd = os.open(m.path("nv", "step-2", "held"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.makedirs(m.path("nv", "step-3"))
            t0 = time.monotonic()
            h.write_file(m.path("nv", "step-3", "x"), b"x")
            waited = time.monotonic() - t0
            self.assertEqual(self.state("nv", "step-2"), "open")
        finally:
            os.close(fd)
        self.assertGreater(waited, 0.5)
        self.assertLess(waited, 5)

    def test_status_command(self):
        m = self.m
        make_version(m, "run", "v1")
        h.cli("seal", m.path("run", "v1"), check=True)
        cp = h.cli("status", m.mnt)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("v1", cp.stdout)
        cp = h.cli("status", m.path("run"), "--json")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        doc = json.loads(cp.stdout)
        self.assertIn("v1", json.dumps(doc))


class SealGate(unittest.TestCase):
    FILES = 40000

    def test_writes_to_another_version_go_on_during_a_seal(self):
        """A seal closes the write gate of its own version only: a writer of the next version is not
        held for the length of the seal (tens of thousands of files here)."""
        with h.Mount() as m:
            d = m.path("run", "step-1")
            os.makedirs(d)
            for i in range(self.FILES):
                os.close(os.open(os.path.join(d, "f%05d" % i), os.O_WRONLY | os.O_CREAT, 0o644))
            # A file of step-1 unlinked while open makes the seal count by walking its files
            # (version_count.c), which takes long enough at this size to show a held writer.
            held = os.open(os.path.join(d, "unlinked"), os.O_WRONLY | os.O_CREAT, 0o644)
            os.unlink(os.path.join(d, "unlinked"))
            os.makedirs(m.path("run", "step-2"))
            p = m.path("run", "step-2", "w.bin")
            block = mmap.mmap(-1, MiB)  # page-aligned, as direct-I/O writes want
            block.write(h.random_bytes(MiB, 7))
            done = {}

            def seal():
                t0 = time.monotonic()
                done["cp"] = h.cli("seal", d)
                done["span"] = (t0, time.monotonic())

            writes = []
            fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
            th = threading.Thread(target=seal)
            try:
                th.start()
                while th.is_alive():
                    t = time.monotonic()
                    os.pwrite(fd, block, len(writes) * MiB)
                    writes.append((t, time.monotonic()))
                th.join()
                os.fsync(fd)
            finally:
                os.close(fd)
                os.close(held)
            cp = done["cp"]
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            t0, t1 = done["span"]
            span = t1 - t0
            self.assertGreater(span, 0.08, "a seal this quick cannot show a held writer")
            overlapping = [b - a for a, b in writes if b >= t0 and a <= t1]
            self.assertGreater(len(overlapping), 3)
            self.assertLess(max(overlapping), span / 2,
                            "a write to step-2 waited %.3f s of a %.3f s seal of step-1" % (max(overlapping), span))
            self.assertEqual(m.version_state("run", "step-1"), "sealed")
            self.assertEqual(m.version_state("run", "step-2"), "open")
            self.assertEqual(h.read_file(p), bytes(block) * len(writes))

    def test_removing_a_version_while_its_file_is_written(self):
        """rm -r of an open version whose file a writer still holds open and writes: a write inside
        the version's gate when its directory goes finds no version at its end, and goes on."""
        with h.Mount() as m:
            block = mmap.mmap(-1, MiB)
            block.write(h.random_bytes(MiB, 8))
            for round_ in range(30):
                d = m.path("run", "step-%d" % round_)
                os.makedirs(d)
                p = os.path.join(d, "w.bin")
                fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o644)
                written, errors, stop = [0], [], threading.Event()

                def writer():
                    try:
                        while not stop.is_set():
                            os.pwrite(fd, block, (written[0] % 16) * MiB)
                            written[0] += 1
                    except OSError as e:
                        errors.append(e)

                th = threading.Thread(target=writer)
                try:
                    th.start()
                    h.wait_until(lambda: written[0] >= 3, 30)
                    os.unlink(p)
                    os.rmdir(d)
                    n = written[0]
                    h.wait_until(lambda: written[0] >= n + 3, 30)
                finally:
                    stop.set()
                    th.join()
                    os.close(fd)
                self.assertEqual(errors, [], "round %d" % round_)
                self.assertFalse(os.path.exists(d))
            os.makedirs(m.path("run", "step-0"))  # the mount still serves, and the name can be used again
            h.write_file(m.path("run", "step-0", "x"), b"again")
            self.assertEqual(h.read_file(m.path("run", "step-0", "x")), b"again")

if __name__ == "__main__":
    h.main()
