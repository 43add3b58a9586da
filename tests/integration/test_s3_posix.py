# test_s3_posix.py - hard links and special files through the S3 tier, against a real S3 server (the
# RGW that s3_fixture starts): the manifest lists a file with several names once, in full, and each
# other name as a link to it; fifos, sockets and device nodes as their own types with device numbers.
# `pecfs restore` recreates the links (one inode), the fifos and sockets, and device nodes with only
# their owner's permission bits; `mount --from` recreates all of it as a local mount had it, fsck
# clean. A hostile manifest that links to what it does not list is refused.
import json
import os
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import BUCKET, MIB, RgwTestCase  # noqa: E402


class S3Posix(RgwTestCase):
    def make_version(self, m, run, name):
        v = m.path(run, name)
        files = {"model/shard_0.bin": h.random_bytes(3 * MIB + 5, 41), "model/shard_1.bin": h.random_bytes(MIB, 42)}
        self.write_version(m, run, name, files)
        old = os.umask(0)
        try:
            os.link(os.path.join(v, "model/shard_0.bin"), os.path.join(v, "latest_shard.bin"))
            os.makedirs(os.path.join(v, "snap"))
            os.link(os.path.join(v, "model/shard_0.bin"), os.path.join(v, "snap/shard_0.bin"))
            os.mkfifo(os.path.join(v, "control.fifo"), 0o620)
            os.link(os.path.join(v, "control.fifo"), os.path.join(v, "snap/control.fifo"))
            os.mknod(os.path.join(v, "launcher.sock"), stat.S_IFSOCK | 0o600)
            os.mknod(os.path.join(v, "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
            os.mknod(os.path.join(v, "disk"), stat.S_IFBLK | 0o640, os.makedev(259, 70000))
            os.symlink("model/shard_1.bin", os.path.join(v, "s1"))
            os.link(os.path.join(v, "s1"), os.path.join(v, "s1-again"))  # a symlink with two names
        finally:
            os.umask(old)
        return v

    def test_links_and_special_files_upload_restore_and_import(self):
        m = self.mount("posix")
        v = self.make_version(m, "run", "step-1")
        local = h.tree_snapshot(v)
        self.seal_wait(m, "run", "step-1")

        manifests = [k for k in self.listing("posix") if k.endswith(".manifest")]
        self.assertEqual(len(manifests), 1)
        entries = {e["path"]: e for e in json.loads(self.s3("get", manifests[0]).stdout)["entries"]}
        # the file is listed once in full (at its first name in manifest order), the rest are links
        self.assertIn("extents", entries["latest_shard.bin"])
        for p in ("model/shard_0.bin", "snap/shard_0.bin"):
            self.assertEqual(entries[p]["link"], "latest_shard.bin", p)
            self.assertNotIn("extents", entries[p])
        self.assertEqual(entries["snap/control.fifo"]["link"], "control.fifo")
        self.assertEqual(entries["s1-again"]["link"], "s1")
        self.assertEqual((entries["control.fifo"]["type"], entries["control.fifo"]["mode"]), ("fifo", 0o620))
        self.assertEqual(entries["launcher.sock"]["type"], "socket")
        self.assertEqual((entries["null"]["type"], entries["null"]["rdev"]), ("chardev", [1, 3]))
        self.assertEqual((entries["disk"]["type"], entries["disk"]["rdev"]), ("blockdev", [259, 70000]))

        # restore: one inode per file, its names all there; device nodes keep the owner's bits only
        dest = os.path.join(self.scratch, "restored")
        old = os.umask(0)
        try:
            self.restore("posix", "run@step-1", dest)
        finally:
            os.umask(old)
        got = h.tree_snapshot(dest)
        want = dict(local)
        want["null"] = ("special", stat.S_IFCHR, 0o600, os.makedev(1, 3), 1)
        want["disk"] = ("special", stat.S_IFBLK, 0o600, os.makedev(259, 70000), 1)
        self.assertEqual(h.diff_trees(want, got), [])
        ino = {p: os.lstat(os.path.join(dest, p)).st_ino
               for p in ("model/shard_0.bin", "latest_shard.bin", "snap/shard_0.bin", "s1", "s1-again")}
        self.assertEqual(len({ino["model/shard_0.bin"], ino["latest_shard.bin"], ino["snap/shard_0.bin"]}), 1)
        self.assertEqual(ino["s1"], ino["s1-again"])
        self.assertEqual(os.lstat(os.path.join(dest, "s1")).st_nlink, 2)

        # mount --from: everything as the writing node had it, and the links are still links
        fresh = h.Mount(["--from", "s3://%s/posix" % BUCKET, "--s3-endpoint", self.endpoint, "--s3-addressing", "path"])
        self.addCleanup(fresh.cleanup)
        fv = fresh.path("run", "step-1")
        self.assertEqual(h.diff_trees(local, h.tree_snapshot(fv)), [])
        self.assertEqual(os.stat(os.path.join(fv, "snap/shard_0.bin")).st_ino,
                         os.stat(os.path.join(fv, "model/shard_0.bin")).st_ino)
        self.assertEqual([x for x in fresh.versions("run")["versions"] if x["name"] == "step-1"][0]["files"],
                         [x for x in m.versions("run")["versions"] if x["name"] == "step-1"][0]["files"])
        fresh.umount()
        cp = fresh.fsck()
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        fresh.mount()
        self.assertEqual(os.stat(os.path.join(fv, "latest_shard.bin")).st_nlink, 3)
        self.assertEqual(h.read_file(os.path.join(fv, "snap/shard_0.bin")), h.read_file(os.path.join(v, "latest_shard.bin")))

    def test_a_link_to_what_the_manifest_does_not_list_is_refused(self):
        m = self.mount("posix-hostile")
        self.make_version(m, "run", "step-2")
        self.seal_wait(m, "run", "step-2")
        key = [k for k in self.listing("posix-hostile") if k.endswith(".manifest")][0]
        doc = json.loads(self.s3("get", key).stdout)
        for e in doc["entries"]:
            if e["path"] == "snap/shard_0.bin":
                e["link"] = "../../etc/passwd"
        path = os.path.join(self.scratch, "hostile.manifest")
        with open(path, "w") as f:
            json.dump(doc, f)
        self.s3("put", key, path)
        dest = os.path.join(self.scratch, "hostile-dest")
        cp = self.restore("posix-hostile", "run@step-2", dest, check=False)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("hard link", cp.stderr)
        self.assertFalse(os.path.exists(os.path.join(dest, "snap")))


if __name__ == "__main__":
    h.main()
