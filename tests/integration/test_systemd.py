# test_systemd.py - pecfs under systemd, with systemd's own protocols and tools: `pecfs mount -f`
# reports READY=1 (with its MAINPID) on $NOTIFY_SOCKET once the mount is up and STOPPING=1 once it
# is unmounted, as a Type=notify unit needs (the test listens on the socket as systemd would); its
# log lines carry "<N>" syslog priorities when stderr is the journal stream ($JOURNAL_STREAM names
# it); and the unit deploy/pecfs@.service.in builds passes `systemd-analyze verify` without a word.
# Also `pecfs ping`, the liveness probe of supervisors (Kubernetes): alive, stuck (SIGSTOP) and gone.
import os
import signal
import time
import socket
import subprocess
import unittest

import pecfs_harness as h


def build_dir():
    # PECFS_BIN is BUILD/fs/cli/pecfs
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(h.PECFS_BIN))))


class Systemd(unittest.TestCase):
    def setUp(self):
        self.m = h.Mount(mount=False)
        self.addCleanup(self.m.cleanup)

    def start_foreground(self, env, stderr):
        m = self.m
        proc = subprocess.Popen([h.PECFS_BIN, "mount", "-f", "--log-level", "debug", m.data, m.mnt],
                                env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def test_notify_ready_once_mounted_and_stopping_once_unmounted(self):
        m = self.m
        path = os.path.join(m.base, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        sock.settimeout(60 * h.SLOW)
        env = h._env()
        env["NOTIFY_SOCKET"] = path
        proc = self.start_foreground(env, subprocess.DEVNULL)
        msg = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
        self.assertEqual(msg.get("READY"), "1", msg)
        self.assertEqual(msg.get("MAINPID"), str(proc.pid))
        self.assertIn(m.mnt, msg.get("STATUS", ""))
        # READY means usable: the mount is there when systemd hears it
        self.assertTrue(h.is_mounted(m.mnt))
        os.makedirs(m.path("run", "v1"))
        h.write_file(m.path("run", "v1", "f"), b"x" * 1000, fsync=True)
        h.cli("umount", m.mnt, check=True)
        msg = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
        self.assertEqual(msg.get("STOPPING"), "1", msg)
        self.assertEqual(proc.wait(timeout=60 * h.SLOW), 0)

    def test_log_lines_carry_priorities_on_the_journal_stream(self):
        m = self.m
        for journal in (True, False):
            log = os.path.join(m.base, "stderr-%d" % journal)
            with open(log, "w") as f:
                env = h._env()
                st = os.fstat(f.fileno())
                env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino if journal else st.st_ino + 1)
                proc = self.start_foreground(env, f)
                self.assertTrue(h.wait_until(lambda: h.is_mounted(m.mnt), 60))
                h.cli("umount", m.mnt, check=True)
                self.assertEqual(proc.wait(timeout=60 * h.SLOW), 0)
            with open(log) as f:
                lines = [l for l in f.read().splitlines() if "pecfs: info: serving" in l]
            self.assertEqual(len(lines), 1, lines)
            if journal:
                self.assertTrue(lines[0].startswith("<6>pecfs: info: serving"), lines[0])
            else:
                self.assertTrue(lines[0].startswith("pecfs: info: serving"), lines[0])

    def test_the_unit_passes_systemd_analyze_verify(self):
        with open(os.path.join(build_dir(), "deploy", "pecfs@.service")) as f:
            unit = f.read()
        self.assertIn("Type=notify", unit)
        installed = [l.split("=", 1)[1].split()[0].lstrip("-") for l in unit.splitlines()
                     if l.startswith(("ExecStart=", "ExecStop=", "ExecStartPre=-"))]
        self.assertTrue(installed and all(p.endswith("/bin/pecfs") for p in installed), installed)
        # verify checks that every command is executable: point them at the built binary
        for p in set(installed):
            unit = unit.replace(p, os.path.abspath(h.PECFS_BIN))
        d = os.path.join(self.m.base, "units")
        os.makedirs(d)
        with open(os.path.join(d, "pecfs@.service"), "w") as f:
            f.write(unit)
        os.symlink("pecfs@.service", os.path.join(d, "pecfs@mnt-ckpt.service"))
        cp = subprocess.run(["systemd-analyze", "verify", os.path.join(d, "pecfs@mnt-ckpt.service")],
                            capture_output=True, text=True, timeout=120)
        self.assertEqual((cp.returncode, cp.stdout, cp.stderr), (0, "", ""))


class Ping(unittest.TestCase):
    def test_ping_tells_alive_from_stuck_and_gone(self):
        with h.Mount() as m:
            cp = h.cli("ping", m.data)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertIn("alive, pid %d" % m.pid(), cp.stdout)
            # a fsck on the control socket and pings at the same time: every ping answered
            os.makedirs(m.path("run", "v1"))
            for i in range(20):
                h.write_file(m.path("run", "v1", "f%d" % i), h.random_bytes(300000, seed=i))
            fsck = subprocess.Popen([h.PECFS_BIN, "fsck", m.data], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=h._env())
            for _ in range(5):
                self.assertEqual(h.cli("ping", "--timeout", "5s", m.data).returncode, 0)
            self.assertEqual(fsck.wait(timeout=120 * h.SLOW), 0)
            # stuck: the process exists but does not answer
            pid = m.pid()
            os.kill(pid, signal.SIGSTOP)
            try:
                t0 = time.monotonic()
                cp = h.cli("ping", "--timeout=1s", m.data)
                self.assertEqual(cp.returncode, 1)
                self.assertIn("did not answer", cp.stderr)
                self.assertLess(time.monotonic() - t0, 10 * h.SLOW)
            finally:
                os.kill(pid, signal.SIGCONT)
            self.assertEqual(h.cli("ping", m.data).returncode, 0)
            for bad in (["--timeout", "0s", m.data], ["--timeout", "5x", m.data], [], ["--bogus", m.data]):
                self.assertEqual(h.cli("ping", *bad).returncode, 2, bad)
            m.umount()
            cp = h.cli("ping", m.data)
            self.assertEqual(cp.returncode, 1)
            self.assertIn("no daemon", cp.stderr)


if __name__ == "__main__":
    h.main()
