"""The Python API (pynfct.Conntrack) on the same tables, checked against conntrack's own answers."""
import os
import re

import pytest

import pynfct
from differential import Result, assert_same, run
from test_stats import parse_stats


def _lines(flows):
    return Result(["api"], 0, b"".join(str(f).encode() + b"\n" for f in flows), b"")


def _conntrack(ns, *args):
    r = run(ns, ["conntrack", *args])
    assert r.returncode == 0, r.err
    return Result(r.argv, 0, r.stdout, b"")


@pytest.fixture(scope="module")
def ct(filled_ns):
    labelmap = f"/etc/netns/{filled_ns.name}/xtables/connlabel.conf"
    with pynfct.Conntrack(filled_ns.name, labelmap=labelmap) as handle:
        yield handle


def test_dump_is_conntrack_list(ct, filled_ns):
    assert_same(_conntrack(filled_ns, "-L"), _lines(ct.dump()), check_stderr=False)


@pytest.mark.parametrize("filters,args", [
    (dict(proto="tcp"), ["-p", "tcp"]),
    (dict(proto="tcp", dport=80), ["-p", "tcp", "--dport", "80"]),
    (dict(src="192.0.2.0/24"), ["-s", "192.0.2.0/24"]),
    (dict(src="2001:db8::1"), ["-s", "2001:db8::1"]),
    (dict(family="ipv6", proto="udp"), ["-f", "ipv6", "-p", "udp"]),
    (dict(mark=42), ["-m", "42"]),
    (dict(mark=(0x80000000, 0x80000000)), ["-m", "0x80000000/0x80000000"]),
    (dict(status=["!SEEN_REPLY"]), ["-u", "!SEEN_REPLY"]),
    (dict(status="SEEN_REPLY"), ["-u", "SEEN_REPLY"]),
    (dict(zone=9), ["-w", "9"]),
    (dict(reply_zone=3), ["--reply-zone", "3"]),
    (dict(snat=True), ["--src-nat"]),
    (dict(dnat=True), ["--dst-nat"]),
    (dict(dnat=("100.64.0.11", 20111)), ["--dst-nat", "100.64.0.11:20111"]),      # fill_nat's real DNAT
    (dict(snat="100.64.0.21"), ["--src-nat", "100.64.0.21"]),
    (dict(any_nat="100.64.0.60"), ["-j", "100.64.0.60"]),
    # the typed any_nat does not copy conntrack's "-p tcp -j ADDR" (test_any_nat_with_proto below)
    (dict(proto="tcp", any_nat="100.64.0.60"), ["-j", "100.64.0.60"]),
    (dict(labels=["pynfct-l1"]), ["-l", "pynfct-l1"]),
    (dict(proto="icmp", icmp_type=8), ["-p", "icmp", "--icmp-type", "8"]),
    (dict(proto="tcp", state="ESTABLISHED", reply_sport=8080), ["-p", "tcp", "--state", "ESTABLISHED",
                                                                 "--reply-port-src", "8080"]),
], ids=lambda v: str(v))
def test_dump_filters(ct, filled_ns, filters, args):
    expected = _conntrack(filled_ns, "-L", *args)
    assert expected.stdout, "the case must select something"
    # conntrack prints label names once -l loaded the map; str(flow) is the line without a map
    norm = (lambda t: re.sub(r" labels=\S+", "", t)) if "labels" in filters else None
    assert_same(expected, _lines(ct.dump(**filters)), normalize=norm, check_stderr=False)
    # the kernel-side filter only ever saves work
    assert_same(expected, _lines(ct.dump(kernel_filter=False, **filters)), normalize=norm, check_stderr=False)


