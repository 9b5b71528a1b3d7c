"""pynfct against conntrack on a big mixed table: every -L format and the main filters, byte for byte.

tests/fill.py fill_big: 50,000 entries of 16 kinds (TCP in 8 states, UDP with status bits, TCP/UDP over
IPv6, ICMP/ICMPv6, SCTP with vtags, GRE with keys, UDPlite, protocol 99, SNAT'd and DNAT'd reply tuples,
zones in both directions, 10 marks, labels on ~2.5 %, long timeouts), fill_nat's real NAT'd connections
and 2,000 real SNAT'd / DNAT'd UDP flows: ~52,000 entries, ~8.5 MB of default output (~29 MB as XML),
so a listing spans hundreds of dump batches and many times the 1 MiB output buffer.  The table is
static: only the timeouts tick between two reads (compared within 2 s), nothing else is normalised.

Also here, because it needs a dump that takes a while: the GIL is released while the C code reads,
parses, filters and formats a dump.
"""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest

import pynfct
from differential import Result, _pynfct_env, assert_same, pynfct_argv, run, run_both
from fill import big_entry_argv, fill_big
from netns import NetNS
from prereq import require_netns
from test_list_differential import FORMATS


@pytest.fixture(scope="module")
def big_ns():
    require_netns(need_nft=True)
    with NetNS() as ns:
        fill_big(ns, pynfct=pynfct_argv(), env=_pynfct_env())
        yield ns


def _count(ns) -> int:
    return ns.big.count


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda a: " ".join(a) or "default")
def test_big_list_formats(big_ns, fmt):
    ct, py = run_both(big_ns, ["-L", *fmt])
    assert_same(ct, py)
    assert ct.err.endswith(f" {_count(big_ns)} flow entries have been shown.\n")
    assert len(ct.stdout) > 5_000_000


# each selects part of the table (checked): (filter, fewest lines conntrack must list)
BIG_FILTERS = [
    (["-p", "tcp"], 15000), (["-f", "ipv6"], 9000), (["-p", "udp", "-f", "ipv6"], 3000),
    (["-p", "icmp", "--icmp-id", "7"], 1), (["-p", "icmpv6"], 3000), (["-p", "sctp", "--state", "COOKIE_WAIT"], 400),
    (["-p", "gre"], 3000), (["-p", "udplite"], 3000), (["-p", "99"], 3000),
    (["-s", "10.128.3.0/24"], 200), (["-d", "198.18.0.7"], 100), (["-s", "fd00:b16::/64"], 9000),
    (["-p", "tcp", "--dport", "80"], 5000), (["-p", "tcp", "--state", "TIME_WAIT"], 1000),
    (["-r", "172.16.1.30"], 1), (["-q", "172.16.1.14"], 1),
    (["-m", "42"], 4000), (["-m", "0x100/0x100"], 4000), (["-m", "0x80000000/0x80000000"], 4000),
    (["-u", "ASSURED"], 15000), (["-u", "UNREPLIED"], 15000), (["-u", "!SEEN_REPLY"], 15000),
    (["-w", "9"], 1000), (["--orig-zone", "2"], 300), (["--reply-zone", "3"], 300), (["-w", "3", "-p", "udp"], 300),
    (["-l", "pynfct-l127"], 400), (["-l", "pynfct-l0,pynfct-l5"], 200),
    (["--src-nat"], 1000), (["--dst-nat"], 1000), (["--any-nat"], 2000), (["--dst-nat", "100.65.1.2"], 1000),
    (["--src-nat", "100.65.0.2"], 1000), (["-p", "tcp", "-j", "100.64.0.60"], 1),
    (["-p", "tcp", "--dport", "80", "-o", "extended,id"], 5000), (["-p", "sctp", "-o", "xml"], 3000),
    (["-m", "7", "-o", "save"], 4000), (["-w", "9", "-o", "extended,labels,id"], 1000),
]


@pytest.mark.parametrize("flt,least", BIG_FILTERS, ids=[" ".join(f) for f, _ in BIG_FILTERS])
def test_big_list_filters(big_ns, flt, least):
    ct, py = run_both(big_ns, ["-L", *flt])
    assert_same(ct, py)
    n = int(ct.err.rsplit(" flow entries", 1)[0].rsplit(" ", 1)[1])
    assert least <= n < _count(big_ns), n


