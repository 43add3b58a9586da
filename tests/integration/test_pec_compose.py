# test_pec_compose.py - PEC composition on a real mount: a simulated DeepSpeed trainer saves 10 rounds
# with K=2 of 8 experts per MoE layer (following RUN/.pec/plan) and 4 data-parallel replicas of the
# non-expert state; every version's logical full checkpoint must equal, file by file and byte by byte,
# the newest write of each unit at or before it, also after a remount, after kill -9 and after rm -r of
# an older version it inherits from. Also: inherited files' xattrs, the raw view, the manifest,
# incomplete versions never latest, the sequential plan, token reports (EINVAL on bad input), restarts
# declared in RUN/.pec/resumed adding their PLT to the plan's plt_spent.
import errno
import json
import os
import shutil
import unittest

import pecfs_harness as h

LAYERS = [1, 3, 5, 7]   # MoE layers (the {L} of the file names)
EXPERTS = 8
K = 2
REPLICAS = 4
TOP_K = 2


def expert_name(layer, expert):
    return "layer_%d_expert_%d_mp_rank_00_model_states.pt" % (layer, expert)


def non_expert_names():
    names = ["mp_rank_00_model_states.pt"]
    names += ["bf16_zero_pp_rank_%d_mp_rank_00_optim_states.pt" % d for d in range(REPLICAS)]
    return names


def expected_plan(saved, k=K):
    """The sequential plan of policy/PEC.md section 5: per layer, never saved first, then the oldest
    saved copy, then the rotation (expert - layer_index * K) mod n."""
    plan = {}
    for li, layer in enumerate(LAYERS):
        def rank(e):
            s = saved.get((layer, e))
            return (0 if s is None else 1, -1 if s is None else s, (e - li * k) % EXPERTS)
        plan[layer] = sorted(sorted(range(EXPERTS), key=rank)[:k])
    return plan