def test_any_nat_with_proto(ct, filled_ns):
    """Where the library differs from conntrack on purpose, on real NAT'd entries: conntrack's
    "-p tcp -j 100.64.0.60" also overwrites the original source (with 2.64.0.60) and lists only the
    connection from there; dump(proto="tcp", any_nat=...) lists both TCP connections NAT'd to it."""
    quirk = _conntrack(filled_ns, "-L", "-p", "tcp", "-j", "100.64.0.60").out.splitlines()
    assert len(quirk) == 1 and " src=2.64.0.60 " in quirk[0]
    typed = [f for f in ct.dump(proto="tcp", any_nat="100.64.0.60")]
    assert sorted(f.orig.src for f in typed) == ["100.64.0.1", "2.64.0.60"]
    assert all(f.reply.src == "100.64.0.60" and f.proto == "tcp" for f in typed)


def test_flow_fields(ct, filled_ns):
    every = list(ct.dump())
    flows = {(f.proto, f.orig.src, f.orig.sport): f for f in every}
    f = flows[("tcp", "192.0.2.1", 40002)]
    assert (f.family, f.protonum, f.orig.dst, f.orig.dport) == ("ipv4", 6, "198.51.100.1", 80)
    assert (f.reply.src, f.reply.dst, f.reply.sport, f.reply.dport) == ("198.51.100.1", "192.0.2.1", 80, 40002)
    assert f.state == "ESTABLISHED"
    assert f.status & pynfct.Status.ASSURED and f.status & pynfct.Status.SEEN_REPLY
    assert 0 < f.timeout <= 100000 and f.mark == 0 and f.use >= 1 and f.id

    d = flows[("tcp", "203.0.113.2", 33002)]           # DNAT to 10.0.0.2:8080
    assert (d.reply.src, d.reply.sport, d.mark) == ("10.0.0.2", 8080, 2)

    z = flows[("tcp", "10.0.0.5", 34000)]
    assert (z.zone, z.mark) == (9, 0xDEADBEEF)
    zo = flows[("udp", "192.0.2.70", 1001)]
    assert (zo.orig.zone, zo.reply.zone, zo.zone) == (2, None, None)

    s = flows[("sctp", "2001:db8::30", 3000)]
    # conntrack -I reads --orig-vtag 0xdeadbeef as 0 (conntrack -L -o save shows the same)
    assert (s.family, s.state, s.orig.vtag, s.reply.vtag) == ("ipv6", "ESTABLISHED", 0, 1)
    s4 = flows[("sctp", "192.0.2.30", 3001)]
    assert (s4.state, s4.orig.vtag, s4.reply.vtag) == ("COOKIE_WAIT", 0x1001, 0x2001)

    lab = flows[("tcp", "2001:db8::80", 1)]
    assert lab.labels == frozenset({63, 127})

    icmps = [f for f in every if f.proto == "icmp" and f.orig.src == "192.0.2.20"]
    assert sorted((f.orig.icmp_type, f.orig.icmp_id) for f in icmps) == [(8, 1), (8, 65535), (13, 2), (15, 3),
                                                                         (17, 4)]
    g = [f for f in every if f.proto == "gre" and f.orig.src == "192.0.2.50"][0]
    assert (g.orig.srckey, g.orig.dstkey) == (0x1234, 0x5678)


def test_traffic_counters_and_timestamps(ct, filled_ns):
    by = {(f.proto, f.orig.sport): f for f in ct.dump(src="127.0.0.1")}
    udp = by[("udp", 31031)]
    assert (udp.orig.packets, udp.reply.packets) == (3, 3)
    assert udp.orig.bytes > 0 and udp.reply.bytes > 0
    assert udp.start and udp.start > 10**18 and udp.stop is None
    assert by[("tcp", 31021)].state == "ESTABLISHED" and by[("tcp", 31021)].mark == 0x2A


def test_as_dict_and_str(ct, filled_ns):
    f = next(iter(ct.dump(proto="udp", src="192.0.2.10", sport=50008)))
    d = f.as_dict()
    assert d["proto"] == "udp" and d["orig"]["sport"] == 50008 and d["mark"] == 0xFFFFFFFF
    assert "ASSURED" in d["status"] and d["reply"]["dst"] == "192.0.2.10"
    assert str(f).startswith("udp      17 ")


