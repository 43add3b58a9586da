# s3_fixture.py - a base class for tests that need a real S3 server: a throwaway Ceph RGW that
# deploy/s3-rgw.sh starts in the class's scratch folder, on free loopback ports, stopped at the end,
# with one bucket made. Helpers mount pecfs with the tier on a prefix, seal and wait for the upload,
# restore, and read the bucket with pecfs-s3check (next to PECFS_BIN in the build).
import datetime
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RGW_SCRIPT = os.path.join(HERE, "..", "..", "deploy", "s3-rgw.sh")
ACCESS_KEY = "pecfs-tier"
SECRET_KEY = "pecfs-tier-Secret-41c9e2"
BUCKET = "pecfs-tier-test"
MIB = 1 << 20


# One request in the RGW's access log (beast logs a line per request at debug level 1).
ACCESS = re.compile(r' beast: \S+ \S+ - \S+ \[([^\]]+)\] "(\S+) (\S+) [^"]*" (\d+) ')


def rgw_requests(log_path, bucket):
    """[(start time, kind, target, HTTP status)] of every request in the RGW's access log; kind is the
    method, or LIST for a GET of the bucket itself (path-style addressing)."""
    out = []
    with open(log_path, errors="replace") as f:
        for line in f:
            m = ACCESS.search(line)
            if not m:
                continue
            t = datetime.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S.%f %z").timestamp()
            method, target = m.group(2), m.group(3)
            path = target.split("?", 1)[0].rstrip("/")
            kind = "LIST" if method == "GET" and path == "/" + bucket else method
            out.append((t, kind, target, int(m.group(4))))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ceph_missing():
    return [b for b in ("radosgw", "ceph-mon", "ceph-osd", "radosgw-admin") if not shutil.which(b)]


def s3check_bin():
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(h.PECFS_BIN))))
    return os.environ.get("PECS3_CHECK_BIN") or os.path.join(build, "tests", "pecfs-s3check")


def rgw_script(cmd, rgw_dir, env, timeout):
    """deploy/s3-rgw.sh CMD RGW_DIR; raises with its stderr when it fails."""
    cp = subprocess.run([RGW_SCRIPT, cmd, rgw_dir], env=env, capture_output=True, text=True, timeout=timeout)
    if cp.returncode:
        raise RuntimeError("s3-rgw.sh %s failed: %s" % (cmd, cp.stderr))


@h.skip_unless(" ".join(ceph_missing()), "Ceph packages for the S3 test server not installed")
class RgwTestCase(unittest.TestCase):
    """Subclasses get one RGW and one bucket (BUCKET) for the class; each test uses its own prefix."""
    @classmethod
    def setUpClass(cls):
        h.require_binary()
        cls.scratch = tempfile.mkdtemp(prefix="pecfs-s3tier-", dir=h.BASE_DIR)
        cls.rgw_dir = os.path.join(cls.scratch, "rgw")
        cls.port = free_port()
        cls.rgw_env = dict(os.environ, RGW_PORT=str(cls.port), MON_PORT=str(free_port()), S3_ACCESS_KEY=ACCESS_KEY,
                           S3_SECRET_KEY=SECRET_KEY, RGW_MEM_BYTES=str(2 << 30))
        cls.endpoint = "http://127.0.0.1:%d" % cls.port
        cls.saved_env = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                        "AWS_SESSION_TOKEN")}
        os.environ["AWS_ACCESS_KEY_ID"] = ACCESS_KEY
        os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
        os.environ.pop("AWS_SESSION_TOKEN", None)
        try:
            cls.rgw("start", timeout=180)
            cls.s3("mb")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        subprocess.run([RGW_SCRIPT, "stop", cls.rgw_dir], env=cls.rgw_env, capture_output=True, timeout=120)
        shutil.rmtree(cls.scratch, ignore_errors=True)
        for k, v in cls.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    @classmethod
    def rgw(cls, cmd, timeout=90):
        rgw_script(cmd, cls.rgw_dir, cls.rgw_env, timeout)

    @classmethod
    def s3(cls, *args, check=True):
        env = dict(os.environ, PECS3_ENDPOINT=cls.endpoint, PECS3_BUCKET=BUCKET, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                   AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        cp = subprocess.run([s3check_bin(), "--path-style"] + [str(a) for a in args], capture_output=True,
                            env=env, timeout=120)
        if check and cp.returncode:
            raise AssertionError("pecfs-s3check %s failed: %s" % (" ".join(map(str, args)), cp.stderr))
        return cp

    def put_object(self, key, data):
        """Stores data as key (through a file, as pecfs-s3check takes one)."""
        path = os.path.join(self.scratch, "obj-%d" % len(os.listdir(self.scratch)))
        with open(path, "wb") as f:
            f.write(data)
        self.s3("put", key, path)

    def listing(self, prefix):
        """{key: size} under prefix."""
        out = {}
        for line in self.s3("ls", prefix + "/").stdout.decode().splitlines():
            key, size = line.rsplit(" ", 1)
            out[key] = int(size)
        return out

    def lists_of(self, key_prefix):
        """How many LIST requests the RGW has served for exactly this key prefix so far."""
        n = 0
        for _, kind, target, _ in rgw_requests(os.path.join(self.rgw_dir, "log", "client.rgw.a.log"), BUCKET):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
            n += kind == "LIST" and query.get("prefix") == [key_prefix]
        return n

    def requests_under(self, kind, key_prefix):
        """How many requests of kind (GET, HEAD, PUT, ...) for keys under key_prefix the RGW has logged so
        far. The RGW writes its log from a thread of its own: counted until a second look finds nothing
        new."""
        log, start = os.path.join(self.rgw_dir, "log", "client.rgw.a.log"), "/%s/%s" % (BUCKET, key_prefix)

        def count():
            return sum(1 for _, k, target, _ in rgw_requests(log, BUCKET)
                       if k == kind and target.split("?", 1)[0].startswith(start))
        last, end = None, time.monotonic() + 15
        while time.monotonic() < end:
            time.sleep(0.5)
            now = count()
            if now == last:
                break
            last = now
        return last

    def tier_opts(self, prefix, *extra):
        return ["--s3", "s3://%s/%s" % (BUCKET, prefix), "--s3-endpoint", self.endpoint, "--s3-addressing",
                "path"] + list(extra)

    def mount(self, prefix, *extra, data=None):
        m = h.Mount(self.tier_opts(prefix, *extra), data=data)
        self.addCleanup(m.cleanup)
        return m

    def write_version(self, m, run, name, files):
        os.makedirs(m.path(run, name), exist_ok=True)
        for rel, data in files.items():
            os.makedirs(os.path.dirname(m.path(run, name, rel)), exist_ok=True)
            h.write_file(m.path(run, name, rel), data)

    def seal_wait(self, m, run, name, timeout=120):
        cp = h.cli("seal", "--wait-upload", m.path(run, name), timeout=timeout)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(self.version(m, run, name)["state"], "uploaded")

    def version(self, m, run, name):
        return [v for v in m.versions(run)["versions"] if v["name"] == name][0]

    def restore(self, prefix, what, dest, check=True):
        cp = h.cli("restore", *self.tier_opts(prefix), what, dest, timeout=120)
        if check:
            self.assertEqual(cp.returncode, 0, cp.stderr)
        return cp

    def experts(self, seed, n=8, size=3 * MIB):
        return {"layer_0/expert_%d.pt" % i: h.random_bytes(size, seed * 100 + i) for i in range(n)}
