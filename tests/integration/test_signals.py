"""Signals and pipes as a shell user expects them: pynfct ends as conntrack 1.4.7 does (issue 10, point 3).

* The reader of the output goes away (`pynfct -L | head -c 1`, or a pipe whose read end is closed): every
  output command dies of SIGPIPE without a word, with conntrack's exit status on the same namespace.
* SIGINT/SIGTERM during -L (a reader that keeps up, and one that stopped reading) and -E (a flood of
  events, written to a file or to a reader that stopped reading): the process is gone within 0.2 s of
  the signal, with conntrack's exit status and no traceback. (-D, -U and -R: tests/integration/
  test_interrupt.py; here, -D/-U/-R blocked on a full pipe: within 0.2 s, every entry changed printed
  whole or counted as not printed.)

The stop time is measured from the kill to the end of the process, from a state where the command is
known to be mid-work (output flowing, or blocked on a full pipe). The command under test runs at a
higher scheduling priority than the rest of the machine (nice -10): the bound is the program's, and a
CI machine busy with other jobs should not count against it.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from xml.etree import ElementTree

import pytest

from differential import _pynfct_env, normalize_prog, pynfct_argv
from fill import bulk_entry_argv, fill_bulk
from netns import NetNS, listens, sleeps_in

BOUND = 0.2          # seconds from the signal to the end of the process (the bound)
SMALL = 3000         # entries: -L's output (~450 KB) is far beyond a pipe's 64 KiB
BIG = 100_000        # entries: -L takes long enough to be caught mid-write by a fast reader
ONE = ["-p", "tcp", "-s", "10.0.0.1", "-d", "198.18.0.1", "--sport", "1024", "--dport", "80"]


def _ip(i: int) -> str:
    return f"10.{(i >> 16) & 0xff}.{(i >> 8) & 0xff}.{i & 0xff}"


@pytest.fixture(scope="module")
def table():
    """SMALL entries, one of which is ONE (for -G)."""
    with NetNS() as ns:
        fill_bulk(ns, SMALL)
        r = ns.conntrack("-I", *ONE, "--state", "ESTABLISHED", "-t", "100000")
        assert r.returncode == 0, r.stderr
        yield ns


def _prog(name: str):
    return ["conntrack"] if name == "conntrack" else pynfct_argv()


def _popen(ns: NetNS, argv, **kw) -> subprocess.Popen:
    p = ns.popen(argv, env=_pynfct_env(), **kw)
    try:
        os.setpriority(os.PRIO_PROCESS, p.pid, -10)
    except OSError:
        pass
    return p


def _closed_pipe(ns: NetNS, argv):
    """Run argv with stdout a pipe whose read end is closed before it starts: (status, stderr)."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = _popen(ns, argv, stdout=w, stderr=subprocess.PIPE)
    finally:
        os.close(w)
    _, err = p.communicate(timeout=60)
    return p.returncode, normalize_prog(err.decode(errors="replace"))


OUTPUT_COMMANDS = [
    ["-L"], ["-L", "-o", "xml"], ["-L", "-o", "extended,id"], ["-L", "-o", "save"], ["-L", "-p", "udp"],
    ["-L", "-s", "10.0.0.0/8"], ["-L", "dying"], ["-L", "expect"], ["-L", "expect", "-o", "xml"],
    ["-G", *ONE], ["-C"], ["-C", "expect"], ["-S"], ["-S", "expect"], ["-V"], ["-h"], ["-h", "-p", "tcp"],
]


@pytest.mark.parametrize("args", OUTPUT_COMMANDS, ids=" ".join)
def test_closed_pipe_ends_like_conntrack(table, args):
    """No reader at all: the first write ends the process as it ends conntrack (SIGPIPE, quietly)."""
    ct = _closed_pipe(table, ["conntrack", *args])
    py = _closed_pipe(table, [*pynfct_argv(), *args])
    assert py == ct
    if args[:2] not in (["-L", "dying"], ["-L", "expect"]):     # (these print nothing to stdout here)
        # killed at the first write; -G's line goes out at exit, after the summary (stdio buffering)
        assert ct[0] == -signal.SIGPIPE and (ct[1] == "" or args[0] == "-G")


@pytest.mark.parametrize("args", [["-L"], ["-L", "-o", "xml"], ["-L", "-o", "extended"], ["-L", "-p", "tcp"]],
                         ids=" ".join)