def test_big_count_and_get(big_ns):
    ct, py = run_both(big_ns, ["-C"])
    assert_same(ct, py)
    assert int(ct.out) == _count(big_ns)
    # entries by their original tuple: the last one of each of the 16 kinds fill_big made. -G takes no
    # zone, so it looks in zone 0: an entry whose original direction is in another zone is not found.
    n = big_ns.big.n
    found = 0
    for i in range(n - 16, n):
        argv = big_entry_argv(i)
        drop = {"-t", "-m", "-u", "--state", "--label-add", "--orig-vtag", "--reply-vtag", "-w", "--orig-zone",
                "--reply-zone"}
        keep = [w for j in range(1, len(argv), 2) if argv[j] not in drop for w in argv[j:j + 2]]
        ct, py = run_both(big_ns, ["-G", *keep])
        assert_same(ct, py)
        zoned = "-w" in argv or "--orig-zone" in argv
        assert ct.returncode == (1 if zoned else 0), (argv, ct.err)
        assert len(ct.stdout.splitlines()) == (0 if zoned else 1)
        found += not zoned
    assert found >= 14


def test_big_dump_api(big_ns):
    """dump() yields the entries conntrack -L lists, in its order, formatted the same by str()."""
    with pynfct.Conntrack(big_ns.name) as c:
        for kwargs, args in [({}, []), ({"proto": "udp", "zone": 3}, ["-p", "udp", "-w", "3"]),
                             ({"dnat": True}, ["--dst-nat"])]:
            expected = run(big_ns, ["conntrack", "-L", *args])
            got = b"".join(str(f).encode() + b"\n" for f in c.dump(**kwargs))
            assert_same(Result(expected.argv, 0, expected.stdout, b""), Result(["api"], 0, got, b""),
                        check_stderr=False)
            assert expected.stdout


# -- the GIL ---------------------------------------------------------------------------------------------

def _progress_while(call):
    """Run ``call()`` here while another thread counts Python loop iterations (with timestamps).

    Returns (seconds the call took, iterations the other thread made in the middle half of the call).
    When the call holds the GIL in C, the other thread can run only before it got there and after it
    returned (a switch interval, 1 ms here, plus scheduling), never in the middle half of a call that
    takes a tenth of a second or more.
    """
    stamps = []
    stop = threading.Event()
    started = threading.Event()

    def ticker():
        n = 0
        started.set()
        while not stop.is_set():
            n += 1
            if n % 64 == 0:
                stamps.append(time.perf_counter())

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    t = threading.Thread(target=ticker)
    t.start()
    try:
        started.wait()
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    quarter = (t1 - t0) / 4
    inside = [x for x in stamps if t0 + quarter < x < t1 - quarter]
    return t1 - t0, 64 * len(inside)


# The middle half of the call must span many switch intervals (1 ms) for the count to tell: 40 ms at
# least (the dumps below take 0.1-0.3 s on a 2-cpu test machine).
LONG_ENOUGH = 0.04


def test_dump_releases_the_gil(big_ns):
    """While one dump() step reads and filters the whole big table in C (a zone no entry is in, filtered
    in userspace: the first next() returns only at the end), another thread keeps running Python code.
    If that C work held the GIL, the other thread could not make one iteration in the middle of it.
    (Checked by holding the GIL there in an experiment: 0 iterations in three runs.)"""
    with pynfct.Conntrack(big_ns.name) as c:
        seconds, iterations = _progress_while(lambda: list(c.dump(zone=12345, kernel_filter=False)))
    assert seconds > LONG_ENOUGH, f"the dump took only {seconds:.3f} s: too short to tell"
    assert iterations >= 640, f"{iterations} iterations of the other thread in {seconds:.3f} s"


def test_cli_listing_releases_the_gil(big_ns):
    """The command line's path (pynfct.cli.listing.write_flows): the whole table formatted and written
    in C, to /dev/null here."""
    from _nfct.dump import DUMP_CONNTRACK
    from _nfct.filter import Filter
    from _nfct.format import Format
    from pynfct.cli.listing import write_flows
    from pynfct.cli.parse import parse
    cmd = parse(["-L", "-o", "extended"])
    fd = os.open(os.devnull, os.O_WRONLY)
    written = []
    try:
        with pynfct.Conntrack(big_ns.name) as c:
            seconds, iterations = _progress_while(lambda: written.append(
                write_flows(c._fd(), DUMP_CONNTRACK, 0, Filter(cmd, True), fd, Format(cmd.output, None))))
    finally:
        os.close(fd)
    assert written == [_count(big_ns)]
    assert seconds > LONG_ENOUGH, f"the listing took only {seconds:.3f} s: too short to tell"
    assert iterations >= 640, f"{iterations} iterations of the other thread in {seconds:.3f} s"
