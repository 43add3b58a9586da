# test_cli.py - the command line as a user meets it: one parser everywhere (--opt value, --opt=value,
# options after the arguments, -- before a path that starts with '-', the same refusal of a bad
# number or duration in every command), --json of fsck and gc (local, mounted or not), and the
# daemon's log as JSON objects (log-format json) with one line per seal and per request at debug.
import json
import os
import subprocess
import unittest

import pecfs_harness as h


class Cli(unittest.TestCase):
    def test_one_parser_for_every_command(self):
        with h.Mount() as m:
            os.makedirs(m.path("run", "v1"))
            h.write_file(m.path("run", "v1", "f"), b"x" * 5000)
            # options after the paths, and --opt=value
            cp = h.cli("status", m.mnt, "--json")
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertEqual(json.loads(cp.stdout)["mounts"][0]["mountpoint"], m.mnt)
            cp = h.cli("ping", m.data, "--timeout=3s")
            self.assertEqual(cp.returncode, 0, cp.stderr)
            cp = h.cli("seal", m.path("run", "v1"), "--wait-upload", "--timeout", "10s")
            self.assertEqual(cp.returncode, 0, cp.stderr)
            # a path that starts with '-' after --
            os.makedirs(m.path("run", "-v2"))
            cp = h.cli("pin", "--", m.path("run", "-v2"))
            self.assertEqual(cp.returncode, 0, cp.stderr)
        # one refusal for a bad number or duration, whichever command
        bad = [
            ("restore", "--threads", "8x", "--s3", "s3://b/p", "r", "/tmp/x"),
            ("restore", "--threads=0", "--s3", "s3://b/p", "r", "/tmp/x"),
            ("gc", "--remote", "--keep", "-1", "--s3", "s3://b/p"),
            ("gc", "--remote", "--grace", "2y", "--s3", "s3://b/p"),
            ("fsck", "--remote", "--jobs", "65", "--s3", "s3://b/p"),
            ("mount", "--hash-threads", "8x", "/tmp/a", "/tmp/b"),
            ("mount", "--allow-other=maybe", "/tmp/a", "/tmp/b"),
            ("seal", "--wait-upload", "--timeout", "5x", "/tmp"),
            ("ping", "--timeout", "0s", "/tmp"),
        ]
        for args in bad:
            cp = h.cli(*args)
            self.assertEqual(cp.returncode, 2, args)
            self.assertRegex(cp.stderr, r"^pecfs: \S+: '[^']*' is not ", args)
        for args, words in [(("status", "--bogus"), "unknown option --bogus"),
                            (("gc", "--remote", "--keep"), "needs a value"),
                            (("umount",), "missing MOUNTPOINT"),
                            (("fsck", "a", "b"), "unexpected argument 'b'")]:
            cp = h.cli(*args)
            self.assertEqual(cp.returncode, 2, args)
            self.assertIn(words, cp.stderr, args)

    def test_fsck_and_gc_json_mounted_and_not(self):
        with h.Mount() as m:
            os.makedirs(m.path("run", "v1"))
            for i in range(3):
                h.write_file(m.path("run", "v1", "f%d" % i), h.random_bytes(100000 + i, seed=i), fsync=True)
            os.unlink(m.path("run", "v1", "f2"))
            for mounted in (True, False):
                cp = h.cli("fsck", "--json", m.data)
                self.assertEqual(cp.returncode, 0, cp.stderr)
                (line,) = cp.stdout.splitlines()
                r = json.loads(line)
                self.assertEqual((r["check"], r["problems"], r["report"]), ("local", 0, []))
                self.assertEqual(r["data_dir"], os.path.realpath(m.data))
                self.assertGreaterEqual(r["inodes"], 5)
                cp = h.cli("gc", m.data, "--json")
                self.assertEqual(cp.returncode, 0, cp.stderr)
                g = json.loads(cp.stdout)
                # the unlinked file's chunk goes with the first gc, nothing with the second
                self.assertEqual(g["chunks_removed"], 1 if mounted else 0)
                self.assertEqual(g["bytes_removed"], 100002 if mounted else 0)
                self.assertEqual(g["chunks_kept"], 2)
                if mounted:
                    m.umount()
            # a damaged chunk is a problem in the JSON too, with its finding
            chunk = sorted(h.chunk_files(m.data).values())[0]
            os.chmod(chunk, 0o600)
            with open(chunk, "r+b") as f:
                f.seek(5000)
                f.write(b"\xff" * 8)
            cp = h.cli("fsck", "--json", m.data)
            self.assertEqual(cp.returncode, 1)
            r = json.loads(cp.stdout)
            self.assertEqual(r["corrupt_chunks"], 1)
            self.assertEqual(len(r["report"]), 1)
            self.assertIn("corrupt", r["report"][0])

    def test_fsck_and_gc_show_progress_on_a_terminal_mounted_or_not(self):
        with h.Mount(["--chunk-size", "1M"]) as m:
            os.makedirs(m.path("run", "v1"))
            h.write_file(m.path("run", "v1", "f"), h.random_bytes(24 << 20, seed=9), fsync=True)
            for mounted in (True, False):
                rc, out, bar = h.on_a_terminal([h.PECFS_BIN, "fsck", "--json", m.data], 300)
                self.assertEqual(rc, 0, bar)
                self.assertEqual(json.loads(out)["problems"], 0)  # stdout stays JSON
                self.assertIn("verifying [", bar)
                self.assertIn("100.0% 24/24 MiB", bar)
                self.assertRegex(bar, r"MiB/s")
                if mounted:
                    m.umount()
            # gc on a terminal: the unreferenced chunks removed
            m.mount()
            os.unlink(m.path("run", "v1", "f"))
            m.umount()
            rc, out, bar = h.on_a_terminal([h.PECFS_BIN, "gc", m.data], 300)
            self.assertEqual(rc, 0, bar)
            self.assertIn("removing [", bar)
            self.assertIn("100.0% 24/24 chunks", bar)
            self.assertIn("removed 24 unreferenced chunks", out.decode())
            # not on a terminal: no bar, not even on stderr
            cp = h.cli("fsck", m.data)
            self.assertEqual(cp.returncode, 0)
            self.assertNotIn("verifying", cp.stderr + cp.stdout)

    def test_log_format_json_with_a_line_per_seal(self):
        m = h.Mount(mount=False)
        self.addCleanup(m.cleanup)
        log = os.path.join(m.base, "stderr")
        with open(log, "w") as f:
            proc = subprocess.Popen([h.PECFS_BIN, "mount", "-f", "--log-format", "json", "--log-level=debug",
                                     m.data, m.mnt], stdout=subprocess.DEVNULL, stderr=f, env=h._env())
            self.assertTrue(h.wait_until(lambda: h.is_mounted(m.mnt), 60))
            os.makedirs(m.path("run", "v1"))
            h.write_file(m.path("run", "v1", "f"), b'he said "hi"\n' * 10)
            self.assertEqual(h.cli("seal", m.path("run", "v1")).returncode, 0)
            h.cli("umount", m.mnt, check=True)
            self.assertEqual(proc.wait(timeout=60 * h.SLOW), 0)
        with open(log) as f:
            objs = [json.loads(line) for line in f if line.startswith("{")]
        self.assertTrue(objs)
        for o in objs:
            self.assertEqual(sorted(o), ["level", "msg", "pid", "time"])
            self.assertEqual(o["pid"], proc.pid)
            self.assertRegex(o["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        seals = [o for o in objs if o["msg"].startswith("sealed v1")]
        self.assertEqual(len(seals), 1)
        self.assertEqual(seals[0]["level"], "info")
        self.assertEqual(h.cli("mount", "--log-format", "xml", m.data, m.mnt).returncode, 2)


if __name__ == "__main__":
    h.main()
