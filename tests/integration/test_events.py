"""Events: pynfct -E against conntrack -E, bursts without loss, the Python iterator and asyncio API.

Every test runs in its own namespace. The differential tests start a conntrack -E and a pynfct -E with
the same options at the same time, play one slow sequence of changes (entries created, updated and
deleted through a long-lived ctnetlink socket, tests/ctwriter.py, and real loopback traffic with a mark,
a label and DNAT), wait until both listeners have read everything, stop both with SIGINT and compare
stdout, stderr and exit status. Only the wall-clock time conntrack prints (-o timestamp, and <when> in
xml) is blanked; every other byte must match.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import threading
import time
from typing import Dict, List, Sequence

import pytest

import pynfct
from ctwriter import ASSURED, SEEN_REPLY, CtWriter
from differential import Result, _pynfct_env, assert_same, pynfct_argv, run_both
from fill import DEFAULT_LABELMAP, bulk_entry_argv
from memwatch import CHILD, growth, last_json

PREFIX = f"pynfct v{pynfct.__version__} (conntrack-tools compatible)"
ENOBUFS_TEXT = ("WARNING: We have hit ENOBUFS! We are losing events.\n"
                "This message means that the current netlink socket buffer size is too small.\n"
                "Please, check --buffer-size in conntrack(8) manpage.\n")
NETLINK_NETFILTER = 12
MiB = 1 << 20


# --------------------------------------------------------------------------------------------------
# listeners
# --------------------------------------------------------------------------------------------------

def _socket_inodes(pid: int) -> set:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            m = re.fullmatch(r"socket:\[(\d+)\]", link)
            if m:
                inodes.add(int(m.group(1)))
    except OSError:
        pass
    return inodes


def event_sockets(pid: int) -> List[Dict[str, int]]:
    """The process's NETLINK_NETFILTER sockets bound to groups: {portid, groups, rmem, drops, inode}."""
    inodes = _socket_inodes(pid)
    rows = []
    try:
        with open(f"/proc/{pid}/net/netlink") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return rows
    for line in lines:
        p = line.split()
        row = dict(proto=int(p[1]), portid=int(p[2]), groups=int(p[3], 16), rmem=int(p[4]),
                   drops=int(p[8]), inode=int(p[9]))
        if row["inode"] in inodes and row["proto"] == NETLINK_NETFILTER and row["groups"]:
            rows.append(row)
    return rows


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


class Listener:
    """``conntrack -E ARGS`` or ``pynfct -E ARGS`` in the namespace, output to files."""

    def __init__(self, ns, prog: str, args: Sequence[str], tmp_path, tag: str) -> None:
        self.prog = prog
        self.args = list(args)
        self.argv = (["conntrack"] if prog == "conntrack" else pynfct_argv()) + self.args
        self.out_path = tmp_path / f"{tag}.{prog}.out"
        self.err_path = tmp_path / f"{tag}.{prog}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = ns.popen(self.argv, stdout=out, stderr=err,
                                 env=None if prog == "conntrack" else _pynfct_env())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def subscribed(self) -> bool:
        return self.proc.poll() is not None or bool(event_sockets(self.pid))

    def idle(self) -> bool:
        """Exited, or asleep with nothing left in its socket (so everything it got is printed)."""
        if self.proc.poll() is not None:
            return True
        socks = event_sockets(self.pid)
        return bool(socks) and all(s["rmem"] == 0 for s in socks) and _state(self.pid) == "S"

    def output(self) -> bytes:
        with open(self.out_path, "rb") as f:
            return f.read()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> Result:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        with open(self.out_path, "rb") as out, open(self.err_path, "rb") as err:
            return Result(["-E", *self.args], rc, out.read(), err.read())