def test_get(ct, filled_ns):
    f = ct.get(proto="tcp", src="192.0.2.1", dst="198.51.100.1", sport=40002, dport=80)
    assert f is not None and f.state == "ESTABLISHED"
    assert ct.get(proto="tcp", src="192.0.2.1", dst="198.51.100.1", sport=1, dport=2) is None


def test_count_and_stats(ct, filled_ns):
    assert ct.count() == int(filled_ns.run(["conntrack", "-C"]).stdout)
    # conntrack -S first, stats() after: the same cpus and counters, and no counter smaller than
    # conntrack's (exact values: tests/integration/test_stats.py)
    before = parse_stats(_conntrack(filled_ns, "-S").out)
    rows = ct.stats()
    assert [(cpu, list(row)) for cpu, row in rows] == [(cpu, list(row)) for cpu, row in before]
    assert all(row[k] >= old[k] for (_, row), (_, old) in zip(rows, before) for k in row)


def test_other_tables(ct, filled_ns):
    # a dying list with entries: test_dying.py; the kernel lists no unconfirmed entries (see there)
    assert list(ct.dump(table="unconfirmed")) == []
    with pytest.raises(pynfct.ParameterError, match="table='nosuchtable'"):
        ct.dump(table="nosuchtable")
    with pytest.raises(pynfct.ParameterError, match="expectations"):
        ct.dump(table="expect")


def test_netns_as_path_and_fd(filled_ns, ct):
    n = ct.count()
    with pynfct.Conntrack(f"/run/netns/{filled_ns.name}") as c2:
        assert c2.count() == n
    fd = os.open(f"/run/netns/{filled_ns.name}", os.O_RDONLY)
    try:
        with pynfct.Conntrack(fd) as c3:
            assert c3.count() == n
    finally:
        os.close(fd)
    # the calling thread is back in its own namespace
    assert os.readlink("/proc/thread-self/ns/net") == os.readlink(f"/proc/{os.getppid()}/ns/net")


def test_bad_filters(ct):
    with pytest.raises(pynfct.ParameterError):
        list(ct.dump(src="not-an-address"))
    with pytest.raises(pynfct.ParameterError):
        list(ct.dump(proto="nosuchproto"))
    with pytest.raises(TypeError):
        ct.dump(colour="blue")


def test_stop_early_and_reuse(ct):
    d = ct.dump()
    first = next(d)
    assert first.proto
    d.close()
    assert sum(1 for _ in ct.dump()) == ct.count()


def test_closed_handle(filled_ns):
    c = pynfct.Conntrack(filled_ns.name)
    c.close()
    with pytest.raises(ValueError):
        c.count()


# the GIL during a dump: tests/integration/test_big_table.py (a dump long enough to tell)


def test_no_permission_message(filled_ns):
    """Without CAP_NET_ADMIN the CLI says so, with conntrack's words and exit code."""
    from differential import _pynfct_env, pynfct_argv
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--reuid=65534", "--regid=65534",
            "--clear-groups"]
    ct_r = run(filled_ns, [*drop, "conntrack", "-L"])
    py_r = run(filled_ns, [*drop, *pynfct_argv(), "-L"], env=_pynfct_env())
    assert ct_r.returncode == py_r.returncode == 1
    assert b"CAP_NET_ADMIN" in ct_r.stderr and b"CAP_NET_ADMIN" in py_r.stderr
    assert_same(ct_r, py_r)


def test_expectations(netns):
    """expectations() lists what conntrack -L expect -f ipv4/ipv6 lists, as Expectation objects."""
    from test_write import ftp_fill
    ftp_fill(netns)
    with pynfct.Conntrack(netns.name) as c:
        exps = c.expectations()
        assert sorted(e.family for e in exps) == ["ipv4", "ipv6"]
        for fam in ("ipv4", pynfct.Family.IPV6):
            name = "ipv6" if fam == pynfct.Family.IPV6 else fam
            lines = run(netns, ["conntrack", "-L", "expect", "-f", name]).stdout.splitlines()
            got = c.expectations(fam)
            assert len(got) == len(lines) == 1
            assert f"dport={got[0].tuple.orig.dport}".encode() in lines[0]
