#!/usr/bin/env python3
"""Benchmark pynfct against conntrack-tools' `conntrack` on a large conntrack table.

Run as root from the checkout (after `python setup.py build_ext --inplace`):

    python bench/compare.py                       # 500,000 entries, best of 3 rounds
    python bench/compare.py --entries 1000000     # the million-entry table
    python bench/compare.py --entries 20000 --rounds 1   # quick check, well under a minute
    python bench/compare.py --pynfct ".venv/bin/python bin/pynfct" --save bench/RESULTS.md   (bench/run-all)

What it does:

1. Creates a throwaway network namespace `pynfct-bench-<pid>` (always deleted at exit, also on
   Ctrl-C, SIGTERM or an exception) and fills its conntrack table with N entries through
   `conntrack -R FILE` (generated `-I` lines: ~85% tcp ESTABLISHED, the rest udp, distinct tuples,
   long timeouts, some marks, a few zones). A namespace's table size cannot be set from inside it
   (nf_conntrack_max is read-only there and follows the init namespace's value), so when N does not
   fit, the host-wide net.netfilter.nf_conntrack_max is raised and restored at exit.
2. Times each command as its own subprocess inside the namespace (`ip netns exec`): wall time, and
   user/sys CPU and peak RSS from wait4()'s rusage (`ip netns exec` execs the command, so the rusage is
   the command's). stdout is a pipe (1 MiB) that this script only reads, keeping the bytes in memory;
   conntrack and pynfct write into the same kind of pipe. conntrack and pynfct alternate within each
   round; one untimed warm-up round comes first; the best of R rounds is kept. Rows:
     - `-L`, `-L -o xml`, `-L -o extended`                     target ratio <= 0.65
     - filters `-L -s IP`, `-L -p udp`, `-L -w ZONE`,
       `-L -p tcp --dport PORT` (values present in the table)    target ratio <= 0.2
     - the Python API: a child python iterating `Conntrack().dump()`, reading f.orig.src,
       f.orig.dport, f.mark and writing them as one line per flow
       (against `conntrack -L`)                                  target ratio <= 1.0, RSS <= 40 MB
     - the kernel floor: a Python netlink dump loop that parses nothing (reference only), the
       same with a kernel-side mark filter (the floor for any filter the kernel applies), and with
       -p udp's IPv4 CTA_FILTER (the floor of `-L -p udp` on this table, against conntrack's row)
3. Checks every run's output, timed ones included, after the command has exited: the sha256 of its
   stdout with only the timeouts blanked (bench/canon.py) must equal conntrack's for the same command
   on the same table. The Python API child's stdout (the `src dport mark` line of each flow) is digested
   the same way and must equal the digest of those fields taken from an untimed conntrack -L's lines. The
   kernel floor rows parse nothing: they are checked by the number of entries the kernel sent. The write rows
   (bench/compare_writes.py) compare the printed entries the same way and the table each command
   leaves behind (a `conntrack -L` of it) with the table conntrack leaves.
4. Prints a Markdown report (machine facts with the commit and whether the tree had uncommitted
   changes, the results table, CPU split, the output checks); --save FILE writes it and FILE's
   .json twin, from which bench/readme.py writes the README's speed table.

A pynfct command that fails is reported as failed; the other rows still run.
"""
from __future__ import annotations

import argparse
import compileall
import datetime
import fcntl
import json
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canon import digest_list  # noqa: E402

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
    head, dirty = git_state()
    commit = head + (" (with uncommitted changes)" if dirty else "")
    return {
        "commit": commit,
        "head": head,
        "dirty": "yes" if dirty else "no",
        "nproc": str(len(os.sched_getaffinity(0))),
        "kernel": platform.release(),
        "cpu": cpu,
        "memory": f"{mem_gb} GiB",
        "python": platform.python_version(),
        "conntrack": ct_version,
    }


