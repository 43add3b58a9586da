#!/usr/bin/env bash
# check-mount.sh PECFS PECGPU_CHECK - mounts a fresh pecfs (64 KiB chunks, so that a file of more
# chunks than one reference-write call carries stays small) in a temporary folder and
# runs pecgpu-check in a new version, then again with device segments (--cuda) in another, and
# unmounts. Exit 0 passed, 1 failed, 77 skipped: FUSE cannot be mounted here (needs root and
# /dev/fuse; under CI=true that fails instead). Without a GPU the --cuda round is skipped, or fails with PECFS_REQUIRE_GPU=1.
set -u
pecfs=$1
check=$2
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; then
	echo "skipped: mounting needs root and /dev/fuse"
	# CI provides both: there a test that cannot run fails
	[ "${CI:-}" = true ] && exit 1
	exit 77
fi
tmp=$(mktemp -d /tmp/pecgpu-check.XXXXXX)
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	"$pecfs" umount "$tmp/mnt" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir "$tmp/data" "$tmp/mnt"
"$pecfs" mount --chunk-size 64K "$tmp/data" "$tmp/mnt" || exit 1
mkdir -p "$tmp/mnt/run/step-1" "$tmp/mnt/run/step-2"

status=0
"$check" "$tmp/mnt/run/step-1" || status=1
"$check" --cuda "$tmp/mnt/run/step-2"
rc=$?
if [ "$rc" -eq 77 ] && [ "${PECFS_REQUIRE_GPU:-0}" = 1 ]; then
	echo "FAIL: no GPU for the --cuda round, and PECFS_REQUIRE_GPU=1"
	status=1
elif [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
	status=1
fi
"$pecfs" umount "$tmp/mnt" || status=1
exit "$status"
