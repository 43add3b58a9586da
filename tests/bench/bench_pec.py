#!/usr/bin/env python3
# bench_pec.py - what Partial Experts Checkpoints save on pecfs. The paper's 8-expert model
# (GPT-125M-8E: 12 layers, hidden 768, vocabulary 50257, 6 MoE layers x 8 experts, 323M parameters;
# fp32 weights plus two fp32 Adam moments, synthetic values that change every round) is written as
# DeepSpeed-style files for 8 rounds at K = 8 (full), 2 and 1, without and with 8 data-parallel
# replicas of the non-expert files. Reports stored bytes per round (chunk payload, and the data folder
# on disk: chunk headers and metadata included), the reduction vs full against the arithmetic bound,
# and the cold read of a logical full checkpoint vs a checkpoint written whole. Not pass/fail. Needs
# root (mounts, drop_caches). Python stdlib only. --scale divides every tensor (default 1: real size).
import argparse
import mmap
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
H, VOCAB, CTX, LAYERS, EXPERTS = 768, 50257, 1024, 12, 8
MOE_LAYERS = [1, 3, 5, 7, 9, 11]        # every other layer is MoE
BYTES_PER_PARAM = 12                     # fp32 weight + two fp32 Adam moments


def layout():
    """(non-expert parameters, parameters of one expert)."""
    attn = 4 * H * H + 8 * H             # qkv + proj (with biases), two layer norms
    mlp = 8 * H * H + 5 * H              # h -> 4h -> h with biases
    gate = H * EXPERTS
    non_expert = VOCAB * H + CTX * H + LAYERS * attn + (LAYERS - len(MOE_LAYERS)) * mlp
    non_expert += len(MOE_LAYERS) * gate + 2 * H
    return non_expert, mlp


def bound(k):
    ne, ex = layout()
    full = ne + len(MOE_LAYERS) * EXPERTS * ex
    return 1 - (ne + len(MOE_LAYERS) * k * ex) / full


