#!/usr/bin/env python3
# bench_core.py - pecfs against its baselines, measured in the same run (medians of --reps runs):
# (1) sequential write of unique data + cold sequential read on raw disk, a direct-I/O passthrough FUSE
# filesystem, and pecfs; (2) 8 concurrent writers of one byte-identical file: wall time vs raw, stored
# bytes, ratio to one writer; (3) small files created, stat'ed and removed; (4) peak daemon RSS;
# (5) concurrent small-file fsyncs; (6) metadata at scale: 100k files in one directory (and, with
# --big-dir, 1M), pecfs's control files and seal at that size; (7) cold reads with 128 KiB requests
# and by 8 concurrent readers; (8) 1, 2, 4 and 8 concurrent writers of unique data, and pecfs's hash
# threads. Beside each throughput: the CPU seconds the whole machine spent per GiB (/proc/stat).
# In (1), (6), (7) and (8) every rep measures each target once, the order reversed or rotated each rep.
# Not pass/fail. Needs root (drop_caches, mounts). Python stdlib only. Use tests/bench/run.sh.
import argparse
import mmap
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1 << 20
BLOCK = MiB

# Writes unique data: a random base, each 1 MiB block stamped with (tag, block index) at every 64 KiB,
# so no 4 MiB-aligned chunk (nor any 64 KiB piece of one) ever repeats across blocks, files or tags.
WRITER_SRC = r"""
import mmap, os, random, struct, sys
def write_unique(path, size, tag, fsync=True):
    base = mmap.mmap(-1, 8 << 20)
    base.write(random.Random(1).randbytes(8 << 20))
    buf = mmap.mmap(-1, 1 << 20)  # page-aligned: unaligned buffers split FUSE direct-I/O writes
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for i in range(size >> 20):
            src = (i * 4096 * 7) % (7 << 20)
            buf[:] = base[src:src + (1 << 20)]
            for k in range(0, 1 << 20, 65536):
                struct.pack_into("<QQ", buf, k, tag, i * 16 + k // 65536)
            n = os.write(fd, buf)
            assert n == 1 << 20
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
if __name__ == "__main__":
    write_unique(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
"""
_ns = {}
exec(compile(WRITER_SRC.replace('if __name__ == "__main__"', "if False"), "writer", "exec"), _ns)
write_unique = _ns["write_unique"]


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def read_all(path, block=BLOCK):
    buf = mmap.mmap(-1, block)
    total = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            n = os.readv(fd, [buf])
            if n == 0:
                break
            total += n
    finally:
        os.close(fd)
    return total


def du(path):
    total = 0
    for root, _d, files in os.walk(path):
        for n in files:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except FileNotFoundError:
                pass
    return total


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


class Target:
    """Where a benchmark writes: .root is a directory to create files in."""

    def __init__(self, name, root):
        self.name, self.root = name, root

    def workdir(self, label):
        d = os.path.join(self.root, label)
        os.makedirs(d, exist_ok=True)
        return d

    def cleanup_between(self):
        pass

    def close(self):
        pass


class Raw(Target):
    pass


class Passthrough(Target):
    def __init__(self, binary, base):
        self.src = os.path.join(base, "pt-src")
        mnt = os.path.join(base, "pt-mnt")
        os.makedirs(self.src)
        os.makedirs(mnt)
        subprocess.run([binary, self.src, mnt], check=True)
        super().__init__("passthrough", mnt)

    def close(self):
        subprocess.run(["fusermount3", "-u", self.root], check=False)


class Pecfs(Target):
    def __init__(self, binary, base, options, name="pecfs"):
        self.bin = binary
        self.data = os.path.join(base, name + "-data")
        mnt = os.path.join(base, name + "-mnt")
        os.makedirs(self.data)
        os.makedirs(mnt)
        subprocess.run([binary, "mount"] + options + [self.data, mnt], check=True)
        super().__init__(name, mnt)

    def workdir(self, label):
        # a run directory with one version per benchmark step
        d = os.path.join(self.root, "bench", label)
        os.makedirs(d, exist_ok=True)
        return d

    def pid(self):
        with open(os.path.join(self.data, "LOCK")) as f:
            return int(f.read().split()[0])

    def vm_hwm_kib(self):
        with open("/proc/%d/status" % self.pid()) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stored(self):
        return du(os.path.join(self.data, "chunks"))

    def cleanup_between(self):
        subprocess.run([self.bin, "gc", self.data], check=True, capture_output=True)

    def close(self):
        subprocess.run([self.bin, "umount", self.root], check=False)


