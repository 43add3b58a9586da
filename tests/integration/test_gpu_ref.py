# test_gpu_ref.py - reference writes (fs/abi/pecfs_ioctl.h, store/FORMAT.md "Reference write") driven
# directly with ioctl(2) on a real mount, independent of libpecgpu: a stored chunk's digest links it,
# an unknown one is -ENOENT per entry, misaligned or malformed entries are -EINVAL, the whole call
# fails with EROFS after a seal, EPERM outside a version and EBADF on a read-only handle; a short
# entry ends the file; and a linked chunk survives kill -9 once the file was fsynced.
import errno
import fcntl
import hashlib
import os
import struct
import subprocess
import unittest

import pecfs_harness as h

CS = 1 << 20  # the mount's chunk size

# ioctl numbers as <linux/ioctl.h> builds them: dir << 30 | size << 16 | type << 8 | nr
_IOC_WRITE, _IOC_READ = 1, 2
ABI, IOC_TYPE, REF_MAX = 1, 0xEC, 256
INFO_FMT = "<II3Q"            # struct pecfs_ioc_info
ENTRY_FMT = "<QIi32s"         # struct pecfs_ref_entry
BATCH_HEAD = "<IIII"          # struct pecfs_ref_batch before its entries
ENTRY_SIZE = struct.calcsize(ENTRY_FMT)
BATCH_SIZE = struct.calcsize(BATCH_HEAD) + REF_MAX * ENTRY_SIZE
IOC_INFO = (_IOC_READ << 30) | (struct.calcsize(INFO_FMT) << 16) | (IOC_TYPE << 8) | 1
IOC_REF = ((_IOC_READ | _IOC_WRITE) << 30) | (BATCH_SIZE << 16) | (IOC_TYPE << 8) | 2


def ioc_info(fd):
    buf = bytearray(struct.calcsize(INFO_FMT))
    fcntl.ioctl(fd, IOC_INFO, buf, True)
    return struct.unpack(INFO_FMT, buf)


def ioc_ref(fd, entries, abi=ABI, count=None):
    """entries: [(off, len, digest bytes)]. Returns (linked, chunk_size, [result per entry]);
    OSError for a failure of the whole call."""
    buf = bytearray(BATCH_SIZE)
    struct.pack_into(BATCH_HEAD, buf, 0, abi, len(entries) if count is None else count, 0, 0)
    for i, (off, n, digest) in enumerate(entries):
        struct.pack_into(ENTRY_FMT, buf, struct.calcsize(BATCH_HEAD) + i * ENTRY_SIZE, off, n, 0x7777, digest)
    fcntl.ioctl(fd, IOC_REF, buf, True)
    _abi, _count, linked, chunk_size = struct.unpack_from(BATCH_HEAD, buf, 0)
    results = [struct.unpack_from(ENTRY_FMT, buf, struct.calcsize(BATCH_HEAD) + i * ENTRY_SIZE)[2]
               for i in range(len(entries))]
    return linked, chunk_size, results


def sha(b):
    return hashlib.sha256(b).digest()


def chunks_of(data):
    return [(i, data[i:i + CS]) for i in range(0, len(data), CS)]


def extent_list_digest(data):
    """user.pec.digest of a file stored in whole chunks (store/FORMAT.md): SHA-256 over each extent's
    file_off, len, chunk_off (u64 little-endian) and chunk digest."""
    hh = hashlib.sha256()
    for off, c in chunks_of(data):
        hh.update(struct.pack("<QQQ", off, len(c), 0) + sha(c))
    return hh.hexdigest()


def open_w(path):
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)


