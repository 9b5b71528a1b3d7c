"""-L dying and dump(table="dying") on a dying list that holds entries; -L unconfirmed.

Since Linux 5.19 the dying list holds the entries whose DESTROY event could not be delivered: an event
listener that asked for reliable delivery (NETLINK_BROADCAST_ERROR) and whose receive buffer is full makes
the kernel keep every deleted entry there (and retry the event) until the listener reads or goes away.
The fixture does exactly that: the synthetic table is created with events on (nf_conntrack_events=1, so
every entry has the event extension), a process opens such a listener with the smallest receive buffer and
never reads; 20 filler entries are deleted first (their events fill that buffer) and ``conntrack -F``
deletes everything else: every synthetic entry stays on the dying list, with its protocol, mark, zone,
NAT'd tuples and labels.

The kernel's retry work moves entries within the list (measured on 6.18: two reads a second apart list
the same entries in another order), so the two programs' lines are compared as sets; everything else is
byte for byte, timeouts within the usual slack.
"""
from __future__ import annotations

import subprocess

import pytest

import pynfct
from differential import Result, assert_same, run, run_both
from fill import fill_synthetic
from netns import NetNS
from prereq import require_netns
from test_list_differential import FORMATS

# a netlink listener for DESTROY events (group 3) with reliable delivery that never reads
STUCK_LISTENER = r"""
import socket, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)            # NETLINK_NETFILTER
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)                 # the kernel's minimum
s.setsockopt(270, 4, 1)                                              # SOL_NETLINK, NETLINK_BROADCAST_ERROR
s.bind((0, 1 << 2))                                                  # NFNLGRP_CONNTRACK_DESTROY
print("ready", flush=True)
sys.stdin.read()
"""


FILLERS, FILLER_MARK = 20, 4242     # entries deleted first, whose events fill the stuck listener's buffer


@pytest.fixture(scope="module")
def dying_ns():
    require_netns(need_nft=True)
    with NetNS() as ns:
        ns.sysctl("net.netfilter.nf_conntrack_events", 1)
        fill = fill_synthetic(ns)
        for i in range(FILLERS):
            ns.conntrack("-I", "-p", "udp", "-s", "203.0.113.1", "-d", "203.0.113.2", "--sport", str(40000 + i),
                         "--dport", "9", "-t", "600", "-m", str(FILLER_MARK), check=True)
        p = ns.python_popen(STUCK_LISTENER, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert p.stdout.readline() == b"ready\n"
        # The fillers' DESTROY events fill the listener's buffer first, so that every synthetic entry stays
        # on the dying list: which entries' events fit otherwise depends on the flush's hash order, and a
        # filter's only match (-r 10.0.0.2) was once among them.
        ns.conntrack("-D", "-m", str(FILLER_MARK), check=True)
        ns.conntrack("-F", check=True)
        assert ns.conntrack("-L", check=True).stdout == b""
        dying = ns.conntrack("-L", "dying", check=True).stdout.splitlines()
        synthetic = [line for line in dying if f"mark={FILLER_MARK} ".encode() not in line]
        assert len(synthetic) == fill.count and len(dying) < fill.count + FILLERS, (len(synthetic), len(dying))
        ns.dying_count = len(dying)
        yield ns


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda a: " ".join(a) or "default")
def test_list_dying_formats(dying_ns, fmt):
    ct, py = run_both(dying_ns, ["-L", "dying", *fmt])
    assert_same(ct, py, ordered=False)
    assert f"{dying_ns.dying_count} flow entries have been shown." in ct.err


@pytest.mark.parametrize("table", ["dying", "d", "dy"])
def test_list_dying_by_name(dying_ns, table):
    """The table's name and its abbreviations."""
    ct, py = run_both(dying_ns, ["-L", table])
    assert_same(ct, py, ordered=False)
    assert len(ct.stdout.splitlines()) == dying_ns.dying_count


@pytest.mark.parametrize("flt,selects", [
    (["-p", "tcp"], True), (["-p", "udp", "-f", "ipv6"], True), (["-m", "42"], True), (["-u", "ASSURED"], True),
    (["-w", "9"], True), (["-p", "sctp", "--state", "COOKIE_WAIT"], True), (["-l", "pynfct-l127"], True),
    (["-p", "tcp", "--dport", "80"], True), (["-d", "198.51.100.1"], True), (["-r", "10.0.0.2"], True),
    (["-p", "icmp", "--icmp-type", "8"], True), (["-m", "0x80000000/0x80000000"], True),
    # conntrack skips its network filter set-up for the other lists: NET/LEN selects nothing (README)
    (["-s", "192.0.2.0/24"], False),
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_list_dying_filters(dying_ns, flt, selects):
    ct, py = run_both(dying_ns, ["-L", "dying", *flt])
    assert_same(ct, py, ordered=False)
    assert bool(ct.stdout) == selects, ct.err


def test_list_dying_save_and_xml_end(dying_ns):
    """-o xml: the header, every entry, no closing tag (what conntrack 1.4.7 prints for this list)."""
    ct, py = run_both(dying_ns, ["-L", "dying", "-o", "xml"])
    assert_same(ct, py, ordered=False)
    lines = py.out.splitlines()
    assert lines[:2] == ['<?xml version="1.0" encoding="utf-8"?>', "<conntrack>"]
    assert len(lines) == 2 + dying_ns.dying_count and lines[-1].startswith("<flow>")


def test_dump_dying(dying_ns):
    with pynfct.Conntrack(dying_ns.name) as c:
        for kwargs, args in [({}, []), ({"proto": "udp"}, ["-p", "udp"]), ({"mark": 42}, ["-m", "42"]),
                             ({"family": "ipv6"}, ["-f", "ipv6"])]:
            expected = run(dying_ns, ["conntrack", "-L", "dying", *args])
            flows = list(c.dump(table="dying", **kwargs))
            got = Result(["api"], 0, b"".join(str(f).encode() + b"\n" for f in flows), b"")
            assert_same(Result(expected.argv, 0, expected.stdout, b""), got, ordered=False, check_stderr=False)
            assert flows


def test_list_unconfirmed(filled_ns):
    """What can be checked of -L unconfirmed on this kernel: nothing but the request and the answer.

    Linux >= 5.19 keeps no list of unconfirmed entries any more and its ctnetlink dump of them returns
    nothing (ctnetlink_dump_unconfirmed is ``return 0``). An entry can still be held unconfirmed by a
    packet queued before confirmation, but this 6.18 kernel has no nft ``queue`` expression
    (CONFIG_NFT_QUEUE unset) and no userspace helpers (CONFIG_NF_CT_NETLINK_HELPER unset), and even then
    the dump would answer nothing. So this compares the two empty answers (exit 0, "0 flow entries")
    and is no evidence about entries in that list."""
    for fmt in ([], ["-o", "xml"], ["-o", "extended,id"]):
        ct, py = run_both(filled_ns, ["-L", "unconfirmed", *fmt])
        assert_same(ct, py)
        assert ct.returncode == 0 and ct.stdout == b""
