# test_s3_persist.py - PEC persist selection for the S3 tier on real mounts against a real S3 server
# (a throwaway Ceph RGW): with `s3-persist pec` and K_persist 1, a DeepSpeed-style run of 6 rounds
# (2 MoE layers of 8 experts, round 1 saving everything, later rounds K = 2 experts per layer) uploads
# per round only the non-expert state plus one expert per layer, yet every uploaded version restores
# to a complete checkpoint whose expert files each hold the bytes of the round the manifest names
# (following the persist rule of policy/PEC.md section 6, modelled here independently), with the
# previous version retired locally and a remount in between; a --from mount shows the same bytes and
# the remote composition as user.pec.source / user.pec.staleness. Each upload records itself as the next
# one's base, so only the first lists the run; a recorded base gone from the bucket is looked up there.
# `full` mode stays as it was.
import errno
import json
import os
import sys
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import BUCKET, RgwTestCase  # noqa: E402

LAYERS = [0, 1]
EXPERTS = 8
K = 2
ROUNDS = 6
K_PERSIST = 1
EXPERT_SIZE = 256 << 10
NON_EXPERT = "mp_rank_00_model_states.pt"
NON_EXPERT_SIZE = 512 << 10
HDR = 64  # chunk object header


def expert_path(layer, expert):
    return "layer_%d_expert_%d_mp_rank_00_model_states.pt" % (layer, expert)


def step_of(r):
    return 100 * r


def name_of(r):
    return "global_step%d" % step_of(r)


def content(r, path, size):
    """What round r writes at path (distinct for every round and path, so nothing deduplicates)."""
    return h.random_bytes(size, zlib.crc32(("%d:%s" % (r, path)).encode()))


def written(r):
    """{layer: experts} round r saves: round 1 everything, then K per layer in turn."""
    if r == 1:
        return {layer: list(range(EXPERTS)) for layer in LAYERS}
    first = (2 * (r - 2)) % EXPERTS
    return {layer: [first, first + 1] for layer in LAYERS}


class PersistModel:
    """Which round's bytes the bucket holds for every unit after each upload (policy/PEC.md section 6):
    per layer, K_persist of the units the round wrote, never persisted first, then the oldest
    persisted copy, then the rotation (expert - layer_index * K_persist) mod n; the first upload of the
    run carries everything, since nothing is in the bucket yet."""

    def __init__(self):
        self.remote = {}  # (layer, expert) -> round of its copy in the bucket

    def upload(self, r):
        wrote = written(r)
        new = set()
        for li, layer in enumerate(LAYERS):
            def rank(e):
                src = self.remote.get((layer, e))
                return (src is not None, step_of(src) if src else -1, (e - li * K_PERSIST) % EXPERTS)
            for e in sorted(wrote[layer], key=rank)[:K_PERSIST]:
                new.add((layer, e))
        for layer in LAYERS:
            for e in range(EXPERTS):
                if (layer, e) not in self.remote:
                    new.add((layer, e))  # no copy in the bucket yet (only the first round here)
        for u in new:
            self.remote[u] = r
        return new


