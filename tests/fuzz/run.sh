#!/usr/bin/env bash
# run.sh BUILD_DIR - runs every libFuzzer target built in BUILD_DIR/tests/fuzz for PECFS_FUZZ_SECONDS
# (default 60) each, starting from the committed corpus in tests/fuzz/corpus_<name> (copied to a
# scratch folder, so the repository's seeds do not grow). Exits non-zero at the first target that
# finds a crash, a leak or a sanitizer report, leaving the input that did it in the scratch folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
seconds=${PECFS_FUZZ_SECONDS:-60}
scratch=$(mktemp -d /var/tmp/pecfs-fuzz-XXXXXX)
status=0
for bin in "$build"/tests/fuzz/fuzz_*; do
	name=$(basename "$bin")
	name=${name#fuzz_}
	mkdir -p "$scratch/$name"
	cp -r "$here/corpus_$name/." "$scratch/$name/"
	start=$(date +%s)
	if (cd "$scratch" && "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 "$scratch/$name" >"$scratch/$name.log" 2>&1); then
		runs=$(grep -m1 'stat::number_of_executed_units' "$scratch/$name.log" | awk '{print $2}')
		echo "fuzz_$name: clean, ${runs:-?} inputs in $(( $(date +%s) - start )) s"
	else
		echo "fuzz_$name: FOUND A PROBLEM (log and input in $scratch):" >&2
		tail -40 "$scratch/$name.log" >&2
		status=1
		break
	fi
done
[ "$status" -eq 0 ] && rm -rf "$scratch"
exit "$status"
