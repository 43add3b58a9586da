# packages.sh - the Debian 12 packages pecfs needs, and a function that installs the missing ones.
# Sourced by demo.sh and test.sh. Installs only what is missing, non-interactively (CI has no stdin);
# as a non-root user it goes through sudo.

PECFS_BUILD_PACKAGES=(build-essential cmake pkg-config libfuse3-dev fuse3 librocksdb-dev libssl-dev
	libjansson-dev libcmocka-dev libcurl4-openssl-dev libexpat1-dev python3 attr)
# The test suite also mounts tmpfs (util-linux), compares files (diffutils), looks at processes, and
# runs a throwaway Ceph RADOS Gateway on loopback as the S3 server (deploy/s3-rgw.sh; openssl makes
# its test certificate). tests/bench/bench_s3.py compares reads through a --from mount with s3fs-fuse.
# clang builds the libFuzzer targets (tests/fuzz). python3-torch (for /usr/bin/python3) runs the
# PyTorch module's tests (tests/integration/test_gpu_python.py) and its example on CPU tensors.
PECFS_TEST_PACKAGES=("${PECFS_BUILD_PACKAGES[@]}" util-linux diffutils procps psmisc
	radosgw ceph-mon ceph-osd openssl s3fs clang python3-torch)

pecfs_install_packages() {
	local missing=() pkg sudo=()
	for pkg in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
			missing+=("$pkg")
		fi
	done
	if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
		sudo=(sudo)
	fi
	if [ ${#missing[@]} -eq 0 ]; then
		echo "all needed packages are installed"
	else
		if [ "$(id -u)" -ne 0 ] && [ ${#sudo[@]} -eq 0 ]; then
			echo "need root (or sudo) to install: ${missing[*]}" >&2
			return 1
		fi
		echo "installing: ${missing[*]}"
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			"${missing[@]}" </dev/null
	fi
	# FUSE needs its device; a fresh machine may not have loaded the module yet.
	if [ ! -e /dev/fuse ] && command -v modprobe >/dev/null; then
		"${sudo[@]}" modprobe fuse || true
	fi
}
