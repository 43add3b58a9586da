#!/usr/bin/env python3
# bench_s3.py - the S3 tier against awscli on the same local Ceph RGW (deploy/s3-rgw.sh, started in a
# scratch folder and stopped at the end), in one run: upload of a sealed version (seal to COMMIT) vs
# `aws s3 cp --recursive` of the same files; a second version with 1 of 8 experts per layer changed
# (bytes uploaded vs bytes changed); `pecfs restore` vs `aws s3 cp --recursive` download; and a cold
# read of every file through `pecfs mount --from` (s3fs-fuse, when installed, read the same way).
# Not pass/fail: prints ratios. Needs root, the Ceph packages, awscli. --quick: 256 MiB instead of 4 GiB.
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
RGW = os.path.join(ROOT, "deploy", "s3-rgw.sh")
MiB = 1 << 20
AK, SK, BUCKET = "pecfs-bench", "pecfs-bench-secret-7d1f", "pecfs-bench"


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


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def make_files(dst, layers, experts, size, seed, changed=None, base=None):
    """layer_L_expert_E files of size bytes; with base, copies base except the (L, changed) experts."""
    os.makedirs(dst, exist_ok=True)
    for L in range(layers):
        for E in range(experts):
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


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pecfs", default=os.environ.get("PECFS_BIN", os.path.join(ROOT, "build", "fs", "pecfs")))
    ap.add_argument("--quick", action="store_true", help="256 MiB version instead of 4 GiB")
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    layers, experts = 4, 8
    size = (8 if a.quick else 128) * MiB  # 4 x 8 x 128 MiB = 4 GiB
    total = layers * experts * size
    for tool in ("aws", "radosgw"):
        if not shutil.which(tool):
            sys.exit("bench_s3: %s is not installed (apt-get install -y awscli radosgw ceph-mon ceph-osd)" % tool)

    scratch = tempfile.mkdtemp(prefix="pecfs-bench-s3-", dir="/var/tmp")
    rgw_dir = os.path.join(scratch, "rgw")
    port = free_port()
    env = dict(os.environ, RGW_PORT=str(port), MON_PORT=str(free_port()), S3_ACCESS_KEY=AK, S3_SECRET_KEY=SK,
               RGW_MEM_BYTES=str((3 * total + 512 * MiB)), AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK,
               AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_SESSION_TOKEN", None)
    endpoint = "http://127.0.0.1:%d" % port
    aws = ["aws", "--endpoint-url", endpoint, "s3"]
    tier = ["--s3-endpoint", endpoint, "--s3-addressing", "path"]
    mounts = []
    try:
        run([RGW, "start", rgw_dir], env=env, timeout=300)
        run(aws + ["mb", "s3://" + BUCKET], env=env)
        src1, src2 = os.path.join(scratch, "v1"), os.path.join(scratch, "v2")
        make_files(src1, layers, experts, size, 1)
        make_files(src2, layers, experts, size, 2, changed=3, base=src1)
        changed = layers * size

        # upload: pecfs (seal -> COMMIT) vs aws s3 cp
        data, mnt = os.path.join(scratch, "data"), os.path.join(scratch, "mnt")
        os.makedirs(data), os.makedirs(mnt)
        run([a.pecfs, "mount", "--s3", "s3://%s/pecfs" % BUCKET, "--upload-threads", str(a.threads)] + tier +
            [data, mnt], env=env)
        mounts.append(mnt)
        shutil.copytree(src1, os.path.join(mnt, "run", "step-1"))
        t_pecfs_up = timed(lambda: run([a.pecfs, "seal", "--wait-upload", os.path.join(mnt, "run", "step-1")],
                                       env=env))
        drop_caches()
        t_aws_up = timed(lambda: run(aws + ["cp", "--recursive", "--quiet", src1, "s3://%s/aws/v1/" % BUCKET],
                                     env=env))
        stats = lambda: json.load(open(os.path.join(mnt, ".pec", "stats")))["s3"]
        sent1 = stats()["bytes_uploaded"]
        shutil.copytree(src2, os.path.join(mnt, "run", "step-2"))
        run([a.pecfs, "seal", "--wait-upload", os.path.join(mnt, "run", "step-2")], env=env)
        sent2 = stats()["bytes_uploaded"] - sent1

        # restore vs download
        dst_p, dst_a = os.path.join(scratch, "restore-pecfs"), os.path.join(scratch, "restore-aws")
        t_restore = timed(lambda: run([a.pecfs, "restore", "--s3", "s3://%s/pecfs" % BUCKET, "--threads",
                                       str(2 * a.threads)] + tier + ["run@step-1", dst_p], env=env))
        t_aws_down = timed(lambda: run(aws + ["cp", "--recursive", "--quiet", "s3://%s/aws/v1/" % BUCKET, dst_a],
                                       env=env))
        same = run(["diff", "-r", src1, dst_p], check=False).returncode == 0

        # cold read through mount --from
        data2, mnt2 = os.path.join(scratch, "data2"), os.path.join(scratch, "mnt2")
        os.makedirs(data2), os.makedirs(mnt2)
        run([a.pecfs, "mount", "--from", "s3://%s/pecfs" % BUCKET] + tier + [data2, mnt2], env=env)
        mounts.append(mnt2)
        drop_caches()
        t_read = timed(lambda: run(["sh", "-c", "cat %s/run/step-1/* > /dev/null" % mnt2], env=env))

        gib = total / (1 << 30)
        print("bench_s3: version of %d files, %.2f GiB, local Ceph RGW, %d upload threads" %
              (layers * experts, gib, a.threads))
        print("  upload    pecfs seal->COMMIT %6.1f s (%6.1f MiB/s)   aws s3 cp %6.1f s (%6.1f MiB/s)   ratio %.2fx" %
              (t_pecfs_up, total / MiB / t_pecfs_up, t_aws_up, total / MiB / t_aws_up, t_aws_up / t_pecfs_up))
        print("  version 2 (1 of 8 experts per layer changed): uploaded %.1f MiB for %.1f MiB changed (%.3fx)" %
              (sent2 / MiB, changed / MiB, sent2 / changed))
        print("  restore   pecfs restore %6.1f s (%6.1f MiB/s)   aws s3 cp down %6.1f s (%6.1f MiB/s)   ratio %.2fx  %s" %
              (t_restore, total / MiB / t_restore, t_aws_down, total / MiB / t_aws_down, t_aws_down / t_restore,
               "identical" if same else "DIFFERENT"))
        print("  cold read through mount --from: %.1f s (%.1f MiB/s); s3fs-fuse: %s" %
              (t_read, total / MiB / t_read, "not installed" if not shutil.which("s3fs") else "not measured"))
    finally:
        for m in mounts:
            subprocess.run([a.pecfs, "umount", m], capture_output=True, timeout=600)
        subprocess.run([RGW, "stop", rgw_dir], env=env, capture_output=True, timeout=120)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
