#!/usr/bin/env python3
"""bench_s3.py - the S3 tier against awscli and s3fs-fuse on the same local Ceph RGW.

deploy/s3-rgw.sh is started in a scratch folder and stopped at the end. In one run: upload of a sealed
version (seal to COMMIT) vs `aws s3 cp --recursive` of the same files; a second version with 1 of 8
experts per layer changed (bytes uploaded vs bytes changed); `pecfs restore` into a fresh folder vs
`aws s3 cp --recursive` download; a cold sequential read of every file through `pecfs mount --from` on
a fresh data folder vs through s3fs-fuse mounted on the same bucket (the same file contents, which
s3fs sees as the plain objects awscli uploaded). The upload is repeated --upload-reps times, each rep
into a bucket of its own that is emptied afterwards (the server keeps every object in memory); restore,
download and reads are repeated --reps times. Each alternates which tool goes first, with the page
cache dropped and the server idle before each step; the
medians and their ratios are printed, with the S3 requests each tool made per GiB moved (counted from the
RGW's access log over the timed part of each step: uploads, downloads and reads, not mounting). Not
pass/fail. Needs root, the Ceph packages, awscli and (for its line) s3fs.
"""
import argparse
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
RGW = os.path.join(ROOT, "deploy", "s3-rgw.sh")
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import s3_fixture as fx  # noqa: E402
MiB = 1 << 20
AK, SK, BUCKET = "pecfs-bench", "pecfs-bench-secret-7d1f", "pecfs-bench"
LAYERS, EXPERTS = 4, 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, env=None, check=True, timeout=3600):
    cp = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(cmd), cp.returncode, cp.stdout, cp.stderr))
    return cp


def timed(fn):
    t = time.monotonic()
    fn()
    return time.monotonic() - t


REQUESTS = []  # (step, requests) of every timed step, from the RGW's access log


def timed_requests(step, rgw_dir, fn, bucket=BUCKET):
    """timed(fn), and the requests the RGW logged as starting meanwhile, recorded under step."""
    t0 = time.time()
    t = timed(fn)
    t1 = time.time()
    log = os.path.join(rgw_dir, "log", "client.rgw.a.log")
    deadline = time.monotonic() + 5  # the log is written behind the answers
    n = -1
    while time.monotonic() < deadline:
        reqs = fx.rgw_requests(log, bucket)
        m = sum(1 for when, _, _, _ in reqs if t0 - 0.01 <= when <= t1 + 0.01)
        if m == n:
            break
        n = m
        time.sleep(0.5)
    REQUESTS.append((step, n))
    return t


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_server_idle(rgw_dir, limit=90):
    """Waits (untimed) until the Ceph daemons use under 5% of a CPU, so that work left over from the
    previous step (the server's own cleanup of deleted objects and parts) is not billed to the next."""
    pids = []
    for path in glob.glob(os.path.join(rgw_dir, "run", "*.pid")):
        with open(path) as f:
            pids.append(int(f.read().split()[0]))
    end = time.monotonic() + limit
    while time.monotonic() < end:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(1)
        if sum(cpu_seconds(p) for p in pids) - before < 0.05:
            return


def parse_size(text):
    units = {"": 1, "K": 1 << 10, "M": MiB, "G": 1 << 30}
    t = text.strip().upper().rstrip("B").rstrip("I")
    unit = t[-1] if t and t[-1] in units else ""
    return int(float(t[:len(t) - len(unit)]) * units[unit])


def make_files(dst, size, changed=None, base=None):
    """layer_L_expert_E files of size bytes; with base, copies base except the (L, changed) experts."""
    os.makedirs(dst, exist_ok=True)
    for L in range(LAYERS):
        for E in range(EXPERTS):
            name = "layer_%d_expert_%d_mp_rank_00_model_states.pt" % (L, E)
            if base and E != changed:
                shutil.copyfile(os.path.join(base, name), os.path.join(dst, name))
                continue
            with open(os.path.join(dst, name), "wb") as f:
                left = size
                while left:
                    n = min(left, 8 * MiB)
                    f.write(os.urandom(n))
                    left -= n


