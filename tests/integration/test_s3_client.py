# test_s3_client.py - the S3 client (store/s3/s3_client.h) against a real S3 server: a throwaway Ceph
# RADOS Gateway that deploy/s3-rgw.sh starts in a scratch folder, on free loopback ports, and stops at
# the end. Drives it through pecfs-s3check (built from tests/integration/s3_client_check.c), found via
# PECS3_CHECK_BIN or next to PECFS_BIN (../../tests/pecfs-s3check). Reported skipped (exit 77) only when
# the Ceph packages are not installed (radosgw ceph-mon ceph-osd), and a failure then under CI=true.
# Python stdlib only.
import errno
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from s3_fixture import RGW_SCRIPT, ceph_missing, free_port, rgw_script  # noqa: E402

ACCESS_KEY = "pecfs-test"
SECRET_KEY = "pecfs-test-Secret-9f3a7c"     # never to be seen in any output
BUCKET = "pecfs-client-test"


def find_check_bin():
    path = os.environ.get("PECS3_CHECK_BIN", "")
    if not path and os.environ.get("PECFS_BIN"):
        build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(os.environ["PECFS_BIN"]))))
        path = os.path.join(build, "tests", "pecfs-s3check")
    return path


class Result:
    def __init__(self, cp):
        self.code = cp.returncode
        self.out = cp.stdout
        self.err = cp.stderr.decode(errors="replace")
        self.stats = {}
        for line in self.err.splitlines():
            if line.startswith("stats "):
                self.stats = {k: int(v) for k, v in (f.split("=") for f in line.split()[1:])}


@h.skip_unless(" ".join(ceph_missing()), "Ceph packages for the S3 test server not installed "
               "(apt-get install radosgw ceph-mon ceph-osd)")
