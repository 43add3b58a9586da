# test_s3_packs.py - packs: the new chunks of one file go up to S3 together as one object
# (store/FORMAT.md section 5, "Packs"), against a real S3 server (a throwaway Ceph RGW started by the
# fixture). The bucket is read back and parsed here, independently of the C code: the pack's header
# and member table, its name (the table's SHA-256), each member's chunk object, and the manifest's
# locations; then restore and mount --from read the bytes back. Also: the pack size bound, an
# object per chunk with s3-pack-size 0, unchanged chunks keeping their pack, replicas on two nodes
# sharing one pack, and hostile locations (another member, past the end) giving EIO, never bytes.
import errno
import hashlib
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import BUCKET, MIB, RgwTestCase  # noqa: E402

CHUNK = MIB  # these tests use 1 MiB chunks, so that a few MiB make packs of several members


def parse_pack(name, obj):
    """[(digest hex, payload)] of a pack object, checked as FORMAT.md describes it."""
    magic, fmt, hlen, count = struct.unpack_from("<8sIII", obj, 0)
    assert magic == b"PECS3PK1" and fmt == 1, (magic, fmt)
    assert hlen == 32 + 40 * count and obj[20:32] == bytes(12), (hlen, count)
    table = obj[32:hlen]
    assert hashlib.sha256(table).hexdigest() == name, "a pack's name is its table's SHA-256"
    out, off = [], hlen
    for i in range(count):
        d, length = table[40 * i:40 * i + 32], struct.unpack_from("<Q", table, 40 * i + 32)[0]
        member = obj[off:off + 64 + length]
        assert member[:8] == b"PECS3CK1" and member[24:56] == d, "member %d is its chunk object" % i
        assert struct.unpack_from("<Q", member, 16)[0] == length
        payload = member[64:]
        assert hashlib.sha256(payload).digest() == d
        out.append((d.hex(), payload, off))
        off += 64 + length
    assert off == len(obj), "a pack ends with its last member"
    return out


