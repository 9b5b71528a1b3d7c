"""Tests of the integration harness itself (tests/netns.py, fill.py, differential.py); no pynfct needed."""
from __future__ import annotations

import os
import re
import subprocess
from collections import Counter

import pytest

from differential import Result, assert_same, compare, pynfct_argv, run_both
from fill import (DEFAULT_LABELMAP, NAT_FLOWS, NAT_TABLE, TRAFFIC_FLOWS, bulk_entry_argv, fill_bulk, fill_nat,
                  fill_synthetic, fill_traffic, synthetic_entries)
from netns import NETNS_ETC_DIR, NETNS_RUN_DIR, PREFIX, NetNS, _delete, cleanup_leftovers, list_namespaces

ALL_PROTOCOLS = {"tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", "dccp", "gre", "unknown"}


def _lines(r) -> list:
    return [l for l in r.stdout.decode().split("\n") if l]


def _gone(name: str) -> bool:
    return (name not in list_namespaces() and not os.path.exists(os.path.join(NETNS_RUN_DIR, name))
            and not os.path.exists(os.path.join(NETNS_ETC_DIR, name)))


# --------------------------------------------------------------------------------------------------
# namespaces
# --------------------------------------------------------------------------------------------------

def test_namespace_lifecycle():
    with NetNS() as ns:
        name = ns.name
        assert name.startswith(PREFIX)
        assert name in list_namespaces()
        link = ns.run(["ip", "-o", "link", "show", "lo"], check=True).stdout.decode()
        assert re.search(r"<[^>]*\bUP\b[^>]*>", link), link
        assert ns.ct_count() == 0                      # a fresh, empty conntrack table
        assert ns.run(["sh", "-c", "exit 3"]).returncode == 3
        assert ns.run(["cat"], input=b"abc").stdout == b"abc"
    assert _gone(name)


def test_namespace_deleted_on_exception():
    ns = NetNS()
    with pytest.raises(ZeroDivisionError):
        with ns:
            ns.set_labelmap({1: "x"})
            sleeper = ns.popen(["sleep", "1000"])
            assert sleeper.poll() is None
            1 / 0
    assert _gone(ns.name)
    assert sleeper.poll() is not None                  # processes started in it were stopped


def test_namespaces_are_isolated():
    with NetNS() as a, NetNS() as b:
        assert a.name != b.name
        a.conntrack("-I", "-p", "udp", "-s", "192.0.2.1", "-d", "192.0.2.2", "--sport", "1", "--dport", "2",
                    "-t", "1000", check=True)
        assert a.ct_count() == 1
        assert b.ct_count() == 0
        assert a.sysctl("net.netfilter.nf_conntrack_acct", 1) == "1"
        assert b.sysctl("net.netfilter.nf_conntrack_acct") == "0"


def test_run_check_raises_with_stderr():
    with NetNS() as ns:
        with pytest.raises(Exception, match="unknown option"):
            ns.conntrack("-L", "--no-such-option", check=True)


def test_nft_and_python_helpers():
    with NetNS() as ns:
        ns.nft("table inet pynfct_probe {\n chain c { type filter hook output priority 0; counter; }\n}")
        assert "table inet pynfct_probe" in ns.run(["nft", "list", "ruleset"], check=True).stdout.decode()
        r = ns.python("import socket, sys; print(sorted(n for _, n in socket.if_nameindex()), sys.argv[1])", "arg")
        assert r.stdout.decode().split() == ["['lo']", "arg"]


def test_labelmap_is_per_namespace():
    host = "/etc/xtables/connlabel.conf"
    before = open(host, "rb").read() if os.path.exists(host) else None
    with NetNS(labelmap={3: "three", 7: "seven"}) as ns, NetNS() as other:
        assert ns.labelmap == {3: "three", 7: "seven"}
        assert ns.run(["cat", host], check=True).stdout == b"3\tthree\n7\tseven\n"
        seen = other.run(["cat", host])
        assert seen.stdout == (before or b"")
    after = open(host, "rb").read() if os.path.exists(host) else None
    assert after == before                             # the host's file is untouched


