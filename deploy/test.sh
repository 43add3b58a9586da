#!/usr/bin/env bash
# test.sh - installs what is missing, builds pecfs into build/ and runs the whole test suite (unit tests
# and integration tests on real FUSE mounts), then builds with AddressSanitizer and
# UndefinedBehaviorSanitizer into build-asan/ and runs the suite again, then runs every fuzz target
# (clang, build-fuzz/) for a bounded time. Exits non-zero if any test fails. Integration tests mount
# file systems: run as root (CI does).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=$(nproc)

# shellcheck source=deploy/packages.sh
source "$ROOT/deploy/packages.sh"
echo "== checking packages"
pecfs_install_packages "${PECFS_TEST_PACKAGES[@]}"
command -v npm >/dev/null || pecfs_install_packages "$PECFS_NPM_PACKAGE"

status=0
timings=()
stage_start=$(date +%s)
# stage_done NAME: records how long the stage since the previous one took (printed at the end).
stage_done() {
	local now
	now=$(date +%s)
	timings+=("$1: $((now - stage_start)) s")
	stage_start=$now
}

echo "== build/ (Release, -Werror; the same build demo.sh makes)"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
cmake --build "$ROOT/build" -j "$JOBS"
echo "== tests in build/"
ctest --test-dir "$ROOT/build" --output-on-failure -j "$JOBS" || status=1
stage_done "build/ and its tests"

echo "== build-asan/ (-DPECFS_SANITIZE=ON)"
cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPECFS_SANITIZE=ON
cmake --build "$ROOT/build-asan" -j "$JOBS"
# Any UB report is fatal (the build uses -fno-sanitize-recover); print where it happened.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== unit tests in build-asan/ (leak checking on)"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir "$ROOT/build-asan" --output-on-failure -j "$JOBS" -L unit \
	|| status=1
# The daemon is killed with -9 by the crash tests and ends through libfuse's and RocksDB's exit paths,
# which keep process-lifetime allocations; leak reports there say nothing about pecfs, and a
# daemonized process has no one to report to. Memory errors are still fatal.
echo "== integration tests in build-asan/ (leak checking off for the daemon)"
# The crash loop's 24 kill -9 rounds run in build/; under the sanitizers (several times slower) 8
# rounds look for memory errors on the same paths without stretching the run past CI's budget.
PECFS_CRASH_ITERS=8 ASAN_OPTIONS=detect_leaks=0 ctest --test-dir "$ROOT/build-asan" --output-on-failure -L integration \
	|| status=1
stage_done "build-asan/ and its tests"

# Every parser of outside input, fuzzed for a bounded time each (PECFS_FUZZ_SECONDS, default 60).
echo "== build-fuzz/ (clang, libFuzzer, ASan, UBSan): each fuzz target for ${PECFS_FUZZ_SECONDS:-60} s"
cmake -S "$ROOT" -B "$ROOT/build-fuzz" -DCMAKE_C_COMPILER=clang -DPECFS_FUZZ=ON -DBUILD_TESTING=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$ROOT/build-fuzz" --target fuzz -j "$JOBS"
"$ROOT/tests/fuzz/run.sh" "$ROOT/build-fuzz" || status=1
stage_done "build-fuzz/ and fuzzing"

echo "== timings"
printf '  %s\n' "${timings[@]}"

if [ "$status" -ne 0 ]; then
	echo "== FAILED: see the output above" >&2
else
	echo "== all tests passed (build/, build-asan/, fuzz targets)"
fi
exit "$status"
