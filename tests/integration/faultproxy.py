# faultproxy.py - a fault-injecting TCP proxy for tests: listens on a free loopback port and forwards
# each connection to a target (the S3 server), injecting the faults the test sets at run time:
#   - resets: a fraction of requests get their connection reset (RST to both sides: SO_LINGER 0, then
#     close) after a random number of bytes, mid-body included;
#   - stalls: a fraction of requests stop being forwarded for a while (lost packets, retransmission
#     delays), and forced stalls of the next requests (longer than a client's low-speed timeout);
#   - a bandwidth cap shared by all connections;
# and counts what it injected (.counters()). A "request" is one exchange on a connection: the proxy
# sees a new one whenever the client sends again after the server answered (HTTP/1.1 without
# pipelining, as libcurl speaks it). Settings apply to exchanges that start after they are set.
# One thread accepts, one thread per connection forwards. close() stops everything and joins.
# Stdlib only.
import math
import random
import select
import socket
import struct
import threading
import time

UP, DOWN = 0, 1  # client -> server, server -> client


class Faults:
    """What the proxy injects. Probabilities are per exchange; byte ranges are (low, high) offsets into
    the exchange (request and answer bytes together), drawn log-uniformly so that every scale is as
    likely (the first bytes of a HEAD as much as deep into a chunk's body); seconds are (low, high)."""

    def __init__(self, reset_prob=0.0, reset_after=(0, 8 << 20), stall_prob=0.0, stall_after=(0, 8 << 20),
                 stall_seconds=(0.5, 2.0), bandwidth=0):
        self.reset_prob = reset_prob
        self.reset_after = reset_after
        self.stall_prob = stall_prob
        self.stall_after = stall_after
        self.stall_seconds = stall_seconds
        self.bandwidth = bandwidth  # bytes per second through the proxy, both directions; 0 unlimited


class FaultProxy:
    def __init__(self, target_port, target_host="127.0.0.1", seed=1):
        self.target = (target_host, target_port)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()  # protects everything below and the counters
        self._faults = Faults()
        # forced faults not yet handed out: (after_bytes, seconds, match, generation)
        self._forced = {"stall": [], "reset": []}
        self._gen = 0  # set_faults' count: forced faults of an older generation are dropped
        self._bw_next = 0.0
        self._conns = set()
        self._threads = []
        # abandoned: stalls during which the client gave up (closed its end), so its own timeout fired
        self._count = dict(connections=0, exchanges=0, resets=0, stalls=0, stalled_s=0.0, abandoned=0,
                           bytes_up=0, bytes_down=0, throttled_s=0.0)
        self._stop = threading.Event()
        self._listen = socket.socket()
        self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listen.bind(("127.0.0.1", 0))
        self._listen.listen(128)
        self._listen.settimeout(0.1)
        self.port = self._listen.getsockname()[1]
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy-accept", daemon=True)
        self._acceptor.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- settings, from the test ----

    def set_faults(self, **kw):
        """Replaces the fault settings (keywords of Faults) and drops forced faults not yet struck; no
        arguments turns every fault off."""
        f = Faults(**kw)
        with self._lock:
            self._faults = f
            self._gen += 1
            for q in self._forced.values():
                q.clear()

    def force_stall(self, seconds, after_bytes=0, count=1, match=None):
        """The next `count` exchanges that reach after_bytes stall there for `seconds`; with match (bytes),
        only exchanges whose request starts with it (b"HEAD "). An exchange takes one forced fault at
        most (stalls first); one that ends short of after_bytes hands it on."""
        with self._lock:
            self._forced["stall"].extend((after_bytes, seconds, match, self._gen) for _ in range(count))

    def force_reset(self, after_bytes=0, count=1, match=None):
        """The next `count` exchanges that reach after_bytes are reset there (match as for force_stall)."""
        with self._lock:
            self._forced["reset"].extend((after_bytes, 0.0, match, self._gen) for _ in range(count))

    def counters(self):
        with self._lock:
            c = dict(self._count)
            c["active"] = len(self._conns)
            c["forced_pending"] = len(self._forced["stall"]) + len(self._forced["reset"])
            return c

    def close(self):
        """Stops accepting, cuts every connection, and joins all threads."""
        self._stop.set()
        self._acceptor.join(5)
        self._listen.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.shutdown_both()
        for t in list(self._threads):
            t.join(5)

    # ---- the proxy ----

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self._listen.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                server = socket.create_connection(self.target, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            conn = _Conn(self, client, server)
            t = threading.Thread(target=conn.run, name="faultproxy-conn", daemon=True)
            with self._lock:
                self._count["connections"] += 1
                self._conns.add(conn)
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _draw(self, first):
        """The faults of a new exchange whose request starts with first: (reset_at, stall_at, stall_s,
        forced) with offsets in exchange bytes (None: no such fault) and forced the forced faults it
        took, {kind: (after_bytes, seconds, match, generation)}."""
        with self._lock:
            f, r = self._faults, self._rng
            self._count["exchanges"] += 1
            # One forced fault per exchange: a stall and a reset in one would leave the later unstruck
            # when the earlier cuts the exchange.
            forced = {}
            for kind, q in self._forced.items():
                for i, x in enumerate(q):
                    if x[2] is None or first.startswith(x[2]):
                        forced[kind] = q.pop(i)
                        break
                if forced:
                    break
            reset_at = _log_uniform(r, *f.reset_after) if r.random() < f.reset_prob else None
            stall_at, stall_s = None, 0.0
            if r.random() < f.stall_prob:
                stall_at, stall_s = _log_uniform(r, *f.stall_after), r.uniform(*f.stall_seconds)
            if "reset" in forced:
                reset_at = forced["reset"][0]
            if "stall" in forced:
                stall_at, stall_s = forced["stall"][:2]
            return reset_at, stall_at, stall_s, forced

    def _unused_forced(self, forced):
        """An exchange ended before its forced faults struck: hand them to the next exchanges."""
        with self._lock:
            for kind, f in forced.items():
                if f[3] == self._gen:
                    self._forced[kind].insert(0, f)

    def _throttle(self, n):
        with self._lock:
            bw = self._faults.bandwidth
            if not bw:
                return
            now = time.monotonic()
            start = max(now, self._bw_next)
            self._bw_next = start + n / bw
            self._count["throttled_s"] += start - now
        self._sleep(start - now)

    def _sleep(self, s):
        end = time.monotonic() + s
        while not self._stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.05))

    def _add(self, key, n):
        with self._lock:
            self._count[key] += n

    def _done(self, conn):
        with self._lock:
            self._conns.discard(conn)