def git_state() -> Tuple[str, bool]:
    """(`git rev-parse HEAD` of the checkout, whether tracked files other than the reports have uncommitted
    changes)."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "?"
        # The reports and the README's figures are what bench/run-all itself rewrites as it goes.
        dirty = bool(subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "--", ".",
                                     ":!bench/*.md", ":!bench/*.json", ":!README.md"],
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        return "?", True
    return head, dirty


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

# The Python API row: iterate the whole table touching three fields of each flow, and write them as one line
# per flow, `ORIG_SRC ORIG_DPORT MARK`: that is its output, which the bench digests after the child has exited
# like any command's (bench/canon.py: sha256 of the sorted lines). API_REFERENCE writes the same fields of
# conntrack -L's lines the same way, so the two digests must be equal. The lines go out in blocks of 4096:
# one write per flow would cost ~25 % more wall time, the blocks about nothing over the bare loop (measured
# at 100,000 entries).
API_CHILD = r"""
import sys, pynfct
write = sys.stdout.write
lines = []
line = lines.append
for f in pynfct.Conntrack().dump():
    line("%s %s %s" % (f.orig.src, f.orig.dport, f.mark))
    if len(lines) == 4096:
        line("")
        write("\n".join(lines))
        lines.clear()
line("")
write("\n".join(lines))
"""

# conntrack -L's lines on stdin: the first src= and dport= (the original direction) and mark=, as API_CHILD
# writes them (None where a line has no such field, as the Flow property gives for an attribute not set).
API_REFERENCE = r"""
import sys
out = []
for line in sys.stdin.buffer:
    src = dport = mark = b"None"
    for word in line.split():
        if word.startswith(b"src=") and src == b"None":
            src = word[4:]
        elif word.startswith(b"dport=") and dport == b"None":
            dport = word[6:]
        elif word.startswith(b"mark="):
            mark = word[5:]
    out.append(b"%s %s %s\n" % (src, dport, mark))
sys.stdout.buffer.write(b"".join(out))
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
    digest: str = ""        # sha256 of stdout with the timeouts blanked (bench/canon.py)
    lines: int = 0
    nbytes: int = 0
    text: str = ""          # stdout itself, with keep=True


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
PIPE_SIZE = 1 << 20


def run_in_ns(ns: str, argv: Sequence[str], stdin: Optional[str] = None, keep: bool = False) -> Run:
    """Run argv in the namespace; its stdout is read (and kept) here and hashed once it has exited.

    Wall time is measured here, CPU time comes from wait4(). The peak RSS does not: a child forked
    (or vforked) from this Python process inherits its RSS high-water mark across exec, so every
    command would show at least this process's RSS. GNU time (itself ~1 MB) forks the command and
    reports the child's %M; `ip netns exec` execs the command, so that is the command's peak (it
    can't be below ip's own ~2.5 MB).

    stdout is a pipe of PIPE_SIZE bytes that this process drains with reads of up to PIPE_SIZE and
    nothing else (no hashing while the command runs), so a command is never held up by its reader
    more than by a plain `cmd | cat >/dev/null`; conntrack and pynfct get the same pipe.
    """
    full = ["ip", "netns", "exec", ns, *argv]
    chunks: List[bytes] = []
    with tempfile.NamedTemporaryFile(prefix="pynfct-bench-") as rss_file, \
            tempfile.TemporaryFile() as err:
        if HAVE_TIME:
            full = [TIME, "-q", "-f", "%M", "-o", rss_file.name, *full]
        r, w = os.pipe()
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass      # over /proc/sys/fs/pipe-max-size for this user: the default pipe
        stdin_f = open(stdin, "rb") if stdin else subprocess.DEVNULL
        try:
            t0 = time.perf_counter()
            # Own session: on Ctrl-C/SIGTERM we kill the whole chain (time, ip, command) ourselves.
            p = subprocess.Popen(full, stdin=stdin_f, stdout=w, stderr=err, env=child_env(), cwd=REPO,
                                 start_new_session=True)
            os.close(w)
            w = -1
            read = os.read
            try:
                while True:
                    chunk = read(r, PIPE_SIZE)
                    if not chunk:
                        break
                    chunks.append(chunk)
                _, status, ru = os.wait4(p.pid, 0)
            except BaseException:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise
            wall = time.perf_counter() - t0
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
            if stdin:
                stdin_f.close()
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
    text = b"".join(chunks).decode(errors="replace") if keep else ""
    sha, lines, nbytes = digest_list(chunks)
    return Run(p.returncode == 0, wall, ru.ru_utime, ru.ru_stime, rss_kb, p.returncode, stderr, sha, lines, nbytes,
               text)


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
    warm_ct: Optional[Run] = None   # the untimed warm-up round (its output is checked too)
    warm_py: Optional[Run] = None


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
    """Interleaved: in every round, each row runs conntrack then pynfct, back to back. Round 0 is an
    untimed warm-up (the page cache, the kernel's caches); its outputs are checked like the others."""
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        for row in rows:
            ct = run_in_ns(ns, ["conntrack", *row.args]) if row.kind == "cli" else None
            py = run_in_ns(ns, pynfct_argv(row, pynfct, python))
            if r == 0:
                row.warm_ct, row.warm_py = ct, py
            else:
                if ct is not None:
                    row.ct.append(ct)
                row.py.append(py)
        log(f"round {r}/{rounds}{' (warm-up)' if r == 0 else ''} done in {time.perf_counter() - t0:.1f}s")


