# run.py - a trainer's side of a run's PEC files (policy/PEC.md): read RUN/.pec/plan (which experts
# the next version should save), write a token report to RUN/.pec/tokens, and say at a restart which
# version the trainer resumed from (RUN/.pec/resumed), so PLT lost to restarts is accounted.
# Everything read is validated as outside input.
import errno
import json
import operator
import os

from ._util import loads_strict


class TokenReportRejected(OSError, ValueError):
    """The daemon refused a token report (EINVAL at write or close): it changed nothing."""


class Plan:
    """RUN/.pec/plan. experts: {layer: [experts to save]}; experts_total: {layer: experts}; the
    scalars of the JSON as attributes (version_index, strategy, k, k_configured, dynamic_k,
    plt_budget, plt_spent, plt_projected or None); raw: the parsed JSON."""

    def __init__(self, raw):
        self.raw = raw
        for key in ("format", "version_index", "strategy", "k", "k_configured", "dynamic_k",
                    "plt_budget", "plt_spent", "plt_projected"):
            setattr(self, key, raw[key])
        self.experts = {l["layer"]: list(l["experts"]) for l in raw["layers"]}
        self.experts_total = {l["layer"]: l["experts_total"] for l in raw["layers"]}

    def saves(self, layer, expert):
        """True when the plan saves (layer, expert); a layer the plan does not know is saved whole."""
        return layer not in self.experts or expert in self.experts[layer]

    def __repr__(self):
        return "Plan(version_index=%d, k=%d, experts=%r)" % (self.version_index, self.k, self.experts)


def _is_int(v, lo=0, hi=1 << 53):
    return type(v) is int and lo <= v <= hi


def _is_num(v):
    return type(v) in (int, float)


def _check_plan(doc):
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    want = {"format": _is_int, "version_index": _is_int, "k": _is_int, "k_configured": _is_int,
            "strategy": lambda v: v in ("sequential", "load-aware"),
            "dynamic_k": lambda v: type(v) is bool, "plt_budget": _is_num, "plt_spent": _is_num,
            "plt_projected": lambda v: v is None or _is_num(v), "layers": lambda v: isinstance(v, list)}
    for key, ok in want.items():
        if key not in doc:
            raise ValueError("no %r" % key)
        if not ok(doc[key]):
            raise ValueError("%r has a wrong type or value: %r" % (key, doc[key]))
    if doc["format"] != 1:
        raise ValueError("format %r, this module reads format 1" % doc["format"])
    seen = set()
    for l in doc["layers"]:
        if not isinstance(l, dict):
            raise ValueError("a layer is not an object")
        for key in ("layer", "experts_total", "k"):
            if not _is_int(l.get(key), 0, 65536):
                raise ValueError("layer entry %r: bad %r" % (l, key))
        ex = l.get("experts")
        if not isinstance(ex, list) or not all(_is_int(e, 0, l["experts_total"] - 1) for e in ex) \
                or len(set(ex)) != len(ex):
            raise ValueError("layer %d: experts must be distinct numbers below experts_total" % l["layer"])
        if l["layer"] in seen:
            raise ValueError("layer %d listed twice" % l["layer"])
        seen.add(l["layer"])


def _pec_file(run_dir, name):
    return os.path.join(os.fspath(run_dir), ".pec", name)


def plan(run_dir):
    """The parsed and validated RUN/.pec/plan (a Plan). ValueError when it is malformed."""
    path = _pec_file(run_dir, "plan")
    with open(path, "rb") as f:
        raw = f.read(16 << 20)
    try:
        doc = loads_strict(raw)
        _check_plan(doc)
    except ValueError as e:
        raise ValueError("%s: %s" % (path, e)) from None
    return Plan(doc)


def _write_control(path, payload):
    """One open-write-close of a .pec control file; the daemon judges the content at close, so an
    OSError may come from either."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        off = 0
        while off < len(payload):
            off += os.write(fd, payload[off:])
    except OSError:
        os.close(fd)
        raise
    os.close(fd)


def _count(v, what):
    if isinstance(v, bool):
        raise TypeError("%s must be an integer, not a bool" % what)
    try:
        return operator.index(v)
    except TypeError:
        if hasattr(v, "item"):  # a 0-d tensor or numpy scalar
            return _count(v.item(), what)
        raise TypeError("%s must be an integer, not %s" % (what, type(v).__name__)) from None


def token_report(counts, top_k, tokens=None, step=None):
    """The report JSON (policy/PEC.md section 3) as a dict. counts: {layer: per-expert token counts
    (a sequence or a 1-d tensor)}; tokens: {layer: tokens the layer processed} (default: the
    counts' sum / top_k, rounded up)."""
    layers = []
    for layer in sorted(counts, key=lambda l: _count(l, "a layer number")):
        c = counts[layer]
        if hasattr(c, "tolist"):
            c = c.tolist()
        ex = [_count(x, "an expert count of layer %s" % layer) for x in c]
        top = _count(top_k, "top_k")
        if tokens is not None and layer in tokens:
            n = _count(tokens[layer], "tokens of layer %s" % layer)
        else:
            n = -(-sum(ex) // top) if top > 0 else 0
        layers.append({"layer": _count(layer, "a layer number"), "tokens": n, "experts": ex})
    doc = {"top_k": _count(top_k, "top_k")}
    if step is not None:
        doc["step"] = _count(step, "step")
    doc["layers"] = layers
    return doc


def report_tokens(run_dir, counts, top_k, tokens=None, step=None):
    """Writes a token report (token_report) to RUN/.pec/tokens. TokenReportRejected (an OSError with
    errno EINVAL, also a ValueError) when the daemon refuses it; reports add up until the next seal."""
    doc = token_report(counts, top_k, tokens, step)
    path = _pec_file(run_dir, "tokens")
    try:
        _write_control(path, json.dumps(doc).encode())
    except OSError as e:
        if e.errno == errno.EINVAL:
            raise TokenReportRejected(errno.EINVAL, "the daemon rejected the token report (malformed "
                                      "or out of range, policy/PEC.md section 3)", path) from None
        raise
    return doc


def resumed(run_dir, version):
    """Tells the daemon the trainer restarted from version (a sealed version of the run): the run's
    plt_spent grows by that version's PLT, which later plans budget against. FileNotFoundError when
    the daemon has no RUN/.pec/resumed, or (errno ENOENT, saying so) no version of that name;
    OSError EINVAL when the version is open or damaged."""
    if not isinstance(version, str) or not version or "/" in version or version in (".", ".."):
        raise ValueError("version must be a version directory's name, not %r" % (version,))
    path = _pec_file(run_dir, "resumed")
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)  # ENOENT here: a daemon without the file
    os.close(fd)
    try:
        _write_control(path, json.dumps({"version": version}).encode())
    except OSError as e:
        why = {errno.ENOENT: "the run has no sealed version %r" % version,
               errno.EINVAL: "the daemon refused the restart from %r (open or damaged)" % version}
        if e.errno in why:
            raise OSError(e.errno, why[e.errno], path) from None
        raise
