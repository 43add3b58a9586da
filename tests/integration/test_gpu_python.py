# test_gpu_python.py - the PyTorch module (gpu/python/pecfs) over libpecgpu on a real mount, with
# Debian's python3-torch on CPU tensors: save_file then load_file gives the tensors back, the file is
# byte for byte what a plain safetensors writer makes, 8 data-parallel processes saving identical
# tensors (sharded, world 8) store one copy and push about one copy through FUSE, a save of unchanged
# tensors into a new version writes nothing, save_async lets the caller modify its tensors after
# wait_copied, a sealed version refuses a save with EROFS, the plan and token report files round-trip,
# a declared restart adds its version's PLT to plt_spent, load_file refuses hostile headers, and the
# example trainer writes composed rounds. Runs itself under /usr/bin/python3 (where python3-torch
# installs) when the interpreter that started it has no torch.
import os
import shutil
import subprocess
import sys

import pecfs_harness as h

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SYSTEM_PYTHON = "/usr/bin/python3"


def _library():
    """libpecgpu of the build under test: $PECGPU_LIB, else beside the pecfs binary's build folder."""
    if os.environ.get("PECGPU_LIB"):
        return os.environ["PECGPU_LIB"]
    binary = os.environ.get("PECFS_BIN", "")
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(binary)))) if binary else ""
    return os.path.join(build, "gpu", "libpecgpu.so")


def _reexec():
    """Runs this file again under the system python (torch), with the library named, and with the
    ASan runtime preloaded when the library is a sanitizer build (it must come first)."""
    env = dict(os.environ)
    env["PECGPU_LIB"] = _library()
    changed = env.get("PECGPU_LIB") != os.environ.get("PECGPU_LIB")
    if h.sanitized(env["PECGPU_LIB"]) and "libasan" not in env.get("LD_PRELOAD", ""):
        # torch and python themselves are not built for ASan: only memory errors of ours matter
        h.preload_asan(env)
        changed = True
    try:
        import torch  # noqa: F401
        has_torch = True
    except ImportError:
        has_torch = False
    python = sys.executable
    if not has_torch and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON) \
            and os.access(SYSTEM_PYTHON, os.X_OK):
        python, changed = SYSTEM_PYTHON, True
    if changed:
        os.rmdir(h.SAN_DIR)  # made at import, still empty: the new process makes its own
        os.execve(python, [python, os.path.abspath(__file__)] + sys.argv[1:], env)


if __name__ == "__main__":
    _reexec()

import errno  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import unittest  # noqa: E402

try:
    import torch
except ImportError:
    torch = None
sys.path.insert(0, os.path.join(REPO, "gpu", "python"))

MISSING = None
if torch is None:
    MISSING = "python3-torch (apt-get install python3-torch; it installs for %s)" % SYSTEM_PYTHON
else:
    import pecfs
    if not os.path.isfile(_library()):
        MISSING = "libpecgpu at %s (build the gpu/ target)" % _library()

CS = 256 << 10  # the mount's chunk size: files of a few MiB span many chunks
KiB, MiB = 1 << 10, 1 << 20


# ---- a plain safetensors writer, written from the format's description alone ----

ST_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
            "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
# the reference implementation orders tensors by its dtype enum, descending, then by name
ST_ENUM = ["BOOL", "U8", "I8", "I16", "F16", "BF16", "I32", "F32", "F64", "I64"]
ST_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "F16": 2, "BF16": 2, "I32": 4, "F32": 4, "F64": 8, "I64": 8}


def tensor_bytes(t):
    t = t.detach().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def reference_safetensors(tensors, metadata=None):
    names = {n: ST_NAMES[str(t.dtype).split(".")[1]] for n, t in tensors.items()}
    order = sorted(tensors, key=lambda n: (-ST_SIZE[names[n]], -ST_ENUM.index(names[n]), n))
    parts = []
    if metadata is not None:
        meta = ",".join("%s:%s" % (json.dumps(k), json.dumps(metadata[k])) for k in sorted(metadata))
        parts.append('"__metadata__":{%s}' % meta)
    off, data = 0, []
    for n in order:
        b = tensor_bytes(tensors[n])
        parts.append('%s:{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}'
                     % (json.dumps(n), names[n], ",".join(map(str, tensors[n].shape)), off, off + len(b)))
        off += len(b)
        data.append(b)
    js = ("{" + ",".join(parts) + "}").encode()
    js += b" " * (-len(js) % 8)
    return struct.pack("<Q", len(js)) + js + b"".join(data)