def test_cleanup_leftovers_spares_live_sessions():
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "1000"])
    dead_name = f"{PREFIX}{dead.pid}-1-dead00"
    live_name = f"{PREFIX}{live.pid}-1-live00"
    try:
        for n in (dead_name, live_name):
            subprocess.run(["ip", "netns", "add", n], check=True)
        removed = cleanup_leftovers()
        assert dead_name in removed and _gone(dead_name)
        assert live_name not in removed and live_name in list_namespaces()
    finally:
        live.kill()
        live.wait()
        for n in (dead_name, live_name):
            if n in list_namespaces():
                _delete(n)
    assert _gone(live_name)


# --------------------------------------------------------------------------------------------------
# fill_synthetic
# --------------------------------------------------------------------------------------------------

def _tuple_key(e) -> str:
    key = f"src={e.src} dst={e.dst} "
    if e.proto in ("tcp", "udp", "udplite", "sctp"):
        key += f"sport={e.opt('--sport')} dport={e.opt('--dport')} "
    return key


@pytest.fixture(scope="module")
def synthetic(synthetic_ns):
    return synthetic_ns, synthetic_ns.synthetic


def test_fill_synthetic_count(synthetic):
    ns, fill = synthetic
    required = [e for e in synthetic_entries() if not e.optional]
    assert set(e.name for e in required) <= set(e.name for e in fill.entries)
    assert fill.count + len(fill.refused) == len(synthetic_entries())
    assert ns.ct_count() == fill.count
    listed = ns.conntrack("-L", check=True)
    assert len(_lines(listed)) == fill.count
    assert f"{fill.count} flow entries have been shown" in listed.stderr.decode()


def test_fill_synthetic_covers_protocols_and_families(synthetic):
    ns, fill = synthetic
    lines = _lines(ns.conntrack("-L", "-o", "extended", check=True))
    assert {l.split()[2] for l in lines} == ALL_PROTOCOLS
    assert {l.split()[0] for l in lines} == {"ipv4", "ipv6"}
    assert {int(l.split()[3]) for l in lines if l.split()[2] == "unknown"} == {99, 253, 254}
    assert fill.protocols == ALL_PROTOCOLS


def test_fill_synthetic_every_entry_is_there(synthetic):
    ns, fill = synthetic
    lines = _lines(ns.conntrack("-L", check=True))
    want = Counter((e.proto, _tuple_key(e)) for e in fill.entries if e.proto != "dccp")
    for (proto, key), n in want.items():
        found = [l for l in lines if l.split()[0] == proto and key in l.split("[UNREPLIED]")[0]]
        assert len(found) == n, (proto, key, found)
    for e in fill.entries:
        if e.nat:  # the reply tuple is what was given, not the inverted original
            r = f"src={e.opt('-r')} dst={e.opt('-q')}"
            assert any(r in l and f"src={e.src} dst={e.dst}" in l for l in lines), e.line
    # DCCP: on kernels without a DCCP tracker the ports are not kept, so match addresses only
    dccp = [l for l in lines if l.startswith("dccp")]
    assert len(dccp) == len(fill.where(proto="dccp"))


def test_fill_synthetic_tcp_states(synthetic):
    ns, fill = synthetic
    lines = _lines(ns.conntrack("-L", "-p", "tcp", check=True))
    states = Counter(l.split()[3] for l in lines)
    assert states == Counter(e.state for e in fill.where(proto="tcp"))
    for st in ("SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT",
               "CLOSE"):
        assert states[st] >= 1, st                    # (SYN_SENT2 and NONE are optional entries)
    sctp = Counter(l.split()[3] for l in _lines(ns.conntrack("-L", "-p", "sctp", check=True)))
    assert sctp == Counter(e.state for e in fill.where(proto="sctp"))


