#!/usr/bin/env bash
# device-check.sh - the GPU checks of libpecgpu, for a machine that has a GPU and only the carried
# working tree with its build/gpu (no compilers, no package registries): nvidia-smi, pecgpu-cudatest
# (device digests equal OpenSSL's, a save from device memory) and the GPU digest benchmark.
# Exit 0 passed, 1 failed, 77 "skipped: no GPU" (1 instead with PECFS_REQUIRE_GPU=1).
# Usage: tests/gpu/device-check.sh [BUILD_DIR]   (default build; BENCH_GIB / BENCH_CHUNK_MIB: 4 / 4)
set -u
cd "$(dirname "$0")/../.." || exit 1
bin=${1:-build}/gpu

skip() {
	echo "skipped: $1"
	if [ "${PECFS_REQUIRE_GPU:-0}" = 1 ]; then
		echo "FAIL: PECFS_REQUIRE_GPU=1" >&2
		exit 1
	fi
	exit 77
}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
	skip "no GPU"
fi
if [ ! -x "$bin/pecgpu-cudatest" ]; then
	echo "FAIL: $bin/pecgpu-cudatest is missing (build with nvcc, then carry $bin)" >&2
	exit 1
fi

status=0
echo "== nvidia-smi"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || status=1
echo "== pecgpu-cudatest"
"$bin/pecgpu-cudatest"
rc=$?
[ "$rc" -eq 77 ] && skip "no GPU the CUDA runtime can use (pecgpu-cudatest)"
[ "$rc" -eq 0 ] || status=1
echo "== GPU digest benchmark"
"$bin/pecgpu-cudatest" --bench "${BENCH_GIB:-4}" "${BENCH_CHUNK_MIB:-4}" || status=1
"$bin/pecgpu-cudatest" --bench "${BENCH_GIB:-4}" 1 || status=1
[ "$status" -eq 0 ] && echo "== all device checks passed" || echo "== FAILED" >&2
exit "$status"
