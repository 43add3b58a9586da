#!/usr/bin/env python3
"""bench_nodes.py - many nodes, one bucket: N pecfs daemons on this machine (default 16, each its own
data folder, mount point and --node-id, all with --s3-nodes N on one prefix of one bucket of a local
Ceph RGW started by deploy/s3-rgw.sh) write their ranks' parts of the same versions of one run, as a
data-parallel trainer's nodes would: each rank its own files, plus one file identical on every rank
(stored once in the bucket) and one unchanged across versions. Each version is sealed on every node
by its DeepSpeed tracker file (`latest`), then `pecfs seal --wait-upload` waits for the COMMIT.

It checks, and exits 1 on the first failure:
- the COMMIT barrier: with the first version sealed on every node but one, the N-1 parts are in the
  bucket and no COMMIT is (looked at twice, 3 s apart); once the last node seals, COMMIT names
  exactly the N parts, each with the seal id its manifest carries; every chunk is in the bucket;
- `pecfs restore` of the latest version and of the oldest into fresh folders, and every file of the
  latest read through `mount --from` on a fresh data folder: the same bytes as written, file for file;
- retiring every version but the latest on the nodes (rm -r, local gc), then `pecfs gc --remote --keep 1
  --grace 0 --forget-node reader` (the --from node is gone):
  the old versions' objects are gone, the bucket holds exactly the latest version's chunks, `pecfs
  fsck --remote` is clean, and the latest version still restores byte for byte;
- a relaunch: launch 1 (user.pec.job launch-1) uploads the parts of half the nodes of a new version
  and dies; launch 2 removes the version on every node and saves it again with other bytes. With every
  node but one sealed, all N manifests are listed (the last one launch 1's) and no COMMIT is; once
  the last node seals, COMMIT is launch 2's and the version restores to launch 2's bytes.

It prints the wall time of each phase, the S3 requests of each (GET, HEAD, LIST, PUT, DELETE, POST,
counted from the RGW's access log, so the CLI commands' requests count too) per GiB moved, the CPU
seconds of the daemons, Ceph and the commands, and the daemons' memory. Needs root, FUSE and the Ceph
packages. Takes about two minutes at the defaults.
usage: tests/bench/bench_nodes.py [--nodes 16] [--mib-per-rank 8] [--versions 3]
"""
import argparse
import concurrent.futures
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pecfs_harness as h  # noqa: E402
import s3_fixture as fx  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
CHUNK = 4 * MiB            # pecfs's default chunk size: the unit the bucket's objects are cut in
RUN = "moe"
AK, SK, BUCKET, PREFIX = "pecfs-nodes", "pecfs-nodes-secret-5b2e", "pecfs-nodes", "ckpt"
KINDS = ("GET", "HEAD", "LIST", "PUT", "DELETE", "POST")


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def tag(v):
    """The version directory of version v (1-based), named as DeepSpeed names its checkpoints."""
    return "global_step%d" % (100 * v)


# ---- what each rank writes ----

def rank_files(a, rank, v):
    """{path in the version: (size, seed)} that rank writes into version v. model.pt is new in every
    version, frozen.pt is the same in all of them, common.pt and config/run.json the same on every
    rank (the replicated state data-parallel ranks all save)."""
    return {
        "rank-%03d/model.pt" % rank: (a.mib_per_rank * MiB + 4099 * rank + 1, 1000003 * v + rank),
        "rank-%03d/frozen.pt" % rank: (MiB + rank, 7000001 + rank),
        "common.pt": (4 * MiB + 17, 9000001 + v),
        "config/run.json": (333, 9500001 + v),
    }


def version_files(a, v):
    out = {}
    for r in range(a.nodes):
        out.update(rank_files(a, r, v))
    return out


def content(size_seed):
    return h.random_bytes(*size_seed)


def digests(files):
    out = set()
    for spec in files.values():
        out.update(h.chunk_digests(content(spec), CHUNK))
    return out


def logical_bytes(files):
    return sum(size for size, _ in files.values())


