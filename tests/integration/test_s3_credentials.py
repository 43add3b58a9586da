# test_s3_credentials.py - where S3 credentials, region, endpoint and CA come from, as for every AWS
# tool, each source used for real against the RGW (test_s3_tier.py's server, here also on https):
# an AWS profile in ~/.aws/credentials with its region and endpoint_url in ~/.aws/config; a profile's
# credential_process; AWS_ENDPOINT_URL, AWS_REGION and AWS_CA_BUNDLE from the environment; and the two
# sources only a cloud has the real endpoint of, each played by a small local server that follows the
# documented protocol: STS AssumeRoleWithWebIdentity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, as
# on EKS; form POST, XML answer) and the EC2 instance metadata service, IMDSv2 (PUT for a session
# token, then GETs that must carry it). The credentials they hand out are the RGW's keys with a
# session token (the RGW accepts a token it does not know next to valid keys), so uploads really
# happen with them. Temporary credentials are asked for again before they expire. mount, restore,
# fsck --remote and gc --remote read /etc/pecfs/pecfs.conf unless -c names another file.
import datetime
import http.server
import json
import os
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402

from s3_fixture import ACCESS_KEY, BUCKET, MIB, SECRET_KEY, RgwTestCase, free_port  # noqa: E402

ROLE_ARN = "arn:aws:iam::123456789012:role/pecfs-node"