def is_mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def wait_mounted(path, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if is_mounted(path):
            return
        time.sleep(0.1)
    raise RuntimeError("%s did not get mounted" % path)


def cat_all(folder):
    """Reads every file of folder sequentially, one after the other (as a loader would)."""
    run(["sh", "-c", "cat %s/* > /dev/null" % folder])


class Bench:
    def __init__(self, a, scratch, env, endpoint):
        self.a, self.scratch, self.env = a, scratch, env
        self.rgw_dir = os.path.join(scratch, "rgw")
        self.aws = ["aws", "--endpoint-url", endpoint, "s3"]
        self.tier = ["--s3-endpoint", endpoint, "--s3-addressing", "path"]
        self.endpoint = endpoint
        self.mounts = []    # pecfs mount points to unmount at the end
        self.fuse = []      # other FUSE mount points (s3fs)

    def pecfs_mount(self, data, mnt, *opts):
        os.makedirs(data, exist_ok=True)
        os.makedirs(mnt, exist_ok=True)
        run([self.a.pecfs, "mount"] + list(opts) + [data, mnt], env=self.env)
        self.mounts.append(mnt)

    def pecfs_umount(self, mnt):
        run([self.a.pecfs, "umount", mnt], env=self.env, timeout=600)
        self.mounts.remove(mnt)

    def restore_once(self, n):
        dst = os.path.join(self.scratch, "restore-pecfs-%d" % n)
        drop_caches()
        wait_server_idle(self.rgw_dir)
        t = timed_requests("restore", self.rgw_dir, lambda: run([self.a.pecfs, "restore", "--s3", "s3://%s/pecfs" % BUCKET] +
                                                                self.tier + ["run@step-1", dst], env=self.env))
        return t, dst

    def download_once(self, n):
        dst = os.path.join(self.scratch, "restore-aws-%d" % n)
        drop_caches()
        wait_server_idle(self.rgw_dir)
        t = timed_requests("download", self.rgw_dir,
                           lambda: run(self.aws + ["cp", "--recursive", "--quiet", "s3://%s/aws/v1/" % BUCKET, dst],
                                       env=self.env))
        return t, dst

    def from_read_once(self, n):
        """Cold sequential read of every file through a --from mount on a fresh data folder."""
        data, mnt = os.path.join(self.scratch, "from-data-%d" % n), os.path.join(self.scratch, "from-mnt-%d" % n)
        opts = ["--from", "s3://%s/pecfs" % BUCKET] + self.tier
        if self.a.prefetch is not None:
            opts += ["--s3-prefetch", str(self.a.prefetch)]
        self.pecfs_mount(data, mnt, *opts)
        try:
            drop_caches()
            wait_server_idle(self.rgw_dir)
            t = timed_requests("from", self.rgw_dir, lambda: cat_all(os.path.join(mnt, "run", "step-1")))
            stats = json.load(open(os.path.join(mnt, ".pec", "stats"))).get("s3", {})
        finally:
            self.pecfs_umount(mnt)
            shutil.rmtree(data, ignore_errors=True)
        return t, stats

    def s3fs_read_once(self, n):
        """Cold sequential read of the same file contents through s3fs-fuse (objects under aws/v1/)."""
        mnt = os.path.join(self.scratch, "s3fs-mnt-%d" % n)
        os.makedirs(mnt, exist_ok=True)
        passwd = os.path.join(self.scratch, "s3fs-passwd")
        with open(passwd, "w") as f:
            f.write("%s:%s\n" % (AK, SK))
        os.chmod(passwd, 0o600)
        run(["s3fs", BUCKET, mnt, "-o", "url=" + self.endpoint, "-o", "use_path_request_style", "-o",
             "passwd_file=" + passwd, "-o", "endpoint=us-east-1", "-o", "ro"], env=self.env)
        self.fuse.append(mnt)
        try:
            wait_mounted(mnt)
            drop_caches()
            wait_server_idle(self.rgw_dir)
            t = timed_requests("s3fs", self.rgw_dir, lambda: cat_all(os.path.join(mnt, "aws", "v1")))
        finally:
            run(["fusermount3", "-u", mnt], check=False)
            self.fuse.remove(mnt)
        return t

    def cleanup(self):
        for m in list(self.mounts):
            subprocess.run([self.a.pecfs, "umount", m], capture_output=True, timeout=600)
        for m in list(self.fuse):
            subprocess.run(["fusermount3", "-uz", m], capture_output=True, timeout=60)


def mibps(total, t):
    return total / MiB / t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pecfs", default=os.environ.get("PECFS_BIN", os.path.join(ROOT, "build", "fs", "cli", "pecfs")))
    ap.add_argument("--size", default="4G", help="bytes of the version, 32 files (default 4G)")
    ap.add_argument("--quick", action="store_true", help="a 256M version (same as --size 256M)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of restore, download and reads (default 3)")
    ap.add_argument("--upload-reps", type=int, default=3, help="repetitions of the upload (default 3)")
    ap.add_argument("--threads", type=int, default=8, help="pecfs upload threads (default 8)")
    ap.add_argument("--prefetch", type=int, default=None, help="--s3-prefetch for the --from mount (default: "
                    "pecfs's own default)")
    ap.add_argument("--pack-size", default=None, help="--s3-pack-size for the uploading mount (default: pecfs's own; "
                    "0 sends an object per chunk)")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: restore, read, s3fs")
    a = ap.parse_args()
    size = parse_size("256M" if a.quick else a.size) // (LAYERS * EXPERTS)
    size -= size % MiB if size >= MiB else 0
    total = LAYERS * EXPERTS * size
    skip = set(x for x in a.skip.split(",") if x)
    for tool in ("aws", "radosgw"):
        if not shutil.which(tool):
            sys.exit("bench_s3: %s is not installed (apt-get install -y awscli radosgw ceph-mon ceph-osd)" % tool)
    have_s3fs = shutil.which("s3fs") is not None and "s3fs" not in skip

    scratch = tempfile.mkdtemp(prefix="pecfs-bench-s3-", dir="/var/tmp")
    rgw_dir = os.path.join(scratch, "rgw")
    port = free_port()
    env = dict(os.environ, RGW_PORT=str(port), MON_PORT=str(free_port()), S3_ACCESS_KEY=AK, S3_SECRET_KEY=SK,
               RGW_MEM_BYTES=str((5 * total + 512 * MiB)), AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK,
               AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_SESSION_TOKEN", None)
    endpoint = "http://127.0.0.1:%d" % port
    b = Bench(a, scratch, env, endpoint)
    try:
        run([RGW, "start", rgw_dir], env=env, timeout=300)
        run(b.aws + ["mb", "s3://" + BUCKET], env=env)
        src1, src2 = os.path.join(scratch, "v1"), os.path.join(scratch, "v2")
        make_files(src1, size)
        make_files(src2, size, changed=3, base=src1)
        changed = LAYERS * size

        # upload: pecfs (seal -> COMMIT) vs aws s3 cp. The first rep goes to BUCKET and stays (restore
        # and reads use it, and its mount then uploads version 2); every later one goes to a bucket of
        # its own, emptied right after, since the server holds every object in memory.
        data, mnt = os.path.join(scratch, "data"), os.path.join(scratch, "mnt")
        packs = ["--s3-pack-size", a.pack_size] if a.pack_size is not None else []
        t_pecfs_up, t_aws_up = [], []

        def pecfs_upload(bucket, data, mnt):
            b.pecfs_mount(data, mnt, "--s3", "s3://%s/pecfs" % bucket, "--upload-threads", str(a.threads), *packs,
                          *b.tier)
            shutil.copytree(src1, os.path.join(mnt, "run", "step-1"))
            drop_caches()
            wait_server_idle(rgw_dir)
            t_pecfs_up.append(timed_requests("upload", rgw_dir, lambda: run(
                [a.pecfs, "seal", "--wait-upload", os.path.join(mnt, "run", "step-1")], env=env), bucket))

        def aws_upload(bucket):
            drop_caches()
            wait_server_idle(rgw_dir)
            t_aws_up.append(timed_requests("aws-upload", rgw_dir, lambda: run(
                b.aws + ["cp", "--recursive", "--quiet", src1, "s3://%s/aws/v1/" % bucket], env=env), bucket))

        pecfs_upload(BUCKET, data, mnt)
        aws_upload(BUCKET)
        stats = lambda: json.load(open(os.path.join(mnt, ".pec", "stats")))["s3"]
        sent1 = stats()["bytes_uploaded"]
        shutil.copytree(src2, os.path.join(mnt, "run", "step-2"))
        run([a.pecfs, "seal", "--wait-upload", os.path.join(mnt, "run", "step-2")], env=env)
        sent2 = stats()["bytes_uploaded"] - sent1
        b.pecfs_umount(mnt)
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(src2, ignore_errors=True)
        for n in range(1, a.upload_reps):
            bucket = "%s-up%d" % (BUCKET, n)
            run(b.aws + ["mb", "s3://" + bucket], env=env)
            rdata, rmnt = os.path.join(scratch, "data-up%d" % n), os.path.join(scratch, "mnt-up%d" % n)
            if n % 2:
                aws_upload(bucket)
            pecfs_upload(bucket, rdata, rmnt)
            b.pecfs_umount(rmnt)
            shutil.rmtree(rdata, ignore_errors=True)
            if not n % 2:
                aws_upload(bucket)
            run(["radosgw-admin", "-c", os.path.join(rgw_dir, "ceph.conf"), "bucket", "rm", "--bucket=" + bucket,
                 "--purge-objects", "--bypass-gc"], env=env)

        t_restore, t_down, same = [], [], True
        t_from, t_s3fs, from_stats = [], [], {}
        for n in range(a.reps):
            if "restore" not in skip:
                order = [("p", b.restore_once), ("a", b.download_once)]
                for who, fn in (order if n % 2 == 0 else order[::-1]):
                    t, dst = fn(n)
                    (t_restore if who == "p" else t_down).append(t)
                    if who == "p" and n == 0:
                        same = run(["diff", "-r", src1, dst], check=False).returncode == 0
                    shutil.rmtree(dst, ignore_errors=True)
            if "read" not in skip:
                order = [("p", b.from_read_once)] + ([("s", b.s3fs_read_once)] if have_s3fs else [])
                for who, fn in (order if n % 2 == 0 else order[::-1]):
                    if who == "p":
                        t, from_stats = fn(n)
                        t_from.append(t)
                    else:
                        t_s3fs.append(fn(n))

        med = statistics.median
        print("bench_s3: version of %d files, %.2f GiB, local Ceph RGW, %d upload threads, s3-pack-size %s, %d reps "
              "(medians)" % (LAYERS * EXPERTS, total / (1 << 30), a.threads, a.pack_size or "default", a.reps) +
              ", %d upload reps" % a.upload_reps)
        tu, ta = med(t_pecfs_up), med(t_aws_up)
        print("  upload    pecfs seal->COMMIT %6.1f s (%6.1f MiB/s)   aws s3 cp %6.1f s (%6.1f MiB/s)   ratio %.2fx" %
              (tu, mibps(total, tu), ta, mibps(total, ta), ta / tu))
        print("            each rep: pecfs %s  aws %s" % (" ".join("%.1f" % x for x in t_pecfs_up),
                                                      " ".join("%.1f" % x for x in t_aws_up)))
        print("  version 2 (1 of 8 experts per layer changed): uploaded %.1f MiB for %.1f MiB changed (%.3fx)" %
              (sent2 / MiB, changed / MiB, sent2 / changed))
        if t_restore:
            tr, td = med(t_restore), med(t_down)
            print("  restore   pecfs restore %6.1f s (%6.1f MiB/s)   aws s3 cp down %6.1f s (%6.1f MiB/s)   "
                  "ratio %.2fx  %s" % (tr, mibps(total, tr), td, mibps(total, td), td / tr,
                                       "identical" if same else "DIFFERENT"))
            print("            each rep: pecfs %s  aws %s" % (" ".join("%.1f" % x for x in t_restore),
                                                          " ".join("%.1f" % x for x in t_down)))
        if t_from:
            tf = med(t_from)
            line = "  cold read mount --from %6.1f s (%6.1f MiB/s)" % (tf, mibps(total, tf))
            if t_s3fs:
                ts = med(t_s3fs)
                line += "   s3fs-fuse %6.1f s (%6.1f MiB/s)   ratio %.2fx" % (ts, mibps(total, ts), ts / tf)
            else:
                line += "   s3fs-fuse: %s" % ("not installed" if not shutil.which("s3fs") else "skipped")
            print(line)
            print("            each rep: --from %s  s3fs %s" % (" ".join("%.1f" % x for x in t_from),
                                                           " ".join("%.1f" % x for x in t_s3fs)))
            print("            last --from mount: fetched %d chunks, prefetched %d, prefetch hits %d" %
                  (from_stats.get("fetched_chunks", 0), from_stats.get("prefetched_chunks", 0),
                   from_stats.get("prefetch_hits", 0)))
        gib = total / (1 << 30)
        per = {}
        for step, n in REQUESTS:
            per.setdefault(step, []).append(n)
        def rq(step):
            return "%7.0f" % (med(per[step]) / gib) if step in per and min(per[step]) >= 0 else "      ?"
        print("  S3 requests per GiB (median over reps):")
        print("            upload  pecfs %s   aws s3 cp %s" % (rq("upload"), rq("aws-upload")))
        if t_restore:
            print("            restore pecfs %s   aws s3 cp %s" % (rq("restore"), rq("download")))
        if t_from:
            print("            read    --from %s   s3fs-fuse %s" % (rq("from"), rq("s3fs")))
    finally:
        b.cleanup()
        subprocess.run([RGW, "stop", rgw_dir], env=env, capture_output=True, timeout=120)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
