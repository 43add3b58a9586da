#!/usr/bin/python3
# moe_trainer.py - a small Mixture-of-Experts trainer that checkpoints into a pecfs run the Partial
# Experts Checkpoint way, on CPU tensors: data-parallel ranks are processes (torch.distributed, gloo),
# every round each rank saves its replica (non-expert state and the experts RUN/.pec/plan names) with
# pecfs.save_async sharded over the ranks (each stores 1/world of the new chunks and links the rest),
# trains on while the bytes are written, reports the tokens routed to each expert to RUN/.pec/tokens,
# and rank 0 seals the version through DeepSpeed's tracker file RUN/latest. --resume restarts from
# RUN/.pec/latest (a logical full checkpoint) and tells the daemon so (pecfs.resumed).
#
#   PYTHONPATH=gpu/python /usr/bin/python3 gpu/python/examples/moe_trainer.py --run /mnt/ckpt/moe
#
# Layout of a version (DeepSpeed-style names, safetensors content):
#   RUN/global_step<S>/dp_rank_<r>/mp_rank_00_model_states.safetensors                  non-expert
#   RUN/global_step<S>/dp_rank_<r>/layer_<l>_expert_<e>_mp_rank_00_model_states.safetensors
# Expert tensors are named model.layers.<l>.mlp.experts.<e>.*, which is how pecfs tells the expert
# units of a safetensors file (policy/PEC.md section 1).
import argparse
import os
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pecfs  # noqa: E402


class MoE(torch.nn.Module):
    """Embedding, then layers of (mixing linear + MLP); every MoE layer's MLP is top-k routed experts."""

    def __init__(self, a):
        super().__init__()
        self.moe_layers, self.top_k = a.moe_layers, a.top_k
        self.embed = torch.nn.Embedding(a.vocab, a.hidden)
        self.mix = torch.nn.ModuleList(torch.nn.Linear(a.hidden, a.hidden) for _ in range(a.layers))
        self.dense = torch.nn.ModuleDict({str(l): self._mlp(a.hidden) for l in range(a.layers)
                                          if l not in a.moe_layers})
        self.gate = torch.nn.ModuleDict({str(l): torch.nn.Linear(a.hidden, a.experts, bias=False)
                                         for l in a.moe_layers})
        self.experts = torch.nn.ModuleDict({str(l): torch.nn.ModuleList(self._mlp(a.hidden)
                                                                        for _ in range(a.experts))
                                            for l in a.moe_layers})
        self.head = torch.nn.Linear(a.hidden, a.vocab)

    @staticmethod
    def _mlp(h):
        return torch.nn.Sequential(torch.nn.Linear(h, 2 * h), torch.nn.GELU(), torch.nn.Linear(2 * h, h))

    def forward(self, tokens, counts):
        x = self.embed(tokens)
        for l, mix in enumerate(self.mix):
            x = x + torch.tanh(mix(x))
            if l not in self.moe_layers:
                x = x + self.dense[str(l)](x)
                continue
            weights, chosen = torch.topk(torch.softmax(self.gate[str(l)](x), -1), self.top_k, -1)
            counts[l] += torch.bincount(chosen.reshape(-1), minlength=counts[l].numel())
            out = torch.zeros_like(x)
            for e, expert in enumerate(self.experts[str(l)]):
                rows, slot = (chosen == e).nonzero(as_tuple=True)
                if rows.numel():
                    out[rows] += weights[rows, slot, None] * expert(x[rows])
            x = x + out
        return self.head(x)


def state_files(model, plan, rank):
    """{relative path: {tensor name: tensor}} of what this rank saves this round: everything while the
    run has no sealed version yet (so the first version is complete), then the plan's experts."""
    everything = plan.version_index == 0
    expert_of = {}
    files = {}
    for name, t in model.state_dict().items():
        parts = name.split(".")
        if parts[0] == "experts":  # experts.<l>.<e>.<rest>
            l, e = int(parts[1]), int(parts[2])
            if not (everything or plan.saves(l, e)):
                continue
            path = "dp_rank_%02d/layer_%d_expert_%d_mp_rank_00_model_states.safetensors" % (rank, l, e)
            expert_of.setdefault(path, {})["model.layers.%d.mlp.experts.%d.%s" % (l, e, ".".join(parts[3:]))] = t
        else:
            files.setdefault("dp_rank_%02d/mp_rank_00_model_states.safetensors" % rank, {})["model." + name] = t
    files.update(expert_of)
    return files


def load_state(model, version_dir, rank):
    """Loads this rank's files of a (logical full) version back into the model."""
    state = {}
    d = os.path.join(version_dir, "dp_rank_%02d" % rank)
    for fname in sorted(os.listdir(d)):
        for name, t in pecfs.load_file(os.path.join(d, fname)).items():
            parts = name.split(".")
            if parts[3:5] == ["mlp", "experts"]:  # model.layers.<l>.mlp.experts.<e>.<rest>
                state["experts.%s.%s.%s" % (parts[2], parts[5], ".".join(parts[6:]))] = t
            else:
                state[name[len("model."):]] = t
    model.load_state_dict(state)


