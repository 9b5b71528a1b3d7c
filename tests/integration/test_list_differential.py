"""pynfct -L/-G/-C against conntrack -L/-G/-C on the same namespace: same stdout bytes, exit code, stderr.

The tables are filled once per module (tests/fill.py): a static synthetic table covering every
protocol, state, NAT, zone, mark and label case, and a table with real loopback traffic (counters,
timestamps) including connections the kernel NATed (what --src-nat/--dst-nat/--any-nat select). Only the
timeout column may differ, by the seconds that pass between the two reads.
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
    # NAT filters: see NAT_CASES (real NAT'd entries of fill_nat) and NAT_ERRORS below
    ["-l", "pynfct-l1"], ["-l", "pynfct-l127"], ["-l", "pynfct-l1,pynfct-l127"],
    ["-m", "1", "-p", "tcp", "-w", "9"], ["-f", "ipv4", "-p", "udp", "--dport", "53", "-u", "SEEN_REPLY"],
]

# --src-nat/--dst-nat/--any-nat against the real NAT'd entries of fill_nat (tests/fill.py NAT_FLOWS), with
# the names of the flows conntrack 1.4.7 lists (test_nat_filters_select_what_conntrack_selects checks them;
# only NAT'd entries carry the NAT_DONE status bits, so nothing else is listed).  conntrack compares the
# NAT address for IPv4 only: an IPv6 one merely sets the family.  ICMP entries count as port-NAT'd.
_J = {"nat-tcp4-jsrc", "nat-tcp4-jother"}
_ALL_NAT = {"nat-tcp4-dnat", "nat-tcp4-redirect", "nat-udp4-snat", "nat-udp4-spat", "nat-tcp4-snat-port",
            "nat-tcp4-both", "nat-icmp4-snat", "nat-tcp6-dnat", "nat-udp6-snat"} | _J
_SRC = {"nat-udp4-snat", "nat-udp4-spat", "nat-tcp4-snat-port", "nat-tcp4-both", "nat-icmp4-snat",
        "nat-udp6-snat"}
_DST = {"nat-tcp4-dnat", "nat-tcp4-redirect", "nat-tcp4-both", "nat-icmp4-snat", "nat-tcp6-dnat"} | _J
NAT_CASES = [
    (["--src-nat"], _SRC), (["--dst-nat"], _DST), (["--any-nat"], _ALL_NAT),
    (["--src-nat", "--dst-nat"], {"nat-tcp4-both", "nat-icmp4-snat"}),
    (["-n"], _SRC), (["-g"], _DST), (["-j"], _ALL_NAT),
    # IPv4 SNAT address, address:port
    (["--src-nat", "100.64.0.21"], {"nat-udp4-snat"}),
    (["-n", "100.64.0.21"], {"nat-udp4-snat"}),
    (["--src-nat", "100.64.0.31"], {"nat-tcp4-snat-port"}),
    (["--src-nat", "100.64.0.31:40021"], {"nat-tcp4-snat-port"}),
    (["--src-nat", "100.64.0.51"], {"nat-icmp4-snat"}),
    (["--src-nat", "100.64.0.42"], {"nat-tcp4-both"}),
    (["--src-nat", "100.64.0.31:40022"], set()),            # wrong port
    (["--src-nat", "100.64.0.1"], set()),                   # nat-udp4-spat: port-only SNAT, no address match
    (["--src-nat", "100.64.0.1:40012"], set()),             # ... not even with its port
    (["--src-nat", "198.51.100.100"], set()),               # synthetic snat4 (conntrack -I): no NAT bits
    (["--src-nat=100.64.0.21"], _SRC),                      # an attached optional argument is ignored
    # IPv4 DNAT address, address:port
    (["--dst-nat", "100.64.0.11"], {"nat-tcp4-dnat"}),
    (["--dst-nat", "100.64.0.11:20111"], {"nat-tcp4-dnat"}),
    (["-g", "100.64.0.41:20151"], {"nat-tcp4-both"}),
    (["--dst-nat", "100.64.0.11:20112"], set()),            # wrong port
    (["--dst-nat", "127.0.0.1:20112"], set()),              # redirect: port-only DNAT, no address match
    (["--dst-nat", "10.0.0.2"], set()),                     # synthetic dnat4 (conntrack -I): no NAT bits
    # --any-nat ADDR[:PORT] sets both the SNAT and the DNAT template address
    (["--any-nat", "100.64.0.41"], {"nat-tcp4-both"}),
    (["--any-nat", "100.64.0.42"], {"nat-tcp4-both"}),
    (["--any-nat", "100.64.0.42:40031"], {"nat-tcp4-both"}),
    (["--any-nat", "100.64.0.21"], {"nat-udp4-snat"}),
    (["-j", "100.64.0.11:20111"], {"nat-tcp4-dnat"}),
    (["--any-nat", "100.64.0.11:1"], set()),                # wrong port
    (["-j", "100.64.0.60"], _J), (["--dst-nat", "100.64.0.60:20201"], _J),
    # with -p, conntrack's -j ADDR also puts 2.B.C.D in the template's original source (see NAT_FLOWS)
    (["-p", "tcp", "-j", "100.64.0.60"], {"nat-tcp4-jsrc"}),
    (["-p", "tcp", "-j", "100.64.0.60:20201"], {"nat-tcp4-jsrc"}),
    (["-p", "tcp", "--any-nat", "100.64.0.11"], set()),     # nat-tcp4-dnat is not from 2.64.0.11
    (["--src-nat", "100.64.0.42", "--dst-nat", "100.64.0.41"], {"nat-tcp4-both"}),
    (["--src-nat", "100.64.0.42", "--dst-nat", "100.64.0.11"], set()),
    # IPv6: the address selects the family only; a port is compared
    (["--src-nat", "fd00:64::21"], {"nat-udp6-snat"}),
    (["--dst-nat", "fd00:64::11"], {"nat-tcp6-dnat"}),
    (["--any-nat", "fd00:64::11"], {"nat-tcp6-dnat", "nat-udp6-snat"}),
    (["--dst-nat", "[fd00:64::11]:20171"], {"nat-tcp6-dnat"}),
    (["--dst-nat", "[fd00:64::11]:20172"], set()),          # wrong port
    (["--src-nat", "[fd00:64::21]:32051"], set()),          # the source port was not NAT'd
    (["-f", "ipv6", "--src-nat"], {"nat-udp6-snat"}),
    (["-f", "ipv6", "--any-nat"], {"nat-tcp6-dnat", "nat-udp6-snat"}),
    (["-f", "ipv4", "--dst-nat"], _DST - {"nat-tcp6-dnat"}),
    # with other filters
    (["-p", "udp", "--src-nat"], {"nat-udp4-snat", "nat-udp4-spat", "nat-udp6-snat"}),
    (["-p", "tcp", "--dst-nat"], {"nat-tcp4-dnat", "nat-tcp4-redirect", "nat-tcp4-both", "nat-tcp6-dnat"} | _J),
    (["-p", "icmp", "--any-nat"], {"nat-icmp4-snat"}),
    (["--dst-nat", "-p", "tcp", "--state", "TIME_WAIT"],
     {"nat-tcp4-dnat", "nat-tcp4-redirect", "nat-tcp6-dnat"} | _J),
    (["-s", "100.64.0.1", "--src-nat"], _SRC - {"nat-udp6-snat"}),
    (["-d", "100.64.0.20", "--any-nat"], {"nat-udp4-snat", "nat-udp4-spat"}),
    (["-r", "100.64.0.41", "--src-nat", "--dst-nat"], {"nat-tcp4-both"}),
    (["-q", "100.64.0.21", "-p", "udp", "--src-nat", "100.64.0.21"], {"nat-udp4-snat"}),
    (["--any-nat", "-u", "ASSURED", "-p", "tcp"], {"nat-tcp4-dnat", "nat-tcp4-redirect", "nat-tcp4-snat-port",
                                                   "nat-tcp4-both", "nat-tcp6-dnat"} | _J),
]
# NAT filters conntrack rejects: compared too (exit status and message)
NAT_ERRORS = [
    ["--src-nat", "[fd00:64::21]"],                         # brackets only with a port
    ["--dst-nat", ":20112"], ["--src-nat", "100.64.0.31:"], ["--src-nat", "100.64.0.31:x"],
    ["--any-nat", "100.64.0.0/24"], ["--any-nat", "--src-nat"], ["--src-nat", "nohost"],
]
FILTERS += [argv for argv, _ in NAT_CASES] + NAT_ERRORS


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


def _nat_flows_listed(ns, out: str) -> set:
    """Names of the fill_nat flows in ``conntrack -L`` output; fails on a line that is none of them."""
    names = set()
    for line in out.splitlines():
        hits = [f.name for f in ns.nat.flows if f" {f.orig_key} " in line and f" {f.reply_key} " in line]
        assert len(hits) == 1, f"not exactly one NAT flow: {line}"
        names.add(hits[0])
    return names


@pytest.mark.parametrize("flt,expected", NAT_CASES, ids=[" ".join(a) for a, _ in NAT_CASES])
def test_nat_filters_select_what_conntrack_selects(filled_ns, flt, expected):
    """conntrack's NAT filters select real NAT'd entries here (so the differential cases above do not compare
    two empty outputs), and exactly the expected ones."""
    r = filled_ns.conntrack("-L", *flt)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert _nat_flows_listed(filled_ns, out) == expected
    assert len(out.splitlines()) == len(expected)
    if expected:
        assert out


def test_nat_filter_cases_are_mostly_nonempty():
    """At least the plain --src-nat/--dst-nat/--any-nat cases and most of the others match something."""
    nonempty = [a for a, exp in NAT_CASES if exp]
    assert len(nonempty) >= 2 * (len(NAT_CASES) - len(nonempty))
    assert all(exp for a, exp in NAT_CASES if a in (["--src-nat"], ["--dst-nat"], ["--any-nat"]))


@pytest.mark.parametrize("argv", NAT_ERRORS, ids=" ".join)
def test_nat_filter_errors(filled_ns, argv):
    assert filled_ns.conntrack("-L", *argv).returncode != 0


@pytest.mark.parametrize("table", ["conntrack", "expect", "exp", "conn"])
def test_list_tables(filled_ns, table):
    ct, py = run_both(filled_ns, ["-L", table])
    assert_same(ct, py)
    assert ct.stdout or table.startswith("exp")
    # dying (with entries) and unconfirmed: test_dying.py


@pytest.mark.parametrize("args", [["-C"], ["-C", "expect"], ["-L", "expect", "-o", "xml"]], ids=" ".join)
def test_count_and_expect(filled_ns, args):
    assert_same(*run_both(filled_ns, args))
    # -S: tests/integration/test_stats.py (a namespace whose counters do not move between the two reads)


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
    # real NAT'd entries (fill_nat), by original and by reply tuple
    ["-G", "-p", "tcp", "-s", "100.64.0.1", "-d", "100.64.0.40", "--sport", "32031", "--dport", "20141"],
    ["-G", "-p", "tcp", "-s", "127.0.0.1", "-d", "127.0.0.1", "--sport", "32002", "--dport", "20102",
     "-o", "extended"],
    ["-G", "-p", "udp", "-s", "fd00:64::1", "-d", "fd00:64::20", "--sport", "32051", "--dport", "20181",
     "-o", "save"],
    ["-G", "-p", "icmp", "-s", "100.64.0.1", "-d", "100.64.0.50", "--icmp-type", "8", "--icmp-code", "0",
     "--icmp-id", "9029", "-o", "xml"],
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
