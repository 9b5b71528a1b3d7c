#!/usr/bin/env python3
"""Benchmark pynfct against conntrack-tools' `conntrack` on a large conntrack table.

Run as root from the checkout (after `python setup.py build_ext --inplace`):

    python bench/compare.py                       # 1,000,000 entries, best of 3 rounds
    python bench/compare.py --entries 20000 --rounds 1   # quick check, well under a minute
    python bench/compare.py --pynfct "/work/main/bin/pynfct" --save bench/RESULTS.md

What it does:

1. Creates a throwaway network namespace `pynfct-bench-<pid>` (always deleted at exit, also on
   Ctrl-C, SIGTERM or an exception) and fills its conntrack table with N entries through
   `conntrack -R FILE` (generated `-I` lines: ~85% tcp ESTABLISHED, the rest udp, distinct tuples,
   long timeouts, some marks, a few zones). A namespace's table size cannot be set from inside it
   (nf_conntrack_max is read-only there and follows the init namespace's value), so when N does not
   fit, the host-wide net.netfilter.nf_conntrack_max is raised and restored at exit.
2. Times each command as its own subprocess inside the namespace (`ip netns exec`), stdout to
   /dev/null: wall time, and user/sys CPU and peak RSS from wait4()'s rusage (`ip netns exec`
   execs the command, so the rusage is the command's). conntrack and pynfct alternate within each
   round; the best of R rounds is kept. Rows:
     - `-L`, `-L -o xml`, `-L -o extended`                     target ratio <= 0.65
     - filters `-L -s IP`, `-L -p udp`, `-L -w ZONE`,
       `-L -p tcp --dport PORT` (values present in the table)    target ratio <= 0.2
     - the Python API: a child python iterating `Conntrack().dump()` and touching
       f.orig.src, f.orig.dport, f.mark (against `conntrack -L`) target ratio <= 1.0, RSS <= 40 MB
     - the kernel floor: a Python netlink dump loop that parses nothing (reference only), the
       same with a kernel-side mark filter (the floor for any filter the kernel applies), and with
       -p udp's IPv4 CTA_FILTER (the floor of `-L -p udp` on this table, against conntrack's row)
3. Checks, in one untimed warm-up run per command before the rounds, that pynfct prints as many lines (and bytes) as
   conntrack, and prints a Markdown report: machine facts, the results table, CPU split, line counts.

A pynfct command that fails is reported as failed; the other rows still run.
"""
from __future__ import annotations

import argparse
import compileall
import datetime
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NS_PREFIX = "pynfct-bench-"
CONNTRACK_MAX = "/proc/sys/net/netfilter/nf_conntrack_max"

# Targets: pynfct time / conntrack time.
TARGET_LIST = 0.65
TARGET_FILTER = 0.2
TARGET_API = 1.0
TARGET_API_RSS_MB = 40.0

# The table's shape (fractions of N). The filter rows pick values that the generator puts in.
TCP_SHARE = 0.85
TCP_PORTS = [(443, 50), (80, 25), (8080, 10), (22, 5), (5432, 4), (25, 4), (3306, 2)]
UDP_PORTS = [(53, 60), (123, 20), (443, 15), (5060, 5)]
ZONES = [(0, 90), (1, 5), (2, 3), (3, 2)]
FILTER_ZONE = 2
FILTER_DPORT = 3306  # tcp, ~1.7% of the table
MARKS = range(1, 8)  # 10% of the entries have one of these marks
FILTER_MARK = 7      # for the kernel-side filter floor


# --------------------------------------------------------------------------- machine facts

