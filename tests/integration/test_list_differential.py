"""pynfct -L/-G/-C against conntrack -L/-G/-C on the same namespace: same stdout bytes, exit code, stderr.

The tables are filled once per module (tests/fill.py): a static synthetic table covering every
protocol, state, NAT, zone, mark and label case, and a table with real loopback traffic (counters,
timestamps). Only the timeout column may differ, by the seconds that pass between the two reads.
"""
import re

import pytest

from differential import assert_same, run_both

FORMATS = [
    [], ["-o", "extended"], ["-o", "xml"], ["-o", "id"], ["-o", "ktimestamp"], ["-o", "labels"],
    ["-o", "save"], ["-o", "userspace"], ["-o", "timestamp"], ["-o", "extended,id"],
    ["-o", "xml,extended"], ["-o", "xml,id,ktimestamp"], ["-o", "extended,labels,id"],
    ["-o", "xml,labels"], ["-o", "extended,ktimestamp"], ["-o", "id,extended,timestamp,userspace"],
]

FILTERS = [
    ["-f", "ipv4"], ["-f", "ipv6"],
    ["-p", "tcp"], ["-p", "6"], ["-p", "udp"], ["-p", "udplite"], ["-p", "icmp"], ["-p", "icmpv6"],
    ["-p", "sctp"], ["-p", "dccp"], ["-p", "gre"], ["-p", "99"], ["-p", "unknown"],
    ["-s", "192.0.2.1"], ["-s", "192.0.2.0/24"], ["-s", "192.0.2.0/28"], ["-d", "198.51.100.100"],
    ["-s", "2001:db8::1"], ["-s", "2001:db8::/64"], ["-d", "2001:db8::2"], ["-s", "10.0.0.1", "-p", "tcp"],
    ["-r", "10.0.0.2"], ["-q", "198.51.100.100"], ["-r", "2001:db8:2::1"],
    ["-s", "192.0.2.0", "--mask-src", "255.255.255.0"], ["-d", "198.51.100.0", "--mask-dst", "255.255.255.0"],
    ["-m", "42"], ["-m", "0x80000000/0x80000000"], ["-m", "0"], ["-m", "0x2a/0xff"],
    ["-u", "ASSURED"], ["-u", "SEEN_REPLY"], ["-u", "UNREPLIED"], ["-u", "!SEEN_REPLY"],
    ["-u", "ASSURED,!SEEN_REPLY"], ["-u", "SEEN_REPLY,ASSURED"],
    ["-p", "tcp", "--state", "ESTABLISHED"], ["-p", "tcp", "--state", "TIME_WAIT"],
    ["-p", "sctp", "--state", "COOKIE_WAIT"],
    ["-p", "tcp", "--dport", "80"], ["-p", "tcp", "--sport", "40003"], ["-p", "udp", "--dport", "53"],
    ["-p", "tcp", "--orig-port-dst", "443"], ["-p", "tcp", "--reply-port-src", "8080"],
    ["-p", "udp", "--reply-port-dst", "61000"], ["-p", "tcp", "-s", "192.0.2.1", "--dport", "80"],
    ["-p", "icmp", "--icmp-type", "8"], ["-p", "icmp", "--icmp-id", "65535"],
    ["-p", "icmp", "--icmp-type", "13", "--icmp-code", "0"], ["-p", "icmpv6", "--icmpv6-type", "128"],
    ["-p", "sctp", "--orig-vtag", "4097"], ["-p", "sctp", "--reply-vtag", "1"],
    ["-p", "gre", "--srckey", "0x1234"],
    ["-w", "1"], ["-w", "0"], ["-w", "9"], ["-w", "65535"], ["--orig-zone", "2"], ["--reply-zone", "3"],
    ["--src-nat"], ["--dst-nat"], ["--any-nat"], ["--src-nat", "--dst-nat"],
    ["--src-nat", "198.51.100.100"], ["--dst-nat", "10.0.0.2"], ["--dst-nat", "10.0.0.2:8080"],
    ["--any-nat", "10.0.0.53"], ["--src-nat", "[2001:db8:3::1]"],
    ["-l", "pynfct-l1"], ["-l", "pynfct-l127"], ["-l", "pynfct-l1,pynfct-l127"],
    ["-m", "1", "-p", "tcp", "-w", "9"], ["-f", "ipv4", "-p", "udp", "--dport", "53", "-u", "SEEN_REPLY"],
]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda a: " ".join(a) or "default")
def test_list_formats_synthetic(synthetic_ns, fmt):
    assert_same(*run_both(synthetic_ns, ["-L", *fmt]))


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda a: " ".join(a) or "default")
def test_list_formats_traffic(filled_ns, fmt):
    assert_same(*run_both(filled_ns, ["-L", *fmt]))