def api_expected(ns: str, python: str) -> Run:
    """API_REFERENCE over conntrack -L's lines: its digest is what the Python API child's output must have."""
    return run_in_ns(ns, ["bash", "-o", "pipefail", "-c", 'conntrack -L | "$0" -c "$1"', python, API_REFERENCE])


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


def target_text(row: Row) -> str:
    if row.target is None:
        return "-"
    t = f"≤ {row.target:g}"
    if row.kind == "api":
        t += f", RSS ≤ {TARGET_API_RSS_MB:g} MB"
    return t


def output_check(row: Row, api_want: Run) -> Tuple[bool, str]:
    """(all outputs matched, the text of the check) for one row, over the warm-up and the timed runs."""
    pys = [r for r in [row.warm_py, *row.py] if r is not None]
    bad = [r for r in pys if not r.ok]
    if bad:
        return False, f"pynfct failed ({first_error(bad)})"
    if row.kind == "floor":
        note = pys[-1].stderr.strip()
        if row.expected is None:
            return True, f"reference, parses nothing ({note})"
        got = {int(r.stderr.split()[0]) for r in pys}
        ok = got == {row.expected}
        return ok, (f"{'same' if ok else '**DIFFERENT**'} entry count as the generator's {row.expected} ({note})")
    if row.kind == "api":
        if not api_want.ok:
            return False, f"the reference failed ({first_error([api_want])})"
        same = sum(r.digest == api_want.digest for r in pys)
        what = (f"its `orig.src orig.dport mark` line per flow (sha256 of the sorted lines) against those fields "
                f"of conntrack -L's {api_want.lines} lines (sha256 {api_want.digest[:16]})")
        if same == len(pys):
            return True, f"{same} of {len(pys)} runs equal: {what}"
        p = next(r for r in pys if r.digest != api_want.digest)
        return False, f"**{len(pys) - same} of {len(pys)} runs DIFFER** ({p.lines} lines): {what}"
    cts = [r for r in [row.warm_ct, *row.ct] if r is not None]
    if any(not r.ok for r in cts):
        return False, f"conntrack failed ({first_error(cts)})"
    want = {r.digest for r in cts}
    if len(want) != 1:
        return False, f"**conntrack's own runs differ** ({len(want)} digests: the normalisation misses something)"
    (sha,) = want
    same = sum(r.digest == sha for r in pys)
    c, p = cts[0], pys[0]
    text = (f"{same} of {len(pys)} pynfct runs = all {len(cts)} conntrack runs: sha256 {sha[:16]}, "
            f"{c.lines} lines, {c.nbytes} bytes")
    if same != len(pys):
        text = (f"**{len(pys) - same} of {len(pys)} pynfct runs DIFFER** from conntrack's sha256 {sha[:16]} "
                f"({c.lines} lines, {c.nbytes} bytes; pynfct {p.lines} lines, {p.nbytes} bytes)")
    if row.expected is not None and c.lines != row.expected:
        text += f"; the generator put {row.expected} matching entries"
    return same == len(pys), text


def row_data(row: Row, list_row: Row, api_want: Run) -> Dict[str, object]:
    """What the report and bench/readme.py show of one row."""
    py = best(row.py)
    base = row if row.kind == "cli" else row.versus or list_row
    ct = best(base.ct)
    ratio = py.wall / ct.wall if (py and ct) else None
    ok, check = output_check(row, api_want)
    met = None
    if row.target is not None:
        met = ratio is not None and ratio <= row.target and ok
        if row.kind == "api" and py is not None and py.rss_kb / 1024 > TARGET_API_RSS_MB:
            met = False

    def run(r: Optional[Run]) -> Optional[Dict[str, float]]:
        return None if r is None else {"wall": r.wall, "user": r.user, "sys": r.sys, "rss_mb": r.rss_kb / 1024}
    return {"name": row.name, "kind": row.kind, "args": row.args, "versus": base.name if row.kind != "cli" else None,
            "conntrack": run(ct), "pynfct": run(py), "ratio": ratio, "target": row.target,
            "target_text": target_text(row), "met": met, "output_ok": ok, "check": check,
            "error": first_error(row.py) if py is None else ""}