def test_fill_synthetic_marks_status_zones(synthetic):
    ns, fill = synthetic
    lines = _lines(ns.conntrack("-L", check=True))
    assert Counter(int(m) for l in lines for m in re.findall(r" mark=(\d+)", l)) == \
        Counter(e.mark for e in fill.entries)
    assert sum("[ASSURED]" in l for l in lines) == sum("ASSURED" in e.status for e in fill.entries)
    assert sum("[UNREPLIED]" in l for l in lines) == sum("SEEN_REPLY" not in e.status for e in fill.entries)
    zones = Counter(int(z) for l in lines for z in re.findall(r" zone=(\d+)", l))
    assert zones == Counter(e.zone for e in fill.entries if e.zone is not None)
    assert sum(" zone-orig=2 " in l for l in lines) == 1
    assert sum(" zone-reply=3 " in l for l in lines) == 1
    # the kernel's own filters agree: e.g. conntrack -L -w 9, -L -m 42
    assert len(_lines(ns.conntrack("-L", "-w", "9", check=True))) == len(fill.where(zone=9))
    assert len(_lines(ns.conntrack("-L", "-m", "42", check=True))) == len(fill.where(mark=42))


def test_fill_synthetic_labels(synthetic):
    ns, fill = synthetic
    assert fill.labels_enabled and ns.labelmap == DEFAULT_LABELMAP
    labelled = [e for e in fill.entries if e.labels]
    assert len(labelled) == 4
    lines = _lines(ns.conntrack("-L", "-o", "labels", check=True))
    got = Counter(l.split(" labels=")[1] for l in lines if " labels=" in l)
    assert got == Counter(",".join(sorted(e.labels, key=lambda n: int(n.rsplit("l", 1)[1]))) for e in labelled)
    # without -o labels nothing is printed
    assert not any("labels=" in l for l in _lines(ns.conntrack("-L", check=True)))


def test_fill_synthetic_twice_into_fresh_namespace_is_identical(netns, synthetic):
    """Same entries (as extended listing lines, order aside) every time: the fill is deterministic."""
    ns, _ = synthetic
    fill_synthetic(netns)

    def canon(n):
        return sorted(re.sub(r"^(\S+\s+\d+\s+\S+\s+\d+\s+)\d+", r"\1T", l)
                      for l in _lines(n.conntrack("-L", "-o", "extended,labels", check=True)))
    assert canon(netns) == canon(ns)


# --------------------------------------------------------------------------------------------------
# fill_traffic
# --------------------------------------------------------------------------------------------------

def _flow_line(lines, f):
    if f.proto in ("icmp", "icmpv6"):
        key = f"src={f.src} dst={f.dst} type={8 if f.proto == 'icmp' else 128} code=0 id={f.icmp_id} "
    else:
        key = f"src={f.src} dst={f.dst} sport={f.sport} dport={f.dport} "
    found = [l for l in lines if l.split()[2] == f.proto and key in l]
    assert len(found) == 1, (f, found)
    return found[0]


def test_fill_traffic(netns):
    netns.set_labelmap(DEFAULT_LABELMAP)
    fill = fill_traffic(netns)
    assert netns.sysctl("net.netfilter.nf_conntrack_acct") == "1"
    assert netns.sysctl("net.netfilter.nf_conntrack_timestamp") == "1"
    assert netns.ct_count() == len(TRAFFIC_FLOWS) == len(fill.flows)
    lines = _lines(netns.conntrack("-L", "-o", "extended,labels", check=True))
    for f in fill.flows:
        line = _flow_line(lines, f)
        packets = [int(p) for p in re.findall(r" packets=(\d+)", line)]
        assert len(packets) == 2 and packets[0] > 0, line
        if f.packets is not None:
            assert tuple(packets) == f.packets, line
        if f.state:
            assert line.split()[5] == f.state, line
        assert f" mark={f.mark} " in line
        assert "delta-time=" in line                   # timestamps are on
        if f.label_bits:
            assert " labels=" + ",".join(DEFAULT_LABELMAP[b] for b in f.label_bits) in line
        else:
            assert " labels=" not in line
    # quiescent: a second read agrees with the first on every counter
    ct1, ct2 = run_both(netns, ["-L", "-o", "extended"], pynfct=["conntrack"])
    assert_same(ct1, ct2)
    holder = fill.holder
    assert holder.poll() is None
    fill.stop()
    assert holder.poll() is not None