@pytest.mark.parametrize("flt", FILTERS, ids=" ".join)
def test_list_filters(filled_ns, flt):
    ct, py = run_both(filled_ns, ["-L", *flt])
    assert_same(ct, py)


@pytest.mark.parametrize("flt", [["-p", "tcp"], ["-s", "192.0.2.0/24"], ["-m", "42"], ["-w", "9"]], ids=" ".join)
@pytest.mark.parametrize("fmt", [["-o", "xml"], ["-o", "save"], ["-o", "extended,id"]], ids=" ".join)
def test_list_filters_with_formats(filled_ns, flt, fmt):
    assert_same(*run_both(filled_ns, ["-L", *flt, *fmt]))


def test_list_matches_something(filled_ns):
    """The filter cases above are only worth something if they select entries: check a few do."""
    ct, py = run_both(filled_ns, ["-L", "-p", "tcp", "--dport", "80"])
    assert_same(ct, py)
    assert py.stdout.count(b"\n") >= 10
    ct, py = run_both(filled_ns, ["-L", "-l", "pynfct-l127"])
    assert_same(ct, py)
    assert py.stdout.count(b"\n") == 2


@pytest.mark.parametrize("table", ["conntrack", "expect", "dying", "unconfirmed", "exp", "d", "conn"])
def test_list_tables(filled_ns, table):
    assert_same(*run_both(filled_ns, ["-L", table]))


@pytest.mark.parametrize("args", [["-C"], ["-C", "expect"], ["-L", "expect", "-o", "xml"], ["-S"]],
                         ids=" ".join)
def test_count_and_expect(filled_ns, args):
    ct, py = run_both(filled_ns, args)
    if args == ["-S"]:
        # Per-cpu counters move with every packet the namespace sees; compare the shape.
        assert ct.returncode == py.returncode == 0
        assert [l.split("\t")[0] for l in ct.out.splitlines()] == [l.split("\t")[0] for l in py.out.splitlines()]
        assert [[kv.split("=")[0] for kv in l.split()] for l in ct.out.splitlines()] == \
               [[kv.split("=")[0] for kv in l.split()] for l in py.out.splitlines()]
    else:
        assert_same(ct, py)


@pytest.mark.parametrize("args", [
    ["-G", "-p", "tcp", "-s", "192.0.2.1", "-d", "198.51.100.1", "--sport", "40002", "--dport", "80"],
    ["-G", "-p", "udp", "-s", "2001:db8::10", "-d", "2001:db8::53", "--sport", "50001", "--dport", "53"],
    ["-G", "-p", "tcp", "-r", "10.0.0.2", "-q", "203.0.113.2", "--reply-port-src", "8080",
     "--reply-port-dst", "33002"],
    ["-G", "-p", "tcp", "-s", "192.0.2.1", "-d", "198.51.100.1", "--sport", "40002", "--dport", "80",
     "-o", "xml"],
    ["-G", "-p", "tcp", "-s", "192.0.2.1", "-d", "198.51.100.1", "--sport", "40002", "--dport", "80",
     "-o", "save"],
    ["-G", "-p", "icmp", "-s", "192.0.2.20", "-d", "198.51.100.4", "--icmp-type", "8", "--icmp-code", "0",
     "--icmp-id", "1"],
    # not there: exit 1 with conntrack's message
    ["-G", "-p", "tcp", "-s", "192.0.2.1", "-d", "198.51.100.1", "--sport", "1", "--dport", "2"],
], ids=lambda a: " ".join(a[1:7]))
def test_get(filled_ns, args):
    assert_same(*run_both(filled_ns, args))


def test_zero_counters(netns):
    """-L -z prints the counters as they were and zeroes them, as conntrack does."""
    from differential import _pynfct_env, pynfct_argv, run
    from fill import fill_traffic
    fill_traffic(netns, hold=False)
    ct, py = run_both(netns, ["-L", "-z", "-p", "udp"])
    assert ct.returncode == 2  # conntrack: "Can't use -z with filtering parameters"
    assert_same(ct, py)
    before = run(netns, ["conntrack", "-L"])
    assert re.search(rb"packets=[1-9]", before.stdout), "the traffic must have counted something"
    py = run(netns, [*pynfct_argv(), "-L", "-z"], env=_pynfct_env())
    assert_same(before, py)
    after = netns.run(["conntrack", "-L"]).stdout
    counted = [line for line in after.splitlines() if b"packets=" in line]
    assert counted and all(line.count(b"packets=0 bytes=0") == 2 for line in counted)