def sample_tensors(seed, scale=1):
    g = torch.Generator().manual_seed(seed)
    return {
        "model.embed.weight": torch.randn(1000 * scale, 257, generator=g),           # ~1 MiB, odd size
        "model.layers.0.attn.qkv": torch.randn(384, 384, generator=g).to(torch.bfloat16),
        "model.layers.0.mlp.experts.1.w": torch.randn(300, 301, generator=g).to(torch.float16),
        "model.norm.weight": torch.randn(769, generator=g, dtype=torch.float64),
        "steps": torch.tensor(123456789, dtype=torch.int64),
        "mask": torch.rand(1001, generator=g) > 0.5,
        "tokens": torch.randint(-100, 100, (333,), generator=g, dtype=torch.int8),
        "ids": torch.randint(0, 1 << 30, (77, 3), generator=g, dtype=torch.int32),
        "empty": torch.zeros(0, 5),
        "transposed": torch.randn(64, 48, generator=g).t(),                           # not contiguous
    }


def assert_same_tensors(tc, got, want):
    tc.assertEqual(sorted(got), sorted(want))
    for n in want:
        tc.assertEqual(got[n].dtype, want[n].dtype, n)
        tc.assertEqual(tuple(got[n].shape), tuple(want[n].shape), n)
        tc.assertTrue(torch.equal(got[n], want[n]), n)


RANK_SAVER = r"""
import os, sys, json, torch
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import pecfs
from test_gpu_python import sample_tensors
path, rank, world, seed, scale = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
with pecfs.Context(rank=rank, world=world) as ctx:
    stats = pecfs.save_file(sample_tensors(seed, scale), path, metadata={"rank": "any"}, ctx=ctx)
print(json.dumps(stats))
"""