def test_head_c_1_ends_like_conntrack(table, args):
    """`... | head -c 1`: the reader takes one byte and goes away while the output is still coming."""
    results = []
    for name in ("conntrack", "pynfct"):
        p = _popen(table, [*_prog(name), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = p.stdout.read(1)
        p.stdout.close()
        err = p.stderr.read()
        results.append((p.wait(timeout=60), len(first), normalize_prog(err.decode(errors="replace"))))
    assert results[1] == results[0] == (-signal.SIGPIPE, 1, "")


def test_write_commands_printing_entries_end_like_conntrack(tmp_path):
    """-U, -D and -R print the entries they change: with no reader, killed by SIGPIPE like conntrack
    (which entries were changed by then differs, as both stop at their first write). (-U with -f:
    without it conntrack 1.4.7 updates nothing, see README.)"""
    cases = [["-U", "-f", "ipv4", "-p", "udp", "-m", "7"], ["-D", "-p", "udp"], ["-R", "FILE"]]
    with NetNS() as ns:
        fills = 0
        for args in cases:
            got = []
            for name in ("conntrack", "pynfct"):
                fill_bulk(ns, 400, start=fills * 1000)      # (new tuples: the flushed ones may linger)
                fills += 1
                if args == ["-R", "FILE"]:
                    path = tmp_path / "batch"
                    path.write_text("-U -f ipv4 -p tcp -m 3\n-D -p tcp\n")
                    argv = ["-R", str(path)]
                else:
                    argv = args
                got.append(_closed_pipe(ns, [*_prog(name), *argv]))
                ns.conntrack("-F")
            assert got[1] == got[0] == (-signal.SIGPIPE, ""), args


def test_event_listener_ends_like_conntrack_when_its_reader_is_gone():
    with NetNS() as ns:
        procs = []
        for name in ("conntrack", "pynfct"):
            r, w = os.pipe()
            os.close(r)
            procs.append(_popen(ns, [*_prog(name), "-E"], stdout=w, stderr=subprocess.PIPE))
            os.close(w)
        _wait_subscribed(procs)
        ns.conntrack("-I", *ONE, "--state", "ESTABLISHED", "-t", "100")
        out = [(p.wait(timeout=30), p.stderr.read()) for p in procs]
        assert out[1] == out[0] == (-signal.SIGPIPE, b"")


def _wait_subscribed(procs, timeout: float = 30.0) -> None:
    """Until each process has a netlink socket bound to groups (it listens for events)."""
    deadline = time.monotonic() + timeout
    for p in procs:
        while not listens(p.pid):
            assert p.poll() is None and time.monotonic() < deadline, "the listener did not start"
            time.sleep(0.01)


def _stop(p: subprocess.Popen, sig: int):
    """Send `sig` to the running command; (status, seconds from the signal to the end of the process)."""
    assert p.poll() is None, "the command ended before the signal: not mid-work"
    sent = time.monotonic()
    os.kill(p.pid, sig)
    rc = p.wait(timeout=30)
    return rc, time.monotonic() - sent


def _stop_when_blocked(p: subprocess.Popen, sig: int, timeout: float = 60.0):
    """_stop() once the command waits for its full pipe (its reader stopped reading): in a write
    (conntrack, pynfct -L), or polling the pipe for room (pynfct -D/-U/-R, which never wait in write())."""
    deadline = time.monotonic() + timeout
    while not (sleeps_in(p.pid, "pipe_write") or sleeps_in(p.pid, "poll")):
        assert p.poll() is None and time.monotonic() < deadline, "the command never filled the pipe"
        time.sleep(0.005)
    return _stop(p, sig)


@pytest.fixture(scope="module")
def big_table(tmp_path_factory):
    with NetNS() as ns:
        cap = int(ns.sysctl("net.netfilter.nf_conntrack_max"))
        if cap and cap < BIG + 1000:
            pytest.skip(f"nf_conntrack_max is {cap}: too small a table for this test")
        data = "".join(" ".join(bulk_entry_argv(i)) + "\n" for i in range(BIG)).encode()
        r = ns.run([*pynfct_argv(), "-R", "-"], input=data, env=_pynfct_env(), timeout=300)
        assert r.returncode == 0, r.stderr
        yield ns


SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


@SIGNALS
def test_list_with_a_reader_that_stopped_reading_stops_at_once(table, sig):
    """-L blocked on a full pipe: killed by the signal, as conntrack is."""
    for name in ("conntrack", "pynfct"):
        p = _popen(table, [*_prog(name), "-L"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            rc, took = _stop_when_blocked(p, sig)
            err = p.stderr.read()
        finally:
            p.kill()
            p.communicate()
        print(f"\n{name} -L, blocked on a full pipe: ended {took * 1000:.1f} ms after {sig.name}")
        assert (rc, err) == (-sig, b""), name
        if name == "pynfct":
            assert took <= BOUND


@SIGNALS
def test_list_with_a_fast_reader_stops_at_once(big_table, sig):
    """-L of 100,000 entries read as fast as it comes: the signal comes once 1 MB has been read."""
    for name in ("conntrack", "pynfct"):
        p = _popen(big_table, [*_prog(name), "-L"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        got = [0]
        started = threading.Event()

        def read() -> None:
            while True:
                b = os.read(p.stdout.fileno(), 1 << 16)
                if not b:
                    return
                got[0] += len(b)
                if got[0] > 1 << 20:
                    started.set()

        reader = threading.Thread(target=read)
        reader.start()
        try:
            assert started.wait(60), "no output"
            rc, took = _stop(p, sig)
        finally:
            if p.poll() is None:
                p.kill()
            reader.join()
            err = p.stderr.read()
            p.communicate()
        print(f"\n{name} -L (read as it comes, {got[0]} bytes): ended {took * 1000:.1f} ms after {sig.name}")
        assert (rc, err) == (-sig, b""), name
        if name == "pynfct":
            assert took <= BOUND


def _flood(ns: NetNS, n: int) -> subprocess.Popen:
    """Creates n entries through one netlink socket, as fast as the kernel takes them (events)."""
    data = "".join(" ".join(bulk_entry_argv(i)) + "\n" for i in range(n)).encode()
    p = ns.popen([*pynfct_argv(), "-R", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, env=_pynfct_env())
    threading.Thread(target=lambda: (p.stdin.write(data), p.stdin.close()), daemon=True).start()
    return p


@SIGNALS
@pytest.mark.parametrize("reader,fmt", [("file", ""), ("file", "xml"), ("reading", ""), ("reading", "xml"),
                                        ("stopped", "")])
def test_events_stop_within_the_bound_during_a_flood(tmp_path, sig, reader, fmt):
    """-E while events flood in, written to a file, to a pipe read as fast as it comes or to a pipe
    nobody reads: conntrack's ending (exit 0 and its summary line), within 0.2 s. (conntrack itself
    hangs at exit on a full pipe.) The summary counts exactly the lines written, none is cut, and
    -o xml is closed by its footer, whenever the output takes the text."""
    argv = [*pynfct_argv(), "-E", *(["-o", fmt] if fmt else [])]
    with NetNS() as ns:
        out_path = tmp_path / "events"
        got = bytearray()
        with open(out_path, "wb") as f:
            p = _popen(ns, argv, stdout=f if reader == "file" else subprocess.PIPE, stderr=subprocess.PIPE)
        if reader == "reading":
            def read_all():
                while chunk := p.stdout.read1(1 << 16):
                    got.extend(chunk)
            reading = threading.Thread(target=read_all, daemon=True)
            reading.start()

        def mid_work() -> bool:
            if reader == "stopped":
                return sleeps_in(p.pid, "pipe_write")
            return (os.path.getsize(out_path) if reader == "file" else len(got)) > 1 << 20
        flood = None
        try:
            _wait_subscribed([p])
            flood = _flood(ns, 50_000)
            deadline = time.monotonic() + 60
            while not mid_work():
                assert p.poll() is None and flood.poll() is None and time.monotonic() < deadline, \
                    "the flood ended before the listener was mid-work"
                time.sleep(0.002)
            rc, took = _stop(p, sig)
            err = p.stderr.read().decode(errors="replace")
        finally:
            if p.poll() is None:
                p.kill()
            if reader == "reading":
                reading.join(30)
            elif reader == "stopped":
                got.extend(p.stdout.read())     # what the full pipe holds: all that was written
            p.communicate()
            if flood is not None:
                flood.kill()
                flood.wait()
        print(f"\npynfct -E {fmt} ({reader}): ended {took * 1000:.1f} ms after {sig.name}; {err.strip()}")
        assert rc == 0
        assert normalize_prog(err).startswith("<PROG>: ") and err.endswith(" flow events have been shown.\n")
        assert "Traceback" not in err
        assert took <= BOUND
        out = out_path.read_bytes() if reader == "file" else bytes(got)
        assert out.endswith(b"\n"), out[-200:]        # no line cut short
        lines = out.decode().splitlines()
        if fmt == "xml":
            assert out.endswith(b"</conntrack>\n"), out[-200:]
            ElementTree.fromstring(out)
            lines = [line for line in lines if line.startswith("<flow ")]
        shown = int(re.search(r" (\d+) flow events have been shown\.\n$", err).group(1))
        assert shown == len(lines) > 0


STOPPED_READER = 20_000      # entries -D/-U/-R change: ~3 MB of text, far beyond a pipe's 64 KiB


def _tuples(lines) -> set:
    """The original tuples (src dst sport dport) of printed entries or of `conntrack -L` lines."""
    out = set()
    for line in lines:
        words = line.split()
        out.add(tuple(next(w for w in words if w.startswith(k + "=")) for k in ("src", "dst", "sport", "dport")))
    return out


SMALL_STOPPED = 3_000         # ~450 KB: more than the pipe takes, less than one 1 MiB flush (the last one)


@pytest.mark.parametrize("args,sig,n", [(["-D"], signal.SIGINT, STOPPED_READER),
                                        (["-D"], signal.SIGTERM, STOPPED_READER),
                                        (["-U", "-f", "ipv4", "-m", "0x10000/0xff0000"], signal.SIGINT, STOPPED_READER),
                                        (["-R", "FILE"], signal.SIGTERM, STOPPED_READER),
                                        (["-D"], signal.SIGINT, SMALL_STOPPED),
                                        (["-R", "FILE2"], signal.SIGINT, SMALL_STOPPED)],
                         ids=["-D-SIGINT", "-D-SIGTERM", "-U-SIGINT", "-R-SIGTERM", "-D-small-SIGINT",
                              "-R-two-D-lines-SIGINT"])
def test_writes_with_a_reader_that_stopped_reading_stop_at_once(tmp_path, args, sig, n):
    """-D/-U/-R (a file with a -D line) blocked on a full pipe (`pynfct -D | (sleep 1000)`): the signal
    ends the process within 0.2 s all the same, dead of the signal, no traceback. Only whole lines
    reach the reader, and every entry changed is accounted for: the lines the reader finds in the pipe
    afterwards plus those the summary says were not printed are exactly the entries changed, as the
    real conntrack sees the table. With a small table the signal comes during the last write (all the
    text goes out at the end): it stops the run all the same, and -R runs no further line (FILE2: a
    second -D line would wait for the same reader)."""
    with NetNS() as ns:
        fill_bulk(ns, n)
        before = ns.conntrack("-L", timeout=120).stdout.decode().splitlines()
        argv = args
        if args[0] == "-R":
            (tmp_path / "batch").write_text("-D\n" if args[1] == "FILE" else "-D -p tcp\n-D -p udp\n")
            argv = ["-R", str(tmp_path / "batch")]
        p = _popen(ns, [*pynfct_argv(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            rc, took = _stop_when_blocked(p, sig)
            err = p.stderr.read().decode(errors="replace")
            out = p.stdout.read()       # the reader drains the pipe afterwards: all that was written
        finally:
            if p.poll() is None:
                p.kill()
            p.communicate()
        print(f"\npynfct {' '.join(argv)} | (stopped reader): ended {took * 1000:.1f} ms after {sig.name}; "
              f"{err.strip()}")
        assert rc == -sig
        assert took <= BOUND
        m = re.fullmatch(r"<PROG>: interrupted by (\w+): (.*), (\d+) (?:of them|of those updated and deleted) "
                         r"not printed \(the output was not read\)\.\n", normalize_prog(err))
        assert m is not None and m.group(1) == sig.name, err
        counts = [int(x) for x in re.findall(r"\d+", m.group(2))]
        changed = counts[2] if args[0] == "-R" else counts[0]         # (-R: created, updated, deleted)
        unprinted = int(m.group(3))
        assert out.endswith(b"\n")                # no entry printed half
        printed = out.decode().splitlines()
        assert len(printed) > 0 and unprinted > 0 and len(printed) + unprinted == changed
        if args[0] == "-U":
            now = ns.conntrack("-L", "-m", "0x10000/0xff0000", timeout=120).stdout.decode().splitlines()
            assert len(now) == changed
            assert _tuples(printed) <= _tuples(now)
        else:
            now = ns.conntrack("-L", timeout=120).stdout.decode().splitlines()
            assert len(before) - len(now) == changed
            gone = _tuples(before) - _tuples(now)
            assert _tuples(printed) <= gone and len(_tuples(printed)) == len(printed)
