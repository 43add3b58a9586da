# test_s3_hostile.py - a bucket written by someone else: `pecfs restore` (run as root, as it often is)
# and `mount --from` against objects put straight into the test's Ceph RGW. Restore never writes
# outside DEST or through a symlink, never restores setuid, setgid or sticky bits, and wants a new or
# empty DEST; manifests that list a path twice, out of order, under a file or a symlink, or with bad
# names or duplicate JSON keys are refused; parts that disagree on what a path is are refused; only
# the parts COMMIT names, with their seal ids, are read; an uploader that finds its version committed
# by another upload reports a conflict instead of "uploaded"; `fsck --remote` names parts that are
# missing or of another upload; COMMITs and manifests from before seal ids are still read.
import json
import os
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import BUCKET, RgwTestCase  # noqa: E402

SEAL_A = "a1" * 16
SEAL_B = "b2" * 16
SEAL_X = "c3" * 16


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def chunk_object(payload):
    """The bucket's chunk object for payload: 64-byte header (store/FORMAT.md section 5), then payload."""
    d = bytes.fromhex(h.sha256_bytes(payload))
    hdr = b"PECS3CK1" + (1).to_bytes(4, "little") + (64).to_bytes(4, "little") + \
        len(payload).to_bytes(8, "little") + d
    return hdr + crc32c(hdr).to_bytes(4, "little") + b"\0" * 4 + payload


def f_entry(path, data, mode=0o644):
    d = h.sha256_bytes(data)
    ext = [[0, len(data), d, 0, len(data)]] if data else []
    return {"path": path, "type": "file", "mode": mode, "mtime_ns": 0, "size": len(data), "extents": ext}


def d_entry(path, mode=0o755):
    return {"path": path, "type": "dir", "mode": mode, "mtime_ns": 0}


def l_entry(path, target):
    return {"path": path, "type": "symlink", "mode": 0o777, "mtime_ns": 0, "target": target}


def manifest(run, version, node, entries, seal_id=None):
    m = {"format": 1, "run": run, "version": version, "node": node, "step": None, "sealed_ns": 1, "seal_seq": 1,
         "chunk_size": 4 << 20, "entries": entries}
    if seal_id:
        m["seal_id"] = seal_id
    return m


def commit(run, version, parts):
    """COMMIT naming parts [(node, seal id)], created by the first; parts None: one from before seal ids."""
    c = {"format": 1, "run": run, "version": version, "step": None, "sealed_ns": 1,
         "node": parts[0][0] if parts else "n"}
    if parts is None:
        return c
    c.update(parts=len(parts), seal_id=parts[0][1], manifests=[list(p) for p in parts])
    return c