def machine_facts() -> Dict[str, str]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = "?"
    try:
        with open("/proc/meminfo") as f:
            mem_gb = "%.1f" % (int(f.readline().split()[1]) / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        ct_version = subprocess.run(["conntrack", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        ct_version = "conntrack not found"
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "?"
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "pynfct", "_nfct"],
                               capture_output=True, text=True).stdout.strip()
        commit = head + (" + uncommitted changes in pynfct/ or _nfct/" if dirty else "")
    except OSError:
        commit = "?"
    return {
        "commit": commit,
        "nproc": str(len(os.sched_getaffinity(0))),
        "kernel": platform.release(),
        "cpu": cpu,
        "memory": f"{mem_gb} GiB",
        "python": platform.python_version(),
        "conntrack": ct_version,
    }


def load_note(before: float, after: float) -> str:
    """The 1-minute load average around the rounds: other work on the machine skews the times."""
    cpus = len(os.sched_getaffinity(0))
    text = f"Load average (1 min) before/after the rounds: {before:.2f} / {after:.2f} on {cpus} CPUs"
    # This benchmark itself keeps about one CPU busy (pynfct's pipelined dump up to two).
    if max(before, after) > cpus * 0.75 + 1:
        text += " -- **the machine was busy with other work: times are inflated and noisy**"
    return text + "."


# --------------------------------------------------------------------------- namespace and sysctl

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_namespaces() -> None:
    """Delete pynfct-bench-<pid> namespaces left behind by runs that were killed (SIGKILL)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(NS_PREFIX):
            continue
        suffix = name[len(NS_PREFIX):].split("-")[0]
        if suffix.isdigit() and not _pid_alive(int(suffix)):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            log(f"removed stale namespace {name}")


class Namespace:
    """A throwaway network namespace plus the host sysctl changes it needed; undone by close()."""

    def __init__(self, name: str):
        self.name = name
        self.created = False
        self.saved_max: Optional[int] = None  # host nf_conntrack_max before we raised it
        self.raised_max: Optional[int] = None

    def create(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.created = True
        # A fresh namespace has no loopback up; conntrack needs nothing else.
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    def conntrack_max(self) -> int:
        return int(self.sysctl_read("net.netfilter.nf_conntrack_max"))

    def sysctl_read(self, key: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.name, "sysctl", "-n", key],
                              capture_output=True, text=True, check=True).stdout.strip()

    def ensure_capacity(self, entries: int) -> None:
        """Make room for `entries` entries; the namespace's own nf_conntrack_max is read-only."""
        need = entries + entries // 20 + 1024
        if self.conntrack_max() >= need:
            return
        # Try the namespace first (some kernels allow lowering/raising it there), then the host.
        r = subprocess.run(["ip", "netns", "exec", self.name, "sysctl", "-qw",
                            f"net.netfilter.nf_conntrack_max={need}"], capture_output=True, text=True)
        if r.returncode == 0 and self.conntrack_max() >= need:
            log(f"raised nf_conntrack_max to {need} inside {self.name}")
            return
        with open(CONNTRACK_MAX) as f:
            self.saved_max = int(f.read())
        with open(CONNTRACK_MAX, "w") as f:
            f.write(str(need))
        self.raised_max = need
        got = self.conntrack_max()
        log(f"nf_conntrack_max is read-only inside the namespace: raised the host-wide value "
            f"{self.saved_max} -> {need} (namespace now sees {got}); restored at exit")
        if got < need:
            log(f"WARNING: the namespace still sees nf_conntrack_max={got}; the table will be capped")

    def count(self) -> int:
        return int(self.sysctl_read("net.netfilter.nf_conntrack_count"))

    def close(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            self.created = False
        if self.saved_max is not None:
            try:
                with open(CONNTRACK_MAX) as f:
                    current = int(f.read())
                if current == self.raised_max:  # leave it alone if someone else changed it since
                    with open(CONNTRACK_MAX, "w") as f:
                        f.write(str(self.saved_max))
                    log(f"restored host nf_conntrack_max={self.saved_max}")
                else:
                    log(f"host nf_conntrack_max is {current} (changed by someone else); not restoring")
            except OSError as e:
                log(f"could not restore nf_conntrack_max={self.saved_max}: {e}")
            self.saved_max = None


def _raise_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """SIGTERM/SIGHUP unwind like Ctrl-C does, so the finally: blocks delete the namespace."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_on_signal)


# --------------------------------------------------------------------------- table generation

@dataclass
class TableInfo:
    entries: int
    src_ip: str          # a source address with a few entries (the -s filter)
    expected: Dict[str, int] = field(default_factory=dict)  # filter row -> entries it should list



def _ip(n: int, base: int) -> str:
    n += base
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def generate_table(path: str, entries: int, seed: int = 1) -> TableInfo:
    """Write `entries` distinct `-I` lines for `conntrack -R`.

    Clients 10.0.0.0/8 (each address has 4 connections, from ports 40000..40003, which keeps the
    tuples distinct), servers in 172.16.0.0/20, tcp ESTABLISHED (mostly ASSURED) or udp.
    Timeouts stay 6 digits wide for days, so outputs taken minutes apart have the same size.
    """
    rng = random.Random(seed)
    src_index = entries // 2 >> 2
    info = TableInfo(entries, _ip(src_index, 10 << 24))
    counts = {"src": 0, "udp": 0, "zone": 0, "dport": 0, "mark": 0}
    tcp_ports = [p for p, _ in TCP_PORTS]; tcp_w = [w for _, w in TCP_PORTS]
    udp_ports = [p for p, _ in UDP_PORTS]; udp_w = [w for _, w in UDP_PORTS]
    zones = [z for z, _ in ZONES]; zone_w = [w for _, w in ZONES]
    with open(path, "w") as f:
        lines = []
        for i in range(entries):
            src_n = i >> 2
            src = _ip(src_n, 10 << 24)
            dst = _ip(rng.randrange(4096), (172 << 24) | (16 << 16))
            sport = 40000 + (i & 3)
            r = rng.random()
            if r < TCP_SHARE:
                dport = rng.choices(tcp_ports, tcp_w)[0]
                extra = "-p tcp --state ESTABLISHED"
                if r < TCP_SHARE * 0.8:
                    extra += " -u SEEN_REPLY,ASSURED"
                if dport == FILTER_DPORT:
                    counts["dport"] += 1
            else:
                dport = rng.choices(udp_ports, udp_w)[0]
                extra = "-p udp"
                counts["udp"] += 1
            line = f"-I {extra} -s {src} -d {dst} --sport {sport} --dport {dport} -t {500000 + (i & 1023)}"
            if rng.random() < 0.1:
                mark = rng.choice(MARKS)
                line += f" -m {mark}"
                counts["mark"] += mark == FILTER_MARK
            zone = rng.choices(zones, zone_w)[0]
            if zone:
                line += f" -w {zone}"
            if zone == FILTER_ZONE:
                counts["zone"] += 1
            if src_n == src_index:
                counts["src"] += 1
            lines.append(line)
            if len(lines) >= 10000:
                f.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            f.write("\n".join(lines) + "\n")
    info.expected = counts
    return info


def fill_table(ns: Namespace, entries: int, workdir: str) -> Tuple[TableInfo, float, float]:
    """Generate and load the table; returns (info, generation seconds, conntrack -R seconds)."""
    path = os.path.join(workdir, "table.txt")
    t0 = time.perf_counter()
    info = generate_table(path, entries)
    t1 = time.perf_counter()
    r = subprocess.run(["ip", "netns", "exec", ns.name, "conntrack", "-R", path],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t2 = time.perf_counter()
    if r.returncode != 0:
        log(f"WARNING: conntrack -R exited {r.returncode}: {r.stderr.strip()[-500:]}")
    os.unlink(path)
    return info, t1 - t0, t2 - t1


# --------------------------------------------------------------------------- child programs

# The Python API row. Until the CLI parser lands, Conntrack.dump() cannot build its (empty) filter,
# so fall back to dump_command() with a bare -L Command; the report says which path ran.
API_CHILD = r"""
import sys, pynfct
ct = pynfct.Conntrack(); n = 0
try:
    flows = ct.dump(); via = "dump()"
except ImportError:
    from pynfct.template import Cmd, Command
    flows = ct.dump_command(Command(command=Cmd.CT_LIST)); via = "dump_command()"
for f in flows:
    f.orig.src, f.orig.dport, f.mark
    n += 1
sys.stderr.write("%d entries via %s\n" % (n, via))
"""

# The kernel floor: ask ctnetlink for a dump of the IPv4 table and read it until NLMSG_DONE,
# looking only at the tail of each datagram (the DONE message ends the last one). With `mark N`
# the request carries CTA_MARK/CTA_MARK_MASK, so the kernel still walks the whole table but only
# sends the matching entries: the floor of any kernel-side filter. With `proto N` it carries the
# CTA_FILTER that pynfct sends for -p (IPv4 part): the floor of -L -p on this table. Filtered
# dumps count their messages.
FLOOR_CHILD = r"""
import socket, struct, sys
NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
CT_GET = (1 << 8) | 1          # NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET
CTA_MARK, CTA_MARK_MASK, CTA_TUPLE_ORIG, CTA_TUPLE_PROTO, CTA_PROTO_NUM, CTA_FILTER = 8, 21, 1, 2, 1, 25
NESTED, CTA_FILTER_ORIG_FLAGS, CTA_FILTER_F_CTA_PROTO_NUM = 0x8000, 1, 0x8
what, value = (sys.argv[1], int(sys.argv[2])) if len(sys.argv) > 2 else (None, None)
mark = value if what == "mark" else None
if what == "mark":
    attrs = (struct.pack("=HH", 8, CTA_MARK) + struct.pack(">I", value) +
             struct.pack("=HH", 8, CTA_MARK_MASK) + struct.pack(">I", 0xFFFFFFFF))
elif what == "proto":
    attrs = (struct.pack("=HHHHHHB3x", 16, CTA_TUPLE_ORIG | NESTED, 12, CTA_TUPLE_PROTO | NESTED,
                         5, CTA_PROTO_NUM, value)
             + struct.pack("=HHHHI", 12, CTA_FILTER | NESTED, 8, CTA_FILTER_ORIG_FLAGS, CTA_FILTER_F_CTA_PROTO_NUM))
else:
    attrs = b""
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
s.bind((0, 0))
seq = 4242
s.send(struct.pack("=IHHII", 20 + len(attrs), CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
       + struct.pack("=BBH", socket.AF_INET, 0, 0) + attrs)
buf = bytearray(1 << 20)
total = datagrams = entries = 0
unpack = struct.Struct("=IHHI").unpack_from
while True:
    n = s.recv_into(buf)
    total += n
    datagrams += 1
    length, kind, flags, mseq = unpack(buf, 0)
    if kind == NLMSG_ERROR:
        err = -struct.unpack_from("=i", buf, 16)[0]
        if err:
            sys.exit("netlink error %d" % err)
        break
    if what is not None:
        off = 0
        while off < n:
            length, kind, flags, mseq = unpack(buf, off)
            entries += kind not in (NLMSG_DONE, NLMSG_ERROR)
            off += (length + 3) & ~3
    if n >= 20:
        length, kind, flags, mseq = unpack(buf, n - 20)
        if kind == NLMSG_DONE and length == 20 and mseq == seq:
            break
if what is None:
    sys.stderr.write("%d bytes in %d datagrams\n" % (total, datagrams))
else:
    sys.stderr.write("%d entries with %s %d: %d bytes in %d datagrams\n" % (entries, what, value, total, datagrams))
"""


# --------------------------------------------------------------------------- running commands

@dataclass
class Run:
    ok: bool
    wall: float
    user: float
    sys: float
    rss_kb: int
    rc: int
    stderr: str
    lines: Optional[int] = None
    nbytes: Optional[int] = None


def log(msg: str) -> None:
    sys.stderr.write(f"[bench] {msg}\n")
    sys.stderr.flush()


def child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["LC_ALL"] = "C"
    return env


TIME = "/usr/bin/time"  # GNU time: measures the peak RSS of a child that it forked itself
HAVE_TIME = os.access(TIME, os.X_OK)


def run_in_ns(ns: str, argv: Sequence[str], count_lines: bool = False) -> Run:
    """Run argv in the namespace; stdout to /dev/null (or counted), stderr kept for the report.

    Wall time is measured here, CPU time comes from wait4(). The peak RSS does not: a child forked
    (or vforked) from this Python process inherits its RSS high-water mark across exec, so every
    command would show at least this process's RSS. GNU time (itself ~1 MB) forks the command and
    reports the child's %M; `ip netns exec` execs the command, so that is the command's peak (it
    can't be below ip's own ~2.5 MB).
    """
    full = ["ip", "netns", "exec", ns, *argv]
    with tempfile.NamedTemporaryFile(prefix="pynfct-bench-") as rss_file, \
            tempfile.TemporaryFile() as err, open(os.devnull, "wb") as devnull:
        if HAVE_TIME:
            full = [TIME, "-q", "-f", "%M", "-o", rss_file.name, *full]
        t0 = time.perf_counter()
        # Own session: on Ctrl-C/SIGTERM we kill the whole chain (time, ip, command) ourselves.
        p = subprocess.Popen(full, stdout=subprocess.PIPE if count_lines else devnull, stderr=err,
                             env=child_env(), cwd=REPO, start_new_session=True)
        lines = nbytes = None
        try:
            if count_lines:
                lines = nbytes = 0
                while True:
                    chunk = p.stdout.read(1 << 20)
                    if not chunk:
                        break
                    lines += chunk.count(b"\n")
                    nbytes += len(chunk)
                p.stdout.close()
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        rss_kb = ru.ru_maxrss
        if HAVE_TIME:
            try:
                with open(rss_file.name) as f:
                    rss_kb = int(f.read().split()[-1])
            except (ValueError, IndexError):
                rss_kb = 0
    return Run(p.returncode == 0, wall, ru.ru_utime, ru.ru_stime, rss_kb, p.returncode,
               stderr, lines, nbytes)


@dataclass
class Row:
    name: str
    args: List[str]             # conntrack/pynfct arguments (empty for the special rows)
    target: Optional[float]     # pynfct/conntrack ratio to meet; None: reference only
    kind: str = "cli"           # cli | api | floor
    expected: Optional[int] = None  # entries the filter should list
    versus: Optional["Row"] = None  # special rows: the row whose conntrack time they are compared with (-L)
    ct: List[Run] = field(default_factory=list)
    py: List[Run] = field(default_factory=list)
    ct_count: Optional[Run] = None
    py_count: Optional[Run] = None


def make_rows(info: TableInfo) -> List[Row]:
    udp = Row("-L -p udp", ["-L", "-p", "udp"], TARGET_FILTER, expected=info.expected["udp"])
    return [
        Row("-L", ["-L"], TARGET_LIST),
        Row("-L -o xml", ["-L", "-o", "xml"], TARGET_LIST),
        Row("-L -o extended", ["-L", "-o", "extended"], TARGET_LIST),
        Row(f"-L -s {info.src_ip}", ["-L", "-s", info.src_ip], TARGET_FILTER, expected=info.expected["src"]),
        udp,
        Row(f"-L -w {FILTER_ZONE}", ["-L", "-w", str(FILTER_ZONE)], TARGET_FILTER, expected=info.expected["zone"]),
        Row(f"-L -p tcp --dport {FILTER_DPORT}", ["-L", "-p", "tcp", "--dport", str(FILTER_DPORT)],
            TARGET_FILTER, expected=info.expected["dport"]),
        Row("Python API: for f in ct.dump()", [], TARGET_API, kind="api", expected=info.entries),
        Row("kernel floor: raw netlink dump", [], None, kind="floor"),
        Row(f"kernel floor: kernel-side filter (mark {FILTER_MARK})", ["mark", str(FILTER_MARK)], None, kind="floor",
            expected=info.expected["mark"]),
        # What the kernel alone needs for -L -p udp's IPv4 dump: its walk and the udp entries' messages.
        Row("kernel floor: -p udp's kernel filter (IPv4)", ["proto", "17"], None, kind="floor",
            expected=info.expected["udp"], versus=udp),
    ]


def pynfct_argv(row: Row, pynfct: List[str], python: str) -> List[str]:
    if row.kind == "api":
        return [python, "-c", API_CHILD]
    if row.kind == "floor":
        return [python, "-c", FLOOR_CHILD, *row.args]
    return [*pynfct, *row.args]


def run_rounds(ns: str, rows: List[Row], rounds: int, pynfct: List[str], python: str) -> None:
    """Interleaved: in every round, each row runs conntrack then pynfct, back to back."""
    for r in range(rounds):
        t0 = time.perf_counter()
        for row in rows:
            if row.kind == "cli":
                row.ct.append(run_in_ns(ns, ["conntrack", *row.args]))
            row.py.append(run_in_ns(ns, pynfct_argv(row, pynfct, python)))
        log(f"round {r + 1}/{rounds} done in {time.perf_counter() - t0:.1f}s")


def run_counts(ns: str, rows: List[Row], pynfct: List[str], python: str) -> None:
    """One untimed run per command with stdout counted (lines and bytes); runs first, as a warm-up."""
    for row in rows:
        if row.kind == "cli":
            row.ct_count = run_in_ns(ns, ["conntrack", *row.args], count_lines=True)
            row.py_count = run_in_ns(ns, pynfct_argv(row, pynfct, python), count_lines=True)


# --------------------------------------------------------------------------- report

def best(runs: List[Run]) -> Optional[Run]:
    ok = [r for r in runs if r.ok]
    return min(ok, key=lambda r: r.wall) if ok else None


def first_error(runs: List[Run]) -> str:
    for r in runs:
        if not r.ok:
            lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
            return f"rc={r.rc}: {lines[-1][:120] if lines else 'no message'}"
    return ""


def fmt_s(run: Optional[Run]) -> str:
    return f"{run.wall:.3f}" if run else "failed"


def fmt_mb(run: Optional[Run]) -> str:
    return f"{run.rss_kb / 1024:.1f}" if run else "-"


def verdict(row: Row, ratio: Optional[float], py: Optional[Run]) -> str:
    if row.target is None:
        return "ref"
    if ratio is None:
        return "**FAIL** (did not run)"
    ok = ratio <= row.target
    if row.kind == "api" and py is not None and py.rss_kb / 1024 > TARGET_API_RSS_MB:
        ok = False
    return "pass" if ok else "**FAIL**"


def target_text(row: Row) -> str:
    if row.target is None:
        return "-"
    t = f"≤ {row.target:g}"
    if row.kind == "api":
        t += f", RSS ≤ {TARGET_API_RSS_MB:g} MB"
    return t


def count_check(row: Row, list_row: Row) -> Tuple[str, str, str]:
    """(conntrack lines, pynfct lines, verdict) for the line-count table."""
    if row.kind == "floor":
        b = best(row.py)
        if b is None:
            return "-", "-", f"failed ({first_error(row.py)})"
        note = b.stderr.strip()
        if row.expected is not None:
            got = int(note.split()[0])
            note = ("same as the generator's" if got == row.expected else
                    f"**DIFFERENT** from the generator's {row.expected}") + f" ({note})"
            return str(row.expected), str(got), note
        return "-", "-", note
    if row.kind == "api":
        b = best(row.py)
        ct = list_row.ct_count
        n = None
        if b is not None:
            try:
                n = int(b.stderr.split()[0])
            except (ValueError, IndexError):
                pass
        ct_lines = ct.lines if ct and ct.ok else None
        ok = n is not None and ct_lines is not None and n == ct_lines
        note = b.stderr.strip() if b else first_error(row.py)
        return (str(ct_lines) if ct_lines is not None else "-", str(n) if n is not None else "-",
                ("same" if ok else "**DIFFERENT**") + f" ({note})")
    ct, py = row.ct_count, row.py_count
    ct_s = f"{ct.lines} ({ct.nbytes} B)" if ct and ct.ok else "failed"
    py_s = f"{py.lines} ({py.nbytes} B)" if py and py.ok else "failed"
    if not (ct and ct.ok and py and py.ok):
        return ct_s, py_s, "**not compared**" + (f" ({first_error([py])})" if py and not py.ok else "")
    if ct.lines != py.lines:
        v = f"**DIFFERENT lines** ({py.lines - ct.lines:+d})"
    elif ct.nbytes != py.nbytes:
        v = f"same lines, **bytes differ** ({py.nbytes - ct.nbytes:+d})"
    else:
        v = "same lines and bytes"
    if row.expected is not None and ct.lines != row.expected:
        v += f"; generator put {row.expected} matching entries"
    return ct_s, py_s, v


def report(rows: List[Row], facts: Dict[str, str], args, info: TableInfo, table_count: int,
           fill: Tuple[float, float], pynfct: List[str], notes: List[str]) -> str:
    list_row = rows[0]
    ct_list = best(list_row.ct)
    out = []
    out.append(f"Machine: nproc={facts['nproc']}, kernel {facts['kernel']}, CPU {facts['cpu']}, "
               f"memory {facts['memory']}; {facts['conntrack']}; Python {facts['python']}; "
               f"pynfct at {facts['commit']}")
    out.append(f"Table: N={args.entries} requested, {table_count} in the table; best of {args.rounds} "
               f"round(s); pynfct command: `{shlex.join(pynfct)}`")
    out.append(f"Fill: generating the -I lines {fill[0]:.1f}s, `conntrack -R` {fill[1]:.1f}s "
               f"({table_count / max(fill[1], 1e-9):,.0f} entries/s)")
    out.extend(notes)
    if not HAVE_TIME:
        out.append("**Note**: /usr/bin/time is missing, so peak RSS is wait4()'s, which includes this "
                   "script's own RSS (inherited across fork+exec).")
    out.append("Times are wall seconds, best of the rounds; the Python API and kernel floor rows are "
               "compared with the best `conntrack -L` (or the conntrack row they name).")
    out.append("")
    out.append("| command | conntrack s | pynfct s | ratio | target | result | conntrack RSS MB | pynfct RSS MB |")
    out.append("|---|---:|---:|---:|---|---|---:|---:|")
    for row in rows:
        py = best(row.py)
        base = row if row.kind == "cli" else row.versus or list_row
        ct = best(base.ct)
        ratio = py.wall / ct.wall if (py and ct) else None
        label = row.name if row.kind != "cli" else f"`{row.name}`"
        ct_label = fmt_s(ct) + (f" ({base.name})" if row.kind != "cli" and ct else "")
        py_label = fmt_s(py)
        if py is None:
            py_label = f"failed ({first_error(row.py)})"
        out.append(f"| {label} | {ct_label} | {py_label} | {f'{ratio:.2f}' if ratio is not None else '-'} | "
                   f"{target_text(row)} | {verdict(row, ratio, py)} | "
                   f"{fmt_mb(ct) if row.kind == 'cli' else '-'} | {fmt_mb(py)} |")
    out.append("")
    out.append("CPU time of the best run (user + sys, seconds; sys is mostly the kernel walking the table "
               "and building netlink messages):")
    out.append("")
    out.append("| command | conntrack user | conntrack sys | pynfct user | pynfct sys |")
    out.append("|---|---:|---:|---:|---:|")
    for row in rows:
        py = best(row.py)
        ct = best(row.ct) if row.kind == "cli" else None
        c = f"{ct.user:.3f} | {ct.sys:.3f}" if ct else "- | -"
        p = f"{py.user:.3f} | {py.sys:.3f}" if py else "- | -"
        out.append(f"| {row.name} | {c} | {p} |")
    out.append("")
    out.append("Output check (one untimed warm-up run each, before the rounds; stdout lines and bytes):")
    out.append("")
    out.append("| command | conntrack | pynfct | check |")
    out.append("|---|---:|---:|---|")
    for row in rows:
        c, p, v = count_check(row, list_row)
        out.append(f"| {row.name} | {c} | {p} | {v} |")
    return "\n".join(out)


# --------------------------------------------------------------------------- main

def default_pynfct() -> List[str]:
    exe = shutil.which("pynfct")
    return [exe] if exe else [sys.executable, "-m", "pynfct"]


def parse_args(argv: Optional[Sequence[str]] = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", "-n", type=int, default=1_000_000, help="table size (default 1,000,000)")
    p.add_argument("--rounds", "-r", type=int, default=3, help="rounds, best kept (default 3)")
    p.add_argument("--pynfct", help="pynfct CLI command (default: pynfct on PATH, else PYTHON -m pynfct)")
    p.add_argument("--python", default=sys.executable, help="python for the API and floor children")
    p.add_argument("--save", metavar="FILE", help="also write the report (with date and command) to FILE")
    p.add_argument("--no-writes", action="store_true", help="skip the write rows (-R, -D, -U; bench/compare_writes.py)")
    p.add_argument("--no-reads", action="store_true", help="skip the read rows (only the write rows)")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("compare.py needs root (network namespaces, conntrack -I)")
    for tool in ("ip", "conntrack"):
        if shutil.which(tool) is None:
            sys.exit(f"compare.py needs `{tool}` on PATH")
    pynfct = shlex.split(args.pynfct) if args.pynfct else default_pynfct()
    # A checkout (bin/pynfct, an editable install) may have no .pyc files, and with
    # PYTHONDONTWRITEBYTECODE set every run would compile the sources again; pip compiles a
    # regular install at install time, so the timed CLI should not pay for it either.
    compileall.compile_dir(os.path.join(REPO, "pynfct"), quiet=1)
    install_signal_handlers()
    remove_stale_namespaces()
    facts = machine_facts()
    ns = Namespace(f"{NS_PREFIX}{os.getpid()}")
    notes: List[str] = []
    try:
        ns.create()
        ns.ensure_capacity(args.entries)
        if ns.saved_max is not None:
            notes.append(f"Limit: nf_conntrack_max is read-only in a non-init namespace and follows the host's; "
                         f"raised the host-wide value {ns.saved_max} -> {ns.raised_max} for the run (restored).")
        with tempfile.TemporaryDirectory(prefix="pynfct-bench-") as work:
            log(f"filling {args.entries} entries in {ns.name} ...")
            info, gen_s, load_s = fill_table(ns, args.entries, work)
        table_count = ns.count()
        log(f"table has {table_count} entries (generate {gen_s:.1f}s, conntrack -R {load_s:.1f}s)")
        if table_count < args.entries:
            notes.append(f"**WARNING**: only {table_count} of {args.entries} entries made it into the table.")
        baseline = run_in_ns(ns.name, ["true"])
        notes.append(f"Peak RSS is GNU time's %M for the `ip netns exec` chain, so it is never below "
                     f"`ip netns exec true`'s {baseline.rss_kb / 1024:.1f} MB.")
        rows = make_rows(info) if not args.no_reads else []
        log("counting output lines (also warms the caches) ...")
        run_counts(ns.name, rows, pynfct, args.python)
        log(f"timing {args.rounds} round(s) of {len(rows)} rows; pynfct = {shlex.join(pynfct)}")
        load_before = os.getloadavg()[0]
        run_rounds(ns.name, rows, args.rounds, pynfct, args.python)
        notes.append(load_note(load_before, os.getloadavg()[0]))
        text = report(rows, facts, args, info, table_count, (gen_s, load_s), pynfct, notes) if rows else \
            "\n".join(notes)
        if not args.no_writes:
            from compare_writes import run_write_rows, write_report
            with tempfile.TemporaryDirectory(prefix="pynfct-bench-") as work:
                path = os.path.join(work, "table.txt")
                generate_table(path, args.entries)
                text += "\n" + write_report(run_write_rows(ns, path, args.entries, args.rounds, pynfct, run_in_ns,
                                                             log, Namespace))
    finally:
        ns.close()
    print(text)
    if args.save:
        cmd = shlex.join([sys.executable, *sys.argv])
        with open(args.save, "w") as f:
            f.write(f"# pynfct vs conntrack benchmark\n\n"
                    f"Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}  \n"
                    f"Command: `{cmd}` (as root, in {REPO})\n\n{text}\n")
        log(f"report written to {args.save}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; namespace deleted")
        sys.exit(130)