class S3PersistTest(RgwTestCase):
    def chunk_bytes(self, prefix):
        """{chunk key: payload bytes} in the bucket."""
        return {k: size - HDR for k, size in self.listing(prefix).items() if k.startswith(prefix + "/chunks/")}

    def write_round(self, m, run, r):
        files = {NON_EXPERT: content(r, NON_EXPERT, NON_EXPERT_SIZE)}
        for layer, experts in written(r).items():
            for e in experts:
                files[expert_path(layer, e)] = content(r, expert_path(layer, e), EXPERT_SIZE)
        self.write_version(m, run, name_of(r), files)

    def manifest(self, prefix, run, r):
        keys = [k for k in self.listing(prefix) if k.startswith("%s/runs/%s/%s/" % (prefix, run, name_of(r)))]
        man = [k for k in keys if k.endswith(".manifest")]
        self.assertEqual(len(man), 1, keys)
        comp = [k for k in keys if k.endswith(".composition")]
        return json.loads(self.s3("get", man[0]).stdout), comp

    def run_rounds(self, prefix, *opts, keep=None, remount_after=None):
        """Writes, seals and uploads ROUNDS rounds; returns the mount and the chunk bytes each upload
        added to the bucket."""
        m = self.mount(prefix, *opts)
        os.makedirs(m.path("run"))
        if keep:
            os.setxattr(m.path("run"), "user.pec.keep", str(keep).encode())
        added, before = [], self.chunk_bytes(prefix)
        for r in range(1, ROUNDS + 1):
            self.write_round(m, "run", r)
            self.seal_wait(m, "run", name_of(r))
            now = self.chunk_bytes(prefix)
            added.append(sum(size for k, size in now.items() if k not in before))
            before = now
            if r == remount_after:
                m.remount()
        return m, added

    def expect_restore(self, prefix, run, r, sources):
        """Restores run@round r and checks every file against the round sources[path] names."""
        dest = os.path.join(self.scratch, "restored-%s-%d" % (prefix, r))
        self.restore(prefix, "%s@%s" % (run, name_of(r)), dest)
        want = {NON_EXPERT}
        want.update(expert_path(layer, e) for layer in LAYERS for e in range(EXPERTS))
        self.assertEqual(set(os.listdir(dest)), want)  # a complete checkpoint
        self.assertEqual(h.read_file(os.path.join(dest, NON_EXPERT)), content(r, NON_EXPERT, NON_EXPERT_SIZE))
        for path, src in sources.items():
            self.assertEqual(h.read_file(os.path.join(dest, path)), content(src, path, EXPERT_SIZE),
                             "%s of round %d should hold round %d's bytes" % (path, r, src))

    # ---- pec ----

    def test_pec_uploads_non_expert_state_and_k_persist_experts_per_round(self):
        prefix = "pec"
        model = PersistModel()
        lists = self.lists_of(prefix + "/runs/run/")
        m, added = self.run_rounds(prefix, "--s3-persist", "pec", "--s3-k-persist", str(K_PERSIST), keep=1,
                                   remount_after=3)
        # Only the first upload looks for its base by listing the run; each later one reads the base
        # the upload before it recorded, across the remount too.
        self.assertEqual(self.lists_of(prefix + "/runs/run/") - lists, 1)
        # The local copies of older rounds were retired: lookups of the previous upload used the bucket.
        self.assertEqual([v["name"] for v in m.versions("run")["versions"]], [name_of(ROUNDS)])
        expected_bytes = NON_EXPERT_SIZE + len(LAYERS) * K_PERSIST * EXPERT_SIZE
        self.assertEqual(added[0], NON_EXPERT_SIZE + len(LAYERS) * EXPERTS * EXPERT_SIZE)
        for r in range(2, ROUNDS + 1):
            self.assertLessEqual(abs(added[r - 1] - expected_bytes), 0.03 * expected_bytes,
                                 "round %d added %d bytes, expected about %d" % (r, added[r - 1], expected_bytes))
        stats = m.stats()["s3"]  # since the remount after round 3: rounds 4..6
        self.assertLessEqual(abs(stats["bytes_uploaded"] - 3 * expected_bytes), 0.03 * 3 * expected_bytes)

        sources_by_round = {}
        for r in range(1, ROUNDS + 1):
            new = model.upload(r)
            manifest, comp_keys = self.manifest(prefix, "run", r)
            self.assertEqual(len(comp_keys), 1)
            entries = {e["path"]: e for e in manifest["entries"]}
            self.assertNotIn("source", entries[NON_EXPERT])
            sources = {}
            for layer in LAYERS:
                for e in range(EXPERTS):
                    path = expert_path(layer, e)
                    src_name = entries[path].get("source", name_of(r))
                    src = int(src_name[len("global_step"):]) // 100
                    self.assertEqual(src, model.remote[(layer, e)], "%s in round %d" % (path, r))
                    self.assertEqual("source" in entries[path], (layer, e) not in new)
                    if "source" in entries[path]:
                        self.assertEqual(entries[path]["staleness"], step_of(r) - step_of(src))
                    sources[path] = src
            # The remote composition beside the manifest says the same.
            comp = json.loads(self.s3("get", comp_keys[0]).stdout)
            self.assertTrue(comp["complete"])
            for u in comp["units"]:
                self.assertEqual(u["source"], name_of(sources[expert_path(u["layer"], u["expert"])]))
            sources_by_round[r] = sources
            self.expect_restore(prefix, "run", r, sources)
        # Of what the last round wrote, one expert per layer is its own in the bucket; the other stays
        # at an older round (so the checks above did see stale copies).
        for layer, experts in written(ROUNDS).items():
            own = [e for e in experts if sources_by_round[ROUNDS][expert_path(layer, e)] == ROUNDS]
            self.assertEqual(len(own), K_PERSIST, layer)

        # A fresh node sees the same checkpoints, and where each expert's bytes come from.
        fresh = h.Mount(["--from", "s3://%s/%s" % (BUCKET, prefix), "--s3-endpoint", self.endpoint,
                         "--s3-addressing", "path"])
        self.addCleanup(fresh.cleanup)
        for r in (2, ROUNDS):
            for path, src in sources_by_round[r].items():
                p = fresh.path("run", name_of(r), path)
                self.assertEqual(h.read_file(p), content(src, path, EXPERT_SIZE), p)
                if src == r:
                    self.assertEqual(h.errno_of(os.getxattr, p, "user.pec.source"), errno.ENODATA)
                else:
                    self.assertEqual(os.getxattr(p, "user.pec.source").decode(), name_of(src))
                    self.assertEqual(int(os.getxattr(p, "user.pec.staleness")), step_of(r) - step_of(src))

    def test_run_setting_overrides_the_mount_and_is_checked(self):
        m = self.mount("override")  # s3-persist full
        os.makedirs(m.path("run"))
        with self.assertRaises(OSError) as cm:
            os.setxattr(m.path("run"), "user.pec.persist", b"some")
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        os.setxattr(m.path("run"), "user.pec.persist", b"pec")
        os.setxattr(m.path("run"), "user.pec.k_persist", b"0")
        for r in (1, 2):
            self.write_round(m, "run", r)
            self.seal_wait(m, "run", name_of(r))
        manifest, comp = self.manifest("override", "run", 2)
        self.assertEqual(len(comp), 1)
        entries = {e["path"]: e for e in manifest["entries"]}
        # K_persist 0: round 2 adds only its non-expert state; every expert stays at round 1.
        for layer in LAYERS:
            for e in range(EXPERTS):
                self.assertEqual(entries[expert_path(layer, e)]["source"], name_of(1))
        self.expect_restore("override", "run", 2,
                            {expert_path(layer, e): 1 for layer in LAYERS for e in range(EXPERTS)})

    def test_a_recorded_base_that_is_gone_is_looked_up_in_the_bucket(self):
        """The base an upload records is a hint: when its manifest has gone from the bucket (bucket gc,
        someone's delete), the next upload lists the run and builds on the newest upload still there."""
        prefix = "gone"
        m = self.mount(prefix, "--s3-persist", "pec")
        os.makedirs(m.path("run"))
        os.setxattr(m.path("run"), "user.pec.k_persist", b"0")
        for r in (1, 2):
            self.write_round(m, "run", r)
            self.seal_wait(m, "run", name_of(r))
        self.s3("rm", "%s/runs/run/%s/%s.manifest" % (prefix, name_of(2), self.node_of(prefix, 1)))
        lists, before = self.lists_of(prefix + "/runs/run/"), self.chunk_bytes(prefix)
        self.write_round(m, "run", 3)
        self.seal_wait(m, "run", name_of(3))
        self.assertEqual(self.lists_of(prefix + "/runs/run/") - lists, 1)
        # Round 1 is the base: with K_persist 0 round 3 adds its non-expert state alone, and every
        # expert it holds comes from round 1's upload.
        added = sum(size for k, size in self.chunk_bytes(prefix).items() if k not in before)
        self.assertEqual(added, NON_EXPERT_SIZE)
        manifest, _ = self.manifest(prefix, "run", 3)
        entries = {e["path"]: e for e in manifest["entries"]}
        for layer in LAYERS:
            for e in range(EXPERTS):
                self.assertEqual(entries[expert_path(layer, e)]["source"], name_of(1))
        self.expect_restore(prefix, "run", 3, {expert_path(layer, e): 1 for layer in LAYERS for e in range(EXPERTS)})

    def node_of(self, prefix, r):
        """The node id in round r's manifest key."""
        keys = [k for k in self.listing(prefix) if k.startswith("%s/runs/run/%s/" % (prefix, name_of(r)))
                and k.endswith(".manifest")]
        self.assertEqual(len(keys), 1, keys)
        return os.path.basename(keys[0])[:-len(".manifest")]

    # ---- full (the default) ----

    def test_full_mode_uploads_every_version_whole(self):
        m, added = self.run_rounds("full")
        full_round = NON_EXPERT_SIZE + len(LAYERS) * K * EXPERT_SIZE
        self.assertEqual(added[0], NON_EXPERT_SIZE + len(LAYERS) * EXPERTS * EXPERT_SIZE)
        for r in range(2, ROUNDS + 1):
            self.assertEqual(added[r - 1], full_round, "round %d" % r)
        manifest, comp = self.manifest("full", "run", ROUNDS)
        self.assertEqual(comp, [])
        self.assertFalse(any("source" in e for e in manifest["entries"]))
        # Locally composed: the newest write of each unit at or before the round.
        newest = {}
        for r in range(1, ROUNDS + 1):
            for layer, experts in written(r).items():
                for e in experts:
                    newest[expert_path(layer, e)] = r
        self.expect_restore("full", "run", ROUNDS, newest)


if __name__ == "__main__":
    h.main()
