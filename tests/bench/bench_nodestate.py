#!/usr/bin/env python3
"""bench_nodestate.py - a node's GC state (FORMAT.md section 5, "Node state: head and segments"): format 2
(a JSON head naming binary segments) against format 1 (every digest as hex in one JSON object, the
previous release), for a synthetic node of N digests, on a local Ceph RGW that deploy/s3-rgw.sh starts
in a scratch folder and stops at the end.

Per run, with pecfs-nodestate-bench (tests/bench/nodestate_bench.c, built with the tests): a full
publish (segment + head), an incremental publish of 1000 new digests (one small segment + head), a
full format 1 publish; then, each in a fresh process, the collector's read of each state
(tier_node_state_get: GET, checks, digests into one array, then the sort) with that process's peak
RSS. Medians of --reps runs and the format 1 / format 2 ratios are printed. Not pass/fail. Needs root
and the Ceph packages.
Usage: bench_nodestate.py --build BUILD_DIR [--digests N] [--reps R]
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RGW = os.path.join(HERE, "..", "..", "deploy", "s3-rgw.sh")
AK, SK, BUCKET = "pecfs-bench", "pecfs-bench-secret-7d1f", "pecfs-bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fields(text):
    """'k v k v ...' lines into a dict of floats."""
    out = {}
    for line in text.splitlines():
        w = line.split()
        for k, v in zip(w[0::2], w[1::2]):
            out[k] = float(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--digests", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    tool = os.path.join(a.build, "tests", "pecfs-nodestate-bench")
    s3check = os.path.join(a.build, "tests", "pecfs-s3check")
    scratch = tempfile.mkdtemp(prefix="pecfs-bench-nodestate-")
    rgw_dir = os.path.join(scratch, "rgw")
    port = free_port()
    env = dict(os.environ, RGW_PORT=str(port), MON_PORT=str(free_port()), S3_ACCESS_KEY=AK, S3_SECRET_KEY=SK,
               RGW_MEM_BYTES=str(6 << 30), AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK,
               PECS3_ENDPOINT="http://127.0.0.1:%d" % port, PECS3_BUCKET=BUCKET)
    runs = []
    try:
        subprocess.run([RGW, "start", rgw_dir], env=env, check=True, capture_output=True, timeout=300)
        subprocess.run([s3check, "--path-style", "mb"], env=env, check=True, capture_output=True)
        for r in range(a.reps):
            prefix = "run%d" % r
            pub = subprocess.run([tool, "publish", prefix, str(a.digests)], env=env, check=True,
                                 capture_output=True, text=True, timeout=3600)
            one = fields(pub.stdout)
            for fmt, key in (("v2", "nodes/bench.json"), ("v1", "nodes/bench-v1.json")):
                rd = subprocess.run([tool, "read", "%s/%s" % (prefix, key)], env=env, check=True,
                                    capture_output=True, text=True, timeout=3600)
                for k, v in fields(rd.stdout).items():
                    one["%s_%s" % (fmt, k)] = v
            runs.append(one)
            print("run %d: %s" % (r + 1, " ".join("%s=%g" % kv for kv in sorted(one.items()))), flush=True)
            subprocess.run([s3check, "--path-style", "rm", "%s/nodes/bench-v1.json" % prefix], env=env,
                           capture_output=True)
    finally:
        subprocess.run([RGW, "stop", rgw_dir], env=env, capture_output=True, timeout=120)
        shutil.rmtree(scratch, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    mib = lambda b: b / (1 << 20)
    print("\nbench_nodestate: %d digests, local Ceph RGW (memstore), medians of %d runs" % (a.digests, len(runs)))
    print("  publish, format 1 (hex JSON, whole set):   %8.2f s  %9.1f MiB  (encode %.2f s)" %
          (med["v1_full_s"], mib(med["v1_full_bytes"]), med["v1_full_encode_s"]))
    print("  publish, format 2 full (segment + head):   %8.2f s  %9.1f MiB  (encode %.2f s)  ratio v1/v2: %.1fx "
          "time, %.2fx bytes" % (med["v2_full_s"], mib(med["v2_full_bytes"]), med["v2_full_encode_s"],
                                 med["v1_full_s"] / med["v2_full_s"], med["v1_full_bytes"] / med["v2_full_bytes"]))
    print("  publish, format 2 incremental (+1000):     %8.3f s  %9.1f KiB  ratio v1/v2: %.0fx time, %.0fx bytes" %
          (med["v2_incr_s"], med["v2_incr_bytes"] / 1024, med["v1_full_s"] / med["v2_incr_s"],
           med["v1_full_bytes"] / med["v2_incr_bytes"]))
    print("    (segment and head PUTs; before them, building the new sorted set and the delta merge took %.2f s)" %
          med["v2_incr_set_s"])
    print("  collector read, format 1:                  %8.2f s  peak RSS %7.1f MiB  (+ sort %.2f s)" %
          (med["v1_read_s"], med["v1_peak_rss_mib"], med["v1_sort_s"]))
    print("  collector read, format 2 (2 segments):     %8.2f s  peak RSS %7.1f MiB  (+ sort %.2f s)  ratio v1/v2: "
          "%.1fx time, %.1fx RSS" % (med["v2_read_s"], med["v2_peak_rss_mib"], med["v2_sort_s"],
                                     med["v1_read_s"] / med["v2_read_s"],
                                     med["v1_peak_rss_mib"] / med["v2_peak_rss_mib"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