def test_filled_ns_has_both(filled_ns):
    syn, tr, nat = filled_ns.synthetic, filled_ns.traffic, filled_ns.nat
    assert filled_ns.ct_count() == syn.count + len(tr.flows) + len(nat.flows)
    assert tr.holder.poll() is None                    # held connections stay open for the module
    assert nat.holder.poll() is None
    lines = _lines(filled_ns.conntrack("-L", "-o", "extended", check=True))
    assert sum(" packets=" in l for l in lines) == len(tr.flows) + len(nat.flows)  # synthetic ones predate acct=1
    for f in tr.flows + nat.flows:
        _flow_line(lines, f)


# --------------------------------------------------------------------------------------------------
# fill_nat
# --------------------------------------------------------------------------------------------------

def _check_nat_lines(ns, flows):
    """Every flow is there once, with the reply tuple NAT made, and only NAT flows are listed by
    conntrack --src-nat / --dst-nat / --any-nat (exactly those whose NAT those options see)."""
    lines = _lines(ns.conntrack("-L", "-o", "extended", check=True))
    for f in flows:
        line = _flow_line(lines, f)
        assert f" {f.orig_key} " in line and f" {f.reply_key} " in line, (f, line)
        packets = [int(p) for p in re.findall(r" packets=(\d+)", line)]
        assert len(packets) == 2 and packets[0] > 0 and packets[1] > 0, line
        if f.packets is not None:
            assert tuple(packets) == f.packets, line
        if f.state:
            assert line.split()[5] == f.state, line
    by = {}
    for opt in ("--src-nat", "--dst-nat", "--any-nat"):
        out = _lines(ns.conntrack("-L", opt, check=True))
        got = []
        for l in out:
            hit = [f.name for f in flows if f" {f.orig_key} " in l and f" {f.reply_key} " in l]
            assert len(hit) == 1, (opt, l)      # nothing but fill_nat's flows is NAT'd
            got.append(hit[0])
        by[opt] = Counter(got)
    assert by["--src-nat"] == Counter(f.name for f in flows if f.listed_by_src_nat)
    assert by["--dst-nat"] == Counter(f.name for f in flows if f.listed_by_dst_nat)
    assert by["--any-nat"] == Counter(f.name for f in flows)


def test_nat_flows_cover_every_kind():
    F = NAT_FLOWS
    assert any(f.dnat and f.dpat and f.proto == "tcp" and f.family == "ipv4" for f in F)   # DNAT ADDR:PORT
    assert any(f.dpat and not f.dnat for f in F)                                           # redirect :PORT
    assert any(f.snat and not f.spat and f.proto == "udp" and f.family == "ipv4" for f in F)  # SNAT ADDR
    assert any(f.spat and not f.snat for f in F)                                           # SNAT :PORT only
    assert any(f.snat and f.spat and not f.dnat and f.family == "ipv4" for f in F)         # SNAT ADDR:PORT
    assert any(f.snat and f.dnat for f in F)                                               # both
    assert any(f.family == "ipv6" and f.snat for f in F) and any(f.family == "ipv6" and f.dnat for f in F)
    assert any(f.proto == "icmp" for f in F)
    assert len({f.name for f in F}) == len(F)
    assert len({f.orig_key for f in F}) == len(F) and len({f.reply_key for f in F}) == len(F)


