# test_s3_fsck.py - `pecfs fsck --remote` against a real S3 server (the test's Ceph RGW): a clean bucket
# passes; a chunk object altered in the bucket and another deleted are both named, with the files that
# use them, while reads of the altered chunk (evicted cache, `mount --from`) give EIO; a manifest that
# does not parse and a COMMIT without manifests are found; bad options and an unreachable or refusing
# server exit 2 with a message that says what is wrong. Packs: a member altered in place is corrupt
# (not seen by --quick), a pack cut short or deleted is a problem even with --quick, a damaged member
# table is named, and a pack no manifest names is counted, not noted.
import errno
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import BUCKET, MIB, RgwTestCase, free_port  # noqa: E402


def chunk_key(prefix, data):
    d = h.sha256_bytes(data)
    return "%s/chunks/%s/%s" % (prefix, d[:2], d)


def pack_key(prefix, name):
    return "%s/packs/%s/%s" % (prefix, name[:2], name)


class S3FsckTest(RgwTestCase):
    def fsck_remote(self, prefix, *extra):
        return h.cli("fsck", "--remote", "--s3", "s3://%s/%s" % (BUCKET, prefix), "--s3-endpoint", self.endpoint,
                     "--s3-addressing", "path", *extra, timeout=180)

    def summary(self, cp):
        line = [x for x in cp.stdout.splitlines() if x.startswith("fsck --remote ")]
        self.assertEqual(len(line), 1, cp.stdout + cp.stderr)
        return line[0]

    def test_altered_and_deleted_chunks_are_named_and_reads_fail(self):
        m = self.mount("fsck", "--cache-size", "1M")
        v1 = {"a.bin": h.random_bytes(3 * MIB + 5, 3101), "b.bin": h.random_bytes(2 * MIB, 3102),
              "sub/c.bin": h.random_bytes(MIB + 77, 3103)}
        v2 = {"sub/c.bin": v1["sub/c.bin"], "d.bin": h.random_bytes(100000, 3104)}
        self.write_version(m, "run", "v1", v1)
        self.seal_wait(m, "run", "v1")
        self.write_version(m, "run", "v2", v2)
        self.seal_wait(m, "run", "v2")

        clean = self.fsck_remote("fsck")
        self.assertEqual(clean.returncode, 0, clean.stdout + clean.stderr)
        s = self.summary(clean)
        self.assertIn("2 committed versions", s)
        self.assertIn("4 chunk objects", s)  # a, b, c (in both versions), d: one chunk each
        self.assertIn("0 problems", s)
        verified = float(re.search(r"\(([\d.]+) MiB verified\)", s).group(1))
        total = sum(len(d) for d in v1.values()) + len(v2["d.bin"])
        self.assertAlmostEqual(verified, total / MIB, delta=0.1)

        # The same settings from a configuration file, and a chunk object no manifest names.
        conf = os.path.join(self.scratch, "fsck.conf")
        with open(conf, "w") as f:
            f.write("s3 = s3://%s/fsck\ns3-endpoint = %s\ns3-addressing = path\n" % (BUCKET, self.endpoint))
        stray = h.random_bytes(1000, 3105)
        self.put_object(chunk_key("fsck", stray), b"\0" * 64 + stray)
        byconf = h.cli("fsck", "--remote", "-c", conf, "--jobs", "3", timeout=180)
        self.assertEqual(byconf.returncode, 0, byconf.stdout + byconf.stderr)
        self.assertIn("1 unreferenced chunk object (", self.summary(byconf))

        # Damage: one chunk altered in place (same size), one deleted (shared by both versions).
        altered = chunk_key("fsck", v1["a.bin"])  # files under 4 MiB are one chunk each
        big = {h.sha256_bytes(v1[n]) for n in ("a.bin", "b.bin")}
        self.assertTrue(h.wait_until(lambda: not big & set(h.chunk_files(m.data)), 30))  # evicted (1 MiB cache)
        obj = bytearray(self.s3("get", altered).stdout)
        obj[64 + 12345] ^= 0x5A
        self.put_object(altered, bytes(obj))
        deleted = chunk_key("fsck", v1["sub/c.bin"])
        self.s3("rm", deleted)

        bad = self.fsck_remote("fsck")
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        lines = bad.stdout.splitlines()
        corrupt = [x for x in lines if x.startswith("corrupt chunk object %s " % altered)]
        missing = [x for x in lines if x.startswith("missing chunk object %s:" % deleted)]
        self.assertEqual(len(corrupt), 1, bad.stdout)
        self.assertIn("used by run/v1/a.bin", corrupt[0])
        self.assertEqual(len(missing), 1, bad.stdout)
        self.assertIn("run/v1/sub/c.bin", missing[0])
        self.assertIn("run/v2/sub/c.bin", missing[0])
        self.assertIn("2 problems (chunk objects: 1 missing, 1 corrupt)", self.summary(bad))

        quick = self.fsck_remote("fsck", "--quick")  # existence and size: the altered one passes
        self.assertEqual(quick.returncode, 1, quick.stdout + quick.stderr)
        self.assertIn("missing chunk object %s:" % deleted, quick.stdout)
        self.assertNotIn(altered, quick.stdout)

        with_data = self.fsck_remote("fsck", m.data)  # the local check (through the daemon), then the bucket
        self.assertEqual(with_data.returncode, 1, with_data.stdout + with_data.stderr)
        self.assertIn("fsck:", with_data.stdout)
        self.assertIn("missing chunk object %s:" % deleted, with_data.stdout)

        # Reads of the altered chunk: the evicted cache fetches it and refuses it; so does a --from mount.
        h.drop_caches()
        self.assertEqual(h.errno_of(h.read_file, m.path("run", "v1", "a.bin")), errno.EIO)
        self.assertEqual(h.read_file(m.path("run", "v1", "b.bin")), v1["b.bin"])
        fresh = h.Mount(["--from", "s3://%s/fsck" % BUCKET, "--s3-endpoint", self.endpoint, "--s3-addressing",
                         "path"])
        self.addCleanup(fresh.cleanup)
        self.assertEqual(h.errno_of(h.read_file, fresh.path("run", "v1", "a.bin")), errno.EIO)
        self.assertEqual(h.read_file(fresh.path("run", "v2", "d.bin")), v2["d.bin"])
        self.assertGreaterEqual(fresh.stats()["s3"]["fetch_corrupt"], 1)

    def packed_extents(self, prefix, run, version, node):
        """[(path, digest, chunk_len, pack key, pack_off)] of a manifest's extents in packs."""
        man = json.loads(self.s3("get", "%s/runs/%s/%s/%s.manifest" % (prefix, run, version, node)).stdout)
        return [(e["path"], x[2], x[4], pack_key(prefix, x[5]), x[6]) for e in man["entries"]
                for x in e.get("extents", []) if len(x) == 7]

    def packed_bucket(self, prefix):
        """Two versions with a pack each (files of several 1 MiB chunks) and a lone chunk object; the
        packed extents of v1 and v2."""
        m = self.mount(prefix, "--node-id", "n1", "--chunk-size", "1M")
        self.files = {"big.bin": h.random_bytes(3 * MIB + 5, 3301), "small.bin": h.random_bytes(100000, 3302)}
        self.write_version(m, "run", "v1", self.files)
        self.seal_wait(m, "run", "v1")
        self.write_version(m, "run", "v2", {"other.bin": h.random_bytes(2 * MIB, 3303)})
        self.seal_wait(m, "run", "v2")
        m.umount()
        return self.packed_extents(prefix, "run", "v1", "n1"), self.packed_extents(prefix, "run", "v2", "n1")

    def test_packs_clean_altered_member_and_table(self):
        x1, x2 = self.packed_bucket("fsckpk")
        self.assertEqual((len(x1), len(x2)), (4, 2))
        pack1 = x1[0][3]
        self.assertEqual({x[3] for x in x1}, {pack1})
        clean = self.fsck_remote("fsckpk")
        self.assertEqual(clean.returncode, 0, clean.stdout + clean.stderr)
        s = self.summary(clean)
        self.assertIn("7 chunk objects", s)  # 4 + 2 in packs, small.bin on its own
        self.assertIn(", 2 packs; 0 problems", s)
        self.assertIn("0 unreferenced packs", s)
        verified = float(re.search(r"\(([\d.]+) MiB verified\)", s).group(1))
        self.assertAlmostEqual(verified, (sum(len(d) for d in self.files.values()) + 2 * MIB) / MIB, delta=0.1)
        self.assertNotIn("note:", clean.stdout)

        # A pack no manifest names (a copy under another name) is counted, not noted.
        original = self.s3("get", pack1).stdout
        stray = pack_key("fsckpk", h.sha256_bytes(b"stray pack"))
        self.put_object(stray, original)
        cp = self.fsck_remote("fsckpk", "--quick")
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("1 unreferenced pack (", self.summary(cp))
        self.assertNotIn("note:", cp.stdout)
        self.s3("rm", stray)

        # A byte of the second member's payload flipped in place: same size, so only a download sees it.
        path, digest, _, _, off = x1[1]
        obj = bytearray(original)
        obj[off + 64 + 777] ^= 0x20
        self.put_object(pack1, bytes(obj))
        bad = self.fsck_remote("fsckpk")
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        lines = [x for x in bad.stdout.splitlines() if x.startswith("corrupt pack object %s " % pack1)]
        self.assertEqual(lines, ["corrupt pack object %s (chunk %s at offset %d: header or SHA-256 mismatch): used "
                                 "by run/v1/big.bin" % (pack1, digest, off)], bad.stdout)
        self.assertIn("1 problem (chunk objects: 0 missing, 1 corrupt)", self.summary(bad))
        quick = self.fsck_remote("fsckpk", "--quick")
        self.assertEqual(quick.returncode, 0, quick.stdout + quick.stderr)
        self.assertNotIn(pack1, quick.stdout)

        # Its member table damaged instead: readers never read it, but bucket gc would take the pack
        # for garbage once no manifest names it.
        obj = bytearray(original)
        obj[32 + 40 + 3] ^= 0x01
        self.put_object(pack1, bytes(obj))
        bad = self.fsck_remote("fsckpk")
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn("corrupt pack object %s (its member table does not parse" % pack1, bad.stdout)
        self.assertIn("used by run/v1/big.bin\n", bad.stdout)
        self.assertIn("1 problem (chunk objects: 0 missing, 1 corrupt)", self.summary(bad))
        self.put_object(pack1, original)
        self.assertEqual(self.fsck_remote("fsckpk").returncode, 0)

    def test_packs_cut_short_or_deleted(self):
        x1, x2 = self.packed_bucket("fsckpk2")
        pack1, pack2 = x1[0][3], x2[0][3]
        # pack1 re-PUT without its last 30 bytes: its last member (5 bytes of payload) no longer fits;
        # --quick sees it in the listing.
        original = self.s3("get", pack1).stdout
        self.put_object(pack1, original[:-30])
        _, last, length, _, off = x1[-1]
        for extra in ((), ("--quick",)):
            cp = self.fsck_remote("fsckpk2", *extra)
            self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
            self.assertIn("corrupt pack object %s (%d bytes, chunk %s at offset %d ends at %d): used by "
                          "run/v1/big.bin\n" % (pack1, len(original) - 30, last, off, off + 64 + length),
                          cp.stdout)
            self.assertIn("1 problem (chunk objects: 0 missing, 1 corrupt)", self.summary(cp))
        self.put_object(pack1, original)
        # pack2 deleted: each of its members is missing, named with the pack's key.
        self.s3("rm", pack2)
        cp = self.fsck_remote("fsckpk2", "--quick")
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        missing = [x for x in cp.stdout.splitlines() if x.startswith("missing pack object %s " % pack2)]
        self.assertEqual(sorted(missing), sorted("missing pack object %s (chunk %s at offset %d): used by "
                                                 "run/v2/other.bin" % (pack2, d, o) for _, d, _, _, o in x2),
                         cp.stdout)
        self.assertIn("2 problems (chunk objects: 2 missing, 0 corrupt)", self.summary(cp))
        cp = self.fsck_remote("fsckpk2")
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("2 problems (chunk objects: 2 missing, 0 corrupt)", self.summary(cp))

    def test_one_chunk_at_two_locations_is_checked_at_each(self):
        x1, _ = self.packed_bucket("fsckpk3")
        pack1, digest, off = x1[1][3], x1[1][1], x1[1][4]
        # Another node uploads the pack's second chunk as a file of its own: its own object.
        b = self.mount("fsckpk3", "--node-id", "n2", "--chunk-size", "1M")
        piece = self.files["big.bin"][MIB:2 * MIB]
        self.write_version(b, "solo", "v1", {"piece.bin": piece})
        self.seal_wait(b, "solo", "v1")
        b.umount()
        lone = chunk_key("fsckpk3", piece)
        self.assertEqual(lone, "fsckpk3/chunks/%s/%s" % (digest[:2], digest))
        cp = self.fsck_remote("fsckpk3")
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("8 chunk objects", self.summary(cp))
        # Damage at one location is told with the files that use that location only.
        original = self.s3("get", pack1).stdout
        obj = bytearray(original)
        obj[off + 64 + 5] ^= 0x01
        self.put_object(pack1, bytes(obj))
        self.s3("rm", lone)
        cp = self.fsck_remote("fsckpk3")
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertIn("missing chunk object %s: used by solo/v1/piece.bin\n" % lone, cp.stdout)
        self.assertIn("corrupt pack object %s (chunk %s at offset %d: header or SHA-256 mismatch): used by "
                      "run/v1/big.bin\n" % (pack1, digest, off), cp.stdout)
        self.assertIn("2 problems (chunk objects: 1 missing, 1 corrupt)", self.summary(cp))

    def test_bad_manifest_and_commit_without_manifest(self):
        m = self.mount("fsckmeta")
        self.write_version(m, "run", "good", {"x.bin": h.random_bytes(70000, 3201)})
        self.seal_wait(m, "run", "good")
        keys = self.listing("fsckmeta")
        manifest = [k for k in keys if k.endswith(".manifest")][0]
        commit = json.loads(self.s3("get", "fsckmeta/runs/run/good/COMMIT").stdout)
        commit["version"] = "ghost"
        self.put_object("fsckmeta/runs/run/ghost/COMMIT", json.dumps(commit).encode())
        self.put_object("fsckmeta/runs/run/broken/COMMIT", json.dumps(dict(commit, version="broken")).encode())
        self.put_object("fsckmeta/runs/run/broken/" + manifest.rsplit("/", 1)[1], b'{"format": 1, "entries": [')
        self.put_object("fsckmeta/notes.txt", b"not ours")
        cp = self.fsck_remote("fsckmeta")
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertRegex(cp.stdout, r"bad COMMIT fsckmeta/runs/run/ghost/COMMIT: run/ghost is committed but has no "
                                    r"manifest")
        self.assertRegex(cp.stdout, r"bad manifest fsckmeta/runs/run/broken/\S+\.manifest: manifest does not parse")
        self.assertIn("note: fsckmeta/notes.txt", cp.stdout)
        s = self.summary(cp)
        self.assertIn("3 committed versions", s)
        self.assertIn("2 problems", s)

    def test_bad_options_and_unreachable_server_exit_2(self):
        def usage(*args, want):
            cp = h.cli("fsck", *args, timeout=60)
            self.assertEqual(cp.returncode, 2, cp.stdout + cp.stderr)
            self.assertIn(want, cp.stderr)
            self.assertNotIn("fsck --remote s3", cp.stdout)

        opts = ["--s3-endpoint", self.endpoint, "--s3-addressing", "path"]
        usage("--remote", *opts, want="missing --s3")
        usage("--remote", "--s3", "s3://%s/x" % BUCKET, "--jobs", "0", *opts, want="--jobs")
        usage("--remote", "--s3", "s3://%s/x" % BUCKET, "--frobnicate", *opts, want="unknown option --frobnicate")
        usage("--remote", "--s3", "gs://bucket/x", *opts, want="s3://")
        usage("--remote", "--s3", "s3://%s/x" % BUCKET, "--s3-endpoint", "ftp://127.0.0.1", want="endpoint")
        usage("--remote", "--s3", "s3://%s/x" % BUCKET, "-c", "/nonexistent/pecfs.conf", *opts, want="nonexistent")
        usage("--remote", "--s3", "s3://%s/x" % BUCKET, *opts, "/nonexistent/data", want="/nonexistent/data")
        usage("--remote", "--s3", "s3://no-such-bucket-here/x", *opts, want="does not exist")
        usage("--remote", "--s3", "s3://%s/x" % BUCKET, "--s3-endpoint", "http://127.0.0.1:%d" % free_port(),
              "--s3-addressing", "path", want="cannot reach S3 endpoint")
        env = dict(h._env(), AWS_SECRET_ACCESS_KEY="wrong-secret-value")
        cp = h.cli("fsck", "--remote", "--s3", "s3://%s/x" % BUCKET, *opts, env=env, timeout=60)
        self.assertEqual(cp.returncode, 2, cp.stderr)
        self.assertIn("secret key is wrong", cp.stderr)
        self.assertNotIn("wrong-secret-value", cp.stderr)


if __name__ == "__main__":
    h.main()
