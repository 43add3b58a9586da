# test_crash.py - the durability contract under kill -9: a writer process creates files (some fsynced)
# and seals versions (CLI, xattr, tracker file, rename into place), journaling each promise outside the
# mount only after the call that makes it returns; the daemon is killed at a random instant, the mount
# lazily unmounted, fsck must be clean, and after a remount every journaled file and sealed version
# must read back bit for bit. Seed printed; PECFS_SEED and PECFS_CRASH_ITERS override.
import json
import os
import random
import signal
import subprocess
import sys
import time
import unittest

import pecfs_harness as h

WRITER = r"""
import hashlib, json, os, random, subprocess, sys, time
pecfs, mnt, journal, seed, it = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
# Everything goes through a descriptor of the mounted root: once the daemon is killed and the mount
# lazily detached, the mount point path names the plain directory underneath, but this descriptor
# still names the dead mount, so no write can land (and be journaled) outside pecfs.
if os.stat(mnt).st_dev == os.stat(os.path.dirname(mnt)).st_dev:
    sys.exit(0)  # killed before we started: nothing to do
rootfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
if os.fstat(rootfd).st_dev == os.stat(os.path.dirname(mnt)).st_dev:
    sys.exit(0)
mnt = "/proc/%d/fd/%d" % (os.getpid(), rootfd)
rng = random.Random(seed)
common = random.Random(12345).randbytes(3 << 20)   # shared across versions: exercises dedup
jf = open(journal, "a")

def record(obj):
    jf.write(json.dumps(obj) + "\n")
    jf.flush()
    os.fsync(jf.fileno())

def wait_sealed(run, name):
    end = time.monotonic() + 20
    while time.monotonic() < end:
        with open(os.path.join(mnt, run, ".pec", "versions")) as f:
            for v in json.load(f)["versions"]:
                if v["name"] == name and v["state"] == "sealed":
                    return True
        time.sleep(0.01)
    return False

run = "run%d" % (it % 3)   # a few runs, so tracker files are rewritten across iterations
os.makedirs(os.path.join(mnt, run), exist_ok=True)
for vnum in range(1000):
    name = "step-%d" % (it * 1000 + vnum)
    method = rng.choice(["cli", "xattr", "tracker", "rename", "none", "none"])
    dirname = name + ".tmp" if method == "rename" else name
    vdir = os.path.join(mnt, run, dirname)
    os.makedirs(os.path.join(vdir, "sub"))
    files = {}
    for i in range(rng.randint(1, 5)):
        size = rng.choice([0, 1, 4095, rng.randrange(1, 3 << 20), rng.randrange(1, 3 << 20)])
        data = common[:size] if rng.random() < 0.3 else rng.randbytes(size)
        rel = ("sub/f%d" if i % 3 == 2 else "f%d") % i
        fd = os.open(os.path.join(vdir, rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        off = 0
        while off < size:
            off += os.write(fd, data[off:off + rng.choice([1 << 20, 4096, 100000, 3 << 20])])
        synced = rng.random() < 0.5
        if synced:
            os.fsync(fd)
        os.close(fd)
        digest = hashlib.sha256(data).hexdigest()
        files[rel] = digest
        if synced and method != "rename":
            record({"fsynced": "%s/%s/%s" % (run, dirname, rel), "sha256": digest})
    if method == "cli":
        subprocess.run([pecfs, "seal", vdir], check=True, capture_output=True)
    elif method == "xattr":
        os.setxattr(vdir, "user.pec.seal", b"1")
    elif method == "tracker":
        with open(os.path.join(mnt, run, "latest"), "w") as f:
            f.write(name)
            f.flush()
            os.fsync(f.fileno())
        if not wait_sealed(run, name):
            sys.exit("tracker file did not seal %s/%s" % (run, name))
    elif method == "rename":
        os.rename(vdir, os.path.join(mnt, run, name))
        if not wait_sealed(run, name):
            sys.exit("rename did not seal %s/%s" % (run, name))
    if method != "none":
        record({"sealed": "%s/%s" % (run, name), "files": files})
"""


class CrashLoop(unittest.TestCase):
    def test_kill9_at_random_points(self):
        seed = int(os.environ.get("PECFS_SEED", random.randrange(1 << 30)))
        iters = int(os.environ.get("PECFS_CRASH_ITERS", "24"))
        print("\ncrash loop seed %d (PECFS_SEED=%d to repeat), %d iterations" % (seed, seed, iters))
        rng = random.Random(seed)
        with h.Mount(["--chunk-size", "1M"]) as m:
            journal = os.path.join(m.base, "journal")
            open(journal, "w").close()
            promised_files = promised_versions = 0
            for it in range(iters):
                delay = rng.choice([0.0, rng.uniform(0, 0.3), rng.uniform(0.1, 2.5), rng.uniform(0.1, 2.5)])
                writer = subprocess.Popen([sys.executable, "-c", WRITER, h.PECFS_BIN, m.mnt, journal,
                                           str(rng.randrange(1 << 30)), str(it)],
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                time.sleep(delay * h.SLOW)
                early = writer.poll()
                m.kill9()
                try:
                    out = writer.communicate(timeout=60)[0]
                except subprocess.TimeoutExpired:
                    writer.kill()
                    out = writer.communicate()[0]
                if early is not None:
                    self.fail("writer exited (%d) before the kill in iteration %d:\n%s" % (early, it, out))
                for marker in ("did not seal",):
                    self.assertNotIn(marker, out, "iteration %d" % it)
                cp = m.fsck()
                self.assertEqual(cp.returncode, 0, "fsck after kill in iteration %d (seed %d, delay %.3f):\n%s%s"
                                 % (it, seed, delay, cp.stdout, cp.stderr))
                m.mount()
                promised_files, promised_versions = self.verify(m, journal, it, seed)
            print("%d fsynced files and %d sealed versions promised and verified" %
                  (promised_files, promised_versions))
            self.assertGreater(promised_files + promised_versions, 0, "the writers never got a promise out")
            m.umount()
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)

    def verify(self, m, journal, it, seed):
        nfiles = nversions = 0
        with open(journal) as f:
            entries = [json.loads(l) for l in f if l.endswith("\n")]
        for e in entries:
            ctx = "iteration %d, seed %d: %r" % (it, seed, e)
            if "fsynced" in e:
                nfiles += 1
                p = m.path(e["fsynced"])
                self.assertTrue(os.path.exists(p), "fsynced file lost: " + ctx)
                self.assertEqual(h.sha256_file(p), e["sha256"], "fsynced file changed: " + ctx)
            else:
                nversions += 1
                run, name = e["sealed"].split("/")
                self.assertEqual(m.version_state(run, name), "sealed", ctx)
                d = m.path(run, name)
                present = {os.path.relpath(os.path.join(r, n), d)
                           for r, _ds, fs in os.walk(d) for n in fs}
                self.assertEqual(present, set(e["files"]), "sealed version's files: " + ctx)
                for rel, digest in e["files"].items():
                    self.assertEqual(h.sha256_file(os.path.join(d, rel)), digest, "%s in %s" % (rel, ctx))
        return nfiles, nversions


if __name__ == "__main__":
    h.main()
