# st_format.py - the safetensors format: building a header for a dict of tensors, and parsing one
# from a file strictly (the file may be hostile: every offset, size, name and type is checked before
# anything is allocated or read). Layout: 8 bytes N (little-endian u64), N bytes of JSON padded with
# spaces so that the data section starts at a multiple of 8, then the tensors' bytes back to back.
# The JSON is compact; "__metadata__" (string to string, keys sorted) comes first, then the tensors
# in data order, each {"dtype", "shape", "data_offsets": [begin, end]}. Data order is the reference
# writer's: element size descending, then dtype, then name, so every tensor starts aligned to its
# element size.
import json
import struct
import sys

import torch

from ._util import loads_strict

HEADER_MAX = 100_000_000  # the reference loader's limit on N
DIMS_MAX = 64

# safetensors dtype name -> (element bytes, torch dtype attribute name or None when torch lacks it)
DTYPES = {
    "BOOL": (1, "bool"), "U8": (1, "uint8"), "I8": (1, "int8"),
    "F8_E5M2": (1, "float8_e5m2"), "F8_E4M3": (1, "float8_e4m3fn"), "F8_E8M0": (1, "float8_e8m0fnu"),
    "I16": (2, "int16"), "U16": (2, "uint16"), "F16": (2, "float16"), "BF16": (2, "bfloat16"),
    "I32": (4, "int32"), "U32": (4, "uint32"), "F32": (4, "float32"),
    "I64": (8, "int64"), "U64": (8, "uint64"), "F64": (8, "float64"), "C64": (8, "complex64"),
}
# The reference implementation's dtype order (its enum), used as the tie-break among equal sizes.
_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16", "BF16", "I32",
          "U32", "F32", "F64", "I64", "U64", "C64"]


def _torch_dtypes():
    out = {}
    for name, (_size, attr) in DTYPES.items():
        dt = getattr(torch, attr, None)
        if isinstance(dt, torch.dtype):
            out[name] = dt
    return out


TORCH_OF = _torch_dtypes()
NAME_OF = {dt: name for name, dt in TORCH_OF.items()}


def _little_endian():
    if sys.byteorder != "little":
        raise OSError("safetensors data is little-endian; this host is not")


def dtype_name(t):
    try:
        return NAME_OF[t.dtype]
    except KeyError:
        raise ValueError("dtype %s has no safetensors name" % t.dtype) from None


def build_header(tensors, metadata=None):
    """(header bytes including the 8-byte length, [(name, tensor), ...] in data order). tensors maps
    str -> torch.Tensor; metadata maps str -> str or is None."""
    _little_endian()
    if not isinstance(tensors, dict):
        raise TypeError("tensors must be a dict of name -> torch.Tensor")
    items = []
    for name, t in tensors.items():
        if not isinstance(name, str) or not name:
            raise ValueError("tensor names must be non-empty strings: %r" % (name,))
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved and cannot name a tensor")
        if not isinstance(t, torch.Tensor):
            raise TypeError("%s: not a torch.Tensor but %s" % (name, type(t).__name__))
        if t.layout != torch.strided:
            raise ValueError("%s: only dense (strided) tensors can be saved, not %s" % (name, t.layout))
        items.append((name, t))
    items.sort(key=lambda it: (-DTYPES[dtype_name(it[1])][0], -_ORDER.index(dtype_name(it[1])), it[0]))
    head = {}
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in metadata.items()):
            raise TypeError("metadata must be a dict of str -> str")
        head["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    off = 0
    for name, t in items:
        n = t.numel() * t.element_size()
        head[name] = {"dtype": dtype_name(t), "shape": list(t.shape), "data_offsets": [off, off + n]}
        off += n
    js = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode()
    js += b" " * (-len(js) % 8)
    return struct.pack("<Q", len(js)) + js, items


class Entry:
    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name, dtype, shape, begin, end):
        self.name, self.dtype, self.shape, self.begin, self.end = name, dtype, shape, begin, end


def _nonneg_int(v):
    return type(v) is int and v >= 0


def parse_header(raw, data_len):
    """Parses the JSON header bytes raw of a file whose data section holds data_len bytes.
    Returns ([Entry in data order], metadata dict or None); ValueError naming what is wrong."""
    if not raw.startswith(b"{"):
        raise ValueError("header does not start with '{'")
    try:
        doc = loads_strict(raw, floats=False)
    except ValueError as e:
        raise ValueError("header: %s" % e) from None
    if not isinstance(doc, dict):
        raise ValueError("header is not a JSON object")
    metadata = doc.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and
                                     all(isinstance(v, str) for v in metadata.values())):
        raise ValueError("__metadata__ is not an object of strings")
    entries = []
    for name, info in doc.items():
        if not isinstance(info, dict):
            raise ValueError("tensor %r: entry is not an object" % name)
        for key in ("dtype", "shape", "data_offsets"):
            if key not in info:
                raise ValueError("tensor %r: no %s" % (name, key))
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dt, str) or dt not in DTYPES:
            raise ValueError("tensor %r: unknown dtype %r" % (name, dt))
        if not isinstance(shape, list) or len(shape) > DIMS_MAX or not all(map(_nonneg_int, shape)):
            raise ValueError("tensor %r: shape must be at most %d non-negative integers" % (name, DIMS_MAX))
        if not (isinstance(offs, list) and len(offs) == 2 and all(map(_nonneg_int, offs))
                and offs[0] <= offs[1]):
            raise ValueError("tensor %r: data_offsets must be [begin, end] with 0 <= begin <= end" % name)
        numel = 1
        for d in shape:
            numel *= d  # Python integers: no overflow; compared with the section below
        if numel * DTYPES[dt][0] != offs[1] - offs[0]:
            raise ValueError("tensor %r: %d bytes for %s %s" % (name, offs[1] - offs[0], dt, shape))
        if offs[1] > data_len:
            raise ValueError("tensor %r: data_offsets past the data section (%d bytes)" % (name, data_len))
        entries.append(Entry(name, dt, shape, offs[0], offs[1]))
    entries.sort(key=lambda e: (e.begin, e.end))
    pos = 0
    for e in entries:
        if e.begin != pos:
            raise ValueError("tensor %r: %s at data offset %d, expected %d" %
                             (e.name, "overlaps the previous tensor" if e.begin < pos else "gap before it",
                              e.begin, pos))
        pos = e.end
    if pos != data_len:
        raise ValueError("%d trailing bytes after the last tensor" % (data_len - pos))
    return entries, metadata