def _log_uniform(rng, low, high):
    return min(high, int(math.exp(rng.uniform(math.log(low + 1), math.log(high + 1)))) - 1)


def _reset(sock):
    """Closes sock with an RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Conn:
    """One client connection and its server connection, forwarded by one thread.

    During a stall nothing is forwarded, but what the client sends is still read and held back (as a
    path that delays packets would), so that a client giving up is seen at once: its close arrives
    behind the held bytes instead of waiting in its own send buffer. Held bytes go on after the stall."""

    HOLD_MAX = 64 << 20

    def __init__(self, proxy, client, server):
        self.p = proxy
        self.sock = (client, server)
        self.last_dir = DOWN  # the first bytes from the client start an exchange
        self.xbytes = 0
        self.reset_at = self.stall_at = None
        self.forced = {}  # forced faults of this exchange that have not struck yet
        self.stall_s = 0.0
        self.held = []  # client bytes read during a stall, to forward next
        self.closed = False

    def shutdown_both(self):
        for s in self.sock:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _new_exchange(self, first):
        self.p._unused_forced(self.forced)
        self.xbytes = 0
        self.reset_at, self.stall_at, self.stall_s, self.forced = self.p._draw(first)

    def _idle(self):
        """Nothing moved for a while after a response: the exchange is over and the connection waits in
        the client's pool, maybe for good. Its forced faults go to the next exchanges of any connection."""
        if self.last_dir != DOWN or not self.forced:
            return
        if "stall" in self.forced:
            self.stall_at = None
        if "reset" in self.forced:
            self.reset_at = None
        self.p._unused_forced(self.forced)
        self.forced = {}

    def _stall(self, seconds):
        """Forwards nothing for `seconds`; False when the client gave up (closed) meanwhile."""
        client = self.sock[0]
        end = time.monotonic() + seconds
        held = sum(len(b) for b in self.held)
        while not self.p._stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return True
            if held >= self.HOLD_MAX:
                time.sleep(min(left, 0.05))
                continue
            ready, _, _ = select.select([client], [], [], min(left, 0.05))
            if ready:
                data = client.recv(65536)
                if not data:
                    return False
                self.held.append(data)
                held += len(data)
        return True

    def _forward(self, direction, data):
        """Sends data on, injecting the exchange's faults at their offsets; False once cut."""
        while data:
            end = self.xbytes + len(data)
            cut = len(data)
            for at in (self.stall_at, self.reset_at):
                if at is not None and self.xbytes <= at < end:
                    cut = min(cut, at - self.xbytes)
            if cut:
                self.p._throttle(cut)
                self.sock[1 - direction].sendall(data[:cut])
                self.p._add("bytes_up" if direction == UP else "bytes_down", cut)
                self.xbytes += cut
                data = data[cut:]
            if self.stall_at is not None and self.xbytes == self.stall_at:
                self.stall_at = None
                self.forced.pop("stall", None)
                self.p._add("stalls", 1)
                self.p._add("stalled_s", self.stall_s)
                if not self._stall(self.stall_s):
                    # The client timed out meanwhile: what it sent is lost, as on a dead path.
                    self.p._add("abandoned", 1)
                    return False
            if self.reset_at is not None and self.xbytes == self.reset_at:
                self.forced.pop("reset", None)
                self.p._add("resets", 1)
                return False
        return True

    def _next(self):
        """(direction, bytes) of the next data to forward; bytes b"" when a side closed, None on timeout."""
        if self.held:
            return UP, self.held.pop(0)
        client, server = self.sock
        ready, _, _ = select.select([client, server], [], [], 0.2)
        if not ready:
            return None
        s = ready[0]
        return (UP if s is client else DOWN), s.recv(65536)

    def run(self):
        client, server = self.sock
        try:
            while not self.p._stop.is_set():
                got = self._next()
                if got is None:
                    self._idle()
                    continue
                direction, data = got
                if not data:
                    return
                if direction == UP and self.last_dir == DOWN:
                    self._new_exchange(data)
                self.last_dir = direction
                if not self._forward(direction, data):
                    _reset(client)
                    _reset(server)
                    self.closed = True
                    return
        except OSError:
            pass
        finally:
            self.p._unused_forced(self.forced)
            if not self.closed:
                client.close()
                server.close()
            self.p._done(self)