def worker(rank, a, rendezvous):
    dist.init_process_group("gloo", init_method="file://" + rendezvous, rank=rank, world_size=a.ranks)
    torch.manual_seed(1234)  # identical replicas; data differs per rank below
    model = MoE(a)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    data = torch.Generator().manual_seed(99 + rank)
    step = 0
    if a.resume:
        version = os.path.basename(os.readlink(os.path.join(a.run, ".pec", "latest")))
        load_state(model, os.path.join(a.run, ".pec", "latest"), rank)
        step = int(version[len("global_step"):])
        if rank == 0:
            try:
                pecfs.resumed(a.run, version)
            except FileNotFoundError:
                print("this pecfs has no RUN/.pec/resumed: the restart's PLT is not accounted")
            print("resumed from %s" % version)
    ctx = pecfs.Context(rank=rank, world=a.ranks)
    counts = {l: torch.zeros(a.experts, dtype=torch.int64) for l in a.moe_layers}
    pending = None  # (version, handles) of the save still being written

    def finish(pending):
        version, handles = pending
        for hd in handles:
            hd.wait_durable()
        # bytes of the files, and bytes written through FUSE, over all ranks
        sizes = torch.tensor([sum(hd.stats()[k] for hd in handles) for k in ("file_bytes", "bytes_written")])
        for hd in handles:
            hd.close()
        dist.all_reduce(sizes)
        dist.barrier()  # every rank's files are durable
        if rank == 0:
            with open(os.path.join(a.run, "latest"), "w") as f:
                f.write(version)  # DeepSpeed's tracker: closing it seals the version
        dist.barrier()
        return sizes.tolist()

    def sealed(version, sizes):
        if rank == 0:
            print("  %s sealed: %d bytes in %d ranks' files, %d of them written through FUSE (%.1f %%), "
                  "the rest linked" % (version, sizes[0], a.ranks, sizes[1], 100 * sizes[1] / max(1, sizes[0])))

    for rnd in range(a.rounds):
        t0 = time.monotonic()
        for _ in range(a.steps):  # overlaps with the previous round's background writes
            tokens = torch.randint(0, a.vocab, (a.batch,), generator=data)
            loss = torch.nn.functional.cross_entropy(model(tokens, counts), torch.roll(tokens, 1))
            opt.zero_grad()
            loss.backward()
            for p in model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= a.ranks
            opt.step()
            step += 1
        train_s = time.monotonic() - t0
        if pending:
            sealed(pending[0], finish(pending))
        for l in a.moe_layers:
            dist.all_reduce(counts[l])
        if rank == 0:
            pecfs.report_tokens(a.run, {l: c for l, c in counts.items()}, top_k=a.top_k, step=step)
        for c in counts.values():
            c.zero_()
        dist.barrier()  # the report is in before anyone reads the plan
        plan = pecfs.plan(a.run)
        version = "global_step%d" % step
        files = state_files(model, plan, rank)
        handles = []
        for rel, tensors in files.items():
            os.makedirs(os.path.dirname(os.path.join(a.run, version, rel)), exist_ok=True)
            handles.append(pecfs.save_async(tensors, os.path.join(a.run, version, rel), ctx=ctx))
        t1 = time.monotonic()
        for hd in handles:
            hd.wait_copied()  # from here on the optimizer may change the tensors
        if rank == 0:
            saved = {l: [e for e in range(a.experts) if plan.version_index == 0 or plan.saves(l, e)]
                     for l in a.moe_layers}
            print("round %d: step %d, loss %.3f, %.2f s training, %.3f s blocked by the save; %s saves "
                  "experts %s (plan: K %d, projected PLT %s)"
                  % (rnd, step, loss.item(), train_s, time.monotonic() - t1, version, saved, plan.k,
                     "%.2f %%" % (100 * plan.plt_projected) if plan.plt_projected is not None else "unknown"))
        pending = (version, handles)
    sealed(pending[0], finish(pending))
    ctx.close()
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description="A small MoE trainer saving Partial Experts Checkpoints "
                                "into a pecfs run through libpecgpu.")
    p.add_argument("--run", required=True, help="the run directory on a pecfs mount")
    p.add_argument("--ranks", type=int, default=4, help="data-parallel ranks (processes)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="training steps per round")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--k", type=int, help="experts per layer each round saves (sets user.pec.k)")
    p.add_argument("--dynamic-k", type=int, choices=(0, 1),
                   help="let the plan double K to keep PLT under budget (sets user.pec.dynamic_k)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--resume", action="store_true", help="start from RUN/.pec/latest")
    a = p.parse_args()
    a.moe_layers = [l for l in range(a.layers) if l % 2 == 1]
    os.makedirs(a.run, exist_ok=True)
    if a.k is not None:
        os.setxattr(a.run, "user.pec.k", str(a.k).encode())
    if a.dynamic_k is not None:
        os.setxattr(a.run, "user.pec.dynamic_k", str(a.dynamic_k).encode())
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(a, os.path.join(tmp, "rendezvous")), nprocs=a.ranks, join=True)


if __name__ == "__main__":
    main()
