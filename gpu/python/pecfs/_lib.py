# _lib.py - finds and loads libpecgpu (gpu/pecgpu.h) with ctypes and declares its functions.
# Search order: $PECGPU_LIB; libpecgpu.so beside this file (where `cmake --install` puts it, see
# gpu/python/README.md); the build folders of the source tree this package lives in
# (<repo>/build/gpu, then <repo>/build-*/gpu). The library is loaded on first use, so importing pecfs
# (for load_file, plan, report_tokens) works without it.
import ctypes
import errno
import glob
import os
import threading

DIGEST_LEN = 32
HOST, CUDA = 0, 1  # enum pecgpu_where

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(_HERE)))  # gpu/python/pecfs -> repo


class Segment(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("len", ctypes.c_uint64), ("where", ctypes.c_int)]


class Ref(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint32), ("result", ctypes.c_int32),
                ("digest", ctypes.c_uint8 * DIGEST_LEN)]


class Options(ctypes.Structure):
    _fields_ = [("pool_bytes", ctypes.c_uint64), ("hash_threads", ctypes.c_uint),
                ("rank", ctypes.c_uint), ("world", ctypes.c_uint), ("owner_wait_ms", ctypes.c_uint)]


class SaveStats(ctypes.Structure):
    _fields_ = [("file_bytes", ctypes.c_uint64), ("chunks", ctypes.c_uint64),
                ("chunks_linked", ctypes.c_uint64), ("chunks_written", ctypes.c_uint64),
                ("chunks_owner_waits", ctypes.c_uint64), ("bytes_copied", ctypes.c_uint64),
                ("bytes_written", ctypes.c_uint64), ("digest_s", ctypes.c_double),
                ("copy_s", ctypes.c_double), ("write_s", ctypes.c_double), ("total_s", ctypes.c_double)]


def candidates():
    """The paths tried, in order (only existing files are tried after $PECGPU_LIB)."""
    env = os.environ.get("PECGPU_LIB")
    if env:
        return [env]  # an explicit choice is never second-guessed
    out = [os.path.join(_HERE, "libpecgpu.so")]
    out.append(os.path.join(_REPO, "build", "gpu", "libpecgpu.so"))
    out.extend(sorted(glob.glob(os.path.join(_REPO, "build-*", "gpu", "libpecgpu.so"))))
    return out


_lock = threading.Lock()
_lib = None


def _declare(lib):
    P = ctypes.POINTER
    vp = ctypes.c_void_p
    sigs = {
        "pecgpu_version": (ctypes.c_char_p, []),
        "pecgpu_cuda_available": (ctypes.c_int, []),
        "pecgpu_chunk_size": (ctypes.c_int, [ctypes.c_int, P(ctypes.c_uint32)]),
        "pecgpu_chunk_count": (ctypes.c_uint64, [ctypes.c_uint64, ctypes.c_uint32]),
        "pecgpu_digests": (ctypes.c_int, [P(Segment), ctypes.c_size_t, ctypes.c_uint32, ctypes.c_uint,
                                          vp]),
        "pecgpu_ref": (ctypes.c_long, [ctypes.c_int, P(Ref), ctypes.c_size_t]),
        "pecgpu_ctx_new": (ctypes.c_int, [P(Options), P(vp)]),
        "pecgpu_ctx_free": (None, [vp]),
        "pecgpu_save_start": (ctypes.c_int, [vp, ctypes.c_char_p, P(Segment), ctypes.c_size_t, P(vp)]),
        "pecgpu_save_wait_copied": (ctypes.c_int, [vp]),
        "pecgpu_save_wait_durable": (ctypes.c_int, [vp]),
        "pecgpu_save_stats": (None, [vp, P(SaveStats)]),
        "pecgpu_save_error": (ctypes.c_char_p, [vp]),
        "pecgpu_save_free": (None, [vp]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)  # AttributeError names a library that lacks part of the API
        fn.restype = res
        fn.argtypes = args


def lib():
    """The loaded library; OSError(ENOENT) naming every place tried when there is none."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for path in candidates():
            if not os.environ.get("PECGPU_LIB") and not os.path.isfile(path):
                tried.append(path)
                continue
            try:
                handle = ctypes.CDLL(path)
            except OSError as e:
                raise OSError(errno.ENOENT, "cannot load libpecgpu from %s: %s" % (path, e)) from None
            try:
                _declare(handle)
            except AttributeError as e:
                raise OSError(errno.ENOSYS, "%s is not a libpecgpu of this interface: %s" % (path, e)) \
                    from None
            _lib = handle
            return _lib
        raise OSError(errno.ENOENT, "libpecgpu not found (set PECGPU_LIB, or build it); tried: %s"
                      % ", ".join(tried))


def check(rc, what, path=None, message=None):
    """rc < 0 (a negative errno) -> OSError(errno, message or strerror, path); else rc."""
    if rc < 0:
        e = -rc
        text = "%s: %s" % (what, message) if message else "%s: %s" % (what, os.strerror(e))
        raise OSError(e, text, path)
    return rc


def version():
    return lib().pecgpu_version().decode(errors="replace")


def cuda_available():
    return bool(lib().pecgpu_cuda_available())


def chunk_size(fd):
    out = ctypes.c_uint32()
    check(lib().pecgpu_chunk_size(fd, ctypes.byref(out)), "pecgpu_chunk_size")
    return out.value
