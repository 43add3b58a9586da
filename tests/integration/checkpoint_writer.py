# checkpoint_writer.py - the checkpoint rounds that test_crash.py and test_powercut.py interrupt: a
# writer process, started on a mount, that writes versions of random files (some fsynced, some sharing
# content), seals them with every trigger (pecfs seal, the xattr, the tracker file, a rename into
# place, or not at all) and journals each promise (a fsynced file, a sealed version) only after the
# call that makes it returns. The journal is fsynced line by line outside the mount, so whatever it
# holds after a crash is a promise pecfs must keep. Python stdlib only.
import hashlib
import json
import os
import subprocess
import sys
import time


class Writer:
    def __init__(self, pecfs, mnt, journal, rng, common):
        """mnt: the mounted root; everything goes through a descriptor of it (see open_root)."""
        self.pecfs, self.mnt, self.rng, self.common = pecfs, mnt, rng, common
        self.jf = open(journal, "a")

    @staticmethod
    def open_root(mnt):
        """A path to the mounted root through a descriptor of it, or None when mnt is not mounted.
        Once the daemon is killed and the mount lazily detached, the mount point path names the plain
        directory underneath, but this descriptor still names the dead mount, so no write can land
        (and be journaled) outside pecfs."""
        if os.stat(mnt).st_dev == os.stat(os.path.dirname(mnt)).st_dev:
            return None
        rootfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        if os.fstat(rootfd).st_dev == os.stat(os.path.dirname(mnt)).st_dev:
            return None
        return "/proc/%d/fd/%d" % (os.getpid(), rootfd)

    def record(self, obj):
        self.jf.write(json.dumps(obj) + "\n")
        self.jf.flush()
        os.fsync(self.jf.fileno())

    def wait_sealed(self, run, name):
        end = time.monotonic() + 20
        while time.monotonic() < end:
            with open(os.path.join(self.mnt, run, ".pec", "versions")) as f:
                for v in json.load(f)["versions"]:
                    if v["name"] == name and v["state"] == "sealed":
                        return True
            time.sleep(0.01)
        return False

    def version(self, run, name, methods, max_files, max_size, write_sizes):
        """Writes version run/name and seals it by a method drawn from methods ("none": left open).
        Returns the method."""
        rng = self.rng
        method = rng.choice(methods)
        dirname = name + ".tmp" if method == "rename" else name
        vdir = os.path.join(self.mnt, run, dirname)
        os.makedirs(os.path.join(vdir, "sub"))
        files = {}
        for i in range(rng.randint(1, max_files)):
            size = rng.choice([0, 1, 4095, rng.randrange(1, max_size), rng.randrange(1, max_size)])
            data = self.common[:size] if rng.random() < 0.3 else rng.randbytes(size)
            rel = ("sub/f%d" if i % 3 == 2 else "f%d") % i
            fd = os.open(os.path.join(vdir, rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            off = 0
            while off < size:
                off += os.write(fd, data[off:off + rng.choice(write_sizes)])
            synced = rng.random() < 0.5
            if synced:
                os.fsync(fd)
            os.close(fd)
            digest = hashlib.sha256(data).hexdigest()
            files[rel] = digest
            if synced and method != "rename":
                self.record({"fsynced": "%s/%s/%s" % (run, dirname, rel), "sha256": digest})
        if method == "cli":
            subprocess.run([self.pecfs, "seal", vdir], check=True, capture_output=True)
        elif method == "xattr":
            os.setxattr(vdir, "user.pec.seal", b"1")
        elif method == "tracker":
            with open(os.path.join(self.mnt, run, "latest"), "w") as f:
                f.write(name)
                f.flush()
                os.fsync(f.fileno())
            if not self.wait_sealed(run, name):
                sys.exit("tracker file did not seal %s/%s" % (run, name))
        elif method == "rename":
            os.rename(vdir, os.path.join(self.mnt, run, name))
            if not self.wait_sealed(run, name):
                sys.exit("rename did not seal %s/%s" % (run, name))
        if method != "none":
            self.record({"sealed": "%s/%s" % (run, name), "files": files})
        return method


def check_promise(tc, m, e, context, sha256_file):
    """Asserts (on unittest case tc) that journal entry e holds on mount m: a fsynced file reads back
    with its SHA-256, a sealed version is sealed with exactly its files, each with its SHA-256.
    Returns "file" or "version"."""
    if "fsynced" in e:
        p = m.path(e["fsynced"])
        tc.assertTrue(os.path.exists(p), "fsynced file lost " + context)
        tc.assertEqual(sha256_file(p), e["sha256"], "fsynced file changed " + context)
        return "file"
    run, name = e["sealed"].split("/")
    tc.assertTrue(os.path.isdir(m.path(run)), "the run of a sealed version is lost " + context)
    tc.assertEqual(m.version_state(run, name), "sealed", "sealed version " + context)
    d = m.path(run, name)
    present = {os.path.relpath(os.path.join(r, n), d) for r, _ds, fs in os.walk(d) for n in fs}
    tc.assertEqual(present, set(e["files"]), "sealed version's files " + context)
    for rel, digest in e["files"].items():
        tc.assertEqual(sha256_file(os.path.join(d, rel)), digest, "%s %s" % (rel, context))
    return "version"
