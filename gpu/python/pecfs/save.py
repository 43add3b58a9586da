# save.py - saving a dict of tensors as a safetensors file through libpecgpu: the header is a host
# segment, each tensor's contiguous bytes a host or CUDA segment, so the library hashes each chunk,
# links the chunks the mount already holds (reference writes) and writes only the new ones.
# A Context mirrors struct pecgpu_options (rank/world for sharded saves among data-parallel ranks).
import ctypes
import os
import threading

import torch

from . import _lib
from ._util import Closing
from .st_format import build_header


class Context(Closing):
    """A libpecgpu context: staging memory, hashing threads and the sharding of saves.

    rank, world: this data-parallel rank among world ranks that save identical content; each chunk is
    stored by the rank its digest names and linked by the others (world 0 or 1: no sharding).
    pool_bytes: staging memory (pinned with CUDA), 0 = the library's default (256 MiB).
    hash_threads: host hashing threads, 0 = one per CPU. owner_wait_ms: how long a rank waits for a
    chunk's owner before writing the chunk itself, 0 = the library's default (60 s).
    Use as a context manager, or call close(); close waits for every save of the context."""

    def __init__(self, rank=0, world=1, pool_bytes=0, hash_threads=0, owner_wait_ms=0):
        if not (0 <= int(world) and (int(world) <= 1 or 0 <= int(rank) < int(world))):
            raise ValueError("rank %r is not in 0..world-1 (world %r)" % (rank, world))
        self.options = dict(rank=int(rank), world=int(world), pool_bytes=int(pool_bytes),
                            hash_threads=int(hash_threads), owner_wait_ms=int(owner_wait_ms))
        opt = _lib.Options(**{k: self.options[k] for k in
                              ("pool_bytes", "hash_threads", "rank", "world", "owner_wait_ms")})
        self._lib = _lib.lib()
        handle = ctypes.c_void_p()
        _lib.check(self._lib.pecgpu_ctx_new(ctypes.byref(opt), ctypes.byref(handle)), "pecgpu_ctx_new")
        self._handle = handle
        self._pid = os.getpid()

    def close(self):
        h, self._handle = getattr(self, "_handle", None), None
        # A forked child shares the parent's pointer but not its threads: only the creator frees.
        if h and self._pid == os.getpid():
            self._lib.pecgpu_ctx_free(h)

    def handle(self):
        if not self._handle:
            raise ValueError("the context is closed")
        if self._pid != os.getpid():
            raise RuntimeError("a pecfs.Context cannot be used in a forked child; make one there")
        return self._handle


_default = {}
_default_lock = threading.Lock()


def _context(ctx, options):
    if ctx is not None:
        if options:
            raise TypeError("pass either ctx or options (%s), not both" % ", ".join(sorted(options)))
        return ctx
    key = (os.getpid(), tuple(sorted(options.items())))
    with _default_lock:
        c = _default.get(key)
        if c is None:
            c = _default[key] = Context(**options)
        return c


class SaveHandle(Closing):
    """A save in progress (pecfs.save_async). wait_copied(): the tensors may be modified again.
    wait_durable(): the file is complete and fsynced. Both raise OSError with the save's errno and
    the library's message. stats(): the library's figures as a dict."""

    def __init__(self, ctx, path, header, items, device):
        self.path = path
        self._ctx = ctx  # keeps the context alive as long as the save
        self._lib = ctx._lib
        self._device = device
        keep = [header]
        segs = [(ctypes.cast(ctypes.c_char_p(header), ctypes.c_void_p).value, len(header), _lib.HOST)]
        for _name, t in items:
            c = t.detach().contiguous()
            n = c.numel() * c.element_size()
            if n == 0:
                continue
            keep.append(c)
            segs.append((c.data_ptr(), n, _lib.CUDA if c.is_cuda else _lib.HOST))
        arr = (_lib.Segment * len(segs))()
        for i, (ptr, n, where) in enumerate(segs):
            arr[i].ptr, arr[i].len, arr[i].where = ptr, n, where
        self._keep = keep  # every buffer the segments point into, until the library is done with them
        self._segs = arr
        if device is not None:
            torch.cuda.synchronize(device)  # the bytes must be final before the library reads them
        handle = ctypes.c_void_p()
        ctxh = ctx.handle()
        if device is not None:
            with torch.cuda.device(device):
                rc = self._lib.pecgpu_save_start(ctxh, os.fsencode(path), arr, len(segs),
                                                 ctypes.byref(handle))
        else:
            rc = self._lib.pecgpu_save_start(ctxh, os.fsencode(path), arr, len(segs), ctypes.byref(handle))
        self._handle = handle if rc == 0 else None
        if rc < 0:
            self._keep = self._segs = None
            _lib.check(rc, "save", path, self._message())
        self._copied = self._durable = None  # the result of each wait, once known

    def _message(self):
        if not getattr(self, "_handle", None):
            return None
        m = self._lib.pecgpu_save_error(self._handle)
        return m.decode(errors="replace") if m else None

    def _wait(self, fn):
        if not self._handle:
            raise ValueError("the save of %s is closed" % self.path)
        rc = fn(self._handle)
        return rc, (self._message() if rc < 0 else None)

    def wait_copied(self):
        if self._copied is None:
            self._copied = self._wait(self._lib.pecgpu_save_wait_copied)
            self._keep = self._segs = None  # the library keeps no pointer past this point
        _lib.check(self._copied[0], "save", self.path, self._copied[1])

    def wait_durable(self):
        self.wait_copied()
        if self._durable is None:
            self._durable = self._wait(self._lib.pecgpu_save_wait_durable)
        _lib.check(self._durable[0], "save", self.path, self._durable[1])

    def error(self):
        """The library's message ('' while nothing failed)."""
        return self._message() or ""

    def stats(self):
        if not self._handle:
            raise ValueError("the save of %s is closed" % self.path)
        st = _lib.SaveStats()
        self._lib.pecgpu_save_stats(self._handle, ctypes.byref(st))
        return {name: getattr(st, name) for name, _t in _lib.SaveStats._fields_}

    def close(self):
        """Waits until the save is durable (ignoring its error: call wait_durable for it), then frees."""
        h, self._handle = getattr(self, "_handle", None), None
        if h:
            self._lib.pecgpu_save_free(h)
        self._keep = self._segs = None


def _cuda_device(tensors):
    devs = {t.device for t in tensors.values() if isinstance(t, torch.Tensor) and t.is_cuda}
    if len(devs) > 1:
        raise ValueError("tensors on several CUDA devices (%s): save each device's tensors separately"
                         % ", ".join(sorted(map(str, devs))))
    return devs.pop() if devs else None


def save_async(tensors, path, metadata=None, ctx=None, **options):
    """Starts saving tensors (dict str -> torch.Tensor, CPU or CUDA) as the safetensors file path and
    returns a SaveHandle. The tensors must not be modified before handle.wait_copied() returns.
    ctx: a Context, or options (rank, world, pool_bytes, hash_threads, owner_wait_ms) for one kept
    per process and set of options."""
    path = os.fspath(path)
    header, items = build_header(tensors, metadata)
    return SaveHandle(_context(ctx, options), path, header, items, _cuda_device(tensors))


def save_file(tensors, path, metadata=None, ctx=None, **options):
    """Saves tensors as the safetensors file path and returns once it is durable (fsynced). Returns
    the save's stats (dict). OSError with the errno and the library's message on failure."""
    with save_async(tensors, path, metadata, ctx, **options) as h:
        h.wait_durable()
        return h.stats()