def wait_for(cond, timeout: float = 30.0, interval: float = 0.02, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def wait_idle(listeners: Sequence[Listener], timeout: float = 60.0) -> None:
    """Until every listener has printed all it received (checked twice, 50 ms apart)."""
    def all_idle() -> bool:
        if not all(x.idle() for x in listeners):
            return False
        time.sleep(0.05)
        return all(x.idle() for x in listeners)
    wait_for(all_idle, timeout, what="the listeners to read every event")


# --------------------------------------------------------------------------------------------------
# the slow sequence
# --------------------------------------------------------------------------------------------------

RULESET = """
table inet pynfct_events {
    chain output {
        type filter hook output priority 0; policy accept;
        tcp dport 7001 ct mark set 0x2a
        udp dport 7002 ct label set 1
        ct state new counter accept
    }
}
table ip pynfct_events_nat {
    chain output {
        type nat hook output priority -100; policy accept;
        tcp dport 7003 dnat to 127.0.0.1:7001
    }
}
"""

TRAFFIC = r"""
import socket, subprocess, time
def pause():
    time.sleep(0.05)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 7001)); srv.listen()
for cport, dport in ((41001, 7001), (41002, 7003)):      # marked, then DNATed to 7001
    c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind(("127.0.0.1", cport)); c.connect(("127.0.0.1", dport))
    a, _ = srv.accept(); c.sendall(b"x"); a.recv(1); a.close(); c.close()
    pause()
for fam, host, cport, dport in ((socket.AF_INET, "127.0.0.1", 41003, 7002), (socket.AF_INET6, "::1", 41004, 7005)):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((host, dport))
    c = socket.socket(fam, socket.SOCK_DGRAM); c.bind((host, cport))
    c.sendto(b"q", (host, dport)); data, peer = s.recvfrom(10); s.sendto(b"r", peer); c.recvfrom(10)
    pause()
subprocess.run(["ping", "-c", "1", "-W", "1", "127.0.0.1"], stdout=subprocess.DEVNULL, check=True)
pause()
"""


def prepare(ns) -> None:
    """Counters, timestamps, long timeouts (nothing expires during a test), a labels map, the ruleset."""
    ns.sysctl("net.netfilter.nf_conntrack_acct", 1)
    ns.sysctl("net.netfilter.nf_conntrack_timestamp", 1)
    for name in ("tcp_timeout_close", "tcp_timeout_time_wait", "tcp_timeout_fin_wait", "tcp_timeout_close_wait",
                 "tcp_timeout_last_ack", "tcp_timeout_syn_sent", "tcp_timeout_syn_recv", "udp_timeout",
                 "icmp_timeout"):
        ns.sysctl(f"net.netfilter.nf_conntrack_{name}", 3600)
    ns.set_labelmap(DEFAULT_LABELMAP)
    ns.nft(RULESET)


def play(ns, writer: CtWriter, pause: float = 0.03) -> None:
    """The slow sequence: about 40 events, none of them in a burst."""
    def step() -> None:
        time.sleep(pause)
    writer.create("tcp", "10.0.0.1", "10.0.0.2", 1000, 80, state="ESTABLISHED", status=SEEN_REPLY | ASSURED)
    step()
    writer.create("udp", "10.0.0.1", "10.0.0.3", 2000, 53)
    step()
    writer.create("tcp", "2001:db8::1", "2001:db8::2", 4000, 443, state="SYN_SENT")
    step()
    writer.create("icmp", "10.0.0.4", "10.0.0.5", 7, 8, mark=7)
    step()
    writer.create("udp", "10.0.0.6", "10.0.0.7", 5, 6, zone=3, mark=9)
    step()
    ns.python(TRAFFIC)
    step()
    writer.update("tcp", "10.0.0.1", "10.0.0.2", 1000, 80, mark=42)
    step()
    writer.update("tcp", "2001:db8::1", "2001:db8::2", 4000, 443, state="ESTABLISHED", status=SEEN_REPLY | ASSURED)
    step()
    writer.update("udp", "10.0.0.6", "10.0.0.7", 5, 6, zone=3, mark=7)
    step()
    writer.delete("udp", "10.0.0.1", "10.0.0.3", 2000, 53)
    step()
    writer.flush()
    time.sleep(0.2)


def _normalize(text: str) -> str:
    # The only bytes that truly differ: the wall-clock time each program printed.
    text = re.sub(r"(?m)^\[\d+\.\d+ *\]\t", "[TIME]\t", text)
    return re.sub(r"<when>.*?</when>", "<when/>", text)


def run_pairs(ns, tmp_path, cases: Sequence[Sequence[str]]) -> List[tuple]:
    """Start conntrack -E and pynfct -E for each case at once, play the sequence, stop; [(args, ct, py)]."""
    prepare(ns)
    listeners = []
    for i, args in enumerate(cases):
        listeners.append((args, Listener(ns, "conntrack", ["-E", *args], tmp_path, f"c{i}"),
                          Listener(ns, "pynfct", ["-E", *args], tmp_path, f"c{i}")))
    every = [x for _, c, p in listeners for x in (c, p)]
    wait_for(lambda: all(x.subscribed() for x in every), 60, what="the listeners to subscribe")
    with CtWriter(ns.name) as writer:
        play(ns, writer)
        wait_idle(every)
        results = [(args, c.stop(), p.stop()) for args, c, p in listeners]
    return results


def check_pairs(results) -> None:
    problems = []
    for args, ct, py in results:
        try:
            assert_same(ct, py, normalize=_normalize, timeout_slack=0)
        except AssertionError as e:
            problems.append(str(e))
    assert not problems, "\n\n".join(problems)


OUTPUTS = [
    [], ["-o", "extended"], ["-o", "xml"], ["-o", "timestamp"], ["-o", "id"], ["-o", "ktimestamp"],
    ["-o", "userspace"], ["-o", "save"], ["-o", "labels"], ["-o", "extended,id,ktimestamp"],
    ["-o", "xml,timestamp"], ["-o", "xml,id,ktimestamp,extended"], ["-o", "timestamp,extended,labels"],
]
MASKS = [
    ["-e", "NEW"], ["-e", "UPDATES"], ["-e", "DESTROY"], ["-e", "NEW,DESTROY"], ["-e", "ALL"],
    ["-e", "NEW", "-o", "xml"], ["-e", "DESTROY", "-o", "save"], ["-b", "1000000"],
    ["-b", "300000", "-e", "UPDATES", "-o", "id"],
]
FILTERS = [
    ["-p", "tcp"], ["-p", "udp"], ["-p", "icmp"], ["-p", "6"], ["-f", "ipv6"], ["-f", "ipv4"],
    ["-s", "10.0.0.1"], ["-d", "10.0.0.2"], ["-s", "2001:db8::1"], ["-d", "::1"], ["-s", "10.0.0.0/24"],
    ["-s", "2001:db8::/64"], ["-s", "127.0.0.0", "--mask-src", "255.0.0.0"],
    ["-d", "10.0.0.0", "--mask-dst", "255.255.255.248"], ["-p", "tcp", "--state", "ESTABLISHED"],
    ["-p", "tcp", "--dport", "80"], ["-p", "udp", "--sport", "41003"],
]
FILTERS2 = [
    ["-m", "42"], ["-m", "0x2a/0xff"], ["-m", "0"], ["-m", "7"], ["-w", "3"], ["--orig-zone", "3"],
    ["--dst-nat"], ["--any-nat"], ["--src-nat"], ["-l", "pynfct-l1"], ["-r", "10.0.0.2"], ["-q", "10.0.0.1"],
    ["-p", "tcp", "-s", "127.0.0.1", "--dport", "7001", "-o", "extended"], ["-f", "ipv4", "-p", "udp", "-e", "NEW,UPDATES"],
    ["-p", "icmp", "--icmp-type", "8", "-o", "id"],
]


@pytest.mark.parametrize("cases", [OUTPUTS, MASKS, FILTERS, FILTERS2], ids=["outputs", "masks", "filters", "filters2"])
def test_events_same_as_conntrack(netns, tmp_path, cases):
    results = run_pairs(netns, tmp_path, cases)
    check_pairs(results)
    # The sequence must have been seen at all, and the cases must select something different.
    default = next((ct for args, ct, py in results if not args), None)
    if default is not None:
        kinds = {w for line in default.out.splitlines() for w in ("[NEW]", "[UPDATE]", "[DESTROY]") if w in line}
        assert kinds == {"[NEW]", "[UPDATE]", "[DESTROY]"}, default.out
        assert "[USERSPACE] portid=" in default.out and " progname=" in default.out
        assert len(default.out.splitlines()) >= 30
    nonempty = sum(1 for _, ct, _ in results if ct.out.strip())
    assert nonempty >= len(cases) - 3, [(a, ct.out) for a, ct, _ in results if not ct.out.strip()]


def test_kernel_filter_keeps_events_out_of_the_socket(netns):
    """Filtered-out events never reach the socket when the kernel can apply the filter."""
    with pynfct.Conntrack(netns.name) as ct, CtWriter(netns.name) as w:
        tcp = ct.events("NEW", proto="tcp", dst="10.9.0.0/16", timeout=0.5)
        alls = ct.events("NEW", proto="tcp", dst="10.9.0.0/16", kernel_filter=False, timeout=0.5)
        assert tcp.kernel_filter and not alls.kernel_filter
        w.create("udp", "10.8.0.1", "10.9.0.1", 1, 2)
        w.create("tcp", "10.8.0.1", "10.8.0.2", 1, 2, state="SYN_SENT")
        w.create("tcp", "10.8.0.1", "10.9.0.2", 1, 2, state="SYN_SENT")
        a = [str(e) for e in tcp]
        b = [str(e) for e in alls]
        assert a == b and len(a) == 1 and "dst=10.9.0.2" in a[0]
        assert tcp.received == 1 and alls.received == 3


# --------------------------------------------------------------------------------------------------
# bursts
# --------------------------------------------------------------------------------------------------

BURST = 20000
SENTINEL = ["-I", "-p", "udp", "-s", "192.0.2.254", "-d", "192.0.2.253", "--sport", "9", "--dport", "9",
            "-t", "1000"]


def _burst(ns) -> None:
    """BURST entries in one conntrack -R, then a flush, then the sentinel entry."""
    lines = "".join(" ".join(bulk_entry_argv(i)) + "\n" for i in range(BURST))
    r = ns.conntrack("-R", "-", input=lines, timeout=300)
    assert r.returncode == 0, r.stderr
    assert ns.ct_count() == BURST
    r = ns.conntrack("-F")
    assert r.returncode == 0, r.stderr
    r = ns.conntrack(*SENTINEL)
    assert r.returncode == 0, r.stderr


def test_burst_cli_loses_nothing(netns, tmp_path):
    listener = Listener(netns, "pynfct", ["-E"], tmp_path, "burst")
    wait_for(listener.subscribed, 60, what="pynfct -E to subscribe")
    _burst(netns)
    # Events are queued in order: once the sentinel is printed, everything before it is too.
    wait_for(lambda: b"src=192.0.2.254" in listener.output(), 120, interval=0.1, what="the sentinel event")
    r = listener.stop()
    lines = r.out.splitlines()
    new = sum(1 for x in lines if x.startswith("    [NEW] ") and "192.0.2.254" not in x)
    destroy = sum(1 for x in lines if x.startswith("[DESTROY] "))
    assert (new, destroy) == (BURST, BURST)
    assert len(lines) == 2 * BURST + 1
    assert r.returncode == 0
    assert r.err == f"{PREFIX}: {2 * BURST + 1} flow events have been shown.\n"


def test_burst_python_iterator_loses_nothing(netns):
    counts = {"NEW": 0, "DESTROY": 0, "UPDATE": 0}
    lost = []
    with pynfct.Conntrack(netns.name) as ct:
        stream = ct.events(on_lost=lost.append)
        done = threading.Event()

        def consume() -> None:
            for ev in stream:
                if ev.flow.orig.src == "192.0.2.254":
                    break
                counts[ev.type.name] += 1
            done.set()

        t = threading.Thread(target=consume)
        t.start()
        try:
            _burst(netns)
            assert done.wait(120), counts
        finally:
            stream.close()
            t.join(10)
    assert counts == {"NEW": BURST, "DESTROY": BURST, "UPDATE": 0}
    assert lost == [] and stream.lost == 0 and stream.overruns == 0


def test_overrun_is_reported_and_counted_exactly(netns, tmp_path):
    """A small buffer that overflows: lost events are counted exactly, and the iteration goes on."""
    n = 3000
    lines = "".join(" ".join(bulk_entry_argv(i)) + "\n" for i in range(n))
    lost = []
    with pynfct.Conntrack(netns.name) as ct:
        stream = ct.events("NEW", buffer_size=4096, reliable=False, on_lost=lost.append, timeout=1)
        assert 4096 <= stream.rcvbuf <= 4 * 4096
        r = netns.conntrack("-R", "-", input=lines)      # nobody reads meanwhile: most are dropped
        assert r.returncode == 0, r.stderr
        got = sum(1 for _ in stream)
    assert stream.overruns >= 1 and len(lost) >= 1
    assert 0 < got < n and got + stream.lost == n and sum(lost) == stream.lost

    # The CLI prints conntrack's warning and goes on.
    listener = Listener(netns, "pynfct", ["-E", "-e", "DESTROY", "-b", "4096"], tmp_path, "enobufs")
    wait_for(listener.subscribed, 60, what="pynfct -E to subscribe")
    os.kill(listener.pid, signal.SIGSTOP)
    try:
        assert netns.conntrack("-F").returncode == 0
    finally:
        os.kill(listener.pid, signal.SIGCONT)
    time.sleep(0.3)
    r = listener.stop()
    assert r.returncode == 0
    assert ENOBUFS_TEXT in r.err and r.err.endswith(" flow events have been shown.\n")
    assert r.err.startswith("NOTICE: Netlink socket buffer size has been set to ")


# A reader that falls behind twice. Its buffer holds ~6,500 events, more than one fetch() takes (4,096):
# after the first burst the first fetch leaves events queued, so the kernel, which reports ENOBUFS once
# until the queue is empty, drops the second burst's overflow without a new report. The count must
# still be exact once the reader has caught up; then the reader must get every later event.
FALLING_BEHIND = CHILD + r'''
from pynfct import Conntrack, FlowSpec
n1, n2, n3 = map(int, sys.argv[1:4])
ct = Conntrack()
specs = [FlowSpec(**spec(i)) for i in range(n1 + n2 + n3)]
calls = []
stream = ct.events("NEW", buffer_size=4 << 20, reliable=False, on_lost=calls.append, timeout=2)

def queued():
    """Bytes the kernel holds for the event socket (/proc/self/net/netlink)."""
    inode = os.fstat(stream.fileno()).st_ino
    with open("/proc/self/net/netlink") as f:
        rows = [line.split() for line in f.read().splitlines()[1:]]
    return [int(r[4]) for r in rows if int(r[9]) == inode][0]

sample("start")
assert int(ct.create_many(specs[:n1])) == n1          # nobody reads: the buffer overflows
full = queued()
got = len(stream.fetch(1))
first = dict(got=got, lost=stream.lost, overruns=stream.overruns)
assert int(ct.create_many(specs[n1:n1 + n2])) == n2   # still behind: overflows again
while True:
    batch = stream.fetch(0.5)
    if not batch:
        break
    got += len(batch)
behind = dict(got=got, lost=stream.lost, overruns=stream.overruns, calls=list(calls))
later = []
for spec_ in specs[n1 + n2:]:                         # caught up: every later event arrives
    ct.create(spec_)
    later += stream.fetch(2)
sample("end")
report(full=full, rcvbuf=stream.rcvbuf, first=first, behind=behind, later=len(later), lost=stream.lost)
'''


def test_reader_falling_behind_counts_loss_exactly_and_recovers(netns):
    n1, n2, n3 = 12_000, 6_000, 20
    r = netns.python(FALLING_BEHIND, str(n1), str(n2), str(n3), check=False, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    s = last_json(r.stdout)
    first, behind = s["first"], s["behind"]
    # The kernel's queue stayed within the buffer (it may pass it by the one datagram it checks with).
    assert 0 < s["full"] <= s["rcvbuf"] + 64 * 1024, s
    # The overrun is reported, not silent, and the first fetch did not empty the socket.
    assert first["overruns"] >= 1 and 0 < first["lost"] < n1 and first["got"] < n1 - first["lost"], s
    # Exact once caught up: every event was either read or counted lost, the second burst included.
    assert behind["lost"] > first["lost"] and behind["got"] + behind["lost"] == n1 + n2, s
    assert sum(behind["calls"]) == behind["lost"], s
    assert s["later"] == n3 and s["lost"] == behind["lost"], s
    # 18,000 events went by; the reader's memory did not follow them.
    assert growth(s, "start", "end") < 8 * MiB, s


def test_cli_falling_behind_warns_and_goes_on_like_conntrack(netns, tmp_path):
    """conntrack 1.4.7 -E prints its ENOBUFS warning and keeps reading; so does pynfct -E: a listener
    stopped through a burst reports the loss on stderr and prints the next event."""
    listeners = [Listener(netns, prog, ["-E", "-e", "NEW", "-b", "4096"], tmp_path, "behind")
                 for prog in ("conntrack", "pynfct")]
    for x in listeners:
        wait_for(x.subscribed, 60, what=f"{x.prog} -E to subscribe")
        os.kill(x.pid, signal.SIGSTOP)
    try:
        lines = "".join(" ".join(bulk_entry_argv(i)) + "\n" for i in range(300))
        assert netns.conntrack("-R", "-", input=lines).returncode == 0
    finally:
        for x in listeners:
            os.kill(x.pid, signal.SIGCONT)
    wait_idle(listeners)
    assert netns.conntrack("-I", "-p", "udp", "-s", "192.0.2.254", "-d", "192.0.2.1", "--sport", "1", "--dport", "2",
                           "-t", "60").returncode == 0
    for x in listeners:
        wait_for(lambda: b"src=192.0.2.254" in x.output(), 30, what=f"{x.prog} -E to print the later event")
    for x in listeners:
        r = x.stop()
        assert r.returncode == 0 and ENOBUFS_TEXT in r.err, (x.prog, r.err)
        shown = int(r.err.rsplit(": ", 1)[1].split()[0])
        assert shown == len(r.out.splitlines()) < 301, (x.prog, r.err)


# --------------------------------------------------------------------------------------------------
# the Python API: threads, closing, timeouts, asyncio
# --------------------------------------------------------------------------------------------------

def test_waiting_thread_does_not_block_other_threads(netns):
    with pynfct.Conntrack(netns.name) as ct:
        stream = ct.events()
        waiting = threading.Thread(target=lambda: list(stream))
        waiting.start()
        try:
            time.sleep(0.1)
            assert waiting.is_alive()
            n = 0
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                n += 1
            assert waiting.is_alive()          # still blocked in events() ...
            assert n > 10000                   # ... while this thread ran freely
        finally:
            stream.close()
            waiting.join(5)
        assert not waiting.is_alive()


def test_close_from_another_thread_ends_iteration_promptly(netns):
    with pynfct.Conntrack(netns.name) as ct:
        stream = ct.events()
        got = []
        t = threading.Thread(target=lambda: got.extend(stream))
        t.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        stream.close()
        t.join(5)
        assert not t.is_alive() and time.monotonic() - t0 < 1.0
        assert got == [] and stream.closed and stream.fileno() == -1


def test_timeout_and_break_free_the_socket(netns):
    with pynfct.Conntrack(netns.name) as ct, CtWriter(netns.name) as w:
        t0 = time.monotonic()
        stream = ct.events(timeout=0.3)
        assert list(stream) == [] and 0.25 < time.monotonic() - t0 < 2
        assert stream.closed

        stream = ct.events(timeout=5)
        inode = int(os.readlink(f"/proc/self/fd/{stream.fileno()}")[8:-1])
        w.create("udp", "10.0.0.1", "10.0.0.2", 1, 2)
        for ev in stream:
            assert ev.type == pynfct.events.EventType.NEW and ev.portid == w.portid
            break
        del stream, ev
        assert inode not in _socket_inodes(os.getpid())


def test_asyncio_iterator_matches_conntrack(netns, tmp_path):
    """async for over events_async(): the same events conntrack -E shows, no extra thread."""
    prepare(netns)
    ct_listener = Listener(netns, "conntrack", ["-E"], tmp_path, "async")
    wait_for(ct_listener.subscribed, 30, what="conntrack -E to subscribe")
    threads = threading.active_count()

    async def main() -> List[str]:
        lines = []
        with pynfct.Conntrack(netns.name) as ct:
            stream = ct.events_async(timeout=1.0)
            loop = asyncio.get_running_loop()
            with CtWriter(netns.name) as w:
                producer = loop.run_in_executor(None, play, netns, w)
                async for ev in stream:
                    lines.append(str(ev))
                await producer
                wait_idle([ct_listener])
        assert stream.closed
        return lines

    lines = asyncio.run(main())
    assert threading.active_count() <= threads + 1   # the executor thread that played the sequence
    r = ct_listener.stop()
    expected = re.sub(r" progname=\S+", "", r.out)
    assert_same(Result(r.argv, 0, expected.encode(), b""), Result(["api"], 0, "".join(x + "\n" for x in lines).encode(), b""))
    assert len(lines) >= 30


# events(**filters) against conntrack -E with the same filter words: the library's filters, applied in
# the kernel (a BPF filter on the socket) where it can, select what conntrack's select.
API_FILTERS = [
    (dict(proto="tcp"), ["-p", "tcp"]), (dict(family="ipv6"), ["-f", "ipv6"]),
    (dict(src="10.0.0.0/24"), ["-s", "10.0.0.0/24"]), (dict(dst="10.0.0.2"), ["-d", "10.0.0.2"]),
    (dict(proto="tcp", dport=80), ["-p", "tcp", "--dport", "80"]), (dict(proto="udp", sport=41003), ["-p", "udp", "--sport", "41003"]),
    (dict(src="2001:db8::1"), ["-s", "2001:db8::1"]), (dict(mark=42), ["-m", "42"]), (dict(zone=3), ["-w", "3"]),
    (dict(proto="tcp", state="ESTABLISHED"), ["-p", "tcp", "--state", "ESTABLISHED"]),
]


def test_api_event_filters_same_as_conntrack(netns, tmp_path):
    """Each events(**filters) stream sees the events conntrack -E with the same filter lists, in the same
    order and words (str(event) is conntrack's line without the program name)."""
    prepare(netns)
    cts = [Listener(netns, "conntrack", ["-E", *args], tmp_path, f"api{i}") for i, (_, args) in enumerate(API_FILTERS)]
    wait_for(lambda: all(x.subscribed() for x in cts), 60, what="conntrack -E to subscribe")
    got: List[List[str]] = [[] for _ in API_FILTERS]
    with pynfct.Conntrack(netns.name) as ct:
        streams = [ct.events(timeout=1.5, **kw) for kw, _ in API_FILTERS]
        # all but family= and zone= go to the kernel
        assert [st.kernel_filter for st in streams] == [kw.keys().isdisjoint({"family", "zone"})
                                                        for kw, _ in API_FILTERS]
        threads = [threading.Thread(target=lambda st=st, out=out: out.extend(str(e) for e in st))
                   for st, out in zip(streams, got)]
        for t in threads:
            t.start()
        with CtWriter(netns.name) as w:
            play(netns, w)
            wait_idle(cts)
        for t in threads:
            t.join(30)
    nonempty = 0
    for (kw, args), listener, lines in zip(API_FILTERS, cts, got):
        r = listener.stop()
        expected = re.sub(r" progname=\S+", "", r.out)
        assert_same(Result(r.argv, 0, expected.encode(), b""),
                    Result(["api", str(kw)], 0, "".join(x + "\n" for x in lines).encode(), b""))
        nonempty += bool(lines)
    assert nonempty == len(API_FILTERS)


@pytest.mark.parametrize("where", ["loop", "thread"])
def test_async_close_ends_iteration(netns, where):
    async def main() -> float:
        with pynfct.Conntrack(netns.name) as ct:
            stream = ct.events_async()
            if where == "loop":
                asyncio.get_running_loop().call_later(0.2, stream.close)
            else:
                threading.Timer(0.2, stream.close).start()
            t0 = time.monotonic()
            async for _ in stream:
                pass
            assert stream.closed
            return time.monotonic() - t0
    assert asyncio.run(main()) < 1.0


def test_event_objects(netns):
    with pynfct.Conntrack(netns.name) as ct, CtWriter(netns.name) as w:
        stream = ct.events("NEW,DESTROY", proto="tcp", timeout=1)
        w.create("tcp", "10.1.0.1", "10.1.0.2", 1234, 80, state="ESTABLISHED", status=SEEN_REPLY | ASSURED, mark=5)
        w.update("tcp", "10.1.0.1", "10.1.0.2", 1234, 80, mark=6)       # UPDATE: not subscribed
        w.delete("tcp", "10.1.0.1", "10.1.0.2", 1234, 80)
        evs = list(stream)
    assert [e.type for e in evs] == [pynfct.events.EventType.NEW, pynfct.events.EventType.DESTROY]
    new, destroy = evs
    assert (new.flow.orig.src, new.flow.orig.dport, new.flow.state, new.flow.mark) == ("10.1.0.1", 80, "ESTABLISHED", 5)
    assert destroy.flow.mark == 6 and new.portid == destroy.portid == w.portid
    assert str(new).startswith("    [NEW] tcp      6 1000 ESTABLISHED src=10.1.0.1 ")
    assert str(new).endswith(f" [USERSPACE] portid={w.portid}")


def test_event_mask_words(netns):
    from pynfct.events import EventType, parse_mask
    assert parse_mask("ALL") == EventType.ALL
    assert parse_mask("new,UPDATES") == EventType.NEW | EventType.UPDATE
    assert parse_mask(["DESTROY", EventType.NEW]) == EventType.NEW | EventType.DESTROY
    with pytest.raises(pynfct.ParameterError):
        parse_mask("BOGUS")
    with pytest.raises(TypeError, match="mask_src"):
        pynfct.Conntrack(netns.name).events(mask_src="255.0.0.0")
    with pytest.raises(TypeError, match="bool"):
        parse_mask(True)
    with pytest.raises(pynfct.ParameterError, match="status="):
        pynfct.Conntrack(netns.name).events(status="!ASSURED")


# --------------------------------------------------------------------------------------------------
# -o json, expectations, errors
# --------------------------------------------------------------------------------------------------

def test_json_events(netns, tmp_path):
    prepare(netns)
    default = Listener(netns, "pynfct", ["-E"], tmp_path, "plain")
    js = Listener(netns, "pynfct", ["-E", "-o", "json,timestamp"], tmp_path, "json")
    wait_for(lambda: default.subscribed() and js.subscribed(), 60, what="the listeners to subscribe")
    with CtWriter(netns.name) as w:
        play(netns, w)
        wait_idle([default, js])
        plain, r = default.stop(signal.SIGTERM), js.stop()
    assert plain.returncode == 0 and plain.err == f"{PREFIX}: {len(plain.out.splitlines())} flow events have been shown.\n"
    assert r.returncode == 0
    objs = [json.loads(x) for x in r.out.splitlines()]
    lines = plain.out.splitlines()
    assert len(objs) == len(lines) > 30
    for obj, line in zip(objs, lines):
        assert f"[{obj['type'].upper()}]" in line
        assert f"src={obj['orig']['src']} " in line
        assert ("portid" in obj) == ("[USERSPACE]" in line)
        if "portid" in obj:
            assert f"portid={obj['portid']} progname={obj['progname']}" in line
        assert isinstance(obj["time"], float)


# A process may name itself with any bytes (prctl PR_SET_NAME): its name, printed as the progname of
# its changes, must still be valid JSON text (escaped, and U+FFFD for what is not UTF-8).
RENAMED = r'''
import ctypes, sys
sys.path.insert(0, sys.argv[2])
from ctwriter import CtWriter
assert ctypes.CDLL(None).prctl(15, b'\xffa"b\\\x01\xc3', 0, 0, 0) == 0    # PR_SET_NAME
with CtWriter(sys.argv[1]) as w:      # its socket stays open: the listener finds its owner
    w.create("udp", "10.0.0.1", "10.0.0.2", 1, 2)
    print("created", flush=True)      # the event is in the listener's socket now
    sys.stdin.read()                  # alive until the listener has printed the event
'''


def test_json_events_progname_not_utf8(netns, tmp_path):
    js = Listener(netns, "pynfct", ["-E", "-o", "json"], tmp_path, "json")
    wait_for(js.subscribed, 60, what="the listener to subscribe")
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = netns.python_popen(RENAMED, netns.name, tests, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"created\n"
    wait_idle([js])
    child.stdin.close()
    assert child.wait(30) == 0
    r = js.stop()
    assert r.returncode == 0
    objs = [json.loads(line.decode("utf-8")) for line in r.stdout.splitlines()]   # strict UTF-8
    assert [o["progname"] for o in objs] == ['\ufffda"b\\\x01\ufffd']


FTP = r"""
import socket, threading, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 21)); srv.listen()
def serve():
    c, _ = srv.accept(); c.sendall(b"220 hi\r\n"); c.recv(100)
    c.sendall(b"227 Entering Passive Mode (127,0,0,1,200,10)\r\n"); c.recv(100); c.close()
t = threading.Thread(target=serve); t.start()
cl = socket.create_connection(("127.0.0.1", 21)); cl.recv(100); cl.sendall(b"PASV\r\n"); cl.recv(100)
time.sleep(0.2); cl.close(); t.join()
"""


def test_expectation_events_same_as_conntrack(netns, tmp_path):
    netns.nft("""
table inet pynfct_ftp {
    ct helper ftp-standard { type "ftp" protocol tcp; }
    chain output { type filter hook output priority 0; tcp dport 21 ct helper set "ftp-standard"; }
}
""")
    cases = [[], ["-o", "xml"], ["-o", "timestamp"], ["-o", "xml,timestamp"], ["-o", "extended,id"]]
    pairs = [(a, Listener(netns, "conntrack", ["-E", "expect", *a], tmp_path, f"e{i}"),
              Listener(netns, "pynfct", ["-E", "expect", *a], tmp_path, f"e{i}")) for i, a in enumerate(cases)]
    every = [x for _, c, p in pairs for x in (c, p)]
    wait_for(lambda: all(x.subscribed() for x in every), 60, what="the listeners to subscribe")
    netns.python(FTP)
    assert netns.conntrack("-F", "expect").returncode == 0
    time.sleep(0.1)
    wait_idle(every)
    results = [(a, c.stop(), p.stop()) for a, c, p in pairs]
    check_pairs(results)
    assert "[NEW]" in results[0][1].out and "[DESTROY]" in results[0][1].out and "helper=ftp" in results[0][1].out


@pytest.mark.parametrize("args", [
    ["-E", "-u", "ASSURED"], ["-E", "--mask-src", "255.0.0.0"], ["-E", "-f", "ipv4", "--mask-src", "255.0.0.0"],
    ["-E", "-b", "100000", "-f", "ipv4", "--mask-dst", "255.0.0.0"], ["-E", "expect", "-e", "NEW"],
    ["-E", "expect", "-b", "1000"], ["-E", "-e", "BOGUS"], ["-E", "-o", "save,xml"],
])
def test_event_errors_same_as_conntrack(netns, args):
    ct, py = run_both(netns, args, timeout=20)
    assert ct.returncode != 0
    assert_same(ct, py)