def compare_tree(root, files, what):
    """Every regular file under root is one of files, with exactly its bytes, and none is missing."""
    found = set()
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            found.add(os.path.relpath(os.path.join(dirpath, n), root))
    check(found == set(files), "%s: files differ: missing %s, unexpected %s" %
          (what, sorted(set(files) - found)[:5], sorted(found - set(files))[:5]))
    for rel, spec in files.items():
        got, want = h.read_file(os.path.join(root, rel)), content(spec)
        if got != want:
            at = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
            raise Failure("%s: %s differs from what was written (size %d, want %d; first difference at byte %d)"
                          % (what, rel, len(got), len(want), at))


# ---- measuring ----

def proc_fields(pid):
    """(CPU seconds, VmRSS bytes, VmHWM bytes) of pid; zeros once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        mem = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    mem[k] = int(rest.split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return 0.0, 0, 0
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK"), mem.get("VmRSS", 0), mem.get("VmHWM", 0)


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def rgw_requests(log_path):
    """[(start time, kind, HTTP status)] of every request in the RGW's access log."""
    return [(t, kind, status) for t, kind, _, status in fx.rgw_requests(log_path, BUCKET)]


class Phase:
    def __init__(self, name, moved, checks):
        self.name, self.moved, self.checks = name, moved, checks
        self.t0 = self.t1 = 0.0
        self.cpu = {}
        self.rss = 0      # the node daemons' RSS together when it ended


# ---- the nodes ----