def median(xs):
    return statistics.median(xs)


def fmt_ratio(a, b):
    return "%.2fx" % (a / b) if b else "n/a"


CLK_TCK = os.sysconf("SC_CLK_TCK")
GiB = 1 << 30


def cpu_busy_s():
    """CPU seconds the machine has spent busy so far, every process and kernel thread together (not
    idle, I/O wait or steal): a step's cost, whether the application, a FUSE daemon or the kernel's
    flusher threads do its work."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / CLK_TCK


def metered(fn):
    """(wall seconds, busy CPU seconds of the machine, fn's result)."""
    c0, t0 = cpu_busy_s(), time.monotonic()
    out = fn()
    return time.monotonic() - t0, cpu_busy_s() - c0, out


def cpu_per_gib(cpu_s, nbytes):
    return cpu_s / (nbytes / GiB)


def interleaved(targets, reps):
    """(rep, target) pairs in the order to measure them: each target once per rep, every other rep in
    reverse, and the order rotated every two reps. Measured one target after the other, whichever came
    later won by up to 20 % (the page cache, writeback and the disk's own cache drift through a run);
    this way each target comes before and after each other one, and takes every place in turn."""
    for r in range(reps):
        k = (r // 2) % len(targets)
        order = targets[k:] + targets[:k]
        for t in (order[::-1] if r % 2 else order):
            yield r, t


def bench_sequential(targets, size, reps, log):
    """{name: (write MiB/s, read MiB/s, write CPU s/GiB, read CPU s/GiB)} (medians), peak daemon RSS."""
    per = {t.name: ([], [], [], []) for t in targets}
    hwm = None
    for r, t in interleaved(targets, reps):
        wr, rd, wc, rc = per[t.name]
        d = t.workdir("seq%d" % r)
        p = os.path.join(d, "data.bin")
        drop_caches()
        wall, cpu, _ = metered(lambda: write_unique(p, size, tag=1000 + r))
        wr.append(size / MiB / wall)
        wc.append(cpu_per_gib(cpu, size))
        drop_caches()
        wall, cpu, n = metered(lambda: read_all(p))
        rd.append(size / MiB / wall)
        rc.append(cpu_per_gib(cpu, size))
        if n != size:
            raise RuntimeError("%s: read %d of %d bytes" % (t.name, n, size))
        if isinstance(t, Pecfs):
            hwm = max(hwm or 0, t.vm_hwm_kib())
        shutil.rmtree(d)
        t.cleanup_between()
        log("  %-12s rep %d: write %7.0f MiB/s (%.2f CPU s/GiB), cold read %7.0f MiB/s (%.2f CPU s/GiB)"
            % (t.name, r + 1, wr[-1], wc[-1], rd[-1], rc[-1]))
    return {name: tuple(median(x) for x in lists) for name, lists in per.items()}, hwm


def run_writer_procs(jobs):
    """Runs one writer process per (path, size, tag) at once; returns when all are done."""
    procs = [subprocess.Popen([sys.executable, "-c", WRITER_SRC, p, str(size), str(tag)]) for p, size, tag in jobs]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("writer failed")


def run_writers(dirs, size, tag):
    t0 = time.monotonic()
    run_writer_procs([(os.path.join(d, "model.bin"), size, tag) for d in dirs])
    return time.monotonic() - t0


def bench_writer_scaling(targets, total, counts, reps, log):
    """[8] n concurrent writers, each of its own file of total/n unique bytes with an fsync at its end:
    {name: {n: (aggregate MiB/s, CPU s/GiB)}} (medians)."""
    res = {t.name: {} for t in targets}
    for n in counts:
        per = total // n // MiB * MiB
        rates = {t.name: [] for t in targets}
        cpus = {t.name: [] for t in targets}
        for r, t in interleaved(targets, reps):
            d = t.workdir("wr%d-%d" % (n, r))
            base_tag = 10000 + 1000 * r + 100 * n  # every writer's data differs from every other's
            jobs = [(os.path.join(d, "w%d.bin" % k), per, base_tag + k) for k in range(n)]
            drop_caches()
            wall, cpu, _ = metered(lambda: run_writer_procs(jobs))
            rates[t.name].append(n * per / MiB / wall)
            cpus[t.name].append(cpu_per_gib(cpu, n * per))
            shutil.rmtree(d)
            t.cleanup_between()
        for t in targets:
            res[t.name][n] = (median(rates[t.name]), median(cpus[t.name]))
            log("  %-16s %d writer%s %7.0f MiB/s (%.2f CPU s/GiB)   reps: %s"
                % (t.name, n, "s" if n > 1 else " ", res[t.name][n][0], res[t.name][n][1],
                   " ".join("%.0f" % x for x in rates[t.name])))
    return res


def bench_replicas(raw, pec, size, writers, reps, log):
    """Medians: raw wall s, pecfs wall s, pecfs one-writer wall s, and the machine's CPU seconds per
    logical GiB written by raw and by pecfs; the most pecfs stored for the replicas."""
    raw_t, pec_t, one_t, stored, raw_c, pec_c = [], [], [], [], [], []
    logical = size * writers
    for r in range(reps):
        tag = 2000 + r
        dirs = [raw.workdir("rep%d/rank%d" % (r, i)) for i in range(writers)]
        drop_caches()
        wall, cpu, _ = metered(lambda: run_writers(dirs, size, tag))
        raw_t.append(wall)
        raw_c.append(cpu_per_gib(cpu, logical))
        shutil.rmtree(raw.workdir("rep%d" % r))

        before = pec.stored()
        dirs = [pec.workdir("rep%d-rank%d" % (r, i)) for i in range(writers)]
        drop_caches()
        wall, cpu, _ = metered(lambda: run_writers(dirs, size, tag))
        pec_t.append(wall)
        pec_c.append(cpu_per_gib(cpu, logical))
        stored.append(pec.stored() - before)
        for d in dirs:
            shutil.rmtree(d)
        pec.cleanup_between()

        d = pec.workdir("rep%d-single" % r)
        drop_caches()
        one_t.append(run_writers([d], size, tag + 100))
        shutil.rmtree(d)
        pec.cleanup_between()
        log("  rep %d: raw %d copies %.2f s (%.2f CPU s/GiB), pecfs %d writers %.2f s (%.2f CPU s/GiB, stored "
            "%.1f MiB), pecfs 1 writer %.2f s" % (r + 1, writers, raw_t[-1], raw_c[-1], writers, pec_t[-1],
                                                 pec_c[-1], stored[-1] / MiB, one_t[-1]))
    return median(raw_t), median(pec_t), median(one_t), max(stored), median(raw_c), median(pec_c)


def bench_small_files(t, count, reps):
    rates = {"create": [], "stat": [], "remove": []}
    payload = b"x" * 4096
    for r in range(reps):
        d = t.workdir("small%d" % r)
        names = [os.path.join(d, "f%05d" % i) for i in range(count)]
        t0 = time.monotonic()
        for n in names:
            fd = os.open(n, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, payload)
            os.close(fd)
        t1 = time.monotonic()
        for n in names:
            os.stat(n)
        t2 = time.monotonic()
        for n in names:
            os.unlink(n)
        t3 = time.monotonic()
        os.rmdir(d)
        t.cleanup_between()
        rates["create"].append(count / (t1 - t0))
        rates["stat"].append(count / (t2 - t1))
        rates["remove"].append(count / (t3 - t2))
    return {k: median(v) for k, v in rates.items()}


def bench_fsync_threads(t, threads, per_thread, reps):
    """threads at once, each creating per_thread files of 64 KiB with an fsync each (a checkpoint's
    many small shards, each unique): files/s. A sync that holds a mount-wide lock serializes them all."""
    base = os.urandom(64 << 10)
    rates = []
    for r in range(reps):
        d = t.workdir("fsync%d" % r)

        def worker(k):
            for i in range(per_thread):
                fd = os.open(os.path.join(d, "t%02d-%04d" % (k, i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, b"%04d %02d %06d " % (r, k, i) + base[16:])
                os.fsync(fd)
                os.close(fd)
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        t0 = time.monotonic()
        for th in ts:
            th.start()
        for th in ts:
            th.join()
        rates.append(threads * per_thread / (time.monotonic() - t0))
        shutil.rmtree(d)
        t.cleanup_between()
    return median(rates)


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


# The passthrough holds an O_PATH descriptor for every inode the kernel has cached, and this machine's
# hard limit on open files is 20,000: every META_BATCH operations the clock stops and the kernel's
# dentries and inodes are dropped (every target alike), which sends the forgets that release them.
META_BATCH = 8000


class PausingClock:
    def __init__(self):
        self.total, self.t0 = 0.0, None

    def start(self):
        self.t0 = time.monotonic()

    def stop(self):
        self.total += time.monotonic() - self.t0

    def tick(self, i):
        if i and i % META_BATCH == 0:
            self.stop()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("2\n")
            self.start()


def meta_phases(d, count, between=None):
    """One directory of count files of 100 bytes: create, stat (after the entries' 1 s cache expired),
    list the names, list with a stat of each (ls -l), remove. ops/s per phase. between(phase) runs
    after each phase, outside the timing."""
    names = [os.path.join(d, "f%07d" % i) for i in range(count)]
    payload = b"y" * 100
    rates = {}

    def create(clk):
        for i, n in enumerate(names):
            clk.tick(i)
            fd = os.open(n, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, payload)
            os.close(fd)

    def stat(clk):
        for i, n in enumerate(names):
            clk.tick(i)
            os.stat(n)

    def listdir(clk):
        if len(os.listdir(d)) != count:
            raise RuntimeError("%s: listing lost entries" % d)

    def ls_l(clk):
        k = 0
        with os.scandir(d) as it:
            for e in it:
                clk.tick(k)
                e.stat(follow_symlinks=False)
                k += 1
        if k != count:
            raise RuntimeError("%s: listing lost entries" % d)

    def remove(clk):
        for i, n in enumerate(names):
            clk.tick(i)
            os.unlink(n)

    for phase, fn in (("create", create), ("stat", stat), ("readdir", listdir), ("ls -l", ls_l), ("unlink", remove)):
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")  # every phase starts with no cached entry
        if phase == "unlink" and between:
            between("before unlink")
        clk = PausingClock()
        clk.start()
        fn(clk)
        clk.stop()
        rates[phase] = count / clk.total
        if between and phase != "unlink":
            between(phase)
    return rates


def pec_ctl_ms(path, reps=5):
    """Median milliseconds to read a control file."""
    ts = []
    for _ in range(reps):
        secs, _ = timed(lambda: open(path, "rb").read())
        ts.append(secs * 1000)
    return median(ts)


def seal_beside_neighbours(pec, d):
    """Seals version d with `pecfs seal` while one thread writes 1 MiB at a time to a file of
    another version and one creates files there, each every 5 ms (paced, so that the seal does not
    compete with them for the two cores): (seal seconds, the longest write and the longest create
    that overlapped the seal, in ms). What a seal holds besides its own version."""
    other = os.path.join(pec.root, "bench-next", "step-1")
    os.makedirs(other)
    block = mmap.mmap(-1, 1 << 20)
    block.write(os.urandom(1 << 20))
    span, done = {}, threading.Event()
    writes, creates = [], []

    def writer():
        fd = os.open(os.path.join(other, "w.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while not done.is_set():
                t = time.monotonic()
                os.pwrite(fd, block, len(writes) * len(block))
                writes.append((t, time.monotonic()))
                time.sleep(0.005)
        finally:
            os.close(fd)

    def creator():
        while not done.is_set():
            t = time.monotonic()
            os.close(os.open(os.path.join(other, "c%07d" % len(creates)), os.O_WRONLY | os.O_CREAT, 0o644))
            creates.append((t, time.monotonic()))
            time.sleep(0.005)

    threads = [threading.Thread(target=writer), threading.Thread(target=creator)]
    for th in threads:
        th.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    subprocess.run([pec.bin, "seal", d], check=True, capture_output=True)
    t1 = time.monotonic()
    time.sleep(0.05)
    done.set()
    for th in threads:
        th.join()

    def longest(ops):
        return max([b - a for a, b in ops if b >= t0 and a <= t1] or [0.0]) * 1000

    shutil.rmtree(os.path.dirname(other))
    return t1 - t0, longest(writes), longest(creates)


def bench_meta_scale(targets, pec, count, reps, log):
    """[6] count files in one directory (for pecfs: one open version) on each target, then pecfs alone:
    its control files while that version is open, the seal of a version of count files, and daemon
    memory per 100k files."""
    rss = {}
    per = {t.name: {} for t in targets}
    for r, t in interleaved(targets, reps):
        d = t.workdir("meta%d" % r)
        between = None
        if t is pec:
            run = os.path.dirname(d)

            def between(phase, run=run):
                if phase == "ls -l":
                    rss["stats_ms"] = pec_ctl_ms(os.path.join(pec.root, ".pec", "stats"))
                    rss["versions_open_ms"] = pec_ctl_ms(os.path.join(run, ".pec", "versions"))
                    secs, _ = timed(lambda: subprocess.run([pec.bin, "status", pec.root], check=True,
                                                           capture_output=True))
                    rss["status_open_ms"] = secs * 1000
        rates = meta_phases(d, count, between)
        os.rmdir(d)
        t.cleanup_between()
        for k, v in rates.items():
            per[t.name].setdefault(k, []).append(v)
        log("  %-12s rep %d: %s" % (t.name, r + 1, "   ".join("%s %.0f" % (k, v) for k, v in rates.items())))
    res = {name: {k: median(v) for k, v in phases.items()} for name, phases in per.items()}
    # a version of count files, sealed; the kernel keeps every entry cached (no drops), as it would
    d = pec.workdir("meta-seal")
    payload = b"z" * 100
    before = vm_rss_kib(pec.pid())
    for i in range(count):
        with open(os.path.join(d, "f%07d" % i), "wb") as f:
            f.write(payload)
    rss["create"] = vm_rss_kib(pec.pid()) - before
    subprocess.run(["ls", "-l", d], check=True, stdout=subprocess.DEVNULL)
    rss["ls -l"] = vm_rss_kib(pec.pid()) - before
    secs, rss["write_wait_ms"], rss["create_wait_ms"] = seal_beside_neighbours(pec, d)
    rss["seal_s"] = secs
    rss["seal"] = vm_rss_kib(pec.pid()) - before
    run = os.path.dirname(d)
    rss["versions_sealed_ms"] = pec_ctl_ms(os.path.join(run, ".pec", "versions"))
    secs, _ = timed(lambda: subprocess.run([pec.bin, "status", pec.root], check=True, capture_output=True))
    rss["status_sealed_ms"] = secs * 1000
    return res, rss


def bench_readers(targets, size, readers, reps, log):
    """[7] cold reads of files written and (pecfs) sealed first: one reader with 128 KiB reads, and
    `readers` threads each reading its own file of size/readers (data-parallel ranks loading)."""
    per = {t.name: ([], [], [], []) for t in targets}
    for r, t in interleaved(targets, reps):
        small, many, small_c, many_c = per[t.name]
        d = t.workdir("rd%d" % r)
        one = os.path.join(d, "one.bin")
        write_unique(one, size, tag=3000 + r)
        part = size // readers // MiB * MiB
        files = [os.path.join(d, "rank%d.bin" % k) for k in range(readers)]
        for k, f in enumerate(files):
            write_unique(f, part, tag=4000 + 100 * r + k)
        if isinstance(t, Pecfs):
            subprocess.run([t.bin, "seal", d], check=True, capture_output=True)
        drop_caches()
        wall, cpu, n = metered(lambda: read_all(one, 128 << 10))
        if n != size:
            raise RuntimeError("%s: short read" % t.name)
        small.append(size / MiB / wall)
        small_c.append(cpu_per_gib(cpu, size))
        drop_caches()
        got = [0] * readers

        def reader(k):
            got[k] = read_all(files[k])
        ths = [threading.Thread(target=reader, args=(k,)) for k in range(readers)]

        def run_all():
            for th in ths:
                th.start()
            for th in ths:
                th.join()
        wall, cpu, _ = metered(run_all)
        many.append(readers * part / MiB / wall)
        many_c.append(cpu_per_gib(cpu, readers * part))
        if got != [part] * readers:
            raise RuntimeError("%s: short read by a reader" % t.name)
        if isinstance(t, Pecfs):
            # a sealed version is immutable: remove it the way retention would
            subprocess.run(["rm", "-rf", d], check=True)
        else:
            shutil.rmtree(d)
        t.cleanup_between()
        log("  %-12s rep %d: 128 KiB reads %7.0f MiB/s (%.2f CPU s/GiB), %d readers %7.0f MiB/s (%.2f CPU s/GiB)"
            % (t.name, r + 1, small[-1], small_c[-1], readers, many[-1], many_c[-1]))
    return {name: tuple(median(x) for x in lists) for name, lists in per.items()}


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * mult[s[-1].upper()]) if s[-1].upper() in mult else int(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pecfs", required=True, help="the pecfs binary")
    ap.add_argument("--passthrough", required=True, help="the passthrough baseline binary")
    ap.add_argument("--dir", default="/var/tmp", help="a folder on the data disk (default /var/tmp)")
    ap.add_argument("--size", default="4G", help="sequential file size (default 4G)")
    ap.add_argument("--replica-size", default="1G", help="size of the replicated file (default 1G)")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--small-files", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=5, help="runs of each measurement; medians are printed (default 5)")
    ap.add_argument("--quick", action="store_true", help="small sizes: a run of a few minutes")
    ap.add_argument("--pecfs-option", action="append", default=[], help="extra pecfs mount option")
    ap.add_argument("--only", default="1,2,3,5,6,7,8", help="sections to run, e.g. 5 (default all: 1,2,3,5,6,7,8)")
    ap.add_argument("--fsync-threads", type=int, default=8)
    ap.add_argument("--readers", type=int, default=8, help="[7] concurrent readers (default 8)")
    ap.add_argument("--scaling-size", default="1G", help="[8] bytes written at each writer count (default 1G)")
    ap.add_argument("--meta-files", type=int, default=100000, help="[6] files in one directory (default 100000)")
    ap.add_argument("--big-dir", type=int, default=0, help="[6] also one directory of this many entries, once")
    ap.add_argument("--pecfs-before", help="another pecfs binary (an earlier build) measured beside it in [3] and [5]")
    a = ap.parse_args()
    only = set(a.only.split(","))
    if a.quick:
        a.size, a.replica_size, a.small_files, a.meta_files, a.scaling_size = "512M", "128M", 2000, 10000, "256M"
    size, rsize = parse_size(a.size), parse_size(a.replica_size)
    if os.geteuid() != 0:
        sys.exit("bench_core.py needs root (drop_caches, FUSE mounts)")

    def log(s):
        print(s, flush=True)

    base = tempfile.mkdtemp(prefix="pecfs-bench-", dir=a.dir)
    targets = []
    try:
        raw = Raw("raw", os.path.join(base, "raw"))
        pt = Passthrough(a.passthrough, base)
        pec = Pecfs(a.pecfs, base, a.pecfs_option)
        targets = [raw, pt, pec]
        if a.pecfs_before:
            targets.append(Pecfs(a.pecfs_before, base, a.pecfs_option, name="pecfs-before"))
        log("pecfs benchmark: %s sequential, %d x %s replicas, %d small files, median of %d; base %s"
            % (a.size, a.writers, a.replica_size, a.small_files, a.reps, base))

        hwm = None
        if "1" in only:
            log("\n[1] sequential write (1 MiB writes, fsync at end) and cold sequential read")
            seq, hwm = bench_sequential(targets, size, a.reps, log)
            for name, (w, r, wc, rc) in seq.items():
                log("  %-12s write %7.0f MiB/s (%.2f CPU s/GiB)   read %7.0f MiB/s (%.2f CPU s/GiB)" % (name, w, wc, r, rc))
            log("  pecfs/passthrough: write %s, read %s   (target >= 0.90x)"
                % (fmt_ratio(seq["pecfs"][0], seq["passthrough"][0]), fmt_ratio(seq["pecfs"][1], seq["passthrough"][1])))
            log("  pecfs/raw:         write %s, read %s"
                % (fmt_ratio(seq["pecfs"][0], seq["raw"][0]), fmt_ratio(seq["pecfs"][1], seq["raw"][1])))
            log("  passthrough/raw:   write %s, read %s"
                % (fmt_ratio(seq["passthrough"][0], seq["raw"][0]), fmt_ratio(seq["passthrough"][1], seq["raw"][1])))

        if "2" in only:
            log("\n[2] %d concurrent writers of the same %s file (fsync included)" % (a.writers, a.replica_size))
            raw_t, pec_t, one_t, stored, raw_c, pec_c = bench_replicas(raw, pec, rsize, a.writers, a.reps, log)
            log("  raw (%d copies) %.2f s (%.2f CPU s/GiB)   pecfs %.2f s (%.2f CPU s/GiB)   pecfs/raw %s   (target <= 0.70x)"
                % (a.writers, raw_t, raw_c, pec_t, pec_c, fmt_ratio(pec_t, raw_t)))
            log("  pecfs stored %.3f GiB for %d x %.3f GiB logical (target <= %.3f GiB)"
                % (stored / (1 << 30), a.writers, rsize / (1 << 30), rsize * 1.01 / (1 << 30)))
            log("  pecfs %d writers / 1 writer: %s (%.2f s vs %.2f s)" % (a.writers, fmt_ratio(pec_t, one_t), pec_t, one_t))

        if "3" in only:
            log("\n[3] %d small files (4 KiB) created, stat'ed, removed (ops/s)" % a.small_files)
            small = {t.name: bench_small_files(t, a.small_files, a.reps) for t in targets}
            for name, r in small.items():
                log("  %-12s create %8.0f   stat %8.0f   remove %8.0f" % (name, r["create"], r["stat"], r["remove"]))
            for phase in ("create", "stat", "remove"):
                log("  %-7s pecfs/raw %s   pecfs/passthrough %s" % (
                    phase, fmt_ratio(small["pecfs"][phase], small["raw"][phase]),
                    fmt_ratio(small["pecfs"][phase], small["passthrough"][phase])))

        if "5" in only:
            per = 100 if a.quick else 300
            log("\n[5] %d threads each creating %d files of 64 KiB with an fsync each (files/s)" % (a.fsync_threads, per))
            fs_rate = {t.name: bench_fsync_threads(t, a.fsync_threads, per, a.reps) for t in targets}
            for name, r in fs_rate.items():
                log("  %-12s %8.0f files/s" % (name, r))
            log("  pecfs/passthrough %s   pecfs/raw %s" % (fmt_ratio(fs_rate["pecfs"], fs_rate["passthrough"]),
                                                         fmt_ratio(fs_rate["pecfs"], fs_rate["raw"])))
            if "pecfs-before" in fs_rate:
                log("  pecfs/pecfs-before %s" % fmt_ratio(fs_rate["pecfs"], fs_rate["pecfs-before"]))

        if "6" in only:
            log("\n[6] metadata at scale: %d files of 100 bytes in one directory (ops/s)" % a.meta_files)
            meta, extra = bench_meta_scale(targets, pec, a.meta_files, a.reps, log)
            phases = ("create", "stat", "readdir", "ls -l", "unlink")
            for name, r in meta.items():
                log("  %-12s %s" % (name, "   ".join("%s %8.0f" % (p, r[p]) for p in phases)))
            log("  pecfs/passthrough  %s   (target >= 0.90x)" % "   ".join(
                "%s %s" % (p, fmt_ratio(meta["pecfs"][p], meta["passthrough"][p])) for p in phases))
            log("  pecfs/raw          %s" % "   ".join(
                "%s %s" % (p, fmt_ratio(meta["pecfs"][p], meta["raw"][p])) for p in phases))
            log("  pecfs, version of %d files open: .pec/stats %.1f ms, RUN/.pec/versions %.1f ms, pecfs status %.0f ms"
                % (a.meta_files, extra["stats_ms"], extra["versions_open_ms"], extra["status_open_ms"]))
            log("  pecfs seal of a version of %d files: %.2f s (target < 5 s); then RUN/.pec/versions %.1f ms, "
                "pecfs status %.0f ms" % (a.meta_files, extra["seal_s"], extra["versions_sealed_ms"], extra["status_sealed_ms"]))
            log("  meanwhile in another version: longest 1 MiB write %.0f ms, longest create %.0f ms"
                % (extra["write_wait_ms"], extra["create_wait_ms"]))
            log("  pecfs daemon RSS growth for that version: %.1f MiB after its creates, %.1f MiB after ls -l, "
                "%.1f MiB after the seal" % (extra["create"] / 1024, extra["ls -l"] / 1024, extra["seal"] / 1024))
            if a.big_dir:
                log("\n[6b] one directory of %d entries, once (ops/s)" % a.big_dir)
                big = {}
                for t in targets:
                    d = t.workdir("bigdir")
                    big[t.name] = meta_phases(d, a.big_dir)
                    os.rmdir(d)
                    t.cleanup_between()
                    log("  %-12s %s" % (t.name, "   ".join("%s %8.0f" % (p, big[t.name][p]) for p in phases)))
                log("  pecfs/passthrough  %s   (target >= 0.90x)" % "   ".join(
                    "%s %s" % (p, fmt_ratio(big["pecfs"][p], big["passthrough"][p])) for p in phases))

        if "7" in only:
            log("\n[7] cold reads of a sealed %s: one reader with 128 KiB reads; %d readers of %d files"
                % (a.size, a.readers, a.readers))
            rd = bench_readers(targets, size, a.readers, a.reps, log)
            for name, (one, many, one_c, many_c) in rd.items():
                log("  %-12s 128 KiB reads %7.0f MiB/s (%.2f CPU s/GiB)   %d readers %7.0f MiB/s (%.2f CPU s/GiB)"
                    % (name, one, one_c, a.readers, many, many_c))
            log("  pecfs/passthrough: 128 KiB %s, %d readers %s   (target >= 0.90x)"
                % (fmt_ratio(rd["pecfs"][0], rd["passthrough"][0]), a.readers, fmt_ratio(rd["pecfs"][1], rd["passthrough"][1])))
            log("  pecfs/raw:         128 KiB %s, %d readers %s"
                % (fmt_ratio(rd["pecfs"][0], rd["raw"][0]), a.readers, fmt_ratio(rd["pecfs"][1], rd["raw"][1])))

        if "8" in only:
            ssize, counts = parse_size(a.scaling_size), (1, 2, 4, 8)
            log("\n[8] unique writes by 1, 2, 4 and 8 concurrent writers, %s in all at each count, each writer "
                "its own file with an fsync at its end (aggregate MiB/s)" % a.scaling_size)
            sc = bench_writer_scaling(targets, ssize, counts, a.reps, log)
            log("  pecfs/passthrough  %s   (target >= 0.90x)" % "   ".join(
                "%d: %s" % (n, fmt_ratio(sc["pecfs"][n][0], sc["passthrough"][n][0])) for n in counts))
            for name in sc:
                log("  %-16s n writers / 1 writer: %s" % (name, "   ".join(
                    "%d: %s" % (n, fmt_ratio(sc[name][n][0], sc[name][1][0])) for n in counts[1:])))
            log("  pecfs with other --hash-threads, %d writers:" % counts[-1])
            threads = {}
            for h_n in (1, 2, 8):
                hp = Pecfs(a.pecfs, base, a.pecfs_option + ["--hash-threads", str(h_n)], name="pecfs-h%d" % h_n)
                try:
                    threads[h_n] = bench_writer_scaling([hp], ssize, counts[-1:], a.reps, log)[hp.name][counts[-1]]
                finally:
                    hp.close()
            log("  pecfs hash-threads 1 / 2 / default / 8: %s MiB/s; default/2 %s" % (
                " / ".join("%.0f" % x for x in (threads[1][0], threads[2][0], sc["pecfs"][counts[-1]][0], threads[8][0])),
                fmt_ratio(sc["pecfs"][counts[-1]][0], threads[2][0])))

        log("\n[4] peak pecfs daemon memory (VmHWM) during the write benchmark: %.1f MiB" % ((hwm or 0) / 1024))
        log("    (peak over the whole run so far: %.1f MiB)" % (pec.vm_hwm_kib() / 1024))
    finally:
        for t in reversed(targets):
            t.close()
        for sub in ("pt-mnt", "pecfs-mnt", "pecfs-before-mnt", "pecfs-h1-mnt", "pecfs-h2-mnt", "pecfs-h8-mnt"):
            p = os.path.join(base, sub)
            if is_mounted(p):
                subprocess.run(["fusermount3", "-uz", p], check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
