# packages.sh - the Debian 12 packages pecfs needs, and a function that installs the missing ones.
# Sourced by demo.sh and test.sh. Installs only what is missing, non-interactively (CI has no stdin);
# as a non-root user it goes through sudo.

PECFS_BUILD_PACKAGES=(build-essential cmake pkg-config libfuse3-dev fuse3 librocksdb-dev libssl-dev
	libjansson-dev libcmocka-dev libcurl4-openssl-dev libexpat1-dev libsystemd-dev libmicrohttpd-dev python3 attr)
# PECFS_CUDA=1 (CI sets it): Debian 12's CUDA 11.8 toolkit, so that the build compiles libpecgpu's
# kernels (gpu/README.md). It is in the contrib and non-free components, which
# pecfs_enable_contrib_non_free adds. Debian's nvcc runs its host compiler through a wrapper that
# accepts only g++ <= 11 (it refuses clang): nvidia-cuda-toolkit-gcc brings g++-11.
if [ "${PECFS_CUDA:-0}" = 1 ]; then
	PECFS_BUILD_PACKAGES+=(nvidia-cuda-toolkit nvidia-cuda-toolkit-gcc)
fi
# The test suite also mounts tmpfs (util-linux), compares files (diffutils), looks at processes, and
# runs a throwaway Ceph RADOS Gateway on loopback as the S3 server (deploy/s3-rgw.sh; openssl makes
# its test certificate). tests/bench/bench_s3.py compares reads through a --from mount with s3fs-fuse.
# clang builds the libFuzzer targets (tests/fuzz). systemd brings systemd-analyze, which checks the
# unit (tests/integration/test_systemd.py); prometheus brings promtool, which checks the metrics text
# (test_metrics.py); man-db reads the installed man page (test_package.py, which also needs
# dpkg-dev's dpkg-shlibdeps, part of build-essential); nodejs runs the offline Kubernetes schema check of
# deploy/k8s (tests/k8s; its npm comes with nodejs or, with Debian's nodejs, from PECFS_NPM_PACKAGE).
# python3-torch (for /usr/bin/python3) runs the PyTorch module's tests
# (tests/integration/test_gpu_python.py) and its example on CPU tensors.
PECFS_TEST_PACKAGES=("${PECFS_BUILD_PACKAGES[@]}" util-linux diffutils procps psmisc
	radosgw ceph-mon ceph-osd openssl s3fs clang systemd prometheus nodejs man-db python3-torch)
PECFS_NPM_PACKAGE=npm

# Adds contrib and non-free of the Debian archive the machine already uses, unless some source has
# non-free already. $1: the sudo command (empty as root).
pecfs_enable_contrib_non_free() {
	local list=/etc/apt/sources.list.d/pecfs-contrib-non-free.sources uri
	if [ -e "$list" ] || grep -rqsE '^(Components:|deb ).*[[:space:]]non-free([[:space:]]|$)' \
		/etc/apt/sources.list /etc/apt/sources.list.d/; then
		return 0
	fi
	uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/debian.sources | grep -v security | head -n1 |
		awk '{print $2}')
	[ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list | grep -v security | head -n1 |
		awk '{print $2}')
	echo "adding contrib non-free of ${uri:-http://deb.debian.org/debian} ($list)"
	printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: contrib non-free\nSigned-By: %s\n' \
		"${uri:-http://deb.debian.org/debian}" /usr/share/keyrings/debian-archive-keyring.gpg |
		$1 tee "$list" >/dev/null
}

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
		if [ "${PECFS_CUDA:-0}" = 1 ]; then
			pecfs_enable_contrib_non_free "${sudo[*]}"
		fi
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			"${missing[@]}" </dev/null
	fi
	# FUSE needs its device; a fresh machine may not have loaded the module yet.
	if [ ! -e /dev/fuse ] && command -v modprobe >/dev/null; then
		"${sudo[@]}" modprobe fuse || true
	fi
}