class Node:
    def __init__(self, bench, name, opts):
        self.b, self.name, self.opts = bench, name, opts
        self.data = os.path.join(bench.scratch, name, "data")
        self.mnt = os.path.join(bench.scratch, name, "mnt")
        self.pid = None

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def mount(self):
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.b.pecfs("mount", *self.opts, self.data, self.mnt, timeout=300)
        with open(os.path.join(self.data, "LOCK")) as f:
            self.pid = int(f.read().split()[0])

    def umount(self):
        self.b.pecfs("umount", self.mnt, timeout=600)
        check(not h.is_mounted(self.mnt), "%s still mounted after pecfs umount" % self.mnt)

    def stats(self):
        with open(self.path(".pec", "stats")) as f:
            return json.load(f)["s3"]

    def state(self, v):
        with open(self.path(RUN, ".pec", "versions")) as f:
            for e in json.load(f)["versions"]:
                if e["name"] == tag(v):
                    return e["state"]
        return None

    def write(self, a, rank, v, src=None):
        """Writes rank's files of version v (or, with src, those of version src) into version v."""
        for rel, spec in rank_files(a, rank, src or v).items():
            p = self.path(RUN, tag(v), rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            h.write_file(p, content(spec))

    def seal_by_tracker(self, v):
        """What DeepSpeed does after its ranks saved: write the tag into RUN/latest. Its close seals."""
        with open(self.path(RUN, "latest"), "w") as f:
            f.write(tag(v))

    def wait_uploaded(self, v):
        self.b.pecfs("seal", "--wait-upload", "--timeout", "10m", self.path(RUN, tag(v)), timeout=700)


def each(fn, items):
    """fn(item) for every item at once (the nodes work in parallel); the first exception is raised."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(items))) as ex:
        return [f.result() for f in [ex.submit(fn, x) for x in items]]


class Bench:
    def __init__(self, a):
        self.a = a
        self.scratch = tempfile.mkdtemp(prefix="pecfs-bench-nodes-", dir="/var/tmp")
        self.rgw_dir = os.path.join(self.scratch, "rgw")
        port = fx.free_port()
        self.endpoint = "http://127.0.0.1:%d" % port
        self.env = dict(os.environ, RGW_PORT=str(port), MON_PORT=str(fx.free_port()), S3_ACCESS_KEY=AK,
                        S3_SECRET_KEY=SK, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK,
                        RGW_MEM_BYTES=str(4 * a.versions * logical_bytes(version_files(a, 1)) + GiB))
        self.env.pop("AWS_SESSION_TOKEN", None)
        self.uri = "s3://%s/%s" % (BUCKET, PREFIX)
        self.tier = ["--s3", self.uri, "--s3-endpoint", self.endpoint, "--s3-addressing", "path"]
        self.nodes, self.reader = [], None
        self.phases, self.current = [], None
        self.bench_requests = 0          # the checks' own requests through pecfs-s3check
        self.peak = {"daemons_rss": 0, "ceph_rss": 0, "min_avail": mem_available()}
        self.hwm = {}                    # pid -> the daemon's peak RSS (VmHWM), kept after it exits
        self.sampling = False
        self.uploads = []                # (version, new distinct chunks, new chunk objects, chunk PUTs)
        self.gc = self.fsck = None       # gc --remote's JSON result, fsck --remote's summary line

    # -- commands --
    def pecfs(self, *args, timeout=600, ok=(0,)):
        cp = subprocess.run([self.a.pecfs] + [str(x) for x in args], env=self.env, capture_output=True,
                            text=True, timeout=timeout)
        if cp.returncode not in ok:
            raise Failure("pecfs %s exited %d: %s%s" % (" ".join(map(str, args[:3])), cp.returncode,
                                                         cp.stdout[-2000:], cp.stderr[-2000:]))
        return cp

    def s3(self, *args, ok=(0,)):
        env = dict(self.env, PECS3_ENDPOINT=self.endpoint, PECS3_BUCKET=BUCKET)
        cp = subprocess.run([self.a.s3check, "--path-style"] + [str(x) for x in args], env=env,
                            capture_output=True, timeout=300)
        self.bench_requests += sum(int(x) for x in re.findall(rb"stats requests=(\d+)", cp.stderr))
        if cp.returncode not in ok:
            raise Failure("pecfs-s3check %s: %s" % (" ".join(map(str, args)), cp.stderr.decode()[-2000:]))
        return cp

    def listing(self, sub=""):
        out = {}
        for line in self.s3("ls", "%s/%s" % (PREFIX, sub)).stdout.decode().splitlines():
            key, size = line.rsplit(" ", 1)
            out[key] = int(size)
        return out

    def chunk_keys(self, keys=None):
        """Digests of the chunks the bucket holds: chunk objects, and the members of every pack (its
        member table read with one ranged GET; store/FORMAT.md section 5, "Packs")."""
        keys = self.listing() if keys is None else keys
        out = {k.rsplit("/", 1)[1] for k in keys if k.startswith(PREFIX + "/chunks/")}
        for members in self.packs(keys).values():
            out.update(members)
        return out

    def packs(self, keys):
        """{pack key: [member digest hex]} of the packs among keys."""
        out = {}
        for k in keys:
            if k.startswith(PREFIX + "/packs/"):
                head = self.s3("get", k, "0", str(32 + 40 * 256)).stdout
                count = struct.unpack_from("<I", head, 16)[0]
                out[k] = [head[32 + 40 * i:64 + 40 * i].hex() for i in range(count)]
        return out

    def get_json(self, key):
        return json.loads(self.s3("get", "%s/%s" % (PREFIX, key)).stdout)

    # -- phases and measurements --
    def ceph_pids(self):
        pids = []
        for name in ("client.rgw.a", "osd.0", "mon.a"):
            try:
                with open(os.path.join(self.rgw_dir, "run", name + ".pid")) as f:
                    pids.append(int(f.read().split()[0]))
            except (OSError, ValueError):
                pass
        return pids

    def daemon_pids(self):
        return [n.pid for n in self.nodes + ([self.reader] if self.reader else []) if n.pid]

    def cpu_now(self):
        child = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"daemons": sum(proc_fields(p)[0] for p in self.daemon_pids()),
                "ceph": sum(proc_fields(p)[0] for p in self.ceph_pids()),
                "commands": child.ru_utime + child.ru_stime,
                "bench": time.process_time()}

    def sample(self):
        while self.sampling:
            rss = 0
            for p in self.daemon_pids():
                _cpu, now, hwm = proc_fields(p)
                rss += now
                self.hwm[p] = max(self.hwm.get(p, 0), hwm)
            self.peak["daemons_rss"] = max(self.peak["daemons_rss"], rss)
            self.peak["ceph_rss"] = max(self.peak["ceph_rss"], sum(proc_fields(p)[1] for p in self.ceph_pids()))
            self.peak["min_avail"] = min(self.peak["min_avail"], mem_available())
            time.sleep(0.5)

    def phase(self, name, moved=0, checks=False):
        """Starts phase name (the previous one ends): moved is the bytes it uploads or downloads, checks
        marks the benchmark's own verification (its requests are not pecfs's)."""
        now, cpu = time.time(), self.cpu_now()
        if self.current:
            self.current.t1 = now
            for k, x in cpu.items():
                self.current.cpu[k] = max(0.0, x - self.current.cpu[k])
            self.current.rss = sum(proc_fields(p)[1] for p in self.daemon_pids())
            self.phases.append(self.current)
        self.current = None
        if name:
            self.current = Phase(name, moved, checks)
            self.current.t0, self.current.cpu = now, cpu
            if not checks:
                print("  %-44s ..." % name, flush=True)

    # -- steps --
    def start(self):
        fx.rgw_script("start", self.rgw_dir, self.env, 300)
        self.s3("mb")
        self.sampling = True
        threading.Thread(target=self.sample, daemon=True).start()

    def cleanup(self):
        self.sampling = False
        for n in self.nodes + ([self.reader] if self.reader else []):
            if h.is_mounted(n.mnt):
                subprocess.run([self.a.pecfs, "umount", n.mnt], capture_output=True, timeout=600)
            if h.is_mounted(n.mnt):
                h.lazy_unmount(n.mnt)
        subprocess.run([fx.RGW_SCRIPT, "stop", self.rgw_dir], env=self.env, capture_output=True, timeout=120)
        if not self.a.keep:
            shutil.rmtree(self.scratch, ignore_errors=True)


def check_commit(b, a, v):
    """COMMIT of version v names exactly the N nodes' parts, each with its manifest's seal id."""
    base = "runs/%s/%s" % (RUN, tag(v))
    commit = b.get_json(base + "/COMMIT")
    names = [n.name for n in b.nodes]
    check(commit.get("parts") == a.nodes, "%s COMMIT counts %s parts, not %d" % (tag(v), commit.get("parts"), a.nodes))
    check([p[0] for p in commit["manifests"]] == names,
          "%s COMMIT names %s, not the %d nodes" % (tag(v), [p[0] for p in commit["manifests"]], a.nodes))
    ids = {}
    for name in names:
        ids[name] = b.get_json("%s/%s.manifest" % (base, name)).get("seal_id")
    check(all(commit_id == ids[n] for n, commit_id in commit["manifests"]),
          "%s COMMIT's seal ids differ from the manifests': %s vs %s" % (tag(v), commit["manifests"], ids))
    check(commit["seal_id"] == ids.get(commit["node"]), "%s COMMIT's own seal id is not its node's" % tag(v))
    check(all(n.state(v) == "uploaded" for n in b.nodes), "%s is not uploaded on every node" % tag(v))


def seal_versions(b, a):
    """Writes and seals every version; the first one holds the last node back to check the barrier."""
    before = set()
    for v in range(1, a.versions + 1):
        files = version_files(a, v)
        b.phase("write %s (%d ranks, %.0f MiB)" % (tag(v), a.nodes, logical_bytes(files) / MiB))
        each(lambda n: n.write(a, b.nodes.index(n), v), b.nodes)
        new = digests(files) - before
        if v == 1:
            held, last = b.nodes[:-1], b.nodes[-1]
            held_files = {}
            for r in range(len(held)):
                held_files.update(rank_files(a, r, v))
            b.phase("seal %s on %d nodes, COMMIT held" % (tag(v), len(held)), moved=logical_bytes(held_files))
            each(lambda n: n.seal_by_tracker(v), held)
            check(h.wait_until(lambda: all(n.stats()["versions_awaiting_nodes"] == 1 for n in held), 600, 0.2),
                  "the %d nodes' parts of %s did not all reach 'awaiting other nodes'" % (len(held), tag(v)))
            b.phase("check: barrier holds", checks=True)
            for _ in range(2):
                keys = b.listing("runs/%s/%s/" % (RUN, tag(v)))
                parts = sorted(k.rsplit("/", 1)[1] for k in keys if k.endswith(".manifest"))
                check(parts == [n.name + ".manifest" for n in held], "the parts of %s in the bucket are %s, not "
                      "the %d sealed nodes'" % (tag(v), parts, len(held)))
                check(not any(k.endswith("/COMMIT") for k in keys),
                      "COMMIT of %s exists before the last node sealed (BUG): %s" % (tag(v), sorted(keys)))
                check(all(n.state(v) != "uploaded" for n in held), "a node reports %s uploaded without COMMIT" % tag(v))
                time.sleep(3)
            b.phase("seal %s on the last node -> COMMIT" % tag(v),
                    moved=logical_bytes(files) - logical_bytes(held_files))
            last.seal_by_tracker(v)
            each(lambda n: n.wait_uploaded(v), b.nodes)
        else:
            b.phase("seal %s on %d nodes -> COMMIT" % (tag(v), a.nodes), moved=logical_bytes(files))
            each(lambda n: (n.seal_by_tracker(v), n.wait_uploaded(v)), b.nodes)
        b.phase("check: COMMIT %s, its chunks" % tag(v), checks=True)
        check_commit(b, a, v)
        have = b.chunk_keys()
        check(digests(files) <= have, "%d chunks of %s missing from the bucket" % (len(digests(files) - have), tag(v)))
        sent = sum(n.stats()["chunks_uploaded"] for n in b.nodes)
        b.uploads.append((tag(v), len(new), len(have - before), sent - sum(u[3] for u in b.uploads)))
        before = have


def restore_and_read(b, a):
    latest, oldest = version_files(a, a.versions), version_files(a, 1)
    for what, files, name in ((RUN, latest, "latest"), ("%s@%s" % (RUN, tag(1)), oldest, tag(1))):
        dest = os.path.join(b.scratch, "restore-" + name)
        b.phase("restore %s (%s)" % (name, what), moved=logical_bytes(files))
        b.pecfs("restore", *b.tier, what, dest)
        b.phase("check: restore %s" % name, checks=True)
        compare_tree(dest, files, "restore of " + what)
        shutil.rmtree(dest)
    b.reader = Node(b, "reader", ["--from", b.uri] + b.tier[2:] + ["--node-id", "reader"])
    b.phase("mount --from on a fresh node (import)")
    b.reader.mount()
    got = {}
    b.phase("read %s through the --from mount" % tag(a.versions), moved=logical_bytes(latest))
    for rel in latest:
        got[rel] = h.read_file(b.reader.path(RUN, tag(a.versions), rel))
    b.phase("check: --from read", checks=True)
    shown = sorted(x for x in os.listdir(b.reader.path(RUN)) if x.startswith("global_step"))
    check(shown == sorted(tag(v) for v in range(1, a.versions + 1)), "the --from mount shows %s" % shown)
    for rel, spec in latest.items():
        check(got[rel] == content(spec), "--from read of %s differs from what was written" % rel)
    got.clear()
    b.phase("umount the --from node")
    b.reader.umount()


def retire_and_collect(b, a):
    latest = version_files(a, a.versions)
    old = set()
    for v in range(1, a.versions):
        old |= digests(version_files(a, v))
    keep = digests(latest)
    b.phase("retire %d old versions on %d nodes, local gc" % (a.versions - 1, a.nodes))

    def retire(n):
        for v in range(1, a.versions):
            shutil.rmtree(n.path(RUN, tag(v)))
        b.pecfs("gc", n.data)
    each(retire, b.nodes)
    b.phase("wait: node states published", checks=True)

    def published():
        for n in b.nodes:
            st = b.get_json("nodes/%s.json" % n.name)
            if [tuple(x) for x in st["versions"]] != [(RUN, tag(a.versions))]:
                return False
        return True
    check(h.wait_until(published, 120, 2), "node states still list retired versions after 120 s")
    before = b.listing()
    doomed_chunks = {k for k in before if k.startswith(PREFIX + "/chunks/") and k.rsplit("/", 1)[1] not in keep}
    doomed_packs = {k for k, members in b.packs(before).items() if not set(members) & keep}
    b.phase("gc --remote --keep 1 --grace 0")
    out = json.loads(b.pecfs("gc", "--remote", *b.tier, "--keep", "1", "--grace", "0", "--forget-node", "reader",
                             "--json").stdout)
    b.gc = out
    b.phase("check: the bucket after gc", checks=True)
    check(out["versions_retired"] == a.versions - 1, "gc retired %d versions, want %d: %s" %
          (out["versions_retired"], a.versions - 1, out.get("log")))
    keys = b.listing()
    for v in range(1, a.versions):
        left = [k for k in keys if k.startswith("%s/runs/%s/%s/" % (PREFIX, RUN, tag(v)))]
        check(not left, "retired %s left objects: %s" % (tag(v), left[:5]))
    chunks = b.chunk_keys(keys)
    check(keep <= chunks, "gc deleted %d chunks the kept version uses (BUG)" % len(keep - chunks))
    check(not (chunks & (old - keep)), "%d chunks only retired versions used are still there" %
          len(chunks & (old - keep)))
    check(chunks == keep, "the bucket holds %d chunks no version uses" % len(chunks - keep))
    check(out["chunks_deleted"] == len(doomed_chunks), "gc says %d chunk objects deleted, want %d" %
          (out["chunks_deleted"], len(doomed_chunks)))
    check(out["packs_deleted"] == len(doomed_packs), "gc says %d packs deleted, want %d" %
          (out["packs_deleted"], len(doomed_packs)))
    check("%s/gc/lock" % PREFIX not in keys, "gc left its lock")
    check("%s/nodes/reader.json" % PREFIX not in keys, "the forgotten node's state is still there")
    b.phase("fsck --remote")
    fsck = b.pecfs("fsck", "--remote", *b.tier, ok=(0, 1, 2))
    b.fsck = fsck.stdout.strip().splitlines()[-1:] or [""]
    check(fsck.returncode == 0, "fsck --remote exited %d: %s%s" % (fsck.returncode, fsck.stdout[-3000:], fsck.stderr))
    dest = os.path.join(b.scratch, "restore-after-gc")
    b.phase("restore latest after gc", moved=logical_bytes(latest))
    b.pecfs("restore", *b.tier, RUN, dest)
    b.phase("check: kept version intact, retired one gone", checks=True)
    compare_tree(dest, latest, "restore after gc")
    gone = b.pecfs("restore", *b.tier, "%s@%s" % (RUN, tag(1)), os.path.join(b.scratch, "restore-gone"), ok=(1,))
    check("no committed version" in gone.stderr, "restore of a retired version: %s" % gone.stderr)


def relaunch(b, a):
    """A launch that dies once half the nodes uploaded their parts of a version, and the next launch
    (its own user.pec.job) that saves the version again on the same nodes, with other bytes: launch 1's
    parts must never complete launch 2's count."""
    v = a.versions + 1
    first, rest = b.nodes[:a.nodes // 2], b.nodes[a.nodes // 2:]
    held, last = b.nodes[:-1], b.nodes[-1]
    base = "runs/%s/%s" % (RUN, tag(v))

    def launch(n, job, src):
        os.setxattr(n.path(RUN), "user.pec.job", job.encode())
        n.write(a, b.nodes.index(n), v, src)

    b.phase("launch 1: write %s; seal it on %d nodes, then die" % (tag(v), len(rest)))
    each(lambda n: launch(n, "launch-1", v), b.nodes)
    each(lambda n: n.seal_by_tracker(v), rest)
    check(h.wait_until(lambda: all(n.stats()["versions_awaiting_nodes"] == 1 for n in rest), 600, 0.2),
          "launch 1's parts of %s did not all reach 'awaiting other nodes'" % tag(v))
    b.phase("launch 2: remove %s, write it again" % tag(v))
    each(lambda n: (subprocess.run(["rm", "-rf", n.path(RUN, tag(v))], check=True),
                    launch(n, "launch-2", v + 1)), b.nodes)
    files = {}
    for r in range(a.nodes):
        files.update(rank_files(a, r, v + 1))
    b.phase("launch 2: seal %s on %d nodes" % (tag(v), len(held)),
            moved=logical_bytes(files) - logical_bytes(rank_files(a, a.nodes - 1, v + 1)))
    each(lambda n: n.seal_by_tracker(v), held)
    check(h.wait_until(lambda: all(n.stats()["versions_awaiting_nodes"] == 1 for n in held), 600, 0.2),
          "launch 2's parts of %s did not all reach 'awaiting other nodes'" % tag(v))
    b.phase("check: launch 1's part does not complete the count", checks=True)
    for _ in range(2):
        keys = b.listing(base + "/")
        parts = sorted(k.rsplit("/", 1)[1] for k in keys if k.endswith(".manifest"))
        check(parts == [n.name + ".manifest" for n in b.nodes], "the parts of %s are %s" % (tag(v), parts))
        check(not any(k.endswith("/COMMIT") for k in keys),
              "COMMIT of %s exists with launch 1's part of %s counted (BUG)" % (tag(v), last.name))
        time.sleep(3)
    check(b.get_json("%s/%s.manifest" % (base, last.name)).get("job") == "launch-1",
          "%s's part of %s is not launch 1's" % (last.name, tag(v)))
    check(all(b.get_json("%s/%s.manifest" % (base, n.name)).get("job") == "launch-2" for n in first),
          "a node did not replace its launch 1 part of %s" % tag(v))
    b.phase("launch 2: seal %s on the last node -> COMMIT" % tag(v),
            moved=logical_bytes(rank_files(a, a.nodes - 1, v + 1)))
    last.seal_by_tracker(v)
    each(lambda n: n.wait_uploaded(v), b.nodes)
    b.phase("check: COMMIT %s is launch 2's" % tag(v), checks=True)
    check_commit(b, a, v)
    check(b.get_json(base + "/COMMIT").get("job") == "launch-2", "COMMIT of %s is not launch 2's" % tag(v))
    dest = os.path.join(b.scratch, "restore-relaunch")
    b.phase("restore %s (launch 2)" % tag(v), moved=logical_bytes(files))
    b.pecfs("restore", *b.tier, "%s@%s" % (RUN, tag(v)), dest)
    b.phase("check: restore %s" % tag(v), checks=True)
    compare_tree(dest, files, "restore of the relaunched " + tag(v))
    shutil.rmtree(dest)


def report(b, a, failed):
    reqs = rgw_requests(os.path.join(b.rgw_dir, "log", "client.rgw.a.log"))
    print()
    print("bench_nodes: %d nodes (--s3-nodes %d), %d versions, %d MiB per rank per version, one local Ceph RGW; "
          "%d CPUs, %.1f GiB RAM" % (a.nodes, a.nodes, a.versions, a.mib_per_rank, os.cpu_count(),
                                      os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / GiB))
    print("  S3 requests from the RGW's access log; CPU s: pecfs daemons / Ceph / commands (restore, gc, fsck, "
          "mount, s3check); RSS: the daemons' together at the phase's end; '*' = the benchmark's own checks")
    print("  %-52s %7s %6s %5s %5s %5s %5s %5s %5s %6s %5s %8s %17s %7s" % (
        "phase", "wall s", "MiB/s", *KINDS, "total", "!2xx", "req/GiB", "CPU s d/ceph/cmd", "RSS MiB"))
    total = {}
    for p in b.phases:
        counts = {k: 0 for k in KINDS}
        bad = 0
        for t, kind, status in reqs:
            if p.t0 <= t < p.t1:
                counts[kind] = counts.get(kind, 0) + 1
                bad += status >= 300
        n = sum(counts.values())
        wall = p.t1 - p.t0
        if not p.checks:
            for k, x in counts.items():
                total[k] = total.get(k, 0) + x
        print("  %-52s %7.1f %6s %5d %5d %5d %5d %5d %5d %6d %5d %8s %5.1f/%5.1f/%5.1f %7.0f" % (
            ("* " if p.checks else "") + p.name[:50], wall,
            "%.0f" % (p.moved / MiB / wall) if p.moved and wall > 0 else "",
            *[counts.get(k, 0) for k in KINDS], n, bad,
            "%.0f" % (n / (p.moved / GiB)) if p.moved else "",
            p.cpu.get("daemons", 0), p.cpu.get("ceph", 0), p.cpu.get("commands", 0), p.rss / MiB))
    print("  requests in the measured phases (no *): %s; the checks sent %d through pecfs-s3check" %
          (", ".join("%s %d" % (k, total.get(k, 0)) for k in KINDS), b.bench_requests))
    for name, new, listed, sent in b.uploads:
        print("  %s: %d new distinct chunks, %d new chunk objects in the bucket, %d chunk PUTs by the daemons "
              "(a chunk that nodes finishing together all find missing goes up from each)" % (name, new, listed, sent))
    if b.gc:
        print("  gc --remote: %d versions retired, %d objects deleted (%d chunks, %.1f MiB), %d chunks kept" % (
            b.gc["versions_retired"], b.gc["objects_deleted"], b.gc["chunks_deleted"],
            b.gc["bytes_deleted"] / MiB, b.gc["chunks_live"]))
    if b.fsck:
        print("  fsck --remote: %s" % b.fsck[0])
    hwm = list(b.hwm.values())
    print("  memory: pecfs daemons peak RSS together %.0f MiB (one at most %.0f MiB); Ceph (mon, osd, rgw) peak "
          "RSS %.0f MiB; least MemAvailable %.1f GiB" % (
              b.peak["daemons_rss"] / MiB, max(hwm or [0]) / MiB, b.peak["ceph_rss"] / MiB,
              b.peak["min_avail"] / GiB))
    print("  result: %s" % ("FAILED: " + failed if failed else "all checks passed"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pecfs", default=os.environ.get("PECFS_BIN", os.path.join(ROOT, "build", "fs", "cli", "pecfs")))
    ap.add_argument("--s3check", default=None, help="pecfs-s3check (default: PECS3_CHECK_BIN, else next to "
                    "--pecfs in the build)")
    ap.add_argument("--nodes", type=int, default=16, help="node daemons sharing the bucket (default 16)")
    ap.add_argument("--mib-per-rank", type=int, default=8, help="MiB of new data each rank writes per version "
                    "(default 8)")
    ap.add_argument("--versions", type=int, default=3, help="versions written (default 3)")
    ap.add_argument("--upload-threads", type=int, default=None, help="each daemon's upload-threads (default: "
                    "pecfs's own)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder (data folders, RGW logs)")
    a = ap.parse_args()
    if a.nodes < 2 or a.versions < 2 or a.mib_per_rank < 1:
        sys.exit("bench_nodes: needs --nodes >= 2, --versions >= 2, --mib-per-rank >= 1")
    if fx.ceph_missing():
        sys.exit("bench_nodes: %s not installed (apt-get install -y radosgw ceph-mon ceph-osd)" %
                 " ".join(fx.ceph_missing()))
    h.PECFS_BIN = a.pecfs
    a.s3check = a.s3check or fx.s3check_bin()
    b = Bench(a)
    failed = None
    print("bench_nodes: scratch %s" % b.scratch, flush=True)
    try:
        b.phase("start RGW", checks=True)
        b.start()
        extra = ["--upload-threads", str(a.upload_threads)] if a.upload_threads else []
        b.nodes = [Node(b, "node-%03d" % r, b.tier + ["--node-id", "node-%03d" % r, "--s3-nodes", str(a.nodes)]
                        + extra) for r in range(a.nodes)]
        b.phase("mount %d nodes" % a.nodes)
        each(lambda n: n.mount(), b.nodes)
        seal_versions(b, a)
        restore_and_read(b, a)
        retire_and_collect(b, a)
        relaunch(b, a)
        b.phase("umount %d nodes" % a.nodes)
        each(lambda n: n.umount(), b.nodes)
    except Failure as e:
        failed = str(e)
    except BaseException as e:  # reported like a failed check, then raised with its traceback
        failed = "%s: %s" % (type(e).__name__, e)
        raise
    finally:
        b.phase(None)
        try:
            report(b, a, failed)
        finally:
            b.cleanup()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
