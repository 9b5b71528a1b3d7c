"""The write half of the Python API, checked against conntrack's view of the same namespace."""
import re
import subprocess

import pytest

import pynfct
from pynfct import ExpectSpec, FlowSpec
from pynfct.cli.load import load
from differential import run
from fill import fill_bulk
from netns import NetNS
from test_write import EXPECTED4, ftp_fill, small_fill


def ct_list(ns, *args):
    r = run(ns, ["conntrack", "-L", *args])
    assert r.returncode == 0, r.err
    return r.out.splitlines()


@pytest.fixture
def filled():
    with NetNS() as ns:
        small_fill(ns)
        labelmap = f"/etc/netns/{ns.name}/xtables/connlabel.conf"
        with pynfct.Conntrack(ns.name, labelmap=labelmap) as ct:
            yield ns, ct


SPEC = FlowSpec("tcp", src="203.0.113.1", dst="203.0.113.2", sport=1000, dport=80, state="ESTABLISHED",
                timeout=120, status=["SEEN_REPLY", "ASSURED"], mark=7, labels=["pynfct-l1"])


def test_create_add_and_errors(filled):
    ns, ct = filled
    ct.create(SPEC)
    lines = ct_list(ns, "-s", "203.0.113.1", "-o", "labels")
    assert len(lines) == 1 and "ESTABLISHED" in lines[0] and "mark=7" in lines[0] and "[ASSURED]" in lines[0]
    assert "labels=pynfct-l1" in lines[0]
    with pytest.raises(pynfct.NfctExists):
        ct.create(SPEC)
    assert ct.add(SPEC) is False
    assert ct.add(proto="udp", src="203.0.113.1", dst="203.0.113.2", sport=1, dport=2, timeout=30) is True
    with pytest.raises(pynfct.ParameterError, match="dst='::1': its address family is not the one of src='203.0.113.1'"):
        ct.create(proto="udp", src="203.0.113.1", dst="::1", sport=1, dport=2, timeout=30)
    with pytest.raises(TypeError, match="needs timeout"):
        ct.create(proto="udp", src="203.0.113.1", dst="203.0.113.2", sport=1, dport=2)
    with pytest.raises(TypeError):
        ct.create(nosuchfield=1)


def test_a_dumped_flow_is_deleted_and_created_again_as_it_was(filled):
    ns, ct = filled
    before = ct_list(ns, "-p", "tcp", "-s", "10.0.0.5")          # NAT, zone 9, mark, status
    flow = next(iter(ct.dump(proto="tcp", src="10.0.0.5")))
    r = ct.delete(flow)
    assert int(r) == 1 and ct_list(ns, "-p", "tcp", "-s", "10.0.0.5") == []
    ct.create(flow)
    after = ct_list(ns, "-p", "tcp", "-s", "10.0.0.5")
    strip = lambda ls: [re.sub(r"^(\S+\s+\d+\s+)\d+", r"\1", l) for l in ls]  # noqa: E731
    assert strip(after) == strip(before)


def test_update_counts_and_returns_the_new_entries(filled):
    ns, ct = filled
    udp = ct_list(ns, "-f", "ipv4", "-p", "udp", "-s", "192.0.2.10")
    r = ct.update(family="ipv4", proto="udp", src="192.0.2.10", mark=(0x100, 0x100), collect=True)
    # one of them (mark 0xffffffff) has the bit already: left alone, not counted
    assert int(r) == len(udp) - 1 and r.unchanged == 1 and r.failures == [] and len(r.flows) == int(r)
    assert all(f.mark & 0x100 for f in r.flows)
    assert len(ct_list(ns, "-m", "0x100/0x100")) == len(udp)
    again = ct.update(family="ipv4", proto="udp", src="192.0.2.10", mark=(0x100, 0x100))
    assert int(again) == 0 and again.unchanged == len(udp)
    flows = list(ct.dump(proto="tcp", src="192.0.2.1"))
    with pytest.raises(TypeError, match="add_labels=None"):
        ct.update(flows, timeout=4242, add_labels=None, status="FIXED_TIMEOUT")
    r = ct.update(flows, timeout=4242, status="FIXED_TIMEOUT")
    assert int(r) == len(flows)
    assert all(" 424" in l for l in ct_list(ns, "-p", "tcp", "-s", "192.0.2.1"))