def report(data: Dict[str, object]) -> str:
    facts, table = data["facts"], data["table"]
    out = []
    out.append(f"Machine: nproc={facts['nproc']}, kernel {facts['kernel']}, CPU {facts['cpu']}, "
               f"memory {facts['memory']}; {facts['conntrack']}; Python {facts['python']}; "
               f"pynfct at {facts['commit']}")
    out.append(f"Table: N={table['requested']} requested, {table['count']} in the table; best of "
               f"{table['rounds']} round(s) after an untimed warm-up round; pynfct command: `{table['pynfct']}`")
    out.append(f"Fill: generating the -I lines {table['generate_s']:.1f}s, `conntrack -R` {table['load_s']:.1f}s")
    out.extend(data["notes"])
    if not HAVE_TIME:
        out.append("**Note**: /usr/bin/time is missing, so peak RSS is wait4()'s, which includes this "
                   "script's own RSS (inherited across fork+exec).")
    out.append("Times are wall seconds, best of the rounds, stdout into a pipe the bench reads; the Python API "
               "and kernel floor rows are compared with the best `conntrack -L` (or the conntrack row they name).")
    out.append("")
    out.append("| command | conntrack s | pynfct s | ratio | target | result | conntrack RSS MB | pynfct RSS MB |")
    out.append("|---|---:|---:|---:|---|---|---:|---:|")
    for row in data["rows"]:
        ct, py = row["conntrack"], row["pynfct"]
        label = row["name"] if row["kind"] != "cli" else f"`{row['name']}`"
        ct_label = "failed" if ct is None else f"{ct['wall']:.3f}" + (f" ({row['versus']})" if row["versus"] else "")
        py_label = f"{py['wall']:.3f}" if py else f"failed ({row['error']})"
        ratio = f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
        result = "ref" if row["met"] is None else "pass" if row["met"] else "**FAIL**"
        ct_mb = f"{ct['rss_mb']:.1f}" if ct and row["kind"] == "cli" else "-"
        py_mb = f"{py['rss_mb']:.1f}" if py else "-"
        out.append(f"| {label} | {ct_label} | {py_label} | {ratio} | {row['target_text']} | {result} | "
                   f"{ct_mb} | {py_mb} |")
    out.append("")
    out.append("CPU time of the best run (user + sys, seconds; sys is mostly the kernel walking the table "
               "and building netlink messages):")
    out.append("")
    out.append("| command | conntrack user | conntrack sys | pynfct user | pynfct sys |")
    out.append("|---|---:|---:|---:|---:|")
    for row in data["rows"]:
        ct = row["conntrack"] if row["kind"] == "cli" else None
        py = row["pynfct"]
        c = f"{ct['user']:.3f} | {ct['sys']:.3f}" if ct else "- | -"
        p = f"{py['user']:.3f} | {py['sys']:.3f}" if py else "- | -"
        out.append(f"| {row['name']} | {c} | {p} |")
    out.append("")
    out.append("Output check, every run (the warm-up and the timed rounds): sha256 of stdout's lines, sorted, with "
               "only the timeouts blanked (bench/canon.py), pynfct's against conntrack's of the same command; the "
               "Python API row's stdout is the three fields its loop reads of each flow, one line per flow, against "
               "the same fields of `conntrack -L`'s lines; the kernel floor rows, which parse nothing, count the "
               "entries:")
    out.append("")
    out.append("| command | check |")
    out.append("|---|---|")
    for row in data["rows"]:
        out.append(f"| {row['name']} | {row['check']} |")
    if any(row["kind"] == "floor" and not row["output_ok"] for row in data["rows"]):
        out += ["", "**The kernel's own dumps were incomplete in this run**: the floor rows, which parse nothing, "
                "counted other numbers of entries than the generator made, so the other rows' differences may not "
                "be pynfct's. A dump taken while the global conntrack hash table is resized (nf_conntrack_buckets, "
                f"written by another program; {data['table'].get('buckets', '?')} before and after the read rows here) "
                "skips and repeats entries; run the bench again on a quiet machine."]
    return "\n".join(out)


# --------------------------------------------------------------------------- main

def default_pynfct() -> List[str]:
    exe = shutil.which("pynfct")
    return [exe] if exe else [sys.executable, "-m", "pynfct"]


