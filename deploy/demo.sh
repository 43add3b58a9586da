#!/usr/bin/env bash
# demo.sh - installs what is missing, builds pecfs, mounts it on local disk and writes a small demo
# checkpoint: run "demo-run" with two versions, each holding four byte-identical data-parallel
# replicas of one 64 MiB file. Shows the versions and logical vs stored bytes; leaves the mount up.
# Safe to re-run: a previous demo mount is unmounted and its data folder started afresh.
# Paths: PECFS_DEMO_DATA (default /var/tmp/pecfs-demo/data), PECFS_DEMO_MNT (/var/tmp/pecfs-demo/mnt).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA=${PECFS_DEMO_DATA:-/var/tmp/pecfs-demo/data}
MNT=${PECFS_DEMO_MNT:-/var/tmp/pecfs-demo/mnt}
PECFS=$ROOT/build/fs/cli/pecfs
REPLICA_MIB=64
RUN=demo-run

say() { printf '\n== %s\n' "$*"; }

# shellcheck source=deploy/packages.sh
source "$ROOT/deploy/packages.sh"
say "checking packages"
pecfs_install_packages "${PECFS_BUILD_PACKAGES[@]}"

say "building (Release) into build/"
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/build" --target pecfs -j "$(nproc)"

# A previous run's mount (alive or dead) goes first, then its data: a demo starts from nothing.
if awk -v m="$MNT" '$5 == m { found = 1 } END { exit !found }' /proc/self/mountinfo; then
	say "unmounting the previous demo at $MNT"
	"$PECFS" umount "$MNT" || fusermount3 -uz "$MNT"
fi
if [ -e "$DATA" ]; then
	if [ ! -d "$DATA/meta" ] && [ -n "$(ls -A "$DATA")" ]; then
		echo "demo.sh: $DATA exists and is not a pecfs data folder; set PECFS_DEMO_DATA elsewhere" >&2
		exit 1
	fi
	rm -rf "$DATA"
fi
mkdir -p "$DATA" "$MNT"

say "mounting: pecfs mount $DATA $MNT"
"$PECFS" mount "$DATA" "$MNT"

TMP=$(mktemp -d /var/tmp/pecfs-demo-src.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# One version as data-parallel training writes it: every rank saves the same bytes.
write_version() {
	local version=$1 step=$2
	mkdir -p "$MNT/$RUN/$version"
	head -c $((REPLICA_MIB << 20)) /dev/urandom >"$TMP/model_states.pt"
	for rank in 00 01 02 03; do
		cp "$TMP/model_states.pt" "$MNT/$RUN/$version/rank${rank}_model_states.pt"
	done
	printf '{"step": %d, "dp_world_size": 4, "model": "demo"}\n' "$step" >"$MNT/$RUN/$version/config.json"
}

# The tracker file is handled when it is closed; wait until the version shows as sealed.
wait_sealed() {
	local version=$1
	for _ in $(seq 1 100); do
		if python3 - "$MNT/$RUN/.pec/versions" "$version" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
sys.exit(0 if any(v["name"] == sys.argv[2] and v["state"] == "sealed" for v in doc["versions"]) else 1)
EOF
		then
			return 0
		fi
		sleep 0.1
	done
	echo "demo.sh: $version did not get sealed by the tracker file" >&2
	return 1
}

say "writing $RUN/global_step100 (4 x ${REPLICA_MIB} MiB replicas) and sealing it with pecfs seal"
write_version global_step100 100
"$PECFS" seal "$MNT/$RUN/global_step100"

say "writing $RUN/global_step200, sealed by DeepSpeed's tracker file: latest = global_step200"
write_version global_step200 200
printf 'global_step200' >"$MNT/$RUN/latest"
wait_sealed global_step200

say "ls -l $MNT/$RUN $MNT/$RUN/global_step*"
ls -l "$MNT/$RUN" "$MNT/$RUN"/global_step*
say "ls -l $MNT/$RUN/.pec/latest"
ls -l "$MNT/$RUN/.pec/latest"
say "a sealed version is read-only: opening one of its files for writing gives"
python3 - "$MNT/$RUN/global_step100/config.json" <<'EOF'
import sys
try:
    open(sys.argv[1], "w")
    print("  unexpected: the open succeeded")
except OSError as e:
    print("  %s" % e)
EOF

say "pecfs status $MNT"
"$PECFS" status "$MNT"
say "disk use: files (apparent) vs the data folder"
du -sh --apparent-size "$MNT/$RUN"
du -sh "$DATA"

cat <<EOF

The mount stays up at $MNT (data in $DATA). Look around:
  ls -l $MNT/$RUN/.pec/latest/         cat $MNT/$RUN/.pec/versions
  $PECFS status $MNT
Unmount with:
  $PECFS umount $MNT
EOF
