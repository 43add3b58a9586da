#!/bin/sh
# run.sh - builds pecfs (Release, in build-bench/) and the passthrough FUSE baseline, then runs the
# benchmarks and prints results with ratios against baselines measured in the same run: bench_core.py,
# then bench_gpu_save.py (libpecgpu's saves vs torch.save) when /usr/bin/python3 has torch.
# Usage (as root): tests/bench/run.sh [--quick] [bench_core.py options...]
# Not run from here (they need the Ceph packages for a local RGW, and take minutes): bench_s3.py (the
# S3 tier against awscli and s3fs-fuse) and bench_nodes.py (16 node daemons uploading their parts of
# the same versions to one bucket with --s3-nodes 16; checks the COMMIT barrier, restore, mount --from
# and gc --remote, exits 1 on a failure, and prints each phase's time and S3 requests by type):
#   cmake --build build --target pecfs pecfs-s3check
#   tests/bench/bench_nodes.py --pecfs build/fs/cli/pecfs [--nodes 16] [--mib-per-rank 8] [--versions 3]
# and bench_nodestate.py (a node's GC state for bucket gc, binary segments against the older hex JSON,
# publish and collector read of a synthetic node of --digests N):
#   tests/bench/bench_nodestate.py --build build [--digests 10000000] [--reps 3]
# bench_core.py's sections: [1] sequential write and cold read, [2] 8 replicas of one file, [3] small
# files, [5] concurrent fsyncs, [6] 100k files in one directory (--big-dir N adds one of N entries),
# [7] cold reads with 128 KiB requests and by 8 concurrent readers, [8] 1/2/4/8 concurrent writers and
# pecfs's hash threads; --only picks some. Throughputs come with the machine's CPU seconds per GiB.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="${PECFS_BENCH_BUILD:-$root/build-bench}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" --target pecfs -j"$(nproc)" >/dev/null
cc -std=c11 -O2 -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Werror $(pkg-config --cflags fuse3) \
	"$here/passthrough.c" -o "$build/passthrough" $(pkg-config --libs fuse3) -lpthread

python3 "$here/bench_core.py" --pecfs "$build/fs/cli/pecfs" --passthrough "$build/passthrough" "$@"

# The PyTorch module's saves (libpecgpu) against torch.save, with Debian's python3-torch.
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	cmake --build "$build" --target pecgpu -j"$(nproc)" >/dev/null
	quick=
	for a in "$@"; do [ "$a" = --quick ] && quick=--quick; done
	PECGPU_LIB="$build/gpu/libpecgpu.so" /usr/bin/python3 "$here/bench_gpu_save.py" \
		--pecfs "$build/fs/cli/pecfs" $quick
else
	echo "bench_gpu_save.py not run: /usr/bin/python3 has no torch (apt-get install python3-torch)"
fi
