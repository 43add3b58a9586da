# _util.py - small helpers the modules share: strict JSON for outside input, and the close protocol
# of objects that hold a library handle.
import json


def _pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r" % k)
        d[k] = v
    return d


def _constant(name):
    raise ValueError("%s is not valid JSON" % name)


def loads_strict(raw, floats=True):
    """JSON text (bytes) -> value, refusing duplicate keys, NaN/Infinity and, unless floats, any
    fraction. ValueError with the reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError("not UTF-8: %s" % e) from None
    kw = {} if floats else {"parse_float": _constant}
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, **kw)
    except json.JSONDecodeError as e:
        raise ValueError("not valid JSON: %s" % e) from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


class Closing:
    """close() on leaving a with block and when collected; subclasses define close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        self.close()