class RefWrites(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = h.Mount(["--chunk-size", "1M"])
        cls.data = h.random_bytes(2 * CS + 12345, 41)  # two whole chunks and a tail
        os.makedirs(cls.m.path("run", "v1"))
        h.write_file(cls.m.path("run", "v1", "src.bin"), cls.data, fsync=True)

    @classmethod
    def tearDownClass(cls):
        cls.m.cleanup()

    def new_version(self, name):
        os.makedirs(self.m.path("run", name))
        return self.m.path("run", name)

    def test_info_gives_the_chunk_size(self):
        fd = os.open(self.m.path("run", "v1", "src.bin"), os.O_RDONLY)
        try:
            abi, chunk_size, *reserved = ioc_info(fd)
        finally:
            os.close(fd)
        self.assertEqual((abi, chunk_size, reserved), (ABI, CS, [0, 0, 0]))

    def test_unknown_digest_is_enoent_per_entry(self):
        d = self.new_version("unknown")
        fd = open_w(os.path.join(d, "f"))
        try:
            st0 = self.m.stats()
            linked, chunk_size, res = ioc_ref(fd, [(0, CS, sha(b"never stored")),
                                                   (CS, CS, sha(self.data[:CS]))])
            self.assertEqual(chunk_size, CS)
            self.assertEqual(res, [-errno.ENOENT, 0])  # the second is stored: it links
            self.assertEqual(linked, 1)
            self.assertEqual(self.m.stats()["bytes_linked"] - st0["bytes_linked"], CS)
        finally:
            os.close(fd)

    def test_stored_chunks_link_and_read_back(self):
        d = self.new_version("linked")
        path = os.path.join(d, "copy.bin")
        st0 = self.m.stats()
        fd = open_w(path)
        try:
            linked, _cs, res = ioc_ref(fd, [(off, len(c), sha(c)) for off, c in chunks_of(self.data)])
            self.assertEqual(res, [0, 0, 0])
            self.assertEqual(linked, 3)
            self.assertEqual(os.fstat(fd).st_size, len(self.data))
            os.fsync(fd)
        finally:
            os.close(fd)
        st1 = self.m.stats()
        self.assertEqual(os.stat(path).st_size, len(self.data))
        self.assertEqual(h.read_file(path), self.data)
        self.assertEqual(st1["bytes_written"], st0["bytes_written"], "no byte went through write(2)")
        self.assertEqual(st1["bytes_linked"] - st0["bytes_linked"], len(self.data))
        self.assertEqual(st1["stored_bytes"], st0["stored_bytes"], "linking stores nothing new")
        self.assertEqual(os.getxattr(path, "user.pec.digest").decode(), extent_list_digest(self.data))
        # and the version seals with it, its bytes intact
        h.cli("seal", d, check=True)
        self.assertEqual(h.sha256_file(path), h.sha256_bytes(self.data))

    def test_mixed_links_and_writes_make_the_file(self):
        # what libpecgpu does: link what is held, write the rest; a new middle chunk
        d = self.new_version("mixed")
        mid = h.random_bytes(CS, 99)
        want = self.data[:CS] + mid + self.data[2 * CS:]
        path = os.path.join(d, "f")
        fd = open_w(path)
        try:
            _l, _c, res = ioc_ref(fd, [(off, len(c), sha(c)) for off, c in chunks_of(want)])
            self.assertEqual(res, [0, -errno.ENOENT, 0])
            os.pwrite(fd, mid, CS)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.assertEqual(h.read_file(path), want)

    def test_malformed_entries_are_einval(self):
        d = self.new_version("malformed")
        fd = open_w(os.path.join(d, "f"))
        try:
            c0 = sha(self.data[:CS])
            _l, _c, res = ioc_ref(fd, [(4096, CS, c0),        # offset not a multiple of the chunk size
                                       (0, 0, c0),            # empty
                                       (0, CS + 1, c0)])      # over the chunk size
            self.assertEqual(res, [-errno.EINVAL] * 3)
            self.assertEqual(os.fstat(fd).st_size, 0)
            # a short entry is the tail: refused while the file has bytes past that chunk
            _l, _c, res = ioc_ref(fd, [(0, CS, c0), (CS, CS, sha(self.data[CS:2 * CS])),
                                       (2 * CS, len(self.data) - 2 * CS, sha(self.data[2 * CS:]))])
            self.assertEqual(res, [0, 0, 0])
            _l, _c, res = ioc_ref(fd, [(0, 100, sha(self.data[:100]))])
            self.assertEqual(res, [-errno.EINVAL])
            # the whole call: a wrong abi, no entries, too many entries
            for kw in ({"abi": 2}, {"count": 0}, {"count": REF_MAX + 1}):
                with self.assertRaises(OSError) as cm:
                    ioc_ref(fd, [(0, CS, c0)], **kw)
                self.assertEqual(cm.exception.errno, errno.EINVAL, kw)
        finally:
            os.close(fd)

    def test_a_short_entry_ends_the_file(self):
        d = self.new_version("tail")
        tail = self.data[2 * CS:]
        path = os.path.join(d, "t")
        fd = open_w(path)
        try:
            # a file of one short chunk
            _l, _c, res = ioc_ref(fd, [(0, len(tail), sha(tail))])
            self.assertEqual(res, [0])
            self.assertEqual(os.fstat(fd).st_size, len(tail))
            # two whole chunks, then the tail in the second one's place: the file ends at the tail
            _l, _c, res = ioc_ref(fd, [(0, CS, sha(self.data[:CS])), (CS, CS, sha(self.data[CS:2 * CS]))])
            self.assertEqual(res, [0, 0])
            self.assertEqual(os.fstat(fd).st_size, 2 * CS)
            _l, _c, res = ioc_ref(fd, [(CS, len(tail), sha(tail))])
            self.assertEqual(res, [0])
            self.assertEqual(os.fstat(fd).st_size, CS + len(tail))
            os.fsync(fd)
        finally:
            os.close(fd)
        self.assertEqual(h.read_file(path), self.data[:CS] + tail)

    def test_sealed_version_is_erofs_for_the_whole_call(self):
        d = self.new_version("sealed")
        fd = open_w(os.path.join(d, "f"))
        try:
            os.write(fd, b"x")
            h.cli("seal", d, check=True)
            with self.assertRaises(OSError) as cm:
                ioc_ref(fd, [(0, CS, sha(self.data[:CS]))])
            self.assertEqual(cm.exception.errno, errno.EROFS)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        self.assertEqual(os.stat(os.path.join(d, "f")).st_size, 1)

    def test_outside_a_version_is_eperm(self):
        path = self.m.path("run", "notes.txt")  # a file of the run itself, not of a version
        fd = open_w(path)
        try:
            with self.assertRaises(OSError) as cm:
                ioc_ref(fd, [(0, CS, sha(self.data[:CS]))])
            self.assertEqual(cm.exception.errno, errno.EPERM)
        finally:
            os.close(fd)
        self.assertEqual(os.stat(path).st_size, 0)

    def test_read_only_handle_is_ebadf(self):
        fd = os.open(self.m.path("run", "v1", "src.bin"), os.O_RDONLY)
        try:
            with self.assertRaises(OSError) as cm:
                ioc_ref(fd, [(0, CS, sha(self.data[:CS]))])
            self.assertEqual(cm.exception.errno, errno.EBADF)
        finally:
            os.close(fd)


class RefWriteCrash(unittest.TestCase):
    def test_linked_and_fsynced_bytes_survive_kill9(self):
        with h.Mount(["--chunk-size", "1M"]) as m:
            data = h.random_bytes(3 * CS + 777, 5)
            os.makedirs(m.path("run", "v1"))
            os.makedirs(m.path("run", "v2"))
            h.write_file(m.path("run", "v1", "src"), data, fsync=True)
            h.cli("seal", m.path("run", "v1"), check=True)
            fd = open_w(m.path("run", "v2", "linked"))
            try:
                _l, _c, res = ioc_ref(fd, [(off, len(c), sha(c)) for off, c in chunks_of(data)])
                self.assertEqual(res, [0, 0, 0, 0])
                os.fsync(fd)
                m.kill9()
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            m.mount()
            self.assertEqual(os.stat(m.path("run", "v2", "linked")).st_size, len(data))
            self.assertEqual(h.read_file(m.path("run", "v2", "linked")), data)
            # the source version can go: the linked file holds its own references
            subprocess.run(["rm", "-r", m.path("run", "v1")], check=True)
            m.remount()
            self.assertEqual(h.read_file(m.path("run", "v2", "linked")), data)
            cp = m.fsck()
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)


if __name__ == "__main__":
    h.main()