class S3PacksTest(RgwTestCase):
    def mount_1m(self, prefix, *extra):
        return self.mount(prefix, "--chunk-size", "1M", *extra)

    def manifest(self, prefix, run, version):
        keys = [k for k in self.listing(prefix) if k.startswith("%s/runs/%s/%s/" % (prefix, run, version))
                and k.endswith(".manifest")]
        self.assertEqual(len(keys), 1, keys)
        return json.loads(self.s3("get", keys[0]).stdout)

    def packs(self, prefix):
        """{pack name: [(digest hex, payload, offset)]} of every pack object under prefix."""
        out = {}
        for k in self.listing(prefix):
            if k.startswith(prefix + "/packs/"):
                name = k.rsplit("/", 1)[1]
                self.assertEqual(k.split("/")[-2], name[:2])
                out[name] = parse_pack(name, self.s3("get", k).stdout)
        return out

    def chunk_objects(self, prefix):
        return {k.rsplit("/", 1)[1] for k in self.listing(prefix) if k.startswith(prefix + "/chunks/")}

    def test_new_chunks_of_a_file_go_up_as_one_pack(self):
        m = self.mount_1m("layout")
        files = {"model.pt": h.random_bytes(5 * MIB + 100, 1), "optim.pt": h.random_bytes(3 * MIB, 2),
                 "config.json": b'{"step": 1}\n'}
        self.write_version(m, "run", "step-1", files)
        self.seal_wait(m, "run", "step-1")
        packs = self.packs("layout")
        # One pack per file of several chunks, members in file order; a lone chunk is its own object.
        by_first = {members[0][0]: members for members in packs.values()}
        self.assertEqual(len(packs), 2, sorted(packs))
        for rel in ("model.pt", "optim.pt"):
            digests = h.chunk_digests(files[rel], CHUNK)
            members = by_first[digests[0]]
            self.assertEqual([d for d, _, _ in members], digests, rel)
            self.assertEqual(b"".join(p for _, p, _ in members), files[rel], rel)
        self.assertEqual(self.chunk_objects("layout"), {h.sha256_bytes(files["config.json"])})
        s3 = m.stats()["s3"]
        self.assertEqual(s3["packs_uploaded"], 2)
        self.assertEqual(s3["chunks_uploaded"], 6 + 3 + 1)
        # The manifest is format 2 and places each packed chunk at its member's offset.
        man = self.manifest("layout", "run", "step-1")
        self.assertEqual(man["format"], 2)
        where = {d: (name, off) for name, members in packs.items() for d, _, off in members}
        for e in man["entries"]:
            for x in e.get("extents", []):
                if x[2] in where:
                    self.assertEqual(len(x), 7, x)
                    self.assertEqual((x[5], x[6]), where[x[2]], e["path"])
                else:
                    self.assertEqual(len(x), 5, x)
        # Read back: restore, and a fresh node's mount --from.
        dest = os.path.join(self.scratch, "restored-layout")
        self.restore("layout", "run@step-1", dest)
        for rel, data in files.items():
            self.assertEqual(h.read_file(os.path.join(dest, rel)), data, rel)
        fresh = h.Mount(["--from", "s3://%s/layout" % BUCKET, "--s3-endpoint", self.endpoint,
                         "--s3-addressing", "path"])
        self.addCleanup(fresh.cleanup)
        for rel, data in files.items():
            self.assertEqual(h.read_file(fresh.path("run", "step-1", rel)), data, rel)
        fsck = h.cli("fsck", "--remote", *self.tier_opts("layout"), timeout=120)
        self.assertEqual(fsck.returncode, 0, fsck.stdout + fsck.stderr)

    def test_pack_size_bounds_packs_and_zero_sends_an_object_per_chunk(self):
        data = h.random_bytes(5 * MIB, 3)
        m = self.mount_1m("bound", "--s3-pack-size", "2M")
        self.write_version(m, "run", "v", {"f.bin": data})
        self.seal_wait(m, "run", "v")
        packs = self.packs("bound")
        digests = h.chunk_digests(data, CHUNK)
        self.assertEqual(sorted(len(p) for p in packs.values()), [2, 2])
        self.assertEqual(self.chunk_objects("bound"), {digests[4]})  # the fifth chunk alone
        self.assertEqual(sorted(d for p in packs.values() for d, _, _ in p), sorted(digests[:4]))

        z = self.mount_1m("single", "--s3-pack-size", "0")
        self.write_version(z, "run", "v", {"f.bin": data})
        self.seal_wait(z, "run", "v")
        self.assertEqual(self.packs("single"), {})
        self.assertEqual(self.chunk_objects("single"), set(digests))
        self.assertEqual(self.manifest("single", "run", "v")["format"], 1)
        dest = os.path.join(self.scratch, "restored-single")
        self.restore("single", "run@v", dest)
        self.assertEqual(h.read_file(os.path.join(dest, "f.bin")), data)

    def test_unchanged_chunks_keep_their_pack(self):
        m = self.mount_1m("keep")
        v1 = {"f.bin": h.random_bytes(6 * MIB, 4)}
        self.write_version(m, "run", "step-1", v1)
        self.seal_wait(m, "run", "step-1")
        before = self.packs("keep")
        self.assertEqual(len(before), 1)
        v2 = {"f.bin": v1["f.bin"][:2 * MIB] + h.random_bytes(MIB, 5) + v1["f.bin"][3 * MIB:]}
        self.write_version(m, "run", "step-2", v2)
        sent = m.stats()["s3"]["bytes_uploaded"]
        self.seal_wait(m, "run", "step-2")
        self.assertEqual(m.stats()["s3"]["bytes_uploaded"] - sent, MIB)  # the changed chunk only
        self.assertEqual(self.packs("keep"), before)
        changed = h.chunk_digests(v2["f.bin"], CHUNK)[2]
        self.assertEqual(self.chunk_objects("keep"), {changed})
        (name,) = before
        x2 = self.manifest("keep", "run", "step-2")["entries"][0]["extents"]
        x1 = self.manifest("keep", "run", "step-1")["entries"][0]["extents"]
        for i, (a, b) in enumerate(zip(x1, x2)):
            if i == 2:
                self.assertEqual(len(b), 5)  # its own object
            else:
                self.assertEqual(b, a)  # the same pack, the same offset
                self.assertEqual(b[5], name)
        dest = os.path.join(self.scratch, "restored-keep")
        self.restore("keep", "run@step-2", dest)
        self.assertEqual(h.read_file(os.path.join(dest, "f.bin")), v2["f.bin"])

    def test_after_a_collection_each_reused_pack_costs_one_head(self):
        # A collection starts a new GC epoch, so the next upload checks every chunk it reuses with a HEAD
        # (that collection may have deleted it): one HEAD per pack, not one per member.
        m = self.mount_1m("recheck")
        v1 = {"a.bin": h.random_bytes(6 * MIB, 7), "b.bin": h.random_bytes(5 * MIB, 8)}
        self.write_version(m, "run", "step-1", v1)
        self.seal_wait(m, "run", "step-1")
        self.assertEqual(len(self.packs("recheck")), 2)
        cp = h.cli("gc", "--remote", *self.tier_opts("recheck"), timeout=180)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        heads = self.requests_under("HEAD", "recheck/packs/")
        v2 = {"a.bin": v1["a.bin"], "b.bin": v1["b.bin"][:4 * MIB] + h.random_bytes(MIB, 9)}
        self.write_version(m, "run", "step-2", v2)
        before = m.stats()["s3"]
        self.seal_wait(m, "run", "step-2")
        after = m.stats()["s3"]
        self.assertEqual(self.requests_under("HEAD", "recheck/packs/") - heads, 2)  # 10 members, 2 packs
        self.assertEqual(after["chunks_skipped"] - before["chunks_skipped"], 10)
        self.assertEqual(after["bytes_uploaded"] - before["bytes_uploaded"], MIB)
        dest = os.path.join(self.scratch, "restored-recheck")
        self.restore("recheck", "run@step-2", dest)
        for rel, data in v2.items():
            self.assertEqual(h.read_file(os.path.join(dest, rel)), data, rel)

    def test_replicas_on_two_nodes_share_one_pack(self):
        # Data-parallel ranks on two nodes write the same bytes: the second node names the same pack
        # (its name is its table's SHA-256), finds it with a HEAD and sends nothing.
        a = self.mount_1m("dp", "--node-id", "node-a", "--s3-nodes", "2")
        b = self.mount_1m("dp", "--node-id", "node-b", "--s3-nodes", "2")
        shared = h.random_bytes(4 * MIB, 6)
        self.write_version(a, "run", "step-1", {"rank0.pt": shared})
        self.write_version(b, "run", "step-1", {"rank1.pt": shared})
        self.assertEqual(h.cli("seal", a.path("run", "step-1")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: a.stats()["s3"]["packs_uploaded"] == 1, 60))
        self.seal_wait(b, "run", "step-1")
        sb = b.stats()["s3"]
        self.assertEqual((sb["packs_uploaded"], sb["chunks_uploaded"], sb["chunks_skipped"]), (0, 0, 4), sb)
        self.assertEqual(len(self.packs("dp")), 1)
        self.assertEqual(self.chunk_objects("dp"), set())
        dest = os.path.join(self.scratch, "restored-dp")
        self.restore("dp", "run@step-1", dest)
        self.assertEqual(h.read_file(os.path.join(dest, "rank0.pt")), shared)
        self.assertEqual(h.read_file(os.path.join(dest, "rank1.pt")), shared)

    def test_a_location_that_points_elsewhere_reads_eio(self):
        # A bucket is writable by more than pecfs: a manifest that places a chunk at another member of
        # its pack (a sound chunk object, of other bytes), or past the pack's end, must never hand out
        # those bytes. Restore fails and a read gives EIO; the other files still read.
        m = self.mount_1m("elsewhere")
        files = {"f.bin": h.random_bytes(4 * MIB, 7), "g.bin": h.random_bytes(2 * MIB, 8)}
        self.write_version(m, "run", "v", files)
        self.seal_wait(m, "run", "v")
        key = [k for k in self.listing("elsewhere") if k.endswith(".manifest")][0]
        man = json.loads(self.s3("get", key).stdout)
        f = [e for e in man["entries"] if e["path"] == "f.bin"][0]
        good = [list(x) for x in f["extents"]]
        for bad_off, what in ((good[2][6], "another member"), (good[3][6] + 64 + MIB, "past the end")):
            f["extents"] = [list(x) for x in good]
            f["extents"][1][6] = bad_off
            self.put_object(key, json.dumps(man).encode())
            dest = os.path.join(self.scratch, "restored-elsewhere-%d" % bad_off)
            r = self.restore("elsewhere", "run@v", dest, check=False)
            self.assertNotEqual(r.returncode, 0, what)
            self.assertRegex(r.stderr, "corrupt|EIO|Input/output", what)
            fresh = h.Mount(["--from", "s3://%s/elsewhere" % BUCKET, "--s3-endpoint", self.endpoint,
                             "--s3-addressing", "path"])
            self.addCleanup(fresh.cleanup)
            self.assertEqual(h.read_file(fresh.path("run", "v", "g.bin")), files["g.bin"], what)
            with open(fresh.path("run", "v", "f.bin"), "rb") as fh:
                self.assertEqual(fh.read(MIB), files["f.bin"][:MIB], what)  # the chunk before is fine
                with self.assertRaises(OSError) as cm:
                    fh.read(MIB)
                self.assertEqual(cm.exception.errno, errno.EIO, what)
            fresh.cleanup()


if __name__ == "__main__":
    h.main()
