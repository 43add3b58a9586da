#!/usr/bin/python3
# bench_gpu_save.py - 8 data-parallel ranks (processes) save the same tensors (default 1 GiB; --quick
# 128 MiB) at once, as a trainer does every checkpoint: plain torch.save into a plain directory,
# torch.save into a pecfs mount, pecfs.save_file (libpecgpu) unsharded, and pecfs.save_file sharded
# over the 8 ranks. Reports wall time and the bytes that went through FUSE (the daemon's own
# counters, MOUNT/.pec/stats: bytes_written, bytes_linked), medians of --runs runs, each case on a fresh
# mount and fresh content, with ratios against the baselines of the same run; the target for bytes
# through FUSE is <= 1.05/8 of torch.save's. On CPU tensors the sharded save still hashes every byte
# on every rank, so its wall time is bounded by 8 ranks' SHA-256 on the cores there are. Not
# pass/fail. Needs root (mounts), /usr/bin/python3 with python3-torch, libpecgpu ($PECGPU_LIB or the
# build folder). The machine may be shared and noisy: compare figures of one run only.
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.multiprocessing as mp

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "gpu", "python"))
import pecfs  # noqa: E402

MiB = 1 << 20
CASES = ["plain dir, torch.save", "pecfs, torch.save", "pecfs, save_file", "pecfs, save_file sharded"]


def make_tensors(total, seed, pieces=16):
    g = torch.Generator().manual_seed(seed)
    n = total // 4 // pieces
    out = {"model.layers.%d.weight" % i: torch.randn(n, generator=g) for i in range(pieces)}
    out["model.step"] = torch.tensor(seed)
    return out


def rank_main(rank, case, tensors, out_dir, world, go, results):
    """One rank's save, once every rank is started (go); puts (rank, seconds until the tensors may
    change, seconds until durable)."""
    if case >= 2:
        pecfs.save._context(None, {"rank": rank, "world": world} if case == 3 else {})  # load the library
    results.put("ready")
    go.wait()
    t0 = time.monotonic()
    if case in (0, 1):
        path = os.path.join(out_dir, "rank%d" % rank, "mp_rank_00_model_states.pt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            torch.save(tensors, f)
            f.flush()
            os.fsync(f.fileno())
        copied = time.monotonic() - t0
    else:
        path = os.path.join(out_dir, "rank%d" % rank, "model.safetensors")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        opts = {"rank": rank, "world": world} if case == 3 else {}
        with pecfs.save_async(tensors, path, **opts) as hd:
            hd.wait_copied()
            copied = time.monotonic() - t0
            hd.wait_durable()
    results.put((rank, copied, time.monotonic() - t0))


class Mount:
    def __init__(self, binary, base, chunk_size):
        self.bin = binary
        self.dir = tempfile.mkdtemp(prefix="bench-gpu-", dir=base)
        self.data, self.mnt = os.path.join(self.dir, "data"), os.path.join(self.dir, "mnt")
        os.makedirs(self.data, mode=0o700)
        os.makedirs(self.mnt)
        subprocess.run([binary, "mount", "--chunk-size", chunk_size, self.data, self.mnt], check=True)

    def stats(self):
        with open(os.path.join(self.mnt, ".pec", "stats")) as f:
            return json.load(f)

    def close(self):
        subprocess.run([self.bin, "umount", self.mnt], check=True, stdout=subprocess.DEVNULL)
        shutil.rmtree(self.dir)


def run_case(case, tensors, args):
    """(wall s: slowest rank until durable, blocked s: slowest rank until its tensors may change,
    bytes written through FUSE, bytes linked)."""
    m = None
    if case == 0:
        out = tempfile.mkdtemp(prefix="bench-gpu-plain-", dir=args.base)
    else:
        m = Mount(args.pecfs, args.base, args.chunk_size)
        out = os.path.join(m.mnt, "run", "global_step1")
        os.makedirs(out)
        st0 = m.stats()
    ctx = mp.get_context("spawn")
    results, go = ctx.SimpleQueue(), ctx.Event()
    procs = [ctx.Process(target=rank_main, args=(r, case, tensors, out, args.ranks, go, results))
             for r in range(args.ranks)]
    for p in procs:
        p.start()
    for p in procs:
        if results.get() != "ready":  # python, torch and the library are loaded: time the saves only
            raise SystemExit("a rank of case %r did not start" % CASES[case])
    go.set()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit("a rank failed in case %r" % CASES[case])
    got = [results.get() for _ in procs]
    wall = max(d for _r, _c, d in got)
    blocked = max(c for _r, c, _d in got)
    written = linked = 0
    if m:
        st1 = m.stats()
        written = st1["bytes_written"] - st0["bytes_written"]
        linked = st1["bytes_linked"] - st0["bytes_linked"]
        m.close()
    else:
        shutil.rmtree(out)
    return wall, blocked, written, linked


def main():
    p = argparse.ArgumentParser(description="8 DP ranks save the same tensors: pecfs.save_file vs torch.save")
    p.add_argument("--pecfs", default=os.path.join(REPO, "build", "fs", "cli", "pecfs"))
    p.add_argument("--size", type=int, default=1024, help="MiB of tensors each rank saves (default 1024)")
    p.add_argument("--quick", action="store_true", help="128 MiB, 3 runs")
    p.add_argument("--ranks", type=int, default=8)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--chunk-size", default="4M")
    p.add_argument("--base", default="/var/tmp")
    args = p.parse_args()
    if args.quick:
        args.size = 128
    print("bench_gpu_save: %d ranks x %d MiB of float32 tensors, chunk size %s, median of %d runs; "
          "libpecgpu %s" % (args.ranks, args.size, args.chunk_size, args.runs, pecfs.library_version()))
    print("(a shared machine is noisy: compare figures of one run, not across runs)")
    rows = {c: [] for c in range(len(CASES))}
    for run in range(args.runs):
        tensors = make_tensors(args.size * MiB, seed=1000 + run)
        for t in tensors.values():
            t.share_memory_()  # one copy in memory, seen by every rank
        for case in range(len(CASES)):
            rows[case].append(run_case(case, tensors, args))
        del tensors
    med = {c: [statistics.median(r[i] for r in rows[c]) for i in range(4)] for c in rows}
    total = args.ranks * args.size * MiB
    print("\n%-28s %9s %12s %12s %14s %12s" % ("case", "wall s", "blocked s", "vs plain dir",
                                                "through FUSE", "linked"))
    for c, name in enumerate(CASES):
        wall, blocked, written, linked = med[c]
        fuse = "-" if c == 0 else "%.1f MiB" % (written / MiB)
        print("%-28s %9.2f %12.2f %11.2fx %14s %9.1f MiB" % (name, wall, blocked, wall / med[0][0], fuse,
                                                            linked / MiB))
    base = med[1][2]
    print("\nfiles: %d x %d MiB = %d MiB" % (args.ranks, args.size, total // MiB))
    for c in (2, 3):
        ratio = med[c][2] / base if base else float("nan")
        print("%s: bytes through FUSE %.4f of torch.save's (target <= %.4f, i.e. -%.1f %%): %s; wall %.2fx "
              "of torch.save into the mount" % (CASES[c], ratio, 1.05 / args.ranks, 100 * (1 - 1.05 / args.ranks),
                                                "met" if ratio <= 1.05 / args.ranks else "NOT met",
                                                med[c][0] / med[1][0]))


if __name__ == "__main__":
    main()
