# test_s3_gc.py - bucket garbage collection (`pecfs gc --remote`) and the multi-node commit barrier,
# on real mounts against a real Ceph RGW (s3_fixture.py): orphans go, everything a version or a node
# references stays, objects within the grace period stay, --keep retires old versions only once no
# node keeps them, uploads wait while a collection runs and re-check marks from an older epoch, one
# collection at a time; COMMIT waits for every node's part with --s3-nodes. Node states are a head
# naming binary segments: publishes add small segments, compaction drops old ones, a missing segment
# stops a collection before it deletes anything, format 1 states of older releases still count.
# Packs (several chunks of a file in one object) go with the last manifest naming them, unless a
# member is still live elsewhere; objects under packs/ that are no pack go like unnamed chunks.
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import BUCKET, MIB, RgwTestCase  # noqa: E402


class S3GcTest(RgwTestCase):
    def gc(self, prefix, *args, check=True):
        cp = h.cli("gc", "--remote", *self.tier_opts(prefix), *args, timeout=180)
        if check:
            self.assertEqual(cp.returncode, 0, cp.stderr)
        return cp

    def chunk_keys(self, prefix):
        return {k for k in self.listing(prefix) if k.startswith(prefix + "/chunks/")}

    def chunk_key(self, prefix, data):
        d = h.sha256_bytes(data)
        return "%s/chunks/%s/%s" % (prefix, d[:2], d)

    def put_object(self, key, data):
        path = os.path.join(self.scratch, "obj-%d" % time.monotonic_ns())
        with open(path, "wb") as f:
            f.write(data)
        self.s3("put", key, path)
        os.unlink(path)

    def put_epoch(self, prefix, epoch, collecting):
        self.put_object("%s/gc/epoch" % prefix, json.dumps({
            "format": 1, "epoch": epoch, "collecting": collecting, "node": "test-collector",
            "updated_ns": time.time_ns()}).encode())

    def restore_equal(self, prefix, what, files):
        dest = os.path.join(self.scratch, "restore-%s-%d" % (prefix, time.monotonic_ns()))
        self.restore(prefix, what, dest)
        for rel, data in files.items():
            self.assertEqual(h.read_file(os.path.join(dest, rel)), data, "%s %s" % (what, rel))

    def node_state(self, prefix, node):
        return json.loads(self.s3("get", "%s/nodes/%s.json" % (prefix, node)).stdout)

    def segment_keys(self, prefix, node):
        return sorted(k for k in self.listing(prefix) if k.startswith("%s/nodes/%s/" % (prefix, node)))

    def pack_keys(self, prefix):
        return {k for k in self.listing(prefix) if k.startswith(prefix + "/packs/")}

    def packs_of(self, prefix, run, version, node):
        """{pack key: [chunk digests]} of the packed extents of a node's manifest for a version."""
        man = json.loads(self.s3("get", "%s/runs/%s/%s/%s.manifest" % (prefix, run, version, node)).stdout)
        out = {}
        for e in man["entries"]:
            for x in e.get("extents", []):
                if len(x) == 7:
                    out.setdefault("%s/packs/%s/%s" % (prefix, x[5][:2], x[5]), []).append(x[2])
        return out

    # ---- sweeping ----

    def test_orphans_go_referenced_and_recent_stay(self):
        m = self.mount("sweep", "--node-id", "n1")
        v1 = {"a.bin": h.random_bytes(3 * MIB, 1), "b.bin": h.random_bytes(2 * MIB, 2)}
        v2 = {"a.bin": v1["a.bin"], "b.bin": h.random_bytes(2 * MIB, 3)}
        self.write_version(m, "run", "step-1", v1)
        self.seal_wait(m, "run", "step-1")
        self.write_version(m, "run", "step-2", v2)
        self.seal_wait(m, "run", "step-2")
        referenced = self.chunk_keys("sweep")
        self.assertEqual(len(referenced), 3)
        # The node published its state: both versions and every chunk of its index.
        st = self.node_state("sweep", "n1")
        self.assertEqual(sorted(map(tuple, st["versions"])), [("run", "step-1"), ("run", "step-2")])
        self.assertEqual(st["chunk_count"], 3)
        # An orphan (an upload cut short long ago) and a fresh one (an upload in progress).
        old = h.random_bytes(1 * MIB, 4)
        fresh = h.random_bytes(1 * MIB, 5)
        self.put_object(self.chunk_key("sweep", old), b"x" * 64 + old)
        dry = self.gc("sweep", "--grace", "0", "--dry-run")
        self.assertIn("1 deleted", dry.stdout)
        self.assertIn(self.chunk_key("sweep", old), self.chunk_keys("sweep"))
        out = self.gc("sweep", "--grace", "0")
        self.assertIn("1 deleted", out.stdout, out.stdout)
        self.assertEqual(self.chunk_keys("sweep"), referenced)
        self.put_object(self.chunk_key("sweep", fresh), b"x" * 64 + fresh)
        out = self.gc("sweep", "--grace", "1h")
        self.assertIn("1 within the grace period", out.stdout)
        self.assertIn(self.chunk_key("sweep", fresh), self.chunk_keys("sweep"))
        self.restore_equal("sweep", "run@step-1", v1)
        self.restore_equal("sweep", "run@step-2", v2)
        # The epoch went up by one per collection, and is not left collecting.
        ep = json.loads(self.s3("get", "sweep/gc/epoch").stdout)
        self.assertEqual((ep["epoch"], ep["collecting"]), (2, False))
        self.assertNotIn("sweep/gc/lock", self.listing("sweep"))

    def test_keep_retires_versions_no_node_keeps(self):
        m = self.mount("keep", "--node-id", "n1")
        files = {}
        for i in range(4):
            files[i] = {"w.bin": h.random_bytes(2 * MIB, 20 + i), "common.bin": h.random_bytes(1 * MIB, 19)}
            self.write_version(m, "run", "step-%d" % (i + 1), files[i])
            self.seal_wait(m, "run", "step-%d" % (i + 1))
        self.assertEqual(len(self.chunk_keys("keep")), 5)
        # Every version is still kept by the node: nothing retires.
        out = self.gc("keep", "--keep", "2", "--grace", "0")
        self.assertIn("0 retired", out.stdout)
        self.assertEqual(len(self.chunk_keys("keep")), 5)
        # The node drops the two oldest and reclaims their chunks; its published state follows.
        for i in (1, 2):
            h.cli("unpin", m.path("run", "step-%d" % i))
            os.system("rm -rf %s" % m.path("run", "step-%d" % i))
        cp = h.cli("gc", m.data)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertTrue(h.wait_until(lambda: self.node_state("keep", "n1")["chunk_count"] == 3, 75),
                        self.node_state("keep", "n1"))
        # An object beside a manifest (a persist selection's composition) goes with its version.
        self.put_object("keep/runs/run/step-1/n1.composition", b"{}")
        out = self.gc("keep", "--keep", "2", "--grace", "0")
        self.assertIn("2 retired", out.stdout, out.stdout)
        keys = self.listing("keep")
        for i in (1, 2):
            self.assertNotIn("keep/runs/run/step-%d/COMMIT" % i, keys)
            self.assertFalse([k for k in keys if k.startswith("keep/runs/run/step-%d/" % i)])
        # The node's segments still list the two dropped chunks (5 listed, 3 held: no compaction
        # yet), so they stay: a node state only ever keeps chunks longer. After a restart the node
        # publishes one full segment; the old ones are orphans, and the next collection reclaims both.
        self.assertEqual(len(self.chunk_keys("keep")), 5)
        old_segs = self.segment_keys("keep", "n1")
        m.umount()
        m = self.mount("keep", "--node-id", "n1", data=m.data)
        self.assertTrue(h.wait_until(lambda: not set(self.segment_keys("keep", "n1")) <= set(old_segs), 60))
        st = self.node_state("keep", "n1")
        self.assertEqual((st["chunk_count"], [s["count"] for s in st["segments"]]), (3, [3]))
        out = self.gc("keep", "--keep", "2", "--grace", "0")
        self.assertIn("node state segments: %d deleted" % len(old_segs), out.stdout)
        self.assertEqual(self.segment_keys("keep", "n1"), ["keep/nodes/n1/%s.seg" % st["segments"][0]["gen"]])
        self.assertEqual(len(self.chunk_keys("keep")), 3)
        cp = self.restore("keep", "run@step-1", os.path.join(self.scratch, "gone"), check=False)
        self.assertEqual(cp.returncode, 1)
        self.restore_equal("keep", "run@step-3", files[2])
        self.restore_equal("keep", "run@step-4", files[3])

    def test_remote_only_chunks_of_a_node_stay(self):
        """A node that evicted a chunk (or imported it) still needs the object: its index protects it
        even when the only version naming it was retired from the bucket."""
        a = self.mount("hold", "--node-id", "a")
        data = {"x.bin": h.random_bytes(3 * MIB, 40)}
        self.write_version(a, "run", "step-1", data)
        self.seal_wait(a, "run", "step-1")
        self.write_version(a, "run", "step-2", {"y.bin": h.random_bytes(1 * MIB, 41)})
        self.seal_wait(a, "run", "step-2")
        a.umount()
        reader = h.Mount(["--from", "s3://%s/hold" % BUCKET, "--s3-endpoint", self.endpoint, "--s3-addressing",
                          "path", "--node-id", "reader"])
        self.addCleanup(reader.cleanup)
        self.assertTrue(h.wait_until(lambda: "hold/nodes/reader.json" in self.listing("hold"), 30))
        self.s3("rm", "hold/nodes/a.json")  # node a is gone for good
        out = self.gc("hold", "--keep", "1", "--grace", "0")
        self.assertIn("0 retired", out.stdout)  # the reader keeps step-1 locally
        self.assertEqual(h.read_file(reader.path("run", "step-1", "x.bin")), data["x.bin"])

    # ---- packs ----

    def test_pack_goes_with_its_last_manifest(self):
        """A retired version's pack goes (no manifest names it, no member is live); the kept version's
        pack stays, even with a member table that no longer parses: a manifest names it."""
        m = self.mount("gcpack", "--node-id", "n1", "--chunk-size", "1M")
        v1 = {"w.bin": h.random_bytes(3 * MIB + 100, 120)}
        v2 = {"w.bin": h.random_bytes(3 * MIB + 100, 121)}
        self.write_version(m, "run", "step-1", v1)
        self.seal_wait(m, "run", "step-1")
        self.write_version(m, "run", "step-2", v2)
        self.seal_wait(m, "run", "step-2")
        m.umount()
        p1 = self.packs_of("gcpack", "run", "step-1", "n1")
        p2 = self.packs_of("gcpack", "run", "step-2", "n1")
        self.assertEqual((len(p1), len(p2)), (1, 1), (p1, p2))
        self.assertEqual(len(list(p1.values())[0]), 4)  # four 1 MiB chunks in one pack
        self.assertEqual(self.pack_keys("gcpack"), set(p1) | set(p2))
        self.assertFalse(self.chunk_keys("gcpack"))
        # step-2's pack with a damaged table (readers never read it; gc would take it for no pack).
        (p2key,) = p2
        obj = bytearray(self.s3("get", p2key).stdout)
        obj[32 + 5] ^= 0x01
        self.put_object(p2key, bytes(obj))
        out = self.gc("gcpack", "--grace", "0", "--forget-node", "n1")  # nothing retires, the node goes
        self.assertIn("packs: 2 seen, 2 referenced, 0 within the grace period, 0 deleted", out.stdout, out.stdout)
        dry = self.gc("gcpack", "--keep", "1", "--grace", "0", "--dry-run")
        self.assertIn("would retire run/step-1", dry.stdout)
        self.assertIn("packs: 2 seen, 1 referenced, 0 within the grace period, 1 deleted", dry.stdout, dry.stdout)
        self.assertEqual(self.pack_keys("gcpack"), set(p1) | set(p2))
        out = self.gc("gcpack", "--keep", "1", "--grace", "0")
        self.assertIn("retired run/step-1", out.stdout)
        self.assertIn("packs: 2 seen, 1 referenced, 0 within the grace period, 1 deleted", out.stdout, out.stdout)
        self.assertEqual(self.pack_keys("gcpack"), set(p2))
        self.restore_equal("gcpack", "run@step-2", v2)

    def test_pack_with_a_live_member_stays(self):
        """A pack no manifest names any more stays while one of its chunks is live: listed by a node
        state, or named by a remaining manifest at another location (its own object)."""
        a = self.mount("gclive", "--node-id", "a", "--chunk-size", "1M")
        w = h.random_bytes(4 * MIB, 130)
        self.write_version(a, "run", "step-1", {"w.bin": w})
        self.seal_wait(a, "run", "step-1")
        self.write_version(a, "run", "step-2", {"z.bin": h.random_bytes(2 * MIB, 131)})
        self.seal_wait(a, "run", "step-2")
        a.umount()
        ((pack, members),) = self.packs_of("gclive", "run", "step-1", "a").items()
        self.assertEqual(members, [h.sha256_bytes(w[i * MIB:(i + 1) * MIB]) for i in range(4)])
        # A node of an older release lists the pack's last chunk (and keeps no version).
        self.put_object("gclive/nodes/old.json", json.dumps({
            "format": 1, "node": "old", "updated_ns": time.time_ns(), "versions": [], "chunk_count": 1,
            "chunks": members[3]}).encode())
        out = self.gc("gclive", "--keep", "1", "--grace", "0", "--forget-node", "a")
        self.assertIn("retired run/step-1", out.stdout)
        self.assertIn("packs: 2 seen, 2 referenced, 0 within the grace period, 0 deleted", out.stdout, out.stdout)
        self.assertIn(pack, self.pack_keys("gclive"))
        # Node b uploads another of its chunks as a file of its own: a lone chunk object its manifest
        # names. With b's state and then old's gone, only that manifest keeps the pack.
        b = self.mount("gclive", "--node-id", "b", "--chunk-size", "1M")
        self.write_version(b, "other", "step-1", {"piece.bin": w[MIB:2 * MIB]})
        self.seal_wait(b, "other", "step-1")
        b.umount()
        self.assertEqual(self.packs_of("gclive", "other", "step-1", "b"), {})
        self.assertIn(self.chunk_key("gclive", w[MIB:2 * MIB]), self.chunk_keys("gclive"))
        self.gc("gclive", "--grace", "0", "--forget-node", "b")
        out = self.gc("gclive", "--keep", "1", "--grace", "0", "--forget-node", "old")
        self.assertIn("packs: 2 seen, 2 referenced, 0 within the grace period, 0 deleted", out.stdout, out.stdout)
        self.assertIn(pack, self.pack_keys("gclive"))
        # Nothing does any more: it goes, with the lone chunk object.
        for key in ("gclive/runs/other/step-1/COMMIT", "gclive/runs/other/step-1/b.manifest"):
            self.s3("rm", key)
        out = self.gc("gclive", "--grace", "0")
        self.assertIn("packs: 2 seen, 1 referenced, 0 within the grace period, 1 deleted", out.stdout, out.stdout)
        self.assertNotIn(pack, self.pack_keys("gclive"))
        self.assertFalse(self.chunk_keys("gclive"))

    def test_objects_under_packs_that_are_no_pack_go(self):
        """Garbage under packs/ (a name that is not a pack's, a table that does not parse, a pack's
        bytes under another name) goes once past the grace period, like an unnamed chunk object."""
        m = self.mount("gcjunk", "--node-id", "n1", "--chunk-size", "1M")
        files = {"w.bin": h.random_bytes(2 * MIB + 1, 140)}
        self.write_version(m, "run", "step-1", files)
        self.seal_wait(m, "run", "step-1")
        m.umount()
        ((pack, _),) = self.packs_of("gcjunk", "run", "step-1", "n1").items()
        real = self.s3("get", pack).stdout
        name = pack.rsplit("/", 1)[1]
        other = h.sha256_bytes(b"no such pack")
        cut = h.sha256_bytes(real[:100])
        junk = {
            "gcjunk/packs/%s/%s" % (other[:2], other): h.random_bytes(5000, 141),  # not a pack at all
            "gcjunk/packs/%s/%s" % (other[::-1][:2], other[::-1]): real,  # a pack's bytes, another name
            "gcjunk/packs/%s/%s" % ("00" if name[:2] != "00" else "11", name): real,  # another <hh>
            "gcjunk/packs/%s/%s" % (name[:2].upper(), name.upper()): real,  # a spelling readers never use
            "gcjunk/packs/zz/not-a-pack": b"hello",
            "gcjunk/packs/%s/%s" % (cut[:2], cut): real[:100],  # cut inside its table
        }
        for key, data in junk.items():
            self.put_object(key, data)
        out = self.gc("gcjunk", "--grace", "1h")
        self.assertIn("packs: 7 seen, 1 referenced, 6 within the grace period, 0 deleted", out.stdout, out.stdout)
        out = self.gc("gcjunk", "--grace", "0")
        self.assertIn("packs: 7 seen, 1 referenced, 0 within the grace period, 6 deleted", out.stdout, out.stdout)
        for key in junk:
            self.assertIn("deleted %s (under packs/ but not a pack)" % key, out.stdout)
        self.assertEqual(self.pack_keys("gcjunk"), {pack})
        self.restore_equal("gcjunk", "run@step-1", files)

    def test_a_pack_of_a_later_format_stops_the_collection(self):
        """A pack whose header says a format this release does not read may hold chunks that nodes of
        a later release still use: the collector cannot judge it, so it stops and deletes nothing."""
        m = self.mount("gclater", "--node-id", "n1", "--chunk-size", "1M")
        self.write_version(m, "run", "step-1", {"w.bin": h.random_bytes(2 * MIB, 150)})
        self.seal_wait(m, "run", "step-1")
        m.umount()
        orphan = self.put_later_pack("gclater")
        before = self.listing("gclater")
        out = self.gc("gclater", "--grace", "0", check=False)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn("format this release does not read", out.stderr + out.stdout)
        after = self.listing("gclater")
        self.assertNotIn("gclater/gc/lock", after)  # the collector let go of the bucket
        self.assertEqual({k: v for k, v in after.items() if "/gc/" not in k},
                         {k: v for k, v in before.items() if "/gc/" not in k})
        self.assertIn(orphan, before)

    def put_later_pack(self, prefix):
        """Stores, under a pack's name, a pack of format 2 that no manifest names; returns its key."""
        import hashlib
        import struct
        payload = h.random_bytes(1000, 151)
        d = hashlib.sha256(payload).digest()
        table = d + struct.pack("<Q", len(payload))
        obj = b"PECS3PK1" + struct.pack("<III", 2, 32 + 40, 1) + bytes(12) + table
        name = hashlib.sha256(table).hexdigest()
        key = "%s/packs/%s/%s" % (prefix, name[:2], name)
        self.put_object(key, obj + bytes(64) + payload)
        return key

    def test_node_state_segments(self):
        """A publish adds a segment of the new digests only; dropping chunks compacts into one fresh
        segment and the node deletes the old ones; a missing segment stops a collection before it
        deletes anything; --forget-node removes the head and its segments."""
        m = self.mount("segs", "--node-id", "n1")
        f = {c: h.random_bytes(1 * MIB, 90 + i) for i, c in enumerate("abcde")}
        self.write_version(m, "run", "step-1", {k: f[k] for k in "abce"})
        self.seal_wait(m, "run", "step-1")
        st = self.node_state("segs", "n1")
        self.assertEqual((st["format"], st["chunk_count"], [s["count"] for s in st["segments"]]), (2, 4, [4]))
        self.assertNotIn("chunks", st)
        first = "segs/nodes/n1/%s.seg" % st["segments"][0]["gen"]
        self.assertEqual(self.listing("segs")[first], 32 + 4 * 32)
        # The second version adds one chunk: one small segment, the first one stays as it was.
        self.write_version(m, "run", "step-2", {"a": f["a"], "d": f["d"]})
        self.seal_wait(m, "run", "step-2")
        st = self.node_state("segs", "n1")
        self.assertEqual((st["chunk_count"], [s["count"] for s in st["segments"]]), (5, [4, 1]))
        listing = self.listing("segs")
        self.assertEqual(listing["segs/nodes/n1/%s.seg" % st["segments"][1]["gen"]], 32 + 32)
        self.assertEqual(self.segment_keys("segs", "n1"), sorted([first, "segs/nodes/n1/%s.seg" %
                                                                   st["segments"][1]["gen"]]))

        # A segment the head names is missing: the collector gives up before deleting anything.
        orphan = h.random_bytes(1 * MIB, 99)
        self.put_object(self.chunk_key("segs", orphan), b"x" * 64 + orphan)
        saved = self.s3("get", first).stdout
        self.s3("rm", first)
        cp = self.gc("segs", "--grace", "0", check=False)
        self.assertEqual(cp.returncode, 1, cp.stdout)
        self.assertIn("missing", cp.stderr)
        self.assertIn("nothing deleted", cp.stderr)
        self.assertIn(self.chunk_key("segs", orphan), self.chunk_keys("segs"))
        self.put_object(first, saved)
        # Every chunk a node lists stays, the orphan goes.
        out = self.gc("segs", "--grace", "0")
        self.assertIn("1 deleted", out.stdout, out.stdout)
        self.assertEqual(len(self.chunk_keys("segs")), 5)

        # step-1 goes locally: the node holds 2 chunks while its segments list 5 (over twice): it
        # compacts into one segment of 2 and deletes the two old ones once the new head is up.
        h.cli("unpin", m.path("run", "step-1"))
        os.system("rm -rf %s" % m.path("run", "step-1"))
        self.assertEqual(h.cli("gc", m.data).returncode, 0)
        self.assertTrue(h.wait_until(lambda: self.node_state("segs", "n1")["chunk_count"] == 2, 75))
        st = self.node_state("segs", "n1")
        self.assertEqual([s["count"] for s in st["segments"]], [2])
        self.assertEqual(self.segment_keys("segs", "n1"), ["segs/nodes/n1/%s.seg" % st["segments"][0]["gen"]])
        fsck = h.cli("fsck", "--remote", *self.tier_opts("segs"), timeout=120)
        self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)
        m.umount()

        # A segment no head names (a publish cut short) is a note for fsck.
        self.put_object("segs/nodes/n1/00000000000000ff.seg", saved)
        fsck = h.cli("fsck", "--remote", *self.tier_opts("segs"), timeout=120)
        self.assertIn("segs/nodes/n1/00000000000000ff.seg: a node state segment its node's head does not name",
                      fsck.stdout)
        # --forget-node: the head and every segment go; then nothing keeps step-1's chunks.
        out = self.gc("segs", "--grace", "0", "--forget-node", "n1")
        self.assertFalse([k for k in self.listing("segs") if k.startswith("segs/nodes/")])
        self.assertIn("node state segments: 2 deleted", out.stdout)

    def test_format_1_node_state_still_counts(self):
        """A node of an older release publishes every digest as hex: its chunks stay."""
        kept = h.random_bytes(1 * MIB, 110)
        self.put_object(self.chunk_key("fmt1", kept), b"x" * 64 + kept)
        self.put_object("fmt1/nodes/old.json", json.dumps({
            "format": 1, "node": "old", "updated_ns": time.time_ns(), "versions": [], "chunk_count": 1,
            "chunks": h.sha256_bytes(kept)}).encode())
        out = self.gc("fmt1", "--grace", "0")
        self.assertIn("1 referenced", out.stdout, out.stdout)
        self.assertIn(self.chunk_key("fmt1", kept), self.chunk_keys("fmt1"))
        out = self.gc("fmt1", "--grace", "0", "--forget-node", "old")
        self.assertIn("1 deleted", out.stdout, out.stdout)
        self.assertFalse(self.chunk_keys("fmt1"))

    # ---- the uploader's side of the protocol ----

    def test_uploads_wait_for_a_collection_and_recheck_marks(self):
        m = self.mount("proto", "--node-id", "n1")
        shared = h.random_bytes(2 * MIB, 50)
        self.write_version(m, "run", "step-1", {"s.bin": shared})
        self.seal_wait(m, "run", "step-1")
        # A collection is running: the next version waits, and says why.
        self.put_epoch("proto", 7, True)
        self.write_version(m, "run", "step-2", {"s.bin": shared, "t.bin": h.random_bytes(1 * MIB, 51)})
        self.assertEqual(h.cli("seal", m.path("run", "step-2")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: "garbage collection" in (m.stats()["s3"]["error"] or ""), 20),
                        m.stats()["s3"])
        time.sleep(2)
        self.assertNotIn("proto/runs/run/step-2/COMMIT", self.listing("proto"))
        # It deleted the shared chunk (as a collection may when nothing references it at the time) and
        # finished: the node must not trust its mark from epoch 0 and sends the chunk again.
        self.s3("rm", self.chunk_key("proto", shared))
        self.put_epoch("proto", 7, False)
        self.assertTrue(h.wait_until(lambda: self.version(m, "run", "step-2")["state"] == "uploaded", 60))
        self.assertIn(self.chunk_key("proto", shared), self.chunk_keys("proto"))
        self.restore_equal("proto", "run@step-2", {"s.bin": shared})

    def test_one_collection_at_a_time(self):
        m = self.mount("lock", "--node-id", "n1")
        self.write_version(m, "run", "step-1", {"f.bin": h.random_bytes(1 * MIB, 60)})
        self.seal_wait(m, "run", "step-1")
        self.put_object("lock/gc/lock", json.dumps({"format": 1, "host": "elsewhere", "pid": 1,
                                                    "started_ns": time.time_ns()}).encode())
        self.put_epoch("lock", 3, True)
        cp = self.gc("lock", "--grace", "0", check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("another bucket garbage collection", cp.stderr)
        # A collector that died long ago (lock and epoch both stale) is broken.
        old = time.time_ns() - 3600 * 10**9
        self.put_object("lock/gc/lock", json.dumps({"format": 1, "host": "elsewhere", "pid": 1,
                                                    "started_ns": old}).encode())
        self.put_object("lock/gc/epoch", json.dumps({"format": 1, "epoch": 3, "collecting": True,
                                                     "node": "dead", "updated_ns": old}).encode())
        out = self.gc("lock", "--grace", "0")
        self.assertIn("epoch 4", out.stdout)
        self.assertEqual(self.version(m, "run", "step-1")["state"], "uploaded")

    def test_abandoned_uploads_go_held_ones_stay(self):
        """A manifest without COMMIT that no node keeps (its node died mid-upload) is retired once old,
        with the chunks only it named; a part waiting for other nodes is kept by its node and stays."""
        a = self.mount("abandon", "--node-id", "node-a", "--s3-nodes", "2")
        fa = {"rank0.pt": h.random_bytes(2 * MIB, 80)}
        self.write_version(a, "run", "step-7", fa)
        self.assertEqual(h.cli("seal", a.path("run", "step-7")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: a.stats()["s3"]["versions_awaiting_nodes"] == 1, 60))
        # A dead node's part: a manifest naming one chunk object only it uploaded.
        ghost = h.random_bytes(1 * MIB, 81)
        d = h.sha256_bytes(ghost)
        self.put_object(self.chunk_key("abandon", ghost), b"x" * 64 + ghost)
        self.put_object("abandon/runs/run/step-3/ghost.manifest", json.dumps({
            "format": 1, "run": "run", "version": "step-3", "node": "ghost", "step": 3, "sealed_ns": 1,
            "seal_seq": 1, "chunk_size": 4 << 20, "entries": [
                {"path": "rank9.pt", "type": "file", "mode": 420, "mtime_ns": 1, "size": len(ghost),
                 "extents": [[0, len(ghost), d, 0, len(ghost)]]}]}).encode())
        out = self.gc("abandon", "--grace", "1h")
        self.assertIn("0 abandoned uploads", out.stdout, out.stdout)
        self.assertIn("abandon/runs/run/step-3/ghost.manifest", self.listing("abandon"))
        out = self.gc("abandon", "--grace", "0")
        self.assertIn("retired run/step-3 (an upload without COMMIT", out.stdout)
        self.assertIn("1 abandoned uploads", out.stdout, out.stdout)
        self.assertNotIn("retired run/step-7", out.stdout)
        listing = self.listing("abandon")
        self.assertNotIn("abandon/runs/run/step-3/ghost.manifest", listing)
        self.assertNotIn(self.chunk_key("abandon", ghost), listing)
        self.assertIn("abandon/runs/run/step-7/node-a.manifest", listing)
        self.assertIn(self.chunk_key("abandon", fa["rank0.pt"]), listing)

    def test_bad_usage(self):
        for args in (["--keep", "x"], ["--grace", "soon"], ["--bogus"], []):
            cp = h.cli("gc", "--remote", *args)
            self.assertEqual(cp.returncode, 2, args)
            self.assertTrue(cp.stderr.strip(), args)

    # ---- commit barrier ----

    def test_commit_waits_for_every_node(self):
        a = self.mount("barrier", "--node-id", "node-a", "--s3-nodes", "2")
        b = self.mount("barrier", "--node-id", "node-b", "--s3-nodes", "2")
        fa = {"rank0.pt": h.random_bytes(2 * MIB, 70)}
        fb = {"rank1.pt": h.random_bytes(2 * MIB, 71)}
        self.write_version(a, "run", "step-5", fa)
        self.assertEqual(h.cli("seal", a.path("run", "step-5")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: "barrier/runs/run/step-5/node-a.manifest" in self.listing("barrier"),
                                     60))
        self.assertTrue(h.wait_until(lambda: a.stats()["s3"]["versions_awaiting_nodes"] == 1, 20))
        time.sleep(3)
        self.assertNotIn("barrier/runs/run/step-5/COMMIT", self.listing("barrier"))
        self.assertNotEqual(self.version(a, "run", "step-5")["state"], "uploaded")
        self.write_version(b, "run", "step-5", fb)
        self.seal_wait(b, "run", "step-5")
        self.assertIn("barrier/runs/run/step-5/COMMIT", self.listing("barrier"))
        # Node a notices the commit and reports its version uploaded.
        self.assertTrue(h.wait_until(lambda: self.version(a, "run", "step-5")["state"] == "uploaded", 20))
        self.assertEqual(a.stats()["s3"]["versions_awaiting_nodes"], 0)
        self.restore_equal("barrier", "run@step-5", dict(fa, **fb))


if __name__ == "__main__":
    h.main()