def test_delete_by_filter_and_vanished_entries(filled):
    ns, ct = filled
    flows = list(ct.dump(proto="udp"))
    n = len(flows)
    run(ns, ["conntrack", "-D", "-p", "udp", "-s", flows[0].orig.src, "-d", flows[0].orig.dst,
             "--sport", str(flows[0].orig.sport), "--dport", str(flows[0].orig.dport)])
    r = ct.delete(flows)
    assert int(r) + r.vanished == n and r.vanished >= 1 and r.failures == []
    assert ct_list(ns, "-p", "udp") == []
    r = ct.delete(family="ipv6")
    assert int(r) > 0 and ct_list(ns, "-f", "ipv6") == []
    assert int(ct.delete(src="203.0.113.250")) == 0


def test_create_many_reports_each_failure(filled):
    ns, ct = filled
    specs = [FlowSpec("udp", src=f"203.0.113.{i}", dst="203.0.113.250", sport=1, dport=2, timeout=60)
             for i in range(1, 201)]
    specs.insert(50, specs[10])             # a duplicate: EEXIST for item 50
    r = ct.create_many(specs)
    assert int(r) == 200 and r.failures == [pynfct.Failure(errno=17, item=50)]
    assert len(ct_list(ns, "-d", "203.0.113.250")) == 200
    assert int(ct.create_many(specs, exist_ok=True)) == 0


def test_flush_and_load(filled, tmp_path):
    ns, ct = filled
    tcp = len(ct_list(ns, "-p", "tcp"))
    res = load(ct, ["-I -p udp -s 203.0.113.1 -d 203.0.113.2 --sport 1 --dport 2 -t 100",
                    "# a comment", "-D -p tcp", b"-U -f ipv4 -s 203.0.113.1 -m 3"])
    assert tcp > 0 and int(res) == 1 + tcp + 1 and res.failures == []
    assert ct_list(ns, "-p", "tcp") == [] and "mark=3" in ct_list(ns, "-s", "203.0.113.1")[0]
    path = tmp_path / "batch"
    path.write_text("-I -p udp -s 203.0.113.5 -d 203.0.113.2 --sport 1 --dport 2 -t 100\n-I -p bogus\n")
    with pytest.raises(pynfct.ParameterError, match="unsupported protocol"):
        load(ct, str(path))
    assert ct_list(ns, "-s", "203.0.113.5") == []          # nothing ran
    path.write_text("-I -p udp -s 203.0.113.1 -d 203.0.113.2 --sport 1 --dport 2 -t 100\n")
    with pytest.raises(pynfct.NfctExists):
        load(ct, path)
    ct.flush()
    assert ct.count() == 0


def test_update_and_delete_many(netns):
    n = 11000
    fill_bulk(netns, n)
    with pynfct.Conntrack(netns.name) as ct:
        r = ct.update(family="ipv4", mark=(0x10, 0x10))
        assert int(r) == n and r.failures == []
        r = ct.delete(proto="udp")
        assert int(r) == n // 2
        assert ct.count() == n - n // 2


def test_expectations(netns):
    ftp_fill(netns)
    with pynfct.Conntrack(netns.name) as ct:
        exps = ct.expectations()
        assert sorted(e.family for e in exps) == ["ipv4", "ipv6"]
        e4 = next(e for e in exps if e.family == "ipv4")
        assert (e4.helper, e4.proto, e4.tuple.orig.dport, e4.master.orig.dport) == ("ftp", "tcp", 5000, 21)
        assert e4.mask.orig.src == "255.255.255.255" and 0 < e4.timeout <= 300
        assert [e.family for e in ct.expectations("ipv6")] == ["ipv6"]
        ct.delete_expect(e4)
        assert [e.family for e in ct.expectations()] == ["ipv6"]
        with pytest.raises(pynfct.NfctNotFound):
            ct.delete_expect(e4)
        # unlike `conntrack -I expect`, the API gives the expectation the protocol it names
        ct.create_expect(ExpectSpec("tcp", "127.0.0.1", "127.0.0.1", 40021, 21, "127.0.0.1", "127.0.0.1",
                                    0, 6000, "255.255.255.255", "255.255.255.255", timeout=100))
        new = [e for e in ct.expectations("ipv4")]
        assert len(new) == 1 and new[0].proto == "tcp" and new[0].tuple.orig.dport == 6000
        assert b"dport=6000" in run(netns, ["conntrack", "-L", "expect"]).stdout
        ct.flush("expect")
        assert ct.expectations() == []


def test_delete_requests_built_directly_are_the_librarys(filled):
    """-D builds the lookup of plain TCP/UDP entries itself: the same bytes libnetfilter_conntrack builds."""
    from _nfct.request import lookup_requests
    ns, ct = filled
    checked = 0
    for flow in ct.dump():
        pair = lookup_requests(flow)
        if pair is not None:
            assert pair[0] == pair[1], str(flow)
            checked += 1
    assert checked > 30