@h.skip_unless(MISSING, "the Python module's tests")
class PythonModule(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = h.Mount(["--chunk-size", "256K"])

    @classmethod
    def tearDownClass(cls):
        cls.m.cleanup()

    def version(self, run, name):
        d = self.m.path(run, name)
        os.makedirs(d)
        return d

    def test_save_then_load_gives_the_tensors_back(self):
        d = self.version("basic", "v1")
        ts = sample_tensors(1)
        stats = pecfs.save_file(ts, os.path.join(d, "model.safetensors"), metadata={"step": "100"})
        self.assertEqual(stats["file_bytes"], os.stat(os.path.join(d, "model.safetensors")).st_size)
        self.assertEqual(stats["chunks"], -(-stats["file_bytes"] // CS))
        assert_same_tensors(self, pecfs.load_file(os.path.join(d, "model.safetensors")), ts)
        self.assertEqual(pecfs.load_metadata(os.path.join(d, "model.safetensors")), {"step": "100"})

    def test_the_file_is_what_a_plain_safetensors_writer_makes(self):
        d = self.version("format", "v1")
        ts = sample_tensors(2)
        want = reference_safetensors(ts, {"framework": "pt", "a": "b"})
        path = os.path.join(d, "model.safetensors")
        pecfs.save_file(ts, path, metadata={"framework": "pt", "a": "b"})
        got = h.read_file(path)
        self.assertEqual(len(got), len(want))
        self.assertEqual(got[:8 + struct.unpack("<Q", want[:8])[0]], want[:8 + struct.unpack("<Q", want[:8])[0]],
                         "headers differ")
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(want).hexdigest())
        # the same bytes written plainly are the same chunks: nothing new is stored
        st0 = self.m.stats()
        h.write_file(os.path.join(d, "plain.safetensors"), want, fsync=True)
        self.assertEqual(self.m.stats()["stored_bytes"], st0["stored_bytes"])

    def test_eight_sharded_ranks_store_and_write_one_copy(self):
        d = self.version("dp", "global_step100")
        one = len(reference_safetensors(sample_tensors(3, 4), {"rank": "any"}))
        self.assertGreater(one, 16 * CS)
        st0 = self.m.stats()
        procs = [subprocess.Popen([sys.executable, "-c", RANK_SAVER, os.path.join(REPO, "gpu", "python"), HERE,
                                   os.path.join(d, "rank%d.safetensors" % r), str(r), "8", "3", "4"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for r in range(8)]
        stats = []
        for r, p in enumerate(procs):
            out, err = p.communicate(timeout=600 * h.SLOW)
            self.assertEqual(p.returncode, 0, "rank %d: %s" % (r, err))
            stats.append(json.loads(out))
        st1 = self.m.stats()
        want = h.sha256_bytes(reference_safetensors(sample_tensors(3, 4), {"rank": "any"}))
        for r in range(8):
            self.assertEqual(h.sha256_file(os.path.join(d, "rank%d.safetensors" % r)), want, "rank %d" % r)
        written = st1["bytes_written"] - st0["bytes_written"]
        linked = st1["bytes_linked"] - st0["bytes_linked"]
        stored = st1["stored_bytes"] - st0["stored_bytes"]
        print("\n8 ranks x %d bytes: %d written through FUSE (%.3f of 8 copies), %d linked, %d stored; "
              "per rank written %s" % (one, written, written / (8 * one), linked, stored,
                                       [s["bytes_written"] for s in stats]))
        self.assertEqual(written + linked, 8 * one, "every byte is either written or linked")
        self.assertLessEqual(stored, one)
        self.assertGreaterEqual(stored, one - CS)  # the tensors are random: only repeats would shrink it
        self.assertLessEqual(written, 1.25 * one, "bytes through FUSE should be about one copy")
        self.assertEqual(sum(s["bytes_written"] for s in stats), written)
        # the work is shared: no rank wrote much more than its 1/8
        self.assertLessEqual(max(s["bytes_written"] for s in stats), one / 8 + 3 * CS)

    def test_unchanged_tensors_into_a_new_version_write_nothing(self):
        run = "rounds"
        ts = sample_tensors(4, 2)
        v1 = self.version(run, "step-1")
        pecfs.save_file(ts, os.path.join(v1, "model.safetensors"))
        h.cli("seal", v1, check=True)
        v2 = self.version(run, "step-2")
        st0 = self.m.stats()
        stats = pecfs.save_file(ts, os.path.join(v2, "model.safetensors"))
        st1 = self.m.stats()
        self.assertEqual(st1["bytes_written"] - st0["bytes_written"], 0)
        self.assertEqual(stats["chunks_written"], 0)
        self.assertEqual(stats["chunks_linked"], stats["chunks"])
        self.assertEqual(st1["stored_bytes"], st0["stored_bytes"])
        assert_same_tensors(self, pecfs.load_file(os.path.join(v2, "model.safetensors")), ts)
        # one tensor changes: only the chunks holding its bytes go through FUSE
        ts["model.norm.weight"] += 1
        v3 = self.version(run, "step-3")
        st0 = self.m.stats()
        stats = pecfs.save_file(ts, os.path.join(v3, "model.safetensors"))
        written = self.m.stats()["bytes_written"] - st0["bytes_written"]
        self.assertGreater(written, 0)
        self.assertLessEqual(written, 2 * CS)  # 769 doubles straddle at most one chunk boundary
        self.assertLessEqual(stats["chunks_written"], 2)
        assert_same_tensors(self, pecfs.load_file(os.path.join(v3, "model.safetensors")), ts)

    def test_async_save_keeps_the_bytes_of_when_it_started(self):
        d = self.version("async", "v1")
        ts = sample_tensors(5, 3)
        want = {n: t.clone() for n, t in ts.items()}
        with pecfs.save_async(ts, os.path.join(d, "model.safetensors")) as handle:
            handle.wait_copied()
            for t in ts.values():
                if t.numel() and t.is_contiguous():
                    t.zero_()  # the next training step overwrites the tensors in place
            handle.wait_durable()
            st = handle.stats()
        self.assertEqual(st["chunks_linked"] + st["chunks_written"], st["chunks"])
        assert_same_tensors(self, pecfs.load_file(os.path.join(d, "model.safetensors")), want)

    def test_save_into_a_sealed_version_is_erofs(self):
        d = self.version("sealed", "v1")
        pecfs.save_file({"x": torch.ones(10)}, os.path.join(d, "a.safetensors"))
        h.cli("seal", d, check=True)
        path = os.path.join(d, "b.safetensors")
        with self.assertRaises(OSError) as cm:
            pecfs.save_file({"x": torch.ones(10)}, path)
        self.assertEqual(cm.exception.errno, errno.EROFS, str(cm.exception))
        self.assertEqual(cm.exception.filename, path)
        self.assertFalse(os.path.exists(path))

    def test_plan_and_token_reports_round_trip(self):
        run = self.m.path("moe")
        v1 = self.version("moe", "global_step100")
        for layer in (1, 3):
            for e in range(4):
                pecfs.save_file({"model.layers.%d.mlp.experts.%d.w" % (layer, e): torch.full((8,), float(e))},
                                os.path.join(v1, "layer_%d_expert_%d.safetensors" % (layer, e)))
        pecfs.save_file({"model.embed.weight": torch.ones(16)}, os.path.join(v1, "non_expert.safetensors"))
        os.setxattr(run, "user.pec.k", b"1")
        os.setxattr(run, "user.pec.dynamic_k", b"0")
        h.cli("seal", v1, check=True)
        plan = pecfs.plan(run)
        # sequential rotation (policy/PEC.md section 5): layer index i starts at expert i * K mod 4
        self.assertEqual(plan.experts, {1: [0], 3: [1]})
        self.assertEqual(plan.experts_total, {1: 4, 3: 4})
        self.assertEqual((plan.version_index, plan.k, plan.strategy), (1, 1, "sequential"))
        self.assertIsNone(plan.plt_projected)
        self.assertTrue(plan.saves(1, 0) and not plan.saves(1, 1) and plan.saves(7, 5))
        doc = pecfs.report_tokens(run, {1: [10, 20, 30, 40], 3: torch.tensor([25, 25, 25, 25])}, top_k=1,
                                  step=150)
        with open(os.path.join(run, ".pec", "tokens")) as f:
            pending = json.load(f)
        self.assertEqual({l["layer"]: l["experts"] for l in pending["layers"]},
                         {1: [10, 20, 30, 40], 3: [25, 25, 25, 25]})
        self.assertEqual([l["tokens"] for l in doc["layers"]], [100, 100])
        plan = pecfs.plan(run)
        # K = 1 would lose 90 of layer 1's and 75 of layer 3's 100 token assignments (top-1)
        self.assertAlmostEqual(plan.plt_projected, (90 / 100 + 75 / 100) / 2)
        with self.assertRaises(pecfs.TokenReportRejected) as cm:
            pecfs.report_tokens(run, {1: [60, 60]}, top_k=1, tokens={1: 100})  # 120 > 100 x top_k
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        self.assertIsInstance(cm.exception, OSError)
        with open(os.path.join(run, ".pec", "tokens")) as f:
            self.assertEqual(json.load(f), pending, "a rejected report changes nothing")

    def test_resumed_adds_the_plt_of_the_version_to_plt_spent(self):
        run = self.m.path("restart")
        os.makedirs(run)
        os.setxattr(run, "user.pec.k", b"1")
        os.setxattr(run, "user.pec.dynamic_k", b"0")

        def write_round(name, experts):
            d = self.version("restart", name)
            for e in experts:
                pecfs.save_file({"model.layers.1.mlp.experts.%d.w" % e: torch.full((8,), float(e))},
                                os.path.join(d, "layer_1_expert_%d.safetensors" % e))
            pecfs.save_file({"model.embed.weight": torch.ones(16)}, os.path.join(d, "non_expert.safetensors"))
            pecfs.report_tokens(run, {1: [10, 20, 30, 40]}, top_k=1)  # the interval this version ends
            h.cli("seal", d, check=True)

        write_round("global_step100", range(4))
        write_round("global_step200", pecfs.plan(run).experts[1])
        with open(os.path.join(run, ".pec", "manifest", "global_step200")) as f:
            man = json.load(f)
        # experts 1, 2, 3 lost 20 + 30 + 40 of the 200 tokens layer 1 routed (top-1) so far
        self.assertTrue(man["tokens_known"])
        self.assertAlmostEqual(man["plt"], 90 / 200)
        self.assertEqual(pecfs.plan(run).plt_spent, 0)
        pecfs.resumed(run, "global_step200")
        self.assertAlmostEqual(pecfs.plan(run).plt_spent, 90 / 200)
        with open(os.path.join(run, ".pec", "resumed")) as f:
            self.assertEqual([r["version"] for r in json.load(f)["restarts"]], ["global_step200"])
        with self.assertRaises(FileNotFoundError) as cm:
            pecfs.resumed(run, "global_step999")
        self.assertIn("no sealed version", str(cm.exception))
        self.version("restart", "global_step300")  # open: a restart cannot come from it
        with self.assertRaises(OSError) as cm:
            pecfs.resumed(run, "global_step300")
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(ValueError):
            pecfs.resumed(run, "../other")
        self.assertAlmostEqual(pecfs.plan(run).plt_spent, 90 / 200, msg="refused restarts change nothing")

    def test_example_trainer_writes_composed_rounds(self):
        run = self.m.path("example")
        trainer = os.path.join(REPO, "gpu", "python", "examples", "moe_trainer.py")
        args = [sys.executable, trainer, "--run", run, "--ranks", "2", "--steps", "1", "--layers", "4",
                "--experts", "4", "--hidden", "32", "--vocab", "256", "--batch", "64", "--k", "1",
                "--dynamic-k", "0"]
        cp = subprocess.run(args + ["--rounds", "3"], capture_output=True, text=True, timeout=600 * h.SLOW)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        vs = self.m.versions("example")
        self.assertEqual([(v["name"], v["state"]) for v in vs["versions"]],
                         [("global_step%d" % i, "sealed") for i in (1, 2, 3)])
        self.assertEqual(vs["latest"], "global_step3")
        with open(os.path.join(run, ".pec", "manifest", "global_step3")) as f:
            man = json.load(f)
        self.assertTrue(man["complete"])
        # K = 1 after a full first round: each MoE layer (1, 3) wrote one expert in step3
        self.assertEqual(sorted((u["layer"], u["expert"]) for u in man["units"] if u["written"]), [(1, 1), (3, 2)])
        self.assertTrue(man["tokens_known"])
        files = {r: sorted(os.listdir(os.path.join(run, "global_step3", "dp_rank_%02d" % r))) for r in (0, 1)}
        self.assertEqual(len(files[0]), 1 + 2 * 4)  # the logical full checkpoint: every expert
        self.assertEqual(files[0], files[1])
        for name in files[0]:
            a, b = (os.path.join(run, "global_step3", "dp_rank_%02d" % r, name) for r in (0, 1))
            self.assertEqual(h.sha256_file(a), h.sha256_file(b), "replicas of %s differ" % name)
            self.assertTrue(pecfs.load_file(a))
        cp = subprocess.run(args + ["--rounds", "1", "--resume"], capture_output=True, text=True,
                            timeout=600 * h.SLOW)
        self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
        self.assertIn("resumed from global_step3", cp.stdout)
        self.assertEqual(self.m.versions("example")["latest"], "global_step4")


def st_file(header, data=b"", n=None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if n is None else n) + raw + data


@h.skip_unless(None if torch is not None else MISSING, "load_file's checks")
class HostileFiles(unittest.TestCase):
    """load_file on files that are not valid safetensors: ValueError naming the problem, nothing
    allocated from unchecked sizes, never a crash."""

    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(h.BASE_DIR, "pecfs-hostile-%d" % os.getpid())
        os.makedirs(cls.dir, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def refused(self, content, reason):
        path = os.path.join(self.dir, "f.safetensors")
        with open(path, "wb") as f:
            f.write(content)
        with self.assertRaises(ValueError, msg=reason) as cm:
            pecfs.load_file(path)
        return str(cm.exception)

    def test_valid_file_loads(self):
        path = os.path.join(self.dir, "ok.safetensors")
        ts = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int16)}
        with open(path, "wb") as f:
            f.write(reference_safetensors(ts))
        assert_same_tensors(self, pecfs.load_file(path), ts)

    def test_malformed_files_are_refused(self):
        f32 = lambda b, e, shape=(2,): {"dtype": "F32", "shape": list(shape), "data_offsets": [b, e]}  # noqa: E731
        cases = [
            (b"abc", "shorter than the length prefix"),
            (struct.pack("<Q", 1 << 62) + b"{}", "header length past the file"),
            (struct.pack("<Q", 200_000_000) + b"{" + b" " * 10, "header length over the limit"),
            (st_file(b"[1,2]"), "not an object"),
            (st_file(b'{"a":1,'), "invalid JSON"),
            (st_file(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],'
                     b'"data_offsets":[0,4]}}', b"\0" * 4), "duplicate name"),
            (st_file({"a": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "unknown dtype"),
            (st_file({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4), "no data_offsets"),
            (st_file({"a": f32(0, 12)}, b"\0" * 12), "size does not match the shape"),
            (st_file({"a": f32(0, 8), "b": f32(4, 12)}, b"\0" * 12), "overlap"),
            (st_file({"a": f32(0, 8), "b": f32(12, 20)}, b"\0" * 20), "gap"),
            (st_file({"a": f32(0, 8)}, b"\0" * 9), "trailing bytes"),
            (st_file({"a": f32(0, 8)}, b"\0" * 4), "past the data section"),
            (st_file({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8), "negative"),
            (st_file(b'{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', b"\0" * 8), "fraction"),
            (st_file(b'{"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,8]}}', b"\0" * 8), "NaN"),
            (st_file({"a": {"dtype": "F32", "shape": [1] * 65 + [2], "data_offsets": [0, 8]}}, b"\0" * 8),
             "too many dimensions"),
            (st_file({"a": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 8]}}, b"\0" * 8),
             "huge shape"),
            (st_file({"a": {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}}, b"\0" * 8), "bool"),
            (st_file({"__metadata__": {"k": 1}, "a": f32(0, 8)}, b"\0" * 8), "metadata not strings"),
            (st_file(b'\xff\xfe{}'), "not UTF-8"),
            (st_file(b'{"a":' + b"[" * 100000 + b"]" * 100000 + b"}"), "nested too deeply"),
        ]
        for content, reason in cases:
            self.refused(content, reason)


if __name__ == "__main__":
    h.main()