class S3ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bin = find_check_bin()
        if not cls.bin or not os.access(cls.bin, os.X_OK):
            raise RuntimeError("pecfs-s3check not found: set PECS3_CHECK_BIN or PECFS_BIN (got %r)" % cls.bin)
        cls.scratch = tempfile.mkdtemp(prefix="pecfs-s3client-", dir="/var/tmp")
        cls.rgw_dir = os.path.join(cls.scratch, "rgw")
        cls.port, cls.tls_port = free_port(), free_port()
        cls.rgw_env = dict(os.environ, RGW_PORT=str(cls.port), RGW_TLS_PORT=str(cls.tls_port),
                           MON_PORT=str(free_port()), S3_ACCESS_KEY=ACCESS_KEY, S3_SECRET_KEY=SECRET_KEY,
                           RGW_MEM_BYTES=str(1 << 30))
        cls.endpoint = "http://127.0.0.1:%d" % cls.port
        try:
            cls.rgw("start", timeout=180)
            r = cls.run_check(["mb"])
            if r.code:
                raise RuntimeError("creating the bucket failed: " + r.err)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        subprocess.run([RGW_SCRIPT, "stop", cls.rgw_dir], env=cls.rgw_env, capture_output=True, timeout=120)
        shutil.rmtree(cls.scratch, ignore_errors=True)

    @classmethod
    def rgw(cls, cmd, timeout=60):
        rgw_script(cmd, cls.rgw_dir, cls.rgw_env, timeout)

    @classmethod
    def check_env(cls, **extra):
        env = dict(os.environ, PECS3_ENDPOINT=cls.endpoint, PECS3_BUCKET=BUCKET, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                   AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        env.pop("AWS_SESSION_TOKEN", None)
        env.update(extra)
        return env

    @classmethod
    def run_check(cls, args, opts=(), env=None, stdin=None, timeout=300):
        cp = subprocess.run([cls.bin, "-v"] + list(opts) + [str(a) for a in args], input=stdin,
                            capture_output=True, env=env or cls.check_env(), timeout=timeout)
        return Result(cp)

    def check(self, args, opts=(), **kw):
        r = self.run_check(args, opts, **kw)
        self.assertEqual(r.code, 0, "pecfs-s3check %s failed: %s" % (" ".join(map(str, args)), r.err))
        self.assertNotIn(SECRET_KEY, r.err)
        return r

    def write(self, name, data):
        path = os.path.join(self.scratch, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    # ---- objects ----

    def test_put_get_range_head_delete(self):
        data = os.urandom(300000)
        path = self.write("obj", data)
        self.check(["put", "basic/obj", path])
        self.assertEqual(self.check(["get", "basic/obj"]).out, data)
        self.assertEqual(self.check(["get", "basic/obj", 1000, 5000]).out, data[1000:6000])
        # a range running past the end gives what there is
        self.assertEqual(self.check(["get", "basic/obj", 299990, 100]).out, data[299990:])
        r = self.run_check(["get", "basic/obj", 300000, 10])
        self.assertEqual(r.code, errno.ERANGE, r.err)
        head = self.check(["head", "basic/obj"]).out.decode()
        self.assertIn("size=300000 ", head)
        self.assertIn('etag="%s"' % hashlib.md5(data).hexdigest(), head)
        self.check(["rm", "basic/obj"])
        r = self.run_check(["get", "basic/obj"])
        self.assertEqual(r.code, errno.ENOENT)
        self.assertIn("s3://%s/basic/obj not found" % BUCKET, r.err)
        self.check(["rm", "basic/obj"])          # deleting what is gone is fine

    def test_a_ranged_get_lays_its_body_out_across_spans(self):
        # A run of pack members comes in one GET, each member placed where it will be used.
        data = os.urandom(300000)
        self.check(["put", "spans/obj", self.write("spans", data)])
        lens = [1, 4095, 70000, 25904]
        self.assertEqual(self.check(["get-spans", "spans/obj", 1000] + lens).out, data[1000:1000 + sum(lens)])
        # past the end: the spans get what there is, in order
        self.assertEqual(self.check(["get-spans", "spans/obj", 299000, 600, 600]).out, data[299000:])
        r = self.run_check(["get-spans", "spans/obj", 0, 10, 0, 10])
        self.assertEqual(r.code, errno.EINVAL, r.err)
        self.assertIn("empty or oversized span", r.err)
        # A connection cut in the middle of the body: the retry starts over from the first span.
        proxy = FaultProxy(self.port)
        self.addCleanup(proxy.close)
        proxy.force_reset(after_bytes=80000, match=b"GET ")
        env = self.check_env(PECS3_ENDPOINT=proxy.endpoint)
        r = self.check(["get-spans", "spans/obj", 0, 100000, 150000, 50000], opts=["--retry-base-ms", "10"], env=env)
        self.assertEqual(r.out, data)
        self.assertEqual(r.stats["requests"], 2)

    def test_keys_with_reserved_characters_round_trip(self):
        key = "odd/a b+c$d%e&f=g?h;i,j~k\u00e9\u4e2d.txt"
        self.check(["put", key, "-"], stdin=b"odd key")
        self.assertEqual(self.check(["get", key]).out, b"odd key")
        listed = self.check(["ls", "odd/"]).out.decode().splitlines()
        self.assertEqual(listed, ["%s 7" % key])

    def test_empty_object(self):
        self.check(["put", "empty/obj", "-"], stdin=b"")
        self.assertEqual(self.check(["get", "empty/obj"]).out, b"")
        self.assertEqual(self.check(["get", "empty/obj", 0, 10]).out, b"")
        self.assertIn("size=0 ", self.check(["head", "empty/obj"]).out.decode())

    def test_conditional_create_twice(self):
        path = self.write("commit", b"COMMIT v1\n")
        self.check(["put", "cond/COMMIT", path, "--if-absent"])
        other = self.write("commit2", b"COMMIT v2\n")
        r = self.run_check(["put", "cond/COMMIT", other, "--if-absent"])
        self.assertEqual(r.code, errno.EEXIST, r.err)
        self.assertIn("already exists", r.err)
        self.assertEqual(r.stats["requests"], 1)
        self.assertEqual(self.check(["get", "cond/COMMIT"]).out, b"COMMIT v1\n")

    # ---- listing ----

    def test_list_paginates_1200_keys_in_pages_of_500(self):
        r = self.check(["fill", "many/k", 1200, 8], opts=["--connections", "8"])
        self.assertEqual(r.stats["requests"], 1200)
        self.assertLessEqual(r.stats["connects"], 8, "connections are reused, not opened per request")
        r = self.check(["ls", "many/", 500])
        keys = [line.split()[0] for line in r.out.decode().splitlines()]
        self.assertEqual(keys, ["many/k%05d" % i for i in range(1200)])
        self.assertEqual(r.stats["requests"], 3)       # 500 + 500 + 200

    def test_list_with_delimiter_rolls_up_prefixes(self):
        for key in ("tree/a/1", "tree/a/2", "tree/b/1", "tree/top"):
            self.check(["put", key, "-"], stdin=b"x")
        lines = self.check(["ls", "tree/", 2, "/"]).out.decode().splitlines()
        self.assertEqual(lines, ["PREFIX tree/a/", "PREFIX tree/b/", "tree/top 1"])

    # ---- multipart ----

    def test_multipart_upload_of_20_mib(self):
        data = os.urandom(20 << 20)
        path = self.write("big", data)
        r = self.check(["mpu", "mpu/big", path, 5 << 20, 4])
        self.assertGreaterEqual(r.stats["sent"], 20 << 20)
        head = self.check(["head", "mpu/big"]).out.decode()
        self.assertIn("size=%d " % (20 << 20), head)
        self.assertIn('-4"', head)                         # a four-part object
        got = self.check(["get", "mpu/big"]).out
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual(self.check(["uploads", "mpu/"]).out, b"")

    def test_failed_multipart_is_aborted(self):
        r = self.check(["mpu-fail", "mpu/failing"])
        out = r.out.decode()
        self.assertIn("complete: -%d InvalidPart" % errno.EINVAL, out)
        self.assertIn("abort: 0", out)
        self.assertEqual(self.check(["uploads", "mpu/failing"]).out, b"")
        self.assertEqual(self.run_check(["head", "mpu/failing"]).code, errno.ENOENT)

    # ---- addressing and TLS ----

    def test_virtual_hosted_addressing(self):
        endpoint = "http://localhost:%d" % self.port       # curl resolves *.localhost to loopback
        self.check(["put", "vhost/obj", "-"], opts=["--virtual-hosted"], stdin=b"vh",
                   env=self.check_env(PECS3_ENDPOINT=endpoint))
        self.assertEqual(self.check(["get", "vhost/obj"]).out, b"vh")

    def test_tls_is_verified_and_a_ca_file_is_accepted(self):
        env = self.check_env(PECS3_ENDPOINT="https://127.0.0.1:%d" % self.tls_port)
        r = self.run_check(["check"], env=env)
        self.assertEqual(r.code, errno.EPROTO, r.err)
        self.assertIn("not trusted", r.err)
        self.assertEqual(r.stats["requests"], 1)
        ca = os.path.join(self.rgw_dir, "tls", "ca.pem")
        self.check(["put", "tls/obj", "-"], opts=["--ca-file", ca], env=env, stdin=b"over https")
        self.assertEqual(self.check(["get", "tls/obj"], opts=["--ca-file", ca], env=env).out, b"over https")

    # ---- errors and secrets ----

    def test_wrong_secret_is_a_clear_auth_error_without_retries(self):
        wrong = "Wrong-" + SECRET_KEY[::-1]
        for args in (["check"], ["put", "auth/x", "-"], ["get", "auth/x"]):
            r = self.run_check(args, env=self.check_env(AWS_SECRET_ACCESS_KEY=wrong), stdin=b"data")
            self.assertEqual(r.code, errno.EACCES, r.err)
            self.assertIn("SignatureDoesNotMatch", r.err)
            self.assertIn("secret key is wrong", r.err)
            self.assertEqual(r.stats["requests"], 1, "an auth error must not be retried")
            self.assertNotIn(wrong, r.err)
            self.assertNotIn(wrong.encode(), r.out)

    def test_unknown_key_clock_skew_and_missing_bucket_are_named(self):
        r = self.run_check(["check"], env=self.check_env(AWS_ACCESS_KEY_ID="nobody-here"))
        self.assertEqual(r.code, errno.EACCES)
        self.assertIn("InvalidAccessKeyId", r.err)
        r = self.run_check(["check"], opts=["--clock-offset", "3600"])
        self.assertEqual(r.code, errno.EACCES)
        self.assertIn("RequestTimeTooSkewed", r.err)
        self.assertIn("clock", r.err)
        self.assertEqual(r.stats["requests"], 1)
        r = self.run_check(["put", "x", "-"], env=self.check_env(PECS3_BUCKET="no-such-bucket-here"), stdin=b"x")
        self.assertEqual(r.code, errno.ENXIO)
        self.assertIn("bucket no-such-bucket-here does not exist", r.err)

    def test_secrets_stay_out_of_logs_while_retrying(self):
        token = "SessionToken-7d1e-not-for-logs"
        env = self.check_env(PECS3_ENDPOINT="http://127.0.0.1:%d" % free_port(), AWS_SESSION_TOKEN=token)
        r = self.run_check(["put", "x", "-"], opts=["--attempts", "3", "--retry-base-ms", "10"], env=env, stdin=b"x")
        self.assertEqual(r.code, errno.EIO)
        self.assertIn("cannot reach S3 endpoint", r.err)
        self.assertEqual(r.stats["requests"], 3)
        self.assertEqual(r.err.count("retrying in"), 2)
        for secret in (SECRET_KEY, token):
            self.assertNotIn(secret, r.err)

    def test_stalled_server_times_out_and_is_retried(self):
        # A listener that accepts and then says nothing: only the low-speed timeout ends each try.
        held = []
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)

        def accept_and_hold():
            while True:
                try:
                    held.append(srv.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept_and_hold, daemon=True).start()
        env = self.check_env(PECS3_ENDPOINT="http://127.0.0.1:%d" % srv.getsockname()[1])
        start = time.monotonic()
        try:
            r = self.run_check(["get", "x"], opts=["--attempts", "2", "--retry-base-ms", "10", "--low-speed-time", "1"],
                               env=env)
        finally:
            srv.close()
            for conn in held:
                conn.close()
        self.assertEqual(r.code, errno.EIO, r.err)
        self.assertEqual(r.stats["requests"], 2)
        self.assertIn("gave up after retries", r.err)
        self.assertLess(time.monotonic() - start, 30)

    def test_credentials_file_must_be_private(self):
        path = os.path.join(self.scratch, "credentials")
        with open(path, "w") as f:
            f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (ACCESS_KEY, SECRET_KEY))
        env = self.check_env()
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        os.chmod(path, 0o644)
        r = self.run_check(["check"], opts=["--creds-file", path], env=env)
        self.assertEqual(r.code, errno.EPERM)
        self.assertIn("chmod 600", r.err)
        self.assertNotIn(SECRET_KEY, r.err)
        os.chmod(path, 0o600)
        self.check(["check"], opts=["--creds-file", path], env=env)

    # ---- outage ----

    def test_server_restart_mid_operation_is_survived(self):
        cmd = [self.bin, "--attempts", "40", "--retry-base-ms", "50", "--retry-max-ms", "1000",
               "--connect-timeout-ms", "2000", "--low-speed-time", "5", "stress", "outage/o", "120", 65536, 40]
        with subprocess.Popen([str(a) for a in cmd], env=self.check_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as p:
            time.sleep(1.0)
            self.assertIsNone(p.poll(), "the writer finished before the outage; make it longer")
            self.rgw("rgw-stop")
            time.sleep(3.0)
            self.rgw("rgw-start")
            out, err = p.communicate(timeout=300)
        r = Result(subprocess.CompletedProcess(cmd, p.returncode, out, err))
        self.assertEqual(r.code, 0, r.err)
        self.assertGreater(r.stats["retries"], 0, "the outage was not seen")
        self.assertIn("retrying in", r.err)
        keys = self.check(["ls", "outage/"]).out.decode().splitlines()
        self.assertEqual(len(keys), 120)


if __name__ == "__main__":
    h.main()
