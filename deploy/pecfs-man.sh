#!/usr/bin/env bash
# pecfs-man.sh BIN OUT - writes the pecfs(1) man page (roff) to OUT from the built binary's own help:
# `pecfs --help` for the synopsis and description, `pecfs help COMMAND` for each command, so the man
# page says exactly what --help says. Run by the build (deploy/CMakeLists.txt).
set -euo pipefail
bin=$1
out=$2
version=$("$bin" --version | head -n1 | cut -d' ' -f2)

# roff-safe text: backslashes doubled, a leading dot or quote escaped, each line kept as it is
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\\&'/"; }

{
	echo ".TH PECFS 1 \"\" \"pecfs $version\" \"User Commands\""
	echo ".SH NAME"
	echo "pecfs \\- a FUSE file system for training checkpoints: versions, deduplication, S3"
	echo ".SH SYNOPSIS"
	echo ".B pecfs"
	echo ".I COMMAND"
	echo "[options] [arguments]"
	echo ".br"
	echo ".B pecfs"
	echo ".I DATA_DIR MOUNTPOINT"
	echo ".B -o"
	echo ".I SETTING[=VALUE],..."
	echo ".SH DESCRIPTION"
	echo ".nf"
	"$bin" --help | esc
	echo ".fi"
	echo ".SH COMMANDS"
	for cmd in $("$bin" --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && $1 != "help" && NF {print $1}'); do
		echo ".SS $cmd"
		echo ".nf"
		"$bin" help "$cmd" | esc
		echo ".fi"
		if [ "$cmd" = gc ]; then  # the bucket's collection has a help of its own
			echo ".SS gc --remote"
			echo ".nf"
			"$bin" gc --remote --help | esc
			echo ".fi"
		fi
	done
	echo ".SH FILES"
	echo ".TP"
	echo ".I /etc/pecfs/pecfs.conf"
	echo "settings read by pecfs mount when it exists (key = value lines; see pecfs mount --help)"
	echo ".TP"
	echo ".I DATA_DIR/ctl.sock"
	echo "the control socket of a mounted data folder (fsck, gc, ping)"
	echo ".SH SEE ALSO"
	echo ".BR mount (8),"
	echo ".BR mount.fuse3 (8),"
	echo ".BR fusermount3 (1)"
} > "$out"
