# test_s3_nodes.py - several nodes uploading parts of the same versions with --s3-nodes, on real mounts
# against a real Ceph RGW (s3_fixture.py): the COMMIT barrier when a node waiting for the others is
# restarted or killed, when a bucket collection runs meanwhile, and when retention wants to retire a
# version that is not committed yet; and parts left by an earlier launch of the job that died before
# the version was committed, which the barrier of the next launch (another user.pec.job) must not
# count, on other node ids or on the same ones. tests/bench/bench_nodes.py runs the same protocol with
# 16 nodes.
import errno
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import BUCKET, MIB, RgwTestCase  # noqa: E402


class S3NodesTest(RgwTestCase):
    def nodes(self, prefix, names, n=2, *extra):
        return [self.mount(prefix, "--node-id", name, "--s3-nodes", str(n), *extra) for name in names]

    def restore_files(self, prefix, what):
        """{path: bytes} of every file a restore of what gives."""
        dest = os.path.join(self.scratch, "restore-%s-%d" % (prefix, time.monotonic_ns()))
        self.restore(prefix, what, dest)
        out = {}
        for root, _dirs, names in os.walk(dest):
            for n in names:
                out[os.path.relpath(os.path.join(root, n), dest)] = h.read_file(os.path.join(root, n))
        return out

    def seal_awaiting(self, m, name="step-1", count=1):
        """Seals m's version and waits until its part is up and waits for the other nodes."""
        self.assertEqual(h.cli("seal", m.path("run", name)).returncode, 0)
        self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["versions_awaiting_nodes"] == count, 60),
                        m.stats()["s3"])

    def waiting_pair(self, prefix, seed, size=5 * MIB):
        """Nodes a and b with a rank's file each in run/step-1, a's part up and waiting for b's:
        (a, b, every file of the version)."""
        a, b = self.nodes(prefix, ["node-a", "node-b"])
        fa, fb = {"rank0.pt": h.random_bytes(size, seed)}, {"rank1.pt": h.random_bytes(size, seed + 1)}
        self.write_version(a, "run", "step-1", fa)
        self.write_version(b, "run", "step-1", fb)
        self.seal_awaiting(a)
        return a, b, dict(fa, **fb)

    def test_waiting_node_restarted_commits_with_the_others(self):
        a, b, files = self.waiting_pair("restart", 1)
        a.remount()
        self.seal_wait(b, "run", "step-1")
        self.assertTrue(h.wait_until(lambda: self.version(a, "run", "step-1")["state"] == "uploaded", 30))
        self.assertEqual(self.restore_files("restart", "run@step-1"), files)

    def test_waiting_node_killed_its_part_still_counts(self):
        a, b, files = self.waiting_pair("kill", 3)
        a.kill9()
        self.seal_wait(b, "run", "step-1")
        self.assertEqual(self.restore_files("kill", "run@step-1"), files)
        # Back up, the node finds its part committed by the other one.
        a.options = self.tier_opts("kill", "--node-id", "node-a", "--s3-nodes", "2")
        a.mount()
        self.assertTrue(h.wait_until(lambda: self.version(a, "run", "step-1")["state"] == "uploaded", 30))

    def test_collection_leaves_waiting_parts(self):
        a, b = self.nodes("gcwait", ["node-a", "node-b"])
        self.write_version(a, "run", "step-0", {"r0.pt": h.random_bytes(2 * MIB, 5)})
        self.write_version(b, "run", "step-0", {"r1.pt": h.random_bytes(2 * MIB, 6)})
        self.assertEqual(h.cli("seal", a.path("run", "step-0")).returncode, 0)
        self.seal_wait(b, "run", "step-0")
        self.assertTrue(h.wait_until(lambda: self.version(a, "run", "step-0")["state"] == "uploaded", 30))
        fa, fb = {"rank0.pt": h.random_bytes(5 * MIB, 7)}, {"rank1.pt": h.random_bytes(5 * MIB, 8)}
        self.write_version(a, "run", "step-1", fa)
        self.write_version(b, "run", "step-1", fb)
        self.seal_awaiting(a)
        cp = h.cli("gc", "--remote", *self.tier_opts("gcwait"), "--keep", "1", "--grace", "0", timeout=120)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("1 uncommitted", cp.stdout)
        self.assertIn("0 deleted", cp.stdout)
        self.seal_wait(b, "run", "step-1")
        self.assertEqual(self.restore_files("gcwait", "run@step-1"), dict(fa, **fb))
        cp = h.cli("fsck", "--remote", *self.tier_opts("gcwait"), timeout=120)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def test_retention_waits_for_the_commit(self):
        a, b = self.nodes("retain", ["node-a", "node-b"])
        os.makedirs(a.path("run"))
        os.setxattr(a.path("run"), "user.pec.keep", b"1")
        files = {}
        for i in (1, 2):
            files[i] = ({"rank0.pt": h.random_bytes(3 * MIB, 10 + i)}, {"rank1.pt": h.random_bytes(3 * MIB, 20 + i)})
            self.write_version(a, "run", "step-%d" % i, files[i][0])
            self.assertEqual(h.cli("seal", a.path("run", "step-%d" % i)).returncode, 0)
        self.assertTrue(h.wait_until(lambda: a.stats()["s3"]["versions_awaiting_nodes"] == 2, 60), a.stats()["s3"])
        time.sleep(2)
        # keep 1, but neither version is committed: both stay
        self.assertEqual(sorted(os.listdir(a.path("run"))), ["step-1", "step-2"])
        for i in (1, 2):
            self.write_version(b, "run", "step-%d" % i, files[i][1])
            self.seal_wait(b, "run", "step-%d" % i)
        for i in (1, 2):
            self.assertEqual(self.restore_files("retain", "run@step-%d" % i), dict(files[i][0], **files[i][1]))
        self.assertTrue(h.wait_until(lambda: sorted(os.listdir(a.path("run"))) == ["step-2"], 30),
                        os.listdir(a.path("run")))

    def rgw_requests(self, method, key):
        """(status, ...) of each request the RGW logged for method on key of the bucket."""
        with open(os.path.join(self.rgw_dir, "log", "client.rgw.a.log"), errors="replace") as f:
            return [int(line.split('" ', 1)[1].split()[0]) for line in f
                    if ' beast: ' in line and '"%s /%s/%s HTTP' % (method, BUCKET, key) in line]

    def test_committed_version_costs_a_waiting_node_two_reads(self):
        """A node whose part waits finds COMMIT listed and reads its own part and COMMIT only: no GET
        of every other part and no attempt at COMMIT (a barrier of N nodes would cost N^2 GETs)."""
        a, b, files = self.waiting_pair("cheap", 40, size=2 * MIB)
        a.umount()  # down while b commits, so that a surely finds COMMIT there when it looks again
        self.seal_wait(b, "run", "step-1")
        a.mount()
        self.assertTrue(h.wait_until(lambda: self.version(a, "run", "step-1")["state"] == "uploaded", 30))
        time.sleep(1)  # the RGW's log is written by a thread of its own
        self.assertEqual(self.rgw_requests("PUT", "cheap/runs/run/step-1/COMMIT"), [200])
        # b itself only: its look for an earlier attempt before uploading, then its barrier
        self.assertEqual(self.rgw_requests("GET", "cheap/runs/run/step-1/node-b.manifest"), [404, 200])
        self.assertEqual(self.restore_files("cheap", "run@step-1"), files)

    def launch(self, m, job, files, name="step-1"):
        """The trainer of launch `job` on node m: sets the run's job (None: the mount's s3-job holds it),
        writes its rank's files."""
        os.makedirs(m.path("run"), exist_ok=True)
        if job:
            os.setxattr(m.path("run"), "user.pec.job", job.encode())
        self.write_version(m, "run", name, files)

    def part(self, prefix, node, name="step-1"):
        return json.loads(self.s3("get", "%s/runs/run/%s/%s.manifest" % (prefix, name, node)).stdout)

    def test_barrier_ignores_a_part_of_an_earlier_sealing(self):
        old, = self.nodes("stale", ["node-0"])
        self.launch(old, "launch-1", {"rank0.pt": h.random_bytes(2 * MIB, 30)})
        self.seal_awaiting(old)
        self.assertEqual(os.getxattr(old.path("run", "step-1"), "user.pec.job"), b"launch-1")
        old.kill9()  # the job dies before node-1 uploaded; it restarts on fresh nodes, mounted for it
        a, b = self.nodes("stale", ["node-a", "node-b"], 2, "--s3-job", "launch-2")
        fa, fb = {"rank0.pt": h.random_bytes(2 * MIB, 31)}, {"rank1.pt": h.random_bytes(2 * MIB, 32)}
        self.launch(a, None, fa)
        self.launch(b, None, fb)
        self.seal_awaiting(a)
        self.assertNotIn("stale/runs/run/step-1/COMMIT", self.listing("stale"))
        self.seal_wait(b, "run", "step-1", timeout=90)
        self.assertEqual(os.getxattr(b.path("run", "step-1"), "user.pec.job"), b"launch-2")
        self.assertEqual(self.restore_files("stale", "run@step-1"), dict(fa, **fb))
        commit = json.loads(self.s3("get", "stale/runs/run/step-1/COMMIT").stdout)
        self.assertEqual([p[0] for p in commit["manifests"]], ["node-a", "node-b"])
        self.assertEqual(commit["job"], "launch-2")

    def test_next_launch_on_the_same_nodes_replaces_their_parts(self):
        # Launch 1 of a 3-node job: node-0 and node-1 upload their parts of step-1, then it dies.
        olds = self.nodes("relaunch", ["node-0", "node-1"], n=3)
        for i, m in enumerate(olds):
            self.launch(m, "launch-1", {"rank%d.pt" % i: h.random_bytes(2 * MIB, 40 + i)})
            self.seal_awaiting(m)
        for m in olds:
            m.kill9()
        # Launch 2 on the same node ids (fresh data folders, as on replaced machines).
        new = self.nodes("relaunch", ["node-0", "node-1", "node-2"], n=3)
        files = [{"rank%d.pt" % i: h.random_bytes(2 * MIB, 50 + i)} for i in range(3)]
        for m, f in zip(new, files):
            self.launch(m, "launch-2", f)
        self.seal_awaiting(new[0])  # replaces its own part of launch 1
        self.assertEqual(self.part("relaunch", "node-0")["job"], "launch-2")
        # Three manifests now, one of them launch 1's: not a complete count.
        self.seal_awaiting(new[2])
        self.assertEqual(self.part("relaunch", "node-1")["job"], "launch-1")
        time.sleep(3)  # node-0 looks again and reads every part once: node-2's is new
        key = "relaunch/runs/run/step-1/node-1.manifest"
        reads = len(self.rgw_requests("GET", key))
        time.sleep(5)  # two more looks by each waiting node, at a listing that did not change
        self.assertNotIn("relaunch/runs/run/step-1/COMMIT", self.listing("relaunch"))
        self.assertEqual(len(self.rgw_requests("GET", key)), reads, "waiting nodes read the parts again")
        self.seal_wait(new[1], "run", "step-1", timeout=90)
        want = {k: v for f in files for k, v in f.items()}
        self.assertEqual(self.restore_files("relaunch", "run@step-1"), want)
        for m in new:
            self.assertTrue(h.wait_until(lambda: self.version(m, "run", "step-1")["state"] == "uploaded", 30))

    def test_same_launch_sealing_a_name_again_is_a_conflict(self):
        # Without a new job id a second sealing of the name by this node id is another upload of the
        # version, which never replaces the first.
        old, = self.nodes("again", ["node-0"])
        self.launch(old, "launch-1", {"rank0.pt": h.random_bytes(MIB, 60)})
        self.seal_awaiting(old)
        first = self.part("again", "node-0")
        old.kill9()
        m, = self.nodes("again", ["node-0"])
        self.launch(m, "launch-1", {"rank0.pt": h.random_bytes(MIB, 61)})
        self.assertEqual(h.cli("seal", m.path("run", "step-1")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: "another upload of this version" in
                                     (self.version(m, "run", "step-1").get("upload_error") or ""), 60))
        self.assertEqual(self.part("again", "node-0")["seal_id"], first["seal_id"])

    def test_job_setting_is_checked(self):
        m, = self.nodes("jobset", ["node-0"])
        os.makedirs(m.path("run", "step-1"))
        for bad in (b"", b"a b", b"x" * 129, b"job/1"):
            self.assertEqual(h.errno_of(os.setxattr, m.path("run"), "user.pec.job", bad), errno.EINVAL, bad)
        self.assertEqual(h.errno_of(os.setxattr, m.path("run", "step-1"), "user.pec.job", b"j"), errno.EINVAL)
        os.setxattr(m.path("run"), "user.pec.job", b"slurm-4711.2")
        self.assertEqual(os.getxattr(m.path("run"), "user.pec.job"), b"slurm-4711.2")
        cp = h.cli("mount", "--s3-job", "bad job", m.data + "-x", m.mnt + "-x")
        self.assertEqual(cp.returncode, 2, cp.stderr)
        self.assertIn("s3-job", cp.stderr)


if __name__ == "__main__":
    h.main()