def iso(seconds_from_now):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeServer:
    """A loopback HTTP server in a thread; handle(method, path, headers, body) -> (status, body)."""

    def __init__(self, handle):
        self.calls = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def serve(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode() if n else ""
                outer.calls.append((self.command, self.path, dict(self.headers), body))
                status, out = handle(self.command, self.path, self.headers, body)
                data = out.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = serve

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class S3CredentialsTest(RgwTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tls_port = free_port()
        os.environ["RGW_TLS_PORT"] = str(cls.tls_port)  # read into the server's environment
        try:
            super().setUpClass()
        finally:
            del os.environ["RGW_TLS_PORT"]

    def setUp(self):
        self.home = os.path.join(self.scratch, "home-%s" % self._testMethodName)
        os.makedirs(os.path.join(self.home, ".aws"))

    def env(self, **extra):
        """An environment without any of the fixture's AWS_* credentials, HOME a fresh folder, no IMDS."""
        env = {k: v for k, v in h._env().items() if not k.startswith("AWS_")}
        env.update(HOME=self.home, AWS_EC2_METADATA_DISABLED="true")
        env.update(extra)
        return env

    def aws_file(self, name, text, mode=0o600):
        path = os.path.join(self.home, ".aws", name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def mount_with(self, prefix, env, *extra):
        m = h.Mount(mount=False)
        self.addCleanup(m.cleanup)
        cp = h.cli("mount", "--s3", "s3://%s/%s" % (BUCKET, prefix), "--s3-addressing", "path", *extra, m.data,
                   m.mnt, env=env)
        return m, cp

    def upload_one(self, m, run="run", name="v1"):
        data = h.random_bytes(5 * MIB + 3, seed=len(name) + len(run))
        self.write_version(m, run, name, {"a.bin": data})
        self.seal_wait(m, run, name)
        return data

    def test_profile_with_region_and_endpoint_from_the_config_file(self):
        self.aws_file("credentials", "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n"
                      "[team]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (ACCESS_KEY, SECRET_KEY))
        self.aws_file("config", "[default]\nregion = eu-west-9\n[profile team]\nregion = us-east-1\n"
                      "endpoint_url = %s\ns3 =\n  addressing_style = path\n" % self.endpoint, mode=0o644)
        m, cp = self.mount_with("profile", self.env(AWS_PROFILE="team"))
        self.assertEqual(cp.returncode, 0, cp.stderr)
        data = self.upload_one(m)
        # restore and the remote check take the same profile, endpoint and region
        dest = os.path.join(self.scratch, "profile-restore")
        cp = h.cli("restore", "--s3", "s3://%s/profile" % BUCKET, "--s3-addressing", "path", "run@v1", dest,
                   env=self.env(AWS_PROFILE="team"))
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(h.read_file(os.path.join(dest, "a.bin")), data)
        cp = h.cli("fsck", "--remote", "--s3", "s3://%s/profile" % BUCKET, "--s3-addressing", "path", "--quick",
                   env=self.env(AWS_PROFILE="team"))
        self.assertEqual(cp.returncode, 0, cp.stderr)
        # the default profile's keys are wrong: refused by the server, said so
        cp = h.cli("fsck", "--remote", "--s3", "s3://%s/profile" % BUCKET, "--s3-addressing", "path",
                   "--s3-endpoint", self.endpoint, env=self.env())
        self.assertEqual(cp.returncode, 2)
        # a credentials file others may read is refused, naming the file
        self.aws_file("credentials", "[team]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                      % (ACCESS_KEY, SECRET_KEY), mode=0o644)
        _, cp = self.mount_with("profile", self.env(AWS_PROFILE="team"))
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("readable by group or others", cp.stderr)

    def test_every_bucket_command_reads_the_system_configuration(self):
        conf = "/etc/pecfs/pecfs.conf"
        if os.path.exists(conf):
            self.fail("%s exists: this test writes its own (move it away first)" % conf)
        os.makedirs("/etc/pecfs", exist_ok=True)
        self.addCleanup(lambda: os.path.exists(conf) and os.unlink(conf))
        with open(conf, "w") as f:
            f.write("s3 = s3://%s/sysconf\ns3-endpoint = %s\ns3-addressing = path\n" % (BUCKET, self.endpoint))
        keys = self.env(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        m = h.Mount(mount=False)
        self.addCleanup(m.cleanup)
        cp = h.cli("mount", m.data, m.mnt, env=keys)  # no --s3: from the file
        self.assertEqual(cp.returncode, 0, cp.stderr)
        data = self.upload_one(m)
        cp = h.cli("fsck", "--remote", "--quick", env=keys)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("1 committed version", cp.stdout)
        dest = os.path.join(self.scratch, "sysconf-restore")
        cp = h.cli("restore", "run@v1", dest, env=keys)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(h.read_file(os.path.join(dest, "a.bin")), data)
        cp = h.cli("gc", "--remote", "--dry-run", "--json", env=keys)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(json.loads(cp.stdout)["versions"], 1)
        # -c names another file instead
        other = os.path.join(self.home, "other.conf")
        with open(other, "w") as f:
            f.write("s3 = s3://%s/elsewhere\ns3-endpoint = %s\ns3-addressing = path\n" % (BUCKET, self.endpoint))
        cp = h.cli("fsck", "--remote", "--quick", "-c", other, env=keys)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("0 committed versions", cp.stdout)

    def test_credential_process_and_environment_settings(self):
        script = os.path.join(self.home, "creds.py")
        with open(script, "w") as f:
            f.write("import json, sys\nprint(json.dumps({'Version': 1, 'AccessKeyId': %r, 'SecretAccessKey': %r, "
                    "'SessionToken': 'from-process', 'Expiration': %r}))\n" % (ACCESS_KEY, SECRET_KEY, iso(3600)))
        self.aws_file("config", "[profile proc]\ncredential_process = %s %s\n" % (sys.executable, script),
                      mode=0o644)
        env = self.env(AWS_PROFILE="proc", AWS_ENDPOINT_URL=self.endpoint, AWS_REGION="us-east-1")
        m, cp = self.mount_with("process", env)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.upload_one(m)
        # a process that fails is named, and nothing mounts
        self.aws_file("config", "[profile proc]\ncredential_process = sh -c 'echo nope >&2; exit 3'\n", mode=0o644)
        m2, cp = self.mount_with("process", env)
        self.assertEqual(cp.returncode, 2)
        self.assertIn("credential_process failed (exit status 3)", cp.stderr)
        self.assertFalse(h.is_mounted(m2.mnt))

    def test_ca_bundle_from_the_environment(self):
        https = "https://127.0.0.1:%d" % self.tls_port
        ca = os.path.join(self.rgw_dir, "tls", "ca.pem")
        keys = dict(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_ENDPOINT_URL=https)

        def check(env):
            return h.cli("fsck", "--remote", "--quick", "--s3", "s3://%s/tls" % BUCKET, "--s3-addressing", "path",
                         env=env)
        cp = check(self.env(**keys))
        self.assertEqual(cp.returncode, 2)  # the throwaway CA is nobody's: verification fails
        self.assertIn("certificate", cp.stderr.lower())
        cp = check(self.env(AWS_CA_BUNDLE=ca, **keys))
        self.assertEqual(cp.returncode, 0, cp.stderr)
        m, cp = self.mount_with("tls", self.env(AWS_CA_BUNDLE=ca, **keys))
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.upload_one(m)

    def test_web_identity_through_sts_and_renewal_before_expiry(self):
        token = os.path.join(self.home, "token")
        with open(token, "w") as f:
            f.write("eyJhbGciOiJSUzI1NiJ9.service-account-token.sig\n")
        expires = {"in": 3600}

        def sts(method, path, headers, body):
            form = urllib.parse.parse_qs(body)
            ok = (method == "POST" and form.get("Action") == ["AssumeRoleWithWebIdentity"]
                  and form.get("Version") == ["2011-06-15"] and form.get("RoleArn") == [ROLE_ARN]
                  and form.get("RoleSessionName") == ["trainer-7"]
                  and form.get("WebIdentityToken") == ["eyJhbGciOiJSUzI1NiJ9.service-account-token.sig"])
            if not ok:
                return 400, ("<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                             "<Message>bad request</Message></Error></ErrorResponse>")
            return 200, ("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
                         "<AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>%s</AccessKeyId>"
                         "<SecretAccessKey>%s</SecretAccessKey><SessionToken>sts-token</SessionToken>"
                         "<Expiration>%s</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
                         "</AssumeRoleWithWebIdentityResponse>" % (ACCESS_KEY, SECRET_KEY, iso(expires["in"])))
        srv = FakeServer(sts)
        self.addCleanup(srv.close)
        env = self.env(AWS_WEB_IDENTITY_TOKEN_FILE=token, AWS_ROLE_ARN=ROLE_ARN, AWS_ROLE_SESSION_NAME="trainer-7",
                       AWS_ENDPOINT_URL_STS=srv.url)
        m, cp = self.mount_with("webid", env, "--s3-endpoint", self.endpoint)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.upload_one(m)
        self.assertEqual(len(srv.calls), 1)
        self.assertEqual(srv.calls[0][2].get("Content-Type"), "application/x-www-form-urlencoded")
        # credentials that expire within the renewal margin (300 s) are asked for again, then used
        expires["in"] = 302
        m2, cp = self.mount_with("webid2", env, "--s3-endpoint", self.endpoint)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        calls = len(srv.calls)
        time.sleep(3)  # now within 300 s of the expiry
        self.upload_one(m2)
        self.assertGreater(len(srv.calls), calls)
        # a role the identity may not take: STS's answer is in the error
        def deny(method, path, headers, body):
            return 403, ("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not "
                         "authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>")
        denied = FakeServer(deny)
        self.addCleanup(denied.close)
        _, cp = self.mount_with("webid", dict(env, AWS_ENDPOINT_URL_STS=denied.url), "--s3-endpoint", self.endpoint)
        self.assertEqual(cp.returncode, 2)
        self.assertIn("AccessDenied", cp.stderr)
        self.assertIn(ROLE_ARN, cp.stderr)

    def test_instance_metadata_imdsv2(self):
        session = "imds-session-token-1"

        def imds(method, path, headers, body):
            if path == "/latest/api/token":
                if method != "PUT" or not headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return 400, ""
                return 200, session
            if headers.get("X-aws-ec2-metadata-token") != session:
                return 401, ""  # IMDSv2: every GET carries the session token
            if path == "/latest/meta-data/iam/security-credentials/":
                return 200, "pecfs-node-role\n"
            if path == "/latest/meta-data/iam/security-credentials/pecfs-node-role":
                return 200, json.dumps({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": ACCESS_KEY,
                                        "SecretAccessKey": SECRET_KEY, "Token": "imds-token",
                                        "Expiration": iso(6 * 3600), "LastUpdated": iso(0)})
            return 404, ""
        srv = FakeServer(imds)
        self.addCleanup(srv.close)
        env = self.env(AWS_EC2_METADATA_SERVICE_ENDPOINT=srv.url)
        del env["AWS_EC2_METADATA_DISABLED"]
        m, cp = self.mount_with("imds", env, "--s3-endpoint", self.endpoint)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.upload_one(m)
        paths = [(c[0], c[1]) for c in srv.calls]
        self.assertEqual(paths[:3], [("PUT", "/latest/api/token"), ("GET", "/latest/meta-data/iam/security-credentials/"),
                                     ("GET", "/latest/meta-data/iam/security-credentials/pecfs-node-role")])
        # with IMDS disabled and nothing else, the message lists every source
        _, cp = self.mount_with("imds", self.env(), "--s3-endpoint", self.endpoint)
        self.assertEqual(cp.returncode, 2)
        self.assertIn("no S3 credentials", cp.stderr)
        self.assertIn("AWS_WEB_IDENTITY_TOKEN_FILE", cp.stderr)


if __name__ == "__main__":
    h.main()
