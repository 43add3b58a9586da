#!/usr/bin/env bash
# s3-rgw.sh - a throwaway S3 server for tests: Ceph RADOS Gateway on 127.0.0.1 over a one-monitor,
# one-memstore-OSD cluster (no manager, no cephx), everything inside one scratch folder.
# Data lives in RAM and is gone after `stop`; never point this at a real cluster or a shared folder.
# Needs: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd
#
# usage: s3-rgw.sh start|stop|rgw-stop|rgw-start|status DIR
#   start      create DIR, start the monitor, the OSD and radosgw, create the S3 user; prints the endpoint
#   stop       kill every daemon started from DIR (by pid) and remove DIR
#   rgw-stop   kill radosgw only (an outage: the cluster and the objects stay)
#   rgw-start  start radosgw again after rgw-stop
#   status     exit 0 when radosgw answers
# environment: RGW_PORT (17480), MON_PORT (16789), S3_ACCESS_KEY (pecfs-test), S3_SECRET_KEY
#   (pecfs-test-secret), RGW_MEM_BYTES (memstore size, 2 GiB), RGW_TLS_PORT (unset: no https; set: also
#   serve https there with a certificate for 127.0.0.1/localhost signed by a throwaway CA, DIR/tls/ca.pem).
#   Daemons are stopped by pid files in DIR/run.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
	echo "usage: $0 start|stop|rgw-stop|rgw-start|status DIR" >&2
	exit 2
fi
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
rgw_port=${RGW_PORT:-17480}
mon_port=${MON_PORT:-16789}
access_key=${S3_ACCESS_KEY:-pecfs-test}
secret_key=${S3_SECRET_KEY:-pecfs-test-secret}
mem_bytes=${RGW_MEM_BYTES:-2147483648}
tls_port=${RGW_TLS_PORT:-}
conf="$dir/ceph.conf"

# Runs "$@" until it succeeds, twice a second, for at most $1 tries.
retry() {
	local tries=$1 n=0
	shift
	until "$@"; do
		n=$((n + 1))
		[ "$n" -ge "$tries" ] && return 1
		sleep 0.5
	done
}

kill_daemon() {
	local pidfile="$dir/run/$1.pid" pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	# The pid file may outlive its process; only kill a process that is still that daemon.
	if [ -n "$pid" ] && grep -q "$2" "/proc/$pid/cmdline" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null || true
		while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	fi
	rm -f "$pidfile"
}

rgw_answers() {
	curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$rgw_port/"
}

start_rgw() {
	radosgw -c "$conf" -n client.rgw.a
	if ! retry 60 rgw_answers; then
		echo "s3-rgw: radosgw did not answer on port $rgw_port (log: $dir/log/client.rgw.a.log)" >&2
		return 1
	fi
}

# A throwaway CA and a server certificate it signs, so tests can check verification both ways.
make_tls() {
	local t="$dir/tls"
	mkdir -p "$t"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$t/ca.key" \
		-out "$t/ca.pem" -days 2 -subj /CN=pecfs-test-ca 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$t/server.key" \
		-out "$t/server.csr" -subj /CN=localhost 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:*.localhost\nbasicConstraints=CA:FALSE\n' >"$t/ext"
	openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
		-out "$t/server.pem" -days 2 -extfile "$t/ext" 2>/dev/null
}

write_conf() {
	local frontends="beast endpoint=127.0.0.1:$rgw_port"
	if [ -n "$tls_port" ]; then
		frontends="$frontends ssl_endpoint=127.0.0.1:$tls_port ssl_certificate=$dir/tls/server.pem"
		frontends="$frontends ssl_private_key=$dir/tls/server.key"
	fi
	cat >"$conf" <<EOF
[global]
fsid = $1
mon_host = v1:127.0.0.1:$mon_port
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_bind_msgr2 = false
ms_bind_ipv6 = false
run_dir = $dir/run
admin_socket = $dir/run/\$name.asok
log_file = $dir/log/\$name.log
pid_file = $dir/run/\$name.pid
keyring = $dir/keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
paxos_propose_interval = 0.1
[mon.a]
mon_data = $dir/mon.a
[osd.0]
osd_data = $dir/osd.0
osd_objectstore = memstore
memstore_device_bytes = $mem_bytes
osd_class_update_on_start = false
osd_crush_update_on_start = false
[client.rgw.a]
rgw_frontends = $frontends
rgw_data = $dir/rgw
rgw_dns_name = localhost
EOF
}

start_all() {
	local fsid osd_uuid
	for bin in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool; do
		command -v "$bin" >/dev/null || { echo "s3-rgw: $bin not installed" >&2; exit 1; }
	done
	if [ -e "$dir" ]; then
		echo "s3-rgw: $dir already exists; stop it first or pick another folder" >&2
		exit 1
	fi
	mkdir -p "$dir"/{run,log,mon.a,osd.0,rgw}
	fsid=$(cat /proc/sys/kernel/random/uuid)
	[ -z "$tls_port" ] || make_tls
	write_conf "$fsid"
	ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
	ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring"
	ceph-mon -c "$conf" -i a
	# Right after start the monitor may refuse commands (EPERM) until it has formed its quorum.
	retry 60 timeout 10 ceph -c "$conf" mon stat >/dev/null 2>&1
	# The OSD is registered and put in CRUSH by hand: letting it do so at start races the monitor map.
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	retry 60 timeout 10 ceph -c "$conf" osd new "$osd_uuid" 0 >/dev/null 2>&1
	retry 60 timeout 10 ceph -c "$conf" osd crush add osd.0 1.0 root=default host=localhost >/dev/null 2>&1
	ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>"$dir/log/osd-mkfs.err"
	retry 20 ceph-osd -c "$conf" -i 0 2>>"$dir/log/osd-start.err"
	retry 120 sh -c "timeout 10 ceph -c '$conf' osd stat 2>/dev/null | grep -q '1 up'"
	start_rgw
	radosgw-admin -c "$conf" user create --uid=pecfs-test --display-name=pecfs-test \
		--access-key="$access_key" --secret-key="$secret_key" >/dev/null 2>"$dir/log/user-create.err"
	echo "http://127.0.0.1:$rgw_port"
}

stop_all() {
	kill_daemon client.rgw.a radosgw
	kill_daemon osd.0 ceph-osd
	kill_daemon mon.a ceph-mon
	# Refuse to remove anything that does not look like a folder this script created.
	if [ -f "$conf" ] && [ -d "$dir/run" ]; then
		rm -rf "$dir"
	fi
}

case "$cmd" in
start)
	# Not `if ! start_all`: errexit is off inside a function called as a condition.
	trap 'echo "s3-rgw: start failed; logs in $dir/log (stop it with: $0 stop $dir)" >&2' ERR
	start_all
	;;
stop) stop_all ;;
rgw-stop) kill_daemon client.rgw.a radosgw ;;
rgw-start) start_rgw ;;
status) rgw_answers ;;
*)
	echo "usage: $0 start|stop|rgw-stop|rgw-start|status DIR" >&2
	exit 2
	;;
esac
