"""Deliberate mistakes a type checker must reject (tests/unit/test_typing.py runs mypy --strict on this
file and expects an error on each line marked ``# E``, and no other). Never run."""
from __future__ import annotations

import pynfct
from datetime import timedelta

from pynfct import FlowSpec, Mark, Match, Update


def mistakes(ct: pynfct.Conntrack) -> None:
    ct.delet(proto="udp")  # E: has no attribute "delet"
    ct.dump(proto="tcp", dport="http")  # E: "dport"
    ct.delete(mark="abc")  # E: "mark"
    ct.delete(dst=None)  # E: "dst"
    ct.update(Match(proto="udp"), timeout="abc")  # E: "timeout"
    ct.delete(colour="blue")  # E: "colour"
    Match(zone="1")  # E: "zone"
    Update(mark=None)  # E: "mark"
    FlowSpec("udp", src="10.0.0.1", dst="10.0.0.2", sport="1", dport=2, timeout=30)  # E: "sport"
    n: str = ct.count()  # E: Incompatible types in assignment
    for f in ct.dump():
        f.orig.nosuchfield  # E: has no attribute "nosuchfield"
    pynfct.Conntrak()  # E: has no attribute "Conntrak"
    ct.dump(table="expect")  # E: "table"
    ct.flush(table="dying")  # E: "table"
    ct.delete(snat=False)  # E: "snat"
    ct.get(proto="tcp", mark=1)  # E: "mark"


def fine(ct: pynfct.Conntrack) -> None:
    for flow in ct.dump(Match(proto="tcp", dport=443)):
        print(flow.orig.src, flow.mark)
    r = ct.delete(proto="udp", dport=53)
    print(int(r), r.failures)
    r = ct.update(proto="udp", dport=53, timeout=timedelta(minutes=5))      # README's example
    r = ct.update(Match(family="ipv4", proto="udp", dport=53), set=Update(mark=Mark(0x100, 0x100)))
    print(int(r), r.unchanged)