DEFAULT_ENTRIES = 500_000   # bench/run-all in about 10 minutes on 2 CPUs; --entries 1000000 works too


def parse_args(argv: Optional[Sequence[str]] = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", "-n", type=int, default=DEFAULT_ENTRIES,
                   help=f"table size (default {DEFAULT_ENTRIES:,})")
    p.add_argument("--rounds", "-r", type=int, default=3, help="timed rounds, best kept (default 3)")
    p.add_argument("--pynfct", help="pynfct CLI command (default: pynfct on PATH, else PYTHON -m pynfct)")
    p.add_argument("--python", default=sys.executable, help="python for the API and floor children")
    p.add_argument("--save", metavar="FILE", help="also write the report (with date and command) to FILE, "
                   "and its data to FILE with .json for its suffix (bench/readme.py reads it)")
    p.add_argument("--no-writes", action="store_true",
                   help="skip the write rows (-R, -D, -U, -F; bench/compare_writes.py)")
    p.add_argument("--no-reads", action="store_true", help="skip the read rows (only the write rows)")
    return p.parse_args(argv)


def read_buckets() -> str:
    try:
        with open("/proc/sys/net/netfilter/nf_conntrack_buckets") as f:
            return f.read().strip()
    except OSError:
        return "?"


def json_path(md_path: str) -> str:
    return os.path.splitext(md_path)[0] + ".json"


def save_report(path: str, title: str, text: str, data: Dict[str, object]) -> None:
    """FILE (Markdown, with the date and the command) and its .json twin."""
    now = datetime.datetime.now(datetime.timezone.utc)
    cmd = shlex.join([os.path.relpath(sys.argv[0], REPO) if sys.argv[0].startswith(REPO) else sys.argv[0],
                      *sys.argv[1:]])
    data = dict(data, date=now.strftime("%Y-%m-%d %H:%M UTC"), command=cmd)
    with open(path, "w") as f:
        f.write(f"# {title}\n\nDate: {data['date']}  \nCommand: `{cmd}` (as root)\n\n{text}\n")
    with open(json_path(path), "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    log(f"report written to {path} and {json_path(path)}")


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
    started = time.monotonic()
    data: Dict[str, object] = {"facts": facts, "rows": [], "writes": [], "notes": notes}
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
        data["table"] = {"requested": args.entries, "count": table_count, "rounds": args.rounds,
                         "pynfct": shlex.join(pynfct), "generate_s": gen_s, "load_s": load_s}
        baseline = run_in_ns(ns.name, ["true"])
        notes.append(f"Peak RSS is GNU time's %M for the `ip netns exec` chain, so it is never below "
                     f"`ip netns exec true`'s {baseline.rss_kb / 1024:.1f} MB.")
        rows = make_rows(info) if not args.no_reads else []
        load_before = os.getloadavg()
        if rows:
            api_want = api_expected(ns.name, args.python)
            log(f"timing {args.rounds} round(s) of {len(rows)} rows after a warm-up; pynfct = {shlex.join(pynfct)}")
            buckets = read_buckets()
            run_rounds(ns.name, rows, args.rounds, pynfct, args.python)
            data["table"]["buckets"] = f"{buckets} / {read_buckets()}"
            data["rows"] = [row_data(row, rows[0], api_want) for row in rows]
        if not args.no_writes:
            from compare_writes import run_write_rows
            with tempfile.TemporaryDirectory(prefix="pynfct-bench-") as work:
                path = os.path.join(work, "table.txt")
                generate_table(path, args.entries)
                data["writes"] = run_write_rows(ns, path, args.entries, args.rounds, pynfct, log)
        notes.append(load_note(load_before[0], os.getloadavg()[0]))
        data["load"] = {"before": load_before, "after": os.getloadavg()}
    finally:
        ns.close()
    data["duration_s"] = time.monotonic() - started
    text = report(data) if data["rows"] else "\n".join(notes)
    if data["writes"]:
        from compare_writes import write_report
        text += "\n" + write_report(data["writes"])
    text += f"\n\nThe whole run took {data['duration_s'] / 60:.1f} minutes.\n"
    print(text)
    if args.save:
        save_report(args.save, "pynfct vs conntrack benchmark", text, data)
    bad = [r["name"] for r in [*data["rows"], *data["writes"]] if not r["output_ok"]]
    if bad:
        log(f"OUTPUT CHECK FAILED: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; namespace deleted")
        sys.exit(130)
