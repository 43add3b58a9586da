#!/bin/sh
# run.sh - builds pecfs (Release, in build-bench/) and the passthrough FUSE baseline, then runs the
# benchmarks and prints results with ratios against baselines measured in the same run.
# Usage (as root): tests/bench/run.sh [--quick] [bench_core.py options...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="${PECFS_BENCH_BUILD:-$root/build-bench}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" --target pecfs -j"$(nproc)" >/dev/null
cc -std=c11 -O2 -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Werror $(pkg-config --cflags fuse3) \
	"$here/passthrough.c" -o "$build/passthrough" $(pkg-config --libs fuse3) -lpthread

exec python3 "$here/bench_core.py" --pecfs "$build/fs/cli/pecfs" --passthrough "$build/passthrough" "$@"
