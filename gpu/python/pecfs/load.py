# load.py - reading a safetensors file into tensors, treating the file as hostile: the header is
# validated in full (st_format.parse_header) before anything is allocated, and each tensor is read
# with pread straight into its own storage.
import ctypes
import os
import struct

import torch

from .st_format import HEADER_MAX, TORCH_OF, _little_endian, parse_header


def _read_exact(fd, n, off, path):
    buf = bytearray(n)
    _pread_into(fd, memoryview(buf), off, path)
    return bytes(buf)


def _pread_into(fd, mv, off, path):
    done = 0
    while done < len(mv):
        got = os.preadv(fd, [mv[done:]], off + done)
        if got == 0:
            raise ValueError("%s: file ended while reading (it shrank?)" % path)
        done += got


def load_file(path, device="cpu"):
    """{name: tensor} of the safetensors file path, on device. ValueError for a malformed file."""
    _little_endian()
    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size < 8:
            raise ValueError("%s: %d bytes, shorter than the 8-byte header length" % (path, size))
        (n,) = struct.unpack("<Q", _read_exact(fd, 8, 0, path))
        if n > HEADER_MAX:
            raise ValueError("%s: header of %d bytes is over the limit of %d" % (path, n, HEADER_MAX))
        if n < 2 or 8 + n > size:
            raise ValueError("%s: header length %d does not fit a %d-byte file" % (path, n, size))
        try:
            entries, _meta = parse_header(_read_exact(fd, n, 8, path), size - 8 - n)
        except ValueError as e:
            raise ValueError("%s: %s" % (path, e)) from None
        for e in entries:
            if e.dtype not in TORCH_OF:
                raise ValueError("%s: tensor %r has dtype %s, which this torch (%s) lacks"
                                 % (path, e.name, e.dtype, torch.__version__))
        out = {}
        base = 8 + n
        for e in entries:
            t = torch.empty(e.shape, dtype=TORCH_OF[e.dtype])
            nbytes = e.end - e.begin
            if nbytes:
                window = (ctypes.c_uint8 * nbytes).from_address(t.data_ptr())
                _pread_into(fd, memoryview(window).cast("B"), base + e.begin, path)
            out[e.name] = t if str(device) == "cpu" else t.to(device)
        return out
    finally:
        os.close(fd)


def load_metadata(path):
    """The __metadata__ of the safetensors file path (None when absent), after full validation."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("%s: shorter than the 8-byte header length" % path)
        (n,) = struct.unpack("<Q", head)
        if n > HEADER_MAX or n < 2 or 8 + n > size:
            raise ValueError("%s: header length %d does not fit a %d-byte file" % (path, n, size))
        raw = f.read(n)
        if len(raw) != n:
            raise ValueError("%s: file ended inside the header" % path)
    try:
        return parse_header(raw, size - 8 - n)[1]
    except ValueError as e:
        raise ValueError("%s: %s" % (path, e)) from None
