# test_s3_upload_faults.py - the uploader when one version cannot go up: a version whose local chunk
# reads back corrupt (EIO) keeps failing, but the versions sealed after it are uploaded anyway; status
# and RUN/.pec/versions name the failing version and its error; `seal --wait-upload --timeout` gives up
# with that error instead of waiting forever. And a version damaged (a file removed) while its chunks
# are going up is never committed. Temporary credentials that the server refuses are read again from
# the credentials file (rewritten by a rotation agent) without a remount. Real FUSE mounts against a
# throwaway Ceph RGW.
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pecfs_harness as h  # noqa: E402
import s3_fixture  # noqa: E402
from s3_fixture import MIB, RgwTestCase  # noqa: E402

CHUNK = 4 * MIB


def corrupt_chunk(data_dir, digest):
    """Flips one payload byte of a chunk file (past its 4 KiB header): reads of it fail with EIO."""
    path = h.chunk_files(data_dir)[digest]
    fd = os.open(path, os.O_RDWR)
    try:
        b = os.pread(fd, 1, 4096 + 100)
        os.pwrite(fd, bytes([b[0] ^ 0xff]), 4096 + 100)
        os.fsync(fd)
    finally:
        os.close(fd)
    h.drop_caches()


class UploadFaultTest(RgwTestCase):
    def test_a_version_that_cannot_go_up_does_not_block_the_next(self):
        m = self.mount("stuck")
        bad = h.random_bytes(CHUNK, 11)
        good = h.random_bytes(CHUNK, 12)
        self.write_version(m, "run", "step-1", {"w.bin": bad})
        os.sync()
        corrupt_chunk(m.data, h.sha256_bytes(bad))
        self.assertEqual(h.cli("seal", m.path("run", "step-1")).returncode, 0)
        self.write_version(m, "run", "step-2", {"w.bin": good})
        cp = h.cli("seal", "--wait-upload", "--timeout", "90s", m.path("run", "step-2"), timeout=120)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        listing = self.listing("stuck")
        self.assertIn("stuck/runs/run/step-2/COMMIT", listing)
        self.assertNotIn("stuck/runs/run/step-1/COMMIT", listing)
        # The failing version is named, with its error, and counted.
        v1 = self.version(m, "run", "step-1")
        self.assertEqual(v1["state"], "sealed")
        self.assertGreaterEqual(v1["upload_failed_attempts"], 1)
        self.assertIn("step-1", v1["upload_error"])
        self.assertIn("error", v1["upload_error"].lower())
        self.assertIsNone(self.version(m, "run", "step-2")["upload_error"])
        self.assertEqual(m.stats()["s3"]["versions_failing"], 1)
        st = h.cli("status", m.mnt)
        self.assertIn("step-1", st.stdout, st.stdout)
        # Waiting on it gives up after the timeout, with the version's error.
        t0 = time.monotonic()
        cp = h.cli("seal", "--wait-upload", "--timeout", "3s", m.path("run", "step-1"), timeout=60)
        self.assertEqual(cp.returncode, 1, cp.stdout + cp.stderr)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertIn("not uploaded within the timeout", cp.stderr)
        self.assertIn("step-1", cp.stderr)
        # --timeout belongs to --wait-upload.
        self.assertEqual(h.cli("seal", "--timeout", "3s", m.path("run", "step-2")).returncode, 2)

    def test_a_version_damaged_during_its_upload_is_not_committed(self):
        # 2 MiB/s: the 24 MiB version takes seconds to go up, long enough to remove a file meanwhile.
        m = self.mount("damaged", "--upload-bandwidth", "2M")
        files = {"a.bin": h.random_bytes(20 * MIB, 21), "b.bin": h.random_bytes(4 * MIB, 22)}
        self.write_version(m, "run", "step-1", files)
        self.assertEqual(h.cli("seal", m.path("run", "step-1")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["bytes_uploaded"] > 0, 30))
        os.unlink(m.path("run", "step-1", "b.bin"))
        self.assertEqual(self.version(m, "run", "step-1")["state"], "damaged")
        # Long enough for the whole version to have gone up at that rate.
        time.sleep(15 * h.SLOW)
        listing = self.listing("damaged")
        self.assertNotIn("damaged/runs/run/step-1/COMMIT", listing)
        self.assertFalse([k for k in listing if k.endswith(".manifest")], listing)

    def test_refused_session_credentials_are_read_again(self):
        creds = os.path.join(self.scratch, "rotating-credentials")

        def write_creds(secret, token):
            with open(creds + ".new", "w") as f:
                f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                        "aws_session_token = %s\n" % (s3_fixture.ACCESS_KEY, secret, token))
            os.chmod(creds + ".new", 0o600)
            os.rename(creds + ".new", creds)

        # The mount starts with temporary credentials that have gone stale (the server refuses them).
        write_creds("stale-" + s3_fixture.SECRET_KEY, "session-1")
        saved = {k: os.environ.pop(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        try:
            m = self.mount("rotate", "--s3-credentials-file", creds)
        finally:
            os.environ.update(saved)
        self.write_version(m, "run", "step-1", {"w.bin": h.random_bytes(2 * MIB, 31)})
        self.assertEqual(h.cli("seal", m.path("run", "step-1")).returncode, 0)
        self.assertTrue(h.wait_until(lambda: m.stats()["s3"]["failures"] > 0, 60), m.stats()["s3"])
        self.assertNotIn("rotate/runs/run/step-1/COMMIT", self.listing("rotate"))
        # A rotation agent writes the next set; the daemon picks it up on its next refusal.
        write_creds(s3_fixture.SECRET_KEY, "session-2")
        cp = h.cli("seal", "--wait-upload", "--timeout", "90s", m.path("run", "step-1"), timeout=120)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("rotate/runs/run/step-1/COMMIT", self.listing("rotate"))


if __name__ == "__main__":
    h.main()