class S3HostileTest(RgwTestCase):
    def setUp(self):
        self.old_umask = os.umask(0o022)
        self.addCleanup(os.umask, self.old_umask)

    def put(self, key, data):
        if not isinstance(data, bytes):
            data = json.dumps(data).encode()
        path = os.path.join(self.scratch, "obj-%d" % len(os.listdir(self.scratch)))
        with open(path, "wb") as f:
            f.write(data)
        self.s3("put", key, path)

    def put_chunks(self, prefix, *blobs):
        for b in blobs:
            d = h.sha256_bytes(b)
            self.put("%s/chunks/%s/%s" % (prefix, d[:2], d), chunk_object(b))

    def put_version(self, prefix, run, version, parts, commit_parts="named"):
        """parts: {node: (seal id or None, entries)}; the manifests, then a COMMIT naming them all
        (commit_parts "named"), one from before seal ids ("legacy"), or none (None)."""
        for node, (seal, entries) in parts.items():
            self.put("%s/runs/%s/%s/%s.manifest" % (prefix, run, version, node),
                     manifest(run, version, node, entries, seal))
        if commit_parts == "named":
            self.put("%s/runs/%s/%s/COMMIT" % (prefix, run, version),
                     commit(run, version, sorted((n, s) for n, (s, _) in parts.items())))
        elif commit_parts == "legacy":
            self.put("%s/runs/%s/%s/COMMIT" % (prefix, run, version), commit(run, version, None))

    def dest(self, name):
        return os.path.join(self.scratch, "dest-" + name)

    def restore_fails(self, prefix, what, dest, code=1):
        cp = self.restore(prefix, what, dest, check=False)
        self.assertEqual(cp.returncode, code, cp.stdout + cp.stderr)
        return cp.stderr

    def mount_from_fails(self, prefix):
        fresh = h.Mount(["--from", "s3://%s/%s" % (BUCKET, prefix), "--s3-endpoint", self.endpoint,
                         "--s3-addressing", "path"], mount=False)
        self.addCleanup(fresh.cleanup)
        cp = h.cli("mount", *fresh.options, fresh.data, fresh.mnt, timeout=120)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertFalse(h.is_mounted(fresh.mnt))
        return cp.stderr

    def mount_from(self, prefix):
        m = h.Mount(["--from", "s3://%s/%s" % (BUCKET, prefix), "--s3-endpoint", self.endpoint,
                     "--s3-addressing", "path"])
        self.addCleanup(m.cleanup)
        return m

    def outside(self, name):
        """A folder and a file outside every DEST, to aim symlinks at."""
        base = os.path.join(self.scratch, "outside-" + name)
        os.makedirs(base)
        victim = os.path.join(base, "victim")
        with open(victim, "wb") as f:
            f.write(b"precious\n")
        return base, victim

    def assert_outside_intact(self, base, victim):
        self.assertEqual(sorted(os.listdir(base)), ["victim"])
        self.assertEqual(h.read_file(victim), b"precious\n")

    def test_crc32c_matches_the_store(self):
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)

    # ---- restore never leaves DEST ----

    def test_symlink_escapes_are_refused_and_write_nothing_outside(self):
        base, victim = self.outside("esc")
        owned = b"owned\n"
        self.put_chunks("esc", owned)
        # The report's manifest: x -> a folder outside, then x/owned; y -> a file outside, then y.
        self.put_version("esc", "run", "dirlink", {"n": (SEAL_A, [l_entry("x", base), f_entry("x/owned", owned)])})
        self.put_version("esc", "run", "filelink", {"n": (SEAL_A, [l_entry("y", victim), f_entry("y", owned)])})
        # The same through two parts: one says x is a symlink, the other a folder holding a file.
        self.put_version("esc", "run", "parts", {"a": (SEAL_A, [l_entry("x", base)]),
                                                 "b": (SEAL_B, [d_entry("x"), f_entry("x/owned", owned)])})
        for version, why in (("dirlink", "lies under 'x', which is not a directory"),
                             ("filelink", "listed twice"),
                             ("parts", "'x' is a symlink in the part of node a and a directory in that of node b")):
            dest = self.dest("esc-" + version)
            self.assertIn(why, self.restore_fails("esc", "run@" + version, dest))
            self.assert_outside_intact(base, victim)
            self.assertFalse(os.path.lexists(os.path.join(dest, "x")), version)
        self.assertIn("lies under 'x'", self.mount_from_fails("esc"))
        self.assert_outside_intact(base, victim)

    def test_symlinks_pointing_outside_are_kept_as_links(self):
        base, victim = self.outside("late")
        data = b"inside\n"
        self.put_chunks("late", data)
        # A valid version whose symlinks point outside: they are made as they are, nothing goes through them.
        self.put_version("late", "run", "v", {"n": (SEAL_A, [
            d_entry("d"), f_entry("d/f", data), l_entry("d/out", base), l_entry("d/victim", victim),
            l_entry("up", "../../" + os.path.basename(base))])})
        dest = self.dest("late")
        self.restore("late", "run@v", dest)
        self.assertEqual(os.readlink(os.path.join(dest, "d", "out")), base)
        self.assertEqual(os.readlink(os.path.join(dest, "d", "victim")), victim)
        self.assertEqual(h.read_file(os.path.join(dest, "d", "f")), data)
        self.assert_outside_intact(base, victim)

    def test_dest_must_be_new_or_empty(self):
        data = b"x" * 100
        self.put_chunks("full", data)
        self.put_version("full", "run", "v", {"n": (SEAL_A, [f_entry("f", data)])})
        base, victim = self.outside("full")
        dest = self.dest("full")
        os.makedirs(dest)
        os.symlink(victim, os.path.join(dest, "f"))  # planted where the restore will write "f"
        self.assertIn("not empty", self.restore_fails("full", "run@v", dest, code=2))
        self.assert_outside_intact(base, victim)
        afile = os.path.join(self.scratch, "a-file")
        with open(afile, "wb") as f:
            f.write(b"file\n")
        self.assertIn("not a directory", self.restore_fails("full", "run@v", afile, code=2))
        empty = self.dest("full-empty")
        os.makedirs(empty)
        self.restore("full", "run@v", empty)
        self.assertEqual(h.read_file(os.path.join(empty, "f")), data)

    # ---- modes ----

    def test_setuid_setgid_and_sticky_bits_are_dropped(self):
        data = b"#!/bin/sh\necho root\n"
        self.put_chunks("suid", data)
        self.put_version("suid", "run", "v", {"n": (SEAL_A, [
            d_entry("ro", 0o555), f_entry("ro/inside", data, 0o444), f_entry("sgid", data, 0o2711),
            d_entry("shared", 0o3777), f_entry("shared/tool", data, 0o4755)])})
        dest = self.dest("suid")
        self.restore("suid", "run@v", dest)

        def mode(*p):
            return stat.S_IMODE(os.lstat(os.path.join(*p)).st_mode)
        self.assertEqual(mode(dest, "shared", "tool"), 0o755)
        self.assertEqual(mode(dest, "sgid"), 0o711)
        self.assertEqual(mode(dest, "shared"), 0o755)  # 0777 less the umask 022
        # A read-only folder gets its mode once its contents are in.
        self.assertEqual(mode(dest, "ro"), 0o555)
        self.assertEqual(mode(dest, "ro", "inside"), 0o444)
        self.assertEqual(h.read_file(os.path.join(dest, "ro", "inside")), data)
        m = self.mount_from("suid")
        self.assertEqual(mode(m.path("run", "v", "shared", "tool")), 0o755)
        self.assertEqual(mode(m.path("run", "v", "shared")), 0o777)
        self.assertEqual(h.read_file(m.path("run", "v", "shared", "tool")), data)

    # ---- the manifest decoder ----

    def test_duplicates_order_and_json_keys_are_refused(self):
        a, b = b"first\n", b"second\n"
        self.put_chunks("dup", a, b)
        self.put_version("dup", "run", "twice", {"n": (SEAL_A, [f_entry("f", a), f_entry("f", b)])})
        self.put_version("dup", "run", "order", {"n": (SEAL_A, [f_entry("b", a), f_entry("a", b)])})
        self.put_version("dup", "run", "nodir", {"n": (SEAL_A, [f_entry("sub/f", a)])})
        self.put_version("dup", "run", "keys", {"n": (SEAL_A, [f_entry("f", a)])})
        key = "dup/runs/run/keys/n.manifest"
        text = json.dumps(manifest("run", "keys", "n", [f_entry("f", a)], SEAL_A))
        self.put(key, text.replace('"path": "f"', '"path": "f", "path": "g"').encode())
        for version, why in (("twice", "listed twice"), ("order", "out of order"), ("nodir", "before its directory"),
                             ("keys", "duplicate")):
            dest = self.dest("dup-" + version)
            self.assertIn(why, self.restore_fails("dup", "run@" + version, dest))
            self.assertFalse(os.path.exists(dest) and os.listdir(dest), version)
        self.assertIn("importing run/", self.mount_from_fails("dup"))

    def test_bad_names_are_refused(self):
        data = b"named\n"
        self.put_chunks("names", data)
        ok = {"n": (SEAL_A, [f_entry("f", data)])}
        self.put_version("names", "run", "good", ok)
        # A version named ".pec" (the name of the control folders), put under such a key.
        self.put_version("names", "run", ".pec", ok)
        # A manifest that names another version than its key, and a COMMIT that does.
        self.put("names/runs/run/moved/n.manifest", manifest("run", "good", "n", [f_entry("f", data)], SEAL_A))
        self.put("names/runs/run/moved/COMMIT", commit("run", "moved", [("n", SEAL_A)]))
        self.put_version("names", "run", "recommit", ok, commit_parts=None)
        self.put("names/runs/run/recommit/COMMIT", commit("run", "good", [("n", SEAL_A)]))
        self.assertIn("not the place it is stored at", self.restore_fails("names", "run@moved", self.dest("moved")))
        self.assertIn("not the version it is stored under", self.restore_fails("names", "run@recommit",
                                                                                self.dest("recommit")))
        self.assertIn("not a run name", self.restore_fails("names", "run@.pec", self.dest("pec"), code=2))
        self.assertIn("not a run name", self.restore_fails("names", "../run@good", self.dest("up"), code=2))
        # "latest" is never picked past a version it cannot judge
        self.assertIn("not a valid version name", self.restore_fails("names", "run", self.dest("latest")))
        self.assertIn("runs/run/.pec/: not a valid version name", self.mount_from_fails("names"))
        self.restore("names", "run@good", self.dest("good"))

    # ---- seal ids: only the parts COMMIT names ----

    def test_only_the_parts_commit_names_are_read(self):
        m = self.mount("seal", "--node-id", "node-a")
        data = h.random_bytes(100000, 4101)
        self.write_version(m, "run", "v", {"f.bin": data})
        self.seal_wait(m, "run", "v")
        c = json.loads(self.s3("get", "seal/runs/run/v/COMMIT").stdout)
        mf = json.loads(self.s3("get", "seal/runs/run/v/node-a.manifest").stdout)
        self.assertRegex(mf["seal_id"], "^[0-9a-f]{32}$")
        self.assertEqual(c["seal_id"], mf["seal_id"])
        self.assertEqual(c["manifests"], [["node-a", mf["seal_id"]]])
        # A part nobody committed, put beside it later: ignored by restore and import.
        extra = b"foreign\n"
        self.put_chunks("seal", extra)
        self.put_version("seal", "run", "v", {"node-z": (SEAL_X, [f_entry("planted", extra)])}, commit_parts=None)
        dest = self.dest("seal")
        self.restore("seal", "run@v", dest)
        self.assertEqual(os.listdir(dest), ["f.bin"])
        fresh = self.mount_from("seal")
        self.assertEqual(os.listdir(fresh.path("run", "v")), ["f.bin"])
        fresh.cleanup()
        # The committed part replaced by a part of another upload: the version is refused.
        self.put("seal/runs/run/v/node-a.manifest", dict(mf, seal_id=SEAL_X))
        self.assertIn("a part of another upload", self.restore_fails("seal", "run@v", self.dest("seal-2")))
        # A COMMIT naming a part that is not there.
        self.put("seal/runs/run/w/COMMIT", commit("run", "w", [("node-q", SEAL_B)]))
        self.assertIn("COMMIT names this part, but it is missing", self.restore_fails("seal", "run@w",
                                                                                    self.dest("seal-3")))

    def test_fsck_remote_checks_the_parts_commit_names(self):
        m = self.mount("fparts", "--node-id", "node-a")
        self.write_version(m, "run", "v", {"f.bin": h.random_bytes(80000, 4401)})
        self.seal_wait(m, "run", "v")

        def fsck():
            return h.cli("fsck", "--remote", *self.tier_opts("fparts"), timeout=180)
        extra = b"unnamed\n"
        self.put_chunks("fparts", extra)
        self.put_version("fparts", "run", "v", {"node-z": (SEAL_X, [f_entry("planted", extra)])}, commit_parts=None)
        cp = fsck()
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("note: fparts/runs/run/v/node-z.manifest: not a part of the committed upload", cp.stdout)
        mf = json.loads(self.s3("get", "fparts/runs/run/v/node-a.manifest").stdout)
        self.put("fparts/runs/run/v/node-a.manifest", dict(mf, seal_id=SEAL_X))
        self.put("fparts/runs/run/w/COMMIT", commit("run", "w", [("node-q", SEAL_B)]))
        self.put_version("fparts", "run", "w", {"node-r": (SEAL_B, [])}, commit_parts=None)
        cp = fsck()
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("bad COMMIT fparts/runs/run/v/COMMIT: names the part of node node-a with seal id '%s', but "
                      "fparts/runs/run/v/node-a.manifest has seal id '%s'" % (mf["seal_id"], SEAL_X), cp.stdout)
        self.assertIn("bad COMMIT fparts/runs/run/w/COMMIT: names the part of node node-q, whose manifest is missing",
                      cp.stdout)

    def test_a_foreign_commit_is_a_conflict_not_an_upload(self):
        self.put("clash/runs/run/v/COMMIT", commit("run", "v", [("someone", SEAL_X)]))
        m = self.mount("clash", "--node-id", "node-a")
        self.write_version(m, "run", "v", {"f.bin": h.random_bytes(70000, 4201)})
        self.assertEqual(h.cli("seal", m.path("run", "v")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: "committed by another upload" in (m.stats()["s3"]["error"] or ""), 60),
                        m.stats()["s3"])
        self.assertNotEqual(self.version(m, "run", "v")["state"], "uploaded")
        # The foreign COMMIT is left as it was, and versions behind the refused one still go up.
        self.assertEqual(json.loads(self.s3("get", "clash/runs/run/v/COMMIT").stdout)["node"], "someone")
        w = {"g.bin": h.random_bytes(50000, 4202)}
        self.write_version(m, "run", "w", w)
        self.seal_wait(m, "run", "w")
        self.assertNotEqual(self.version(m, "run", "v")["state"], "uploaded")
        dest = self.dest("clash")
        self.restore("clash", "run@w", dest)
        self.assertEqual(h.read_file(os.path.join(dest, "g.bin")), w["g.bin"])
        # This node's part of v went up (it is a complete part); it was never made part of the COMMIT.
        self.assertIn("COMMIT names this part, but it is missing",
                      self.restore_fails("clash", "run@v", self.dest("clash-v")))

    def test_another_upload_of_the_same_name_is_never_overwritten(self):
        # Two data folders with one node id seal a version of the same name: the second is refused.
        first = self.mount("twice", "--node-id", "node-a")
        one = {"f.bin": h.random_bytes(60000, 4301)}
        self.write_version(first, "run", "v", one)
        self.seal_wait(first, "run", "v")
        before = self.s3("get", "twice/runs/run/v/node-a.manifest").stdout
        second = self.mount("twice", "--node-id", "node-a")
        self.write_version(second, "run", "v", {"f.bin": h.random_bytes(60000, 4302)})
        self.assertEqual(h.cli("seal", second.path("run", "v")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: "another upload of this version" in
                                     (second.stats()["s3"]["error"] or ""), 60), second.stats()["s3"])
        self.assertEqual(self.s3("get", "twice/runs/run/v/node-a.manifest").stdout, before)
        dest = self.dest("twice")
        self.restore("twice", "run@v", dest)
        self.assertEqual(h.read_file(os.path.join(dest, "f.bin")), one["f.bin"])

    # ---- written before seal ids ----

    def test_commits_and_manifests_from_before_seal_ids_are_read(self):
        a, b = b"from node a\n", b"from node b\n"
        self.put_chunks("legacy", a, b)
        # Two nodes' parts without seal ids and a COMMIT without a part list: every manifest is a part.
        self.put_version("legacy", "run", "v", {"node-a": (None, [f_entry("common", a), f_entry("rank0", a)]),
                                                "node-b": (None, [f_entry("common", b), f_entry("rank1", b)])},
                         commit_parts="legacy")
        dest = self.dest("legacy")
        self.restore("legacy", "run@v", dest)
        self.assertEqual(sorted(os.listdir(dest)), ["common", "rank0", "rank1"])
        self.assertEqual(h.read_file(os.path.join(dest, "common")), a)  # the first node's, in node order
        self.assertEqual(h.read_file(os.path.join(dest, "rank1")), b)
        latest = self.dest("legacy-latest")
        self.restore("legacy", "run", latest)
        self.assertEqual(h.read_file(os.path.join(latest, "rank0")), a)
        m = self.mount_from("legacy")
        self.assertEqual(sorted(os.listdir(m.path("run", "v"))), ["common", "rank0", "rank1"])
        self.assertEqual(h.read_file(m.path("run", "v", "common")), a)
        # Even then, parts may not disagree on what a path is.
        self.put_version("legacy", "run", "bad", {"node-a": (None, [f_entry("x", a)]),
                                                  "node-b": (None, [d_entry("x"), f_entry("x/y", b)])},
                         commit_parts="legacy")
        self.assertIn("'x' is a file in the part of node node-a",
                      self.restore_fails("legacy", "run@bad", self.dest("legacy-bad")))


if __name__ == "__main__":
    h.main()