class Source:
    """Unique bytes fast: a random base, each 64 KiB stamped with (tag, index), so no chunk repeats
    across files or rounds. Buffers are page-aligned (unaligned ones split FUSE direct-I/O writes)."""

    def __init__(self):
        self.base = mmap.mmap(-1, 16 * MiB)
        self.base.write(random.Random(7).randbytes(16 * MiB))
        self.buf = mmap.mmap(-1, MiB)

    def write(self, path, size, tag):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            off, i = 0, 0
            while off < size:
                n = min(MiB, size - off)
                src = (i * 4096 * 13) % (15 * MiB)
                self.buf[:] = self.base[src:src + MiB]
                for k in range(0, n, 65536):
                    struct.pack_into("<QQ", self.buf, k, tag, i * 16 + k // 65536)
                os.write(fd, memoryview(self.buf)[:n])
                off += n
                i += 1
        finally:
            os.close(fd)


class Pecfs:
    def __init__(self, binary, base):
        self.bin = binary
        self.dir = tempfile.mkdtemp(prefix="bench-pec-", dir=base)
        self.data, self.mnt = os.path.join(self.dir, "data"), os.path.join(self.dir, "mnt")
        os.makedirs(self.data)
        os.makedirs(self.mnt)
        subprocess.run([binary, "mount", self.data, self.mnt], check=True)

    def cli(self, *args):
        subprocess.run([self.bin] + list(args), check=True, stdout=subprocess.DEVNULL)

    def stored(self):
        import json
        with open(os.path.join(self.mnt, ".pec", "stats")) as f:
            return json.load(f)["stored_bytes"]

    def on_disk(self):
        total = 0
        for root, _d, files in os.walk(self.data):
            for n in files:
                try:
                    total += os.lstat(os.path.join(root, n)).st_size
                except FileNotFoundError:
                    pass
        return total

    def close(self):
        subprocess.run([self.bin, "umount", self.mnt], check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def read_tree(path):
    buf = mmap.mmap(-1, MiB)
    total = 0
    for root, _d, files in os.walk(path):
        for n in sorted(files):
            fd = os.open(os.path.join(root, n), os.O_RDONLY)
            try:
                while True:
                    got = os.readv(fd, [buf])
                    if got <= 0:
                        break
                    total += got
            finally:
                os.close(fd)
    return total


def save_round(fs, src, r, k, replicas, scale, run="gpt125m8e"):
    ne, ex = layout()
    ne_bytes = ne * BYTES_PER_PARAM // scale
    ex_bytes = ex * BYTES_PER_PARAM // scale
    d = os.path.join(fs.mnt, run, "global_step%d" % (1000 * r))
    os.makedirs(d)
    weights, moments = ne_bytes // 3, ne_bytes - ne_bytes // 3
    for rep in range(replicas):
        # replicas hold the same bytes (same tags): the store keeps them once
        prefix = "" if replicas == 1 else "dp%d_" % rep
        src.write(os.path.join(d, prefix + "mp_rank_00_model_states.pt"), weights, r * 1000 + 1)
        src.write(os.path.join(d, prefix + "zero_pp_rank_0_mp_rank_00_optim_states.pt"), moments, r * 1000 + 2)
    for li, layer in enumerate(MOE_LAYERS):
        # the paper's sequential rotation (what RUN/.pec/plan proposes), interleaved across layers
        for j in range(k):
            e = (li * k + (r - 1) * k + j) % EXPERTS
            src.write(os.path.join(d, "layer_%d_expert_%d_mp_rank_00_model_states.pt" % (layer, e)), ex_bytes,
                      r * 1000 + 100 + layer * EXPERTS + e)
    fs.cli("seal", d)
    return d


def run_k(binary, base, k, replicas, scale, rounds, log):
    fs = Pecfs(binary, base)
    src = Source()
    per_round, last = [], None
    try:
        os.makedirs(os.path.join(fs.mnt, "gpt125m8e"))
        s0, d0 = fs.stored(), fs.on_disk()
        t0 = time.monotonic()
        for r in range(1, rounds + 1):
            a, b = fs.stored(), fs.on_disk()
            last = save_round(fs, src, r, k, replicas, scale)
            per_round.append((fs.stored() - a, fs.on_disk() - b))
        secs = time.monotonic() - t0
        stored, disk = fs.stored() - s0, fs.on_disk() - d0
        log("  K=%d replicas=%d: %s per round (payload MiB), %.0f MiB stored, %.0f MiB on disk, %.1f s" % (
            k, replicas, " ".join("%.0f" % (p / MiB) for p, _ in per_round), stored / MiB, disk / MiB, secs))
        if k == 1:
            cold_read(fs, src, last, replicas, scale, log)
        return {"stored": stored, "disk": disk}
    finally:
        fs.close()


def cold_read(fs, src, logical, replicas, scale, log, reps=3):
    """The logical full checkpoint of the last K=1 round (its experts spread over 8 rounds) against a
    checkpoint of the same sizes written whole, in the same data folder; median of reps cold reads."""
    os.makedirs(os.path.join(fs.mnt, "whole"))
    whole = save_round(fs, src, 99, EXPERTS, replicas, scale, run="whole")
    size = sum(os.lstat(os.path.join(logical, n)).st_size for n in os.listdir(logical))
    rates = {"whole": [], "logical": []}
    for _ in range(reps):
        for label, path in (("whole", whole), ("logical", logical)):
            drop_caches()
            t = time.monotonic()
            got = read_tree(path)
            rates[label].append(got / MiB / (time.monotonic() - t))
            assert got == size, (label, got, size)
    w, c = sorted(rates["whole"])[reps // 2], sorted(rates["logical"])[reps // 2]
    log("  cold read, %.0f MiB: written whole %.0f MiB/s, K=1 logical full checkpoint %.0f MiB/s (%.2fx)" % (
        size / MiB, w, c, c / w))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pecfs", required=True, help="the pecfs binary")
    ap.add_argument("--dir", default="/var/tmp", help="a folder on the data disk (default /var/tmp)")
    ap.add_argument("--scale", type=int, default=1, help="divide every tensor by this (default 1)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--replicas", type=int, default=8, help="data-parallel replicas in the second pass")
    ap.add_argument("--quick", action="store_true", help="scale 16: a run of a few minutes")
    args = ap.parse_args()
    scale = 16 if args.quick and args.scale == 1 else args.scale

    def log(s):
        print(s, flush=True)

    ne, ex = layout()
    total = ne + len(MOE_LAYERS) * EXPERTS * ex
    log("GPT-125M-8E: %.1fM parameters (%.1fM non-expert, %d experts of %.2fM), %d B/param, scale 1/%d: "
        "%.0f MiB per full round" % (total / 1e6, ne / 1e6, len(MOE_LAYERS) * EXPERTS, ex / 1e6,
                                     BYTES_PER_PARAM, scale, total * BYTES_PER_PARAM / scale / MiB))
    for replicas in (1, args.replicas):
        log("replicas of the non-expert files: %d" % replicas)
        res = {k: run_k(args.pecfs, args.dir, k, replicas, scale, args.rounds, log) for k in (8, 2, 1)}
        full = res[8]
        for k in (2, 1):
            red = 1 - res[k]["stored"] / full["stored"]
            red_disk = 1 - res[k]["disk"] / full["disk"]
            log("  K=%d: reduction vs full %.2f %% stored, %.2f %% on disk (bound %.2f %%, gap %.2f pp)" % (
                k, 100 * red, 100 * red_disk, 100 * bound(k), 100 * (bound(k) - red_disk)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
