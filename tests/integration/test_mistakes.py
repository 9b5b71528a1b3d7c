"""A table of mistaken calls: each raises the exception a Python library should raise, naming the keyword
and the value as the caller wrote them, and the table is the same before and after (same entries, same
ids), so a firewall script that computes a value wrongly gets an exception, not a wrong delete."""
from __future__ import annotations

import ipaddress
import re
import socket
from datetime import timedelta

import pytest

import pynfct
from pynfct import FlowSpec, Mark, Match, ParameterError, SCTPState, Status, TCPState, Update
from differential import run
from test_write import small_fill

UDP = dict(proto="udp", src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2)

# (call, exception, message pattern); each call gets the Conntrack handle
MISTAKES = [
    # None never widens, False is not "off"
    (lambda ct: ct.delete(dst=None), TypeError, r"dst=None: leave the keyword out"),
    (lambda ct: ct.delete(proto="udp", dport=None), TypeError, r"dport=None"),
    (lambda ct: ct.delete(dnat=False), ParameterError, r"dnat=False"),
    (lambda ct: ct.update(proto="udp", mark=None), TypeError, r"mark=None"),
    (lambda ct: ct.update(proto="udp", timeout=30, add_labels=None), TypeError, r"add_labels=None"),
    (lambda ct: ct.delete(), TypeError, r"pass Match\(\) explicitly"),
    (lambda ct: ct.update(mark=1), TypeError, r"pass Match\(\) explicitly"),
    (lambda ct: ct.update(proto="udp"), TypeError, r"needs a value to set"),
    # ports, marks, zones are ints in range; a bool is not an int here
    (lambda ct: ct.delete(proto="udp", dport=99999), ParameterError, r"dport=99999: a port is from 0 to 65535"),
    (lambda ct: ct.delete(proto="udp", dport=65589), ParameterError, r"dport=65589"),
    (lambda ct: ct.delete(proto="udp", dport=-1), ParameterError, r"dport=-1"),
    (lambda ct: ct.delete(proto="udp", dport="http"), TypeError, r"dport='http': a port is an int, not str"),
    (lambda ct: ct.delete(proto="udp", dport=53.0), TypeError, r"dport=53.0"),
    (lambda ct: ct.delete(mark="abc"), TypeError, r"mark='abc': a mark is an int"),
    (lambda ct: ct.delete(mark=[5, 0xff]), TypeError, r"mark=\[5, 255\]"),
    (lambda ct: ct.delete(mark=(1, 2, 3)), ParameterError, r"mark=\(1, 2, 3\)"),
    (lambda ct: ct.delete(mark=2**32), ParameterError, r"mark=4294967296"),
    (lambda ct: ct.delete(mark=True), TypeError, r"mark=True: a mark is an int, not bool"),
    (lambda ct: ct.delete(zone=True), TypeError, r"zone=True: a zone is an int, not bool"),
    (lambda ct: ct.delete(zone=70000), ParameterError, r"zone=70000"),
    (lambda ct: ct.delete(id=-1), ParameterError, r"id=-1"),
    # timeouts
    (lambda ct: ct.update(proto="udp", timeout="abc"), TypeError, r"timeout='abc'"),
    (lambda ct: ct.update(proto="udp", timeout=-5), ParameterError, r"timeout=-5"),
    (lambda ct: ct.update(proto="udp", timeout=0), ParameterError, r"timeout=0"),
    (lambda ct: ct.update(proto="udp", timeout=timedelta(seconds=1.5)), ParameterError, r"whole seconds"),
    (lambda ct: ct.create(timeout=0, **UDP), ParameterError, r"timeout=0"),
    (lambda ct: ct.create(timeout=2**32, **UDP), ParameterError, r"timeout=4294967296"),
    # protocol options need their protocol; states and statuses are checked against it
    (lambda ct: ct.delete(sport=80), ParameterError, r"sport=80: needs proto tcp, udp.*no proto was given"),
    (lambda ct: ct.delete(proto="icmp", dport=80), ParameterError, r"dport=80: needs proto .*proto is icmp"),
    (lambda ct: ct.delete(icmp_type=8), ParameterError, r"icmp_type=8: needs proto icmp or icmpv6"),
    (lambda ct: ct.delete(proto="tcp", srckey=1), ParameterError, r"srckey=1: needs proto gre"),
    (lambda ct: ct.delete(state="ESTABLISHED"), ParameterError, r"state='ESTABLISHED': a state needs proto"),
    (lambda ct: ct.delete(proto="udp", state="ESTABLISHED"), ParameterError, r"needs proto tcp, sctp or dccp"),
    (lambda ct: ct.delete(proto="tcp", state="BOGUS"), ParameterError, r"state='BOGUS': unknown TCP state"),
    (lambda ct: ct.delete(proto="tcp", state=SCTPState.ESTABLISHED), ParameterError, r"not a TCPState"),
    (lambda ct: ct.delete(proto="tcp", state=3), TypeError, r"state=3"),
    (lambda ct: ct.delete(status="BOGUS"), ParameterError, r"status='BOGUS': unknown status"),
    (lambda ct: ct.delete(status=[]), ParameterError, r"status=\[\]"),
    (lambda ct: ct.delete(status=4), TypeError, r"status=4"),
    (lambda ct: ct.delete(status=["ASSURED", "!ASSURED"]), ParameterError, r"both set and not set"),
    (lambda ct: ct.update(proto="udp", status="!ASSURED"), ParameterError, r"'!' .*filters"),
    (lambda ct: ct.delete(proto=300), ParameterError, r"proto=300"),
    (lambda ct: ct.delete(proto="nosuchproto"), ParameterError, r"proto='nosuchproto': unknown protocol"),
    (lambda ct: ct.delete(proto=True), TypeError, r"proto=True"),
    (lambda ct: ct.delete(proto="icmp", family="ipv6"), ParameterError, r"does not exist in family IPV6"),
    # addresses and families
    (lambda ct: ct.delete(src="10.0.0.300"), ParameterError, r"src='10.0.0.300': not an IPv4 or IPv6 address"),
    (lambda ct: ct.delete(src=167772161), TypeError, r"src=167772161: an address is a str"),
    (lambda ct: ct.delete(src="10.0.0.0/33"), ParameterError, r"src='10.0.0.0/33'"),
    (lambda ct: ct.delete(reply_src="10.0.0.0/8"), ParameterError, r"reply_src='10.0.0.0/8': takes an address"),
    (lambda ct: ct.delete(src=ipaddress.ip_interface("10.0.0.1/24")), TypeError, r"interface"),
    (lambda ct: ct.delete(src="10.0.0.1", dst="::1"), ParameterError, r"dst: an IPv6 value where the other"),
    (lambda ct: ct.delete(family="ipv5"), ParameterError, r"family='ipv5'"),
    (lambda ct: ct.delete(family=99), ParameterError, r"family=99"),
    (lambda ct: ct.delete(family=socket.AF_INET, src="::1"), ParameterError, r"src: an IPv6 value where"),
    (lambda ct: ct.delete(snat="2001:db8::1"), ParameterError, r"IPv6 NAT addresses cannot be matched"),
    (lambda ct: ct.delete(any_nat=True, snat=True), ParameterError, r"any_nat"),
    # labels
    (lambda ct: ct.delete(labels="nosuchlabel"), ParameterError, r"labels='nosuchlabel': unknown label"),
    (lambda ct: ct.delete(labels=200), ParameterError, r"labels=200"),
    (lambda ct: ct.delete(labels=[True]), TypeError, r"labels=\[True\]"),
    (lambda ct: ct.update(proto="udp", add_labels=["pynfct-l1"], del_labels=True), ParameterError,
     r"one at a time"),
    # keywords that do not exist, or do not select in this call
    (lambda ct: ct.delete(colour="blue"), TypeError, r"unknown keyword\(s\) colour"),
    (lambda ct: ct.delete(mask_src="255.0.0.0"), TypeError, r"mask_src"),
    (lambda ct: ct.update(proto="udp", mark=1, secmark=5), TypeError, r"unknown keyword\(s\) secmark"),
    # filters the C layer would not apply: refused, not ignored (an ignored filter widens)
    (lambda ct: ct.delete(secmark=5), TypeError, r"unknown keyword\(s\) secmark"),
    (lambda ct: ct.delete(proto="gre", srckey=3), TypeError, r"cannot select by srckey: no filter compares"),
    (lambda ct: ct.update(proto="gre", dstkey=9, mark=9), TypeError, r"cannot select by dstkey"),
    (lambda ct: ct.delete(mark=Mark(0, 0)), ParameterError, r"a mask of 0"),
    (lambda ct: ct.delete(mark=(0x100, 0xff)), ParameterError, r"bits outside the mask"),
    (lambda ct: ct.update(proto="udp", mark=Mark(0x100, 0xff)), ParameterError, r"bits outside the mask"),
    (lambda ct: ct.delete(src="10.0.0.0/0"), ParameterError, r"src='10.0.0.0/0': a /0 network"),
    (lambda ct: ct.delete(dst=ipaddress.ip_network("::/0")), ParameterError, r"a /0 network"),
    (lambda ct: ct.delete(labels=b"x"), TypeError, r"labels=b'x'"),
    (lambda ct: ct.update(proto="udp", add_labels=b"ab"), TypeError, r"add_labels=b'ab'"),
    (lambda ct: ct.delete(status={"SEEN_REPLY": 0}), TypeError, r"status=\{"),
    (lambda ct: ct.create_many([FlowSpec(timeout=30, **UDP)] * 500 + ["bad"]), TypeError, r"item 500"),
    (lambda ct: ct.get(proto="udp", reply_src="10.0.0.2", reply_dst="10.0.0.1", reply_sport=2, reply_dport=1),
     TypeError, r"takes no reply_dport, reply_dst, reply_sport, reply_src"),
    (lambda ct: ct.get(reply_sport=1, **UDP), TypeError, r"takes no reply_sport"),
    (lambda ct: ct.events(timeout="5"), TypeError, r"timeout='5'"),
    (lambda ct: ct.events(timeout=-1), ParameterError, r"timeout=-1"),
    (lambda ct: ct.events(mask="NEW,"), ParameterError, r"mask='NEW,': unknown event type ''"),
    (lambda ct: ct.update(proto="tcp", state="ESTABLISHED", mark=1), TypeError, r"cannot select by state"),
    (lambda ct: ct.update(Match(proto="udp"), set=Update(mark=1), mark=2), TypeError, r"not both"),
    (lambda ct: ct.delete(Match(proto="udp"), proto="tcp"), TypeError, r"not both"),
    (lambda ct: ct.delete("udp"), TypeError, r"not str"),
    (lambda ct: ct.delete([Match(proto="udp")]), TypeError, r"takes Flows, not Match"),
    (lambda ct: ct.flush(family="ipv4"), TypeError, r"family"),
    (lambda ct: ct.dump(table="expect"), ParameterError, r"use expectations\(\)"),
    (lambda ct: ct.dump(table="dying", zero=True), ParameterError, r"zero=True"),
    (lambda ct: ct.get(proto="tcp", src="10.0.0.1", dst="10.0.0.2"), TypeError, r"needs sport, dport"),
    (lambda ct: ct.get(src="10.0.0.1", dst="10.0.0.2"), TypeError, r"needs proto"),
    (lambda ct: ct.get(mark=1, **UDP), TypeError, r"takes no mark"),
    (lambda ct: ct.events(status="!ASSURED"), ParameterError, r"status='!ASSURED'"),
    (lambda ct: ct.events(mask=True), TypeError, r"mask=True"),
    # creates: complete, consistent
    (lambda ct: ct.create(proto="tcp", src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, timeout=30), TypeError,
     r"needs state for proto tcp"),
    (lambda ct: ct.create(proto="udp", src="10.0.0.1", sport=1, dport=2, timeout=30), TypeError, r"both src and dst"),
    (lambda ct: ct.create(proto="dccp", src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, state="OPEN",
                          timeout=30), TypeError, r"needs role"),
    (lambda ct: ct.create(proto="icmp", src="::1", dst="::2", icmp_type=8, icmp_code=0, timeout=5),
     ParameterError, r"icmp is IPv4's"),
    (lambda ct: ct.create(proto="udp", src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, timeout=30, mark=(1, 2)),
     TypeError, r"mark=\(1, 2\)"),
    (lambda ct: ct.create(FlowSpec(timeout=30, **UDP), proto="udp"), TypeError, r"not both"),
    (lambda ct: ct.create({"proto": "udp"}), TypeError, r"not dict"),
    (lambda ct: ct.create_many(["-I -p udp", FlowSpec(timeout=30, **UDP)]), TypeError, r"item 0"),
    (lambda ct: ct.create_many(FlowSpec(timeout=30, **UDP)), TypeError, r"iterable"),
    (lambda ct: ct.update(proto="udp", mark=Mark(1, 2**33)), ParameterError, r"mark=Mark"),
    (lambda ct: ct.create(timeout=30, status=Status.ASSURED, state=TCPState.ESTABLISHED, **UDP), ParameterError,
     r"state=.*needs proto tcp"),
]


def _table(ns):
    """The whole table with ids; only the timeout column (it ticks) blanked."""
    r = run(ns, ["conntrack", "-L", "-o", "id"])
    assert r.returncode == 0, r.err
    return [re.sub(r"^(\S+\s+\d+\s+)\d+", r"\1", line) for line in r.out.splitlines()]


@pytest.fixture(scope="module")
def table(request):
    from netns import NetNS
    with NetNS() as ns:
        small_fill(ns)
        labelmap = f"/etc/netns/{ns.name}/xtables/connlabel.conf"
        with pynfct.Conntrack(ns.name, labelmap=labelmap) as ct:
            yield ns, ct


def test_there_are_enough_mistakes():
    assert len(MISTAKES) >= 40


@pytest.mark.parametrize("call,exc,pattern", MISTAKES, ids=[str(i) for i in range(len(MISTAKES))])
def test_a_mistake_raises_and_changes_nothing(table, call, exc, pattern):
    ns, ct = table
    before = _table(ns)
    assert len(before) > 50
    with pytest.raises(exc, match=pattern):
        result = call(ct)
        if hasattr(result, "__next__"):     # an iterator: the mistake must show before it is read
            next(result)
    assert _table(ns) == before