def test_fill_nat(netns):
    fill = fill_nat(netns)
    assert fill.seconds < 10                           # typically ~0.5 s
    assert NAT_TABLE in netns.run(["nft", "list", "tables"], check=True).stdout.decode()
    assert netns.ct_count() == len(NAT_FLOWS) == len(fill.flows)
    assert netns.nat is fill and fill.by_name("nat-tcp4-both").open
    _check_nat_lines(netns, fill.flows)
    addrs = netns.run(["ip", "-o", "addr", "show", "dev", "lo"], check=True).stdout.decode()
    assert " 100.64.0.21/32 " in addrs and " fd00:64::21/128 " in addrs
    # the NAT'd source really is what the server saw: the kernel's reply tuple, not just our bookkeeping
    g = netns.conntrack("-G", "-p", "tcp", "-s", "100.64.0.1", "-d", "100.64.0.40", "--sport", "32031",
                        "--dport", "20141", check=True).stdout.decode()
    assert " ESTABLISHED src=100.64.0.1 dst=100.64.0.40 sport=32031 dport=20141 " in g
    assert " src=100.64.0.41 dst=100.64.0.42 sport=20151 dport=40031 " in g
    # quiescent: a second read agrees with the first on every counter
    assert_same(*run_both(netns, ["-L", "-o", "extended"], pynfct=["conntrack"]))
    holder = fill.holder
    assert holder.poll() is None
    fill.stop()
    assert holder.poll() is not None


def test_fill_nat_without_hold(netns):
    fill = fill_nat(netns, hold=False)
    assert fill.holder is None and not any(f.open for f in fill.flows)
    assert netns.ct_count() == len(fill.flows) == sum(not f.open for f in NAT_FLOWS)
    _check_nat_lines(netns, fill.flows)


def test_filled_ns_nat(filled_ns):
    """In filled_ns only fill_nat's entries are NAT'd: the synthetic -r/-q entries carry no NAT bits."""
    _check_nat_lines(filled_ns, filled_ns.nat.flows)
    assert filled_ns.synthetic.where(nat=True)         # there are synthetic "NAT" entries ...
    for e in filled_ns.synthetic.where(nat=True):      # ... but conntrack's NAT filters do not see them
        assert e.opt("-q") not in filled_ns.conntrack("-L", "--any-nat", check=True).stdout.decode()


@pytest.mark.parametrize("args", [
    ["-L"], ["-L", "-o", "extended"], ["-L", "-o", "xml"], ["-L", "-o", "save"], ["-L", "-o", "id"],
    ["-L", "-o", "ktimestamp"], ["-L", "-o", "extended,labels,id"], ["-L", "-o", "xml,ktimestamp,labels"],
    ["-L", "-p", "tcp"], ["-C"], ["-G", "-p", "tcp", "-s", "127.0.0.1", "-d", "127.0.0.1", "--sport", "31021",
                                  "--dport", "20002"],
    ["-L", "--bogus"], ["-D", "-p", "udp", "-s", "203.0.113.250"],
    ["-L", "--src-nat"], ["-L", "--dst-nat", "-o", "save"], ["-L", "--any-nat", "-o", "xml"],
    ["-G", "-p", "udp", "-s", "100.64.0.1", "-d", "100.64.0.20", "--sport", "32011", "--dport", "20121"],
])
def test_differential_self(filled_ns, args):
    """conntrack against itself through run_both/assert_same: the normalisation accepts two reads."""
    ct, again = run_both(filled_ns, args, pynfct=["conntrack"])
    assert_same(ct, again)
    if args[:1] == ["-L"] and "--bogus" not in args:
        assert ct.returncode == 0 and ct.stdout


# --------------------------------------------------------------------------------------------------
# fill_bulk
# --------------------------------------------------------------------------------------------------

def test_fill_bulk(netns):
    bulk = fill_bulk(netns, 5000)
    assert netns.ct_count() == 5000
    assert len(_lines(netns.conntrack("-L", "-p", "tcp", check=True))) == bulk.tcp == 2500
    assert len(_lines(netns.conntrack("-L", "-m", "1", check=True))) == bulk.mark_count(1)
    more = fill_bulk(netns, 100, start=5000)
    assert netns.ct_count() == 5100 and len(netns.bulk) == 2
    g = netns.conntrack(*(["-G"] + more.argv(99)[1:-4]), check=True)   # -G with the tuple of the last one
    assert "src=10.0.19.235 " in g.stdout.decode()
    assert bulk_entry_argv(5099)[4] == "10.0.19.235"


