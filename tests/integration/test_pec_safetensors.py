# test_pec_safetensors.py - tensor-level composition on a real mount: a Hugging Face style shard
# rewritten with only some experts' tensors is presented, once sealed, as one merged valid safetensors
# file holding every tensor (the round's own plus the newest earlier copy of each missing expert),
# checked by a safetensors reader written here (header JSON, then each tensor's bytes). A shard with a
# malformed header is kept as written and reported in the manifest.
import json
import os
import struct
import unittest

import pecfs_harness as h

SHARD = "model-00001-of-00001.safetensors"
EXPERTS = 4
ELEMS = 75000  # F32 elements per expert tensor (300 KB: pieces cross 1 MiB chunk boundaries)


def st_bytes(tensors, metadata=None):
    """A safetensors file from [(name, bytes)] (dtype F32, 1-D), data in the given order."""
    header, off = {}, 0
    for name, data in tensors:
        header[name] = {"dtype": "F32", "shape": [len(data) // 4], "data_offsets": [off, off + len(data)]}
        off += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(d for _, d in tensors)


def st_read(path):
    """{tensor name: bytes} of a safetensors file, checking the format on the way."""
    raw = h.read_file(path)
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), "header runs past the file"
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    pos = 0
    for begin, end, name in spans:
        assert begin == pos, "gap or overlap before %s" % name
        assert header[name]["dtype"] == "F32" and (end - begin) == 4 * header[name]["shape"][0]
        pos = end
    assert pos == len(data), "trailing bytes"
    return {k: data[b:e] for b, e, k in spans}


def expert_tensors(round_, experts):
    out = []
    for e in experts:
        for proj in ("up_proj", "down_proj"):
            name = "model.layers.0.mlp.experts.%d.%s.weight" % (e, proj)
            out.append((name, h.random_bytes(4 * ELEMS, round_ * 1000 + e * 10 + len(proj))))
    return out


def dense_tensors(round_):
    return [("model.norm.weight", h.random_bytes(4096, round_)),
            ("model.layers.0.mlp.gate.weight", h.random_bytes(4 * 64 * EXPERTS, round_ + 500))]


class PecSafetensors(unittest.TestCase):
    def setUp(self):
        self.m = h.Mount(["--chunk-size", "1M"])

    def tearDown(self):
        self.m.cleanup()

    def save(self, version, experts, round_):
        d = self.m.path("hf", version)
        os.makedirs(d)
        tensors = dense_tensors(round_) + expert_tensors(round_, experts)
        h.write_file(os.path.join(d, SHARD), st_bytes(tensors, {"format": "pt"}))
        h.write_file(os.path.join(d, "config.json"), b'{"num_local_experts": 4}')
        h.cli("seal", d, check=True)
        return dict(tensors)

    def manifest(self, version):
        with open(self.m.path("hf", ".pec", "manifest", version)) as f:
            return json.load(f)

    def test_partial_shards_merge_into_valid_full_shards(self):
        m = self.m
        newest = self.save("step-1", range(EXPERTS), 1)
        expected = {}
        for version, round_, experts in (("step-2", 2, [1]), ("step-3", 3, [2]), ("step-4", 4, [0, 3])):
            before = m.stats()["stored_bytes"]
            wrote = self.save(version, experts, round_)
            # the merged shard costs its new header and what the round wrote, not the inherited tensors
            written = len(st_bytes(list(wrote.items()))) + len(b'{"num_local_experts": 4}')
            grown = m.stats()["stored_bytes"] - before
            self.assertGreaterEqual(grown, written)
            self.assertLess(grown, written + 8192, version)
            # dense tensors come from the round only; experts from their newest save
            for k, v in wrote.items():
                newest[k] = v
            expected[version] = dict(newest)
            got = st_read(m.path("hf", version, SHARD))
            self.assertEqual(sorted(got), sorted(newest), version)
            for k in newest:
                self.assertEqual(got[k], newest[k], "%s %s" % (version, k))
            self.assertEqual(m.version_state("hf", version), "sealed")
            man = self.manifest(version)
            for u in man["units"]:
                self.assertEqual(u["written"], u["expert"] in experts, (version, u))
                self.assertEqual(u["needs_merge"], u["expert"] not in experts)
                self.assertEqual(u["files"], [SHARD])
            self.assertEqual(man["problems"], [])
        m.remount()
        for version, tensors in expected.items():
            got = st_read(m.path("hf", version, SHARD))
            self.assertEqual(got, tensors, version)
        self.assertEqual(m.fsck().returncode, 0)

    def test_malformed_header_is_kept_as_written_and_reported(self):
        m = self.m
        self.save("step-1", range(EXPERTS), 1)
        d = m.path("hf", "step-2")
        os.makedirs(d)
        good = st_bytes(dense_tensors(2) + expert_tensors(2, [1]))
        (n,) = struct.unpack("<Q", good[:8])
        header = json.loads(good[8:8 + n])
        header["model.norm.weight"]["data_offsets"][1] += 4  # overlaps the next tensor
        text = json.dumps(header).encode()
        bad = struct.pack("<Q", len(text)) + text + good[8 + n:]
        h.write_file(os.path.join(d, SHARD), bad)
        h.cli("seal", d, check=True)
        self.assertEqual(h.read_file(os.path.join(d, SHARD)), bad)
        problems = self.manifest("step-2")["problems"]
        self.assertEqual([p["path"] for p in problems], [SHARD])
        self.assertTrue(problems[0]["problem"])
        # a header that claims more than the file holds
        d3 = m.path("hf", "step-3")
        os.makedirs(d3)
        h.write_file(os.path.join(d3, SHARD), struct.pack("<Q", 1 << 40) + b"{}")
        h.cli("seal", d3, check=True)
        self.assertEqual(h.read_file(os.path.join(d3, SHARD)), struct.pack("<Q", 1 << 40) + b"{}")
        self.assertEqual([p["path"] for p in self.manifest("step-3")["problems"]], [SHARD])


if __name__ == "__main__":
    h.main()