class Trainer:
    """Writes DeepSpeed-style rounds into RUN/global_step{100 r}, following the plan, and keeps the
    model of what every version must present."""

    def __init__(self, tc, m, run="moe", size=40000):
        self.tc, self.m, self.run, self.size = tc, m, run, size
        self.newest = {}      # (layer, expert) -> (bytes, round)
        self.saved_step = {}  # (layer, expert) -> step of its newest save
        self.expect = {}      # version name -> {relative path: bytes}
        self.wrote = {}       # version name -> set of relative paths written
        self.tokens = {}      # (layer, expert) -> tokens routed since its newest save
        self.rounds = 0
        self.removed = 0
        os.makedirs(m.path(run), exist_ok=True)
        os.setxattr(m.path(run), "user.pec.k", b"2")
        os.setxattr(m.path(run), "user.pec.dynamic_k", b"0")

    def name(self, r):
        return "global_step%d" % (100 * r)

    def read_plan(self):
        with open(self.m.path(self.run, ".pec", "plan")) as f:
            return json.load(f)

    def report_tokens(self, r):
        counts = {}
        layers = []
        for layer in LAYERS:
            c = [(r * 7 + layer * 3 + e * 5) % 50 + 10 for e in range(EXPERTS)]
            tokens = (sum(c) + TOP_K - 1) // TOP_K
            layers.append({"layer": layer, "tokens": tokens, "experts": c})
            for e in range(EXPERTS):
                counts[(layer, e)] = c[e]
        with open(self.m.path(self.run, ".pec", "tokens"), "w") as f:
            json.dump({"top_k": TOP_K, "step": 100 * r, "layers": layers}, f)
        return counts

    def write_round(self, seal=True):
        r = self.rounds + 1
        plan = self.read_plan()
        self.tc.assertEqual(plan["version_index"], self.rounds - self.removed)
        want = expected_plan(self.saved_step)
        got = {l["layer"]: l["experts"] for l in plan["layers"]} if plan["layers"] else want
        self.tc.assertEqual(got, want, "plan of round %d" % r)
        name = self.name(r)
        d = self.m.path(self.run, name)
        os.mkdir(d)
        files, wrote = {}, set()
        for layer in LAYERS:
            for e in want[layer]:
                data = h.random_bytes(self.size + layer * 101 + e, r * 10007 + layer * 131 + e)
                h.write_file(os.path.join(d, expert_name(layer, e)), data)
                self.newest[(layer, e)] = (data, r)
                self.saved_step[(layer, e)] = 100 * r
                wrote.add(expert_name(layer, e))
        replica = h.random_bytes(3 * self.size, 99991 * r)
        for n in non_expert_names():
            data = replica if "zero_pp" in n else h.random_bytes(self.size // 2, 77777 * r)
            h.write_file(os.path.join(d, n), data)
            files[n] = data
            wrote.add(n)
        counts = self.report_tokens(r)
        for (layer, e), data_round in self.newest.items():
            files[expert_name(layer, e)] = data_round[0]
        self.expect[name] = files
        self.wrote[name] = wrote
        self.rounds = r
        # lost tokens: routed to a unit since its newest save (the save of this round resets it)
        for u, c in counts.items():
            self.tokens[u] = self.tokens.get(u, 0) + c
        for layer in LAYERS:
            for e in want[layer]:
                self.tokens[(layer, e)] = 0
        if seal:
            self.seal(name)
        return name

    def seal(self, name):
        cp = h.cli("seal", self.m.path(self.run, name))
        self.tc.assertEqual(cp.returncode, 0, cp.stderr)

    def complete(self, name):
        units = {u for u in self.newest if self.newest[u][1] <= int(name[len("global_step"):]) // 100}
        return len(units) == len(LAYERS) * EXPERTS

    def check_version(self, name):
        tc, d = self.tc, self.m.path(self.run, name)
        files = self.expect[name]
        tc.assertEqual(sorted(os.listdir(d)), sorted(files), name)
        for rel, data in files.items():
            tc.assertEqual(h.read_file(os.path.join(d, rel)), data, "%s/%s" % (name, rel))
        # the raw view: exactly what the round wrote, same bytes
        raw = self.m.path(self.run, ".pec", "raw", name)
        tc.assertEqual(sorted(os.listdir(raw)), sorted(self.wrote[name]), "raw view of " + name)
        for rel in self.wrote[name]:
            tc.assertEqual(h.read_file(os.path.join(raw, rel)), files[rel])
        # inherited files: read-only facts, and EROFS like all sealed content
        step = int(name[len("global_step"):])
        for rel in files:
            p = os.path.join(d, rel)
            if rel in self.wrote[name]:
                tc.assertNotIn("user.pec.source", os.listxattr(p))
                continue
            src = os.getxattr(p, "user.pec.source").decode()
            stale = int(os.getxattr(p, "user.pec.staleness"))
            tc.assertEqual(step - int(src[len("global_step"):]), stale)
            tc.assertEqual(h.errno_of(open, p, "r+b"), errno.EROFS)

    def manifest(self, name):
        with open(self.m.path(self.run, ".pec", "manifest", name)) as f:
            return json.load(f)

    def check_all(self):
        for name in self.expect:
            if os.path.isdir(self.m.path(self.run, name)):
                self.check_version(name)


class PecCompose(unittest.TestCase):
    def setUp(self):
        self.m = h.Mount(["--chunk-size", "1M"])

    def tearDown(self):
        self.m.cleanup()

    def test_ten_rounds_compose_to_full_checkpoints(self):
        m, t = self.m, Trainer(self, self.m)
        for r in range(1, 11):
            name = t.write_round()
            t.check_version(name)
            state = m.version_state("moe", name)
            latest = m.versions("moe")["latest"]
            if r < 4:  # some expert was never saved yet
                self.assertEqual(state, "incomplete")
                self.assertIsNone(latest)
                self.assertFalse(os.path.lexists(m.path("moe", ".pec", "latest")))
            else:
                self.assertEqual(state, "sealed")
                self.assertEqual(latest, name)
                self.assertEqual(os.readlink(m.path("moe", ".pec", "latest")), "../" + name)
            man = t.manifest(name)
            self.assertEqual(man["complete"], r >= 4)
            self.assertEqual(man["missing"], max(0, (4 - r) * K * len(LAYERS)))
            self.assertTrue(man["tokens_known"])
            for u in man["units"]:
                key = (u["layer"], u["expert"])
                if not u["present"]:
                    self.assertNotIn(key, t.newest)
                    continue
                self.assertEqual(u["lost_tokens"], t.tokens[key], "lost tokens of %s in %s" % (key, name))
                self.assertEqual(u["source"], t.name(t.newest[key][1]))
                self.assertEqual(u["staleness"], 100 * (r - t.newest[key][1]))
        t.check_all()
        # logical bytes count every file, stored bytes only distinct chunks (replicas once)
        v10 = [v for v in m.versions("moe")["versions"] if v["name"] == t.name(10)][0]
        self.assertEqual(v10["files"], len(LAYERS) * EXPERTS + len(non_expert_names()))
        self.assertEqual(v10["logical_bytes"], sum(len(b) for b in t.expect[t.name(10)].values()))
        distinct = {h.sha256_bytes(b): len(b) for b in t.expect[t.name(10)].values()}
        self.assertEqual(v10["stored_bytes"], sum(distinct.values()))
        self.assertEqual(m.fsck().returncode, 0)

        # across a remount, and after kill -9 with a round half written
        m.remount()
        t.check_all()
        name = t.write_round(seal=False)
        m.kill9()
        m.mount()
        self.assertEqual(m.version_state("moe", name), "open")
        for n in t.expect:
            if n != name:
                t.check_version(n)
        t.seal(name)
        t.check_version(name)

        # rm -r of versions that newer compositions inherit from changes nothing in them
        m.remount()
        src_of_11 = {os.getxattr(m.path("moe", name, f), "user.pec.source").decode()
                     for f in os.listdir(m.path("moe", name)) if f not in t.wrote[name]}
        self.assertTrue(src_of_11)
        for victim in sorted(src_of_11):
            shutil.rmtree(m.path("moe", victim))
            del t.expect[victim]
            t.removed += 1
        t.check_all()
        # the next round composes on what is left, without the removed versions
        t.check_version(t.write_round())
        self.assertEqual(h.cli("gc", m.data).returncode, 0)
        t.check_all()
        self.assertEqual(m.fsck().returncode, 0, m.fsck().stdout)

    def test_token_reports_are_validated(self):
        m = self.m
        os.makedirs(m.path("run"))
        tokens = m.path("run", ".pec", "tokens")
        self.assertEqual(h.read_file(tokens), b"")
        good = {"top_k": 2, "layers": [{"layer": 1, "tokens": 100, "experts": [50, 50, 100]}]}
        with open(tokens, "w") as f:
            json.dump(good, f)
        before = h.read_file(tokens)
        self.assertEqual(json.loads(before)["layers"][0]["experts"], [50, 50, 100])
        bad = [
            b"not json",
            json.dumps({"top_k": 2, "layers": [{"layer": 1, "tokens": 10, "experts": [50, 50]}]}).encode(),
            json.dumps({"top_k": 2, "layers": [{"layer": 1, "tokens": -1, "experts": [1]}]}).encode(),
            json.dumps({"top_k": 2, "layers": [], "extra": 1}).encode(),
            json.dumps({"top_k": 1, "layers": [{"layer": 1, "tokens": 10, "experts": [1, 2, 3]}]}).encode(),
        ]
        for b in bad:
            def write_report():
                with open(tokens, "wb") as f:
                    f.write(b)
            self.assertEqual(h.errno_of(write_report), errno.EINVAL, b)
            self.assertEqual(h.read_file(tokens), before)
        # reports add up until the next seal, which consumes them
        with open(tokens, "w") as f:
            json.dump(good, f)
        self.assertEqual(json.loads(h.read_file(tokens))["layers"][0]["experts"], [100, 100, 200])
        os.makedirs(m.path("run", "step-1"))
        h.write_file(m.path("run", "step-1", "layer_1_expert_0_x.pt"), b"e0")
        self.assertEqual(h.cli("seal", m.path("run", "step-1")).returncode, 0)
        self.assertEqual(h.read_file(tokens), b"")
        with open(m.path("run", ".pec", "manifest", "step-1")) as f:
            man = json.load(f)
        self.assertEqual(man["top_k"], 2)
        self.assertEqual(man["layers"], [{"layer": 1, "tokens": 200, "lost": 300}])
        # only tokens and resumed are writable
        self.assertEqual(h.errno_of(open, m.path("run", ".pec", "plan"), "w"), errno.EROFS)

    def test_restarts_add_their_plt_to_the_plan(self):
        m = self.m
        os.makedirs(m.path("run"))
        resumed = m.path("run", ".pec", "resumed")

        def declare(obj):
            with open(resumed, "wb") as f:
                f.write(obj if isinstance(obj, bytes) else json.dumps(obj).encode())

        empty = json.loads(h.read_file(resumed))
        self.assertEqual((empty["plt_spent"], empty["restarts"]), (0.0, []))
        # layer 1: 200 tokens, top-2, 3 experts of which the version saves only expert 0:
        # experts 1 and 2 lost 100 + 200 assignments, so PLT = 300 / (200 * 2) = 0.75
        with open(m.path("run", ".pec", "tokens"), "w") as f:
            json.dump({"top_k": 2, "layers": [{"layer": 1, "tokens": 200, "experts": [100, 100, 200]}]}, f)
        os.makedirs(m.path("run", "step-1"))
        h.write_file(m.path("run", "step-1", "layer_1_expert_0_x.pt"), b"e0")
        self.assertEqual(h.cli("seal", m.path("run", "step-1")).returncode, 0)
        os.makedirs(m.path("run", "step-2"))  # open: no restart can come from it
        for bad, err in [({"version": "step-9"}, errno.ENOENT), ({"version": "step-2"}, errno.EINVAL),
                         (b"step-1", errno.EINVAL), ({"version": "step-1", "x": 1}, errno.EINVAL),
                         ({"version": ""}, errno.EINVAL), (b'{"version": "step-1", "version": "a"}', errno.EINVAL)]:
            self.assertEqual(h.errno_of(declare, bad), err, bad)
        self.assertEqual(json.loads(h.read_file(resumed))["restarts"], [])
        self.assertEqual(json.loads(h.read_file(m.path("run", ".pec", "plan")))["plt_spent"], 0.0)

        declare({"version": "step-1"})
        rec = json.loads(h.read_file(resumed))
        self.assertAlmostEqual(rec["plt_spent"], 0.75)
        self.assertEqual([r["version"] for r in rec["restarts"]], ["step-1"])
        self.assertAlmostEqual(rec["restarts"][0]["plt"], 0.75)
        self.assertAlmostEqual(json.loads(h.read_file(m.path("run", ".pec", "plan")))["plt_spent"], 0.75)
        # restarts add up, and are kept across a remount
        declare({"version": "step-1"})
        m.remount()
        rec = json.loads(h.read_file(resumed))
        self.assertAlmostEqual(rec["plt_spent"], 1.5)
        self.assertEqual(len(rec["restarts"]), 2)
        self.assertAlmostEqual(json.loads(h.read_file(m.path("run", ".pec", "plan")))["plt_spent"], 1.5)

    def test_non_expert_files_are_never_inherited_and_settings_are_checked(self):
        m = self.m
        os.makedirs(m.path("run", "v1", "sub"))
        h.write_file(m.path("run", "v1", "optim.pt"), b"o1")
        h.write_file(m.path("run", "v1", "sub", "expert_3_mp_rank_00_model_states.pt"), b"x3")
        h.cli("seal", m.path("run", "v1"), check=True)
        os.makedirs(m.path("run", "v2"))
        h.write_file(m.path("run", "v2", "other.pt"), b"o2")
        h.cli("seal", m.path("run", "v2"), check=True)
        self.assertEqual(sorted(os.listdir(m.path("run", "v2"))), ["other.pt", "sub"])
        self.assertEqual(h.read_file(m.path("run", "v2", "sub", "expert_3_mp_rank_00_model_states.pt")), b"x3")
        self.assertEqual(os.listdir(m.path("run", ".pec", "raw", "v2", "sub")), [])
        # experts 0-2 of layer 0 were never written: incomplete
        self.assertEqual(m.version_state("run", "v2"), "incomplete")
        for name, value in [("user.pec.keep", b"x"), ("user.pec.k", b"0"), ("user.pec.strategy", b"random"),
                            ("user.pec.file_patterns", b"layer_{L}_x"), ("user.pec.plt_budget", b"2")]:
            self.assertEqual(h.errno_of(os.setxattr, m.path("run"), name, value), errno.EINVAL, name)
        self.assertEqual(h.errno_of(os.setxattr, m.path("run", "v1"), "user.pec.keep", b"1"), errno.EINVAL)
        self.assertEqual(h.errno_of(os.setxattr, m.path("run", "v1", "optim.pt"), "user.pec.source", b"v"),
                         errno.EPERM)
        # custom patterns: a run whose experts are named differently
        os.makedirs(m.path("run2"))
        os.setxattr(m.path("run2"), "user.pec.file_patterns", b"moe.l{L}.e{E}.bin\n")
        for v, experts in (("a", [0, 1]), ("b", [1])):
            os.makedirs(m.path("run2", v))
            for e in experts:
                h.write_file(m.path("run2", v, "moe.l0.e%d.bin" % e), (v + str(e)).encode())
            h.cli("seal", m.path("run2", v), check=True)
        self.assertEqual(h.read_file(m.path("run2", "b", "moe.l0.e0.bin")), b"a0")
        self.assertEqual(m.version_state("run2", "b"), "sealed")


if __name__ == "__main__":
    h.main()