# --------------------------------------------------------------------------------------------------
# differential.py on crafted results
# --------------------------------------------------------------------------------------------------

CT_PREFIX = "conntrack v1.4.7 (conntrack-tools)"
PY_PREFIX = "pynfct v0.1.0 (conntrack-tools compatible)"


def _r(out: str, err: str = "", rc: int = 0, prog="conntrack") -> Result:
    return Result([prog], rc, out.encode(), err.encode())


def test_assert_same_normalises_program_prefix():
    ct = _r("", f"{CT_PREFIX}: unknown option `-x'\nTry `conntrack -h' or 'conntrack --help' for more information.\n", 2)
    py = _r("", f"{PY_PREFIX}: unknown option `-x'\nTry `pynfct -h' or 'pynfct --help' for more information.\n", 2)
    assert_same(ct, py)
    with pytest.raises(AssertionError, match="stderr differs"):
        assert_same(ct, _r("", f"{PY_PREFIX}: unknown option `-y'\nTry `pynfct -h' or 'pynfct --help' for more information.\n", 2))
    with pytest.raises(AssertionError, match="exit status"):
        assert_same(ct, _r("", py.err, 1))


def test_assert_same_timeout_slack():
    a = "tcp      6 431999 ESTABLISHED src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 mark=0 use=1\n"
    assert_same(_r(a), _r(a.replace("431999", "431997")))
    with pytest.raises(AssertionError, match="timeout"):
        assert_same(_r(a), _r(a.replace("431999", "431996")))
    with pytest.raises(AssertionError, match="lines differ"):
        assert_same(_r(a), _r(a.replace("mark=0", "mark=1")))
    ext = "ipv4     2 udp      17 29 src=1.1.1.1 packets=1 bytes=2 delta-time=5 use=1\n"
    assert_same(_r(ext), _r(ext.replace(" 29 ", " 28 ").replace("delta-time=5", "delta-time=7")))
    with pytest.raises(AssertionError):
        assert_same(_r(ext), _r(ext.replace("packets=1", "packets=2")))
    assert_same(_r(ext), _r(ext.replace("packets=1", "packets=2")), counters_may_grow=True)
    with pytest.raises(AssertionError, match="counter went down"):
        assert_same(_r(ext.replace("packets=1", "packets=2")), _r(ext), counters_may_grow=True)
    xml = "<flow><timeout>100</timeout><deltatime>3</deltatime></flow>\n"
    assert_same(_r(xml), _r(xml.replace("100", "99").replace(">3<", ">4<")))
    save = "-A -t 9945 -u ASSURED -s 1.1.1.1\n"
    assert_same(_r(save), _r(save.replace("9945", "9944")))
    with pytest.raises(AssertionError):
        assert_same(_r(save), _r(save.replace("9945", "9940")))


def test_assert_same_order():
    a, b = "udp      17 10 src=1.1.1.1\n", "udp      17 10 src=2.2.2.2\n"
    with pytest.raises(AssertionError):
        assert_same(_r(a + b), _r(b + a))
    assert_same(_r(a + b), _r(b + a), ordered=False)
    assert compare(_r(a + b), _r(a + b + a)) != []


def test_pynfct_cmd(monkeypatch, pynfct_cmd):
    assert isinstance(pynfct_cmd, list) and pynfct_cmd
    monkeypatch.setenv("PYNFCT", "/bin/true")
    assert pynfct_argv() == ["/bin/true"]
    monkeypatch.setenv("PYNFCT", "python3 -m pynfct")
    assert pynfct_argv() == ["python3", "-m", "pynfct"]
