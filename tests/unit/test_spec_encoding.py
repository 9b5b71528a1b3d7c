"""create_many() builds a FlowSpec's request straight from its checked values (_nfct.spec); that request
must be, byte for byte, the one its command() template gives (pynfct.builder + template_ct), which is
the one conntrack -I sends (tests/unit/test_model.py). No kernel is needed: both are built and compared.
"""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _nfct.fastparse import create_request
from _nfct.format import LabelMap
from _nfct.spec import spec_request
from pynfct import FlowSpec
from pynfct.status import Status
from pynfct.values import DCCPRole, DCCPState, SCTPState, TCPState

LABELS = {"web": 1, "db": 5, "blue": 42, "top": 127}
SETTINGS = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def labelmap(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "connlabel.conf"
    path.write_text("".join(f"{bit} {name}\n" for name, bit in LABELS.items()))
    return LabelMap(str(path))


def template_request(spec: FlowSpec, add: bool, labelmap):
    return create_request(spec.command(add, labelmap))


def _addr(draw, family):
    if family == 4:
        ip = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
    else:
        ip = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
    return draw(st.sampled_from([ip, str(ip), ipaddress.ip_network(ip)]))


PROTOS = ["tcp", "udp", "udplite", "sctp", "dccp", "gre", "icmp", "icmpv6", 0, 4, 41, 50, 103, 255]
STATES = {"tcp": list(TCPState) + ["time_wait"], "sctp": list(SCTPState) + ["established"],
          "dccp": list(DCCPState) + ["open"]}
PORTS = {"gre": ("srckey", "dstkey", "reply_srckey", "reply_dstkey")}


@st.composite
def flowspecs(draw, names: bool = True):
    """The keywords of one FlowSpec: every protocol, both families, one or both directions, and any of
    the options a create takes."""
    proto = draw(st.sampled_from(PROTOS))
    family = 4 if proto == "icmp" else 6 if proto == "icmpv6" else draw(st.sampled_from([4, 6]))
    fields: dict = {}
    if draw(st.integers(0, 4)) == 0:
        fields["family"] = draw(st.sampled_from([2 if family == 4 else 10, "ipv4" if family == 4 else "ipv6"]))
    direction = draw(st.sampled_from(["orig", "reply", "both"]))
    keys = ((["src", "dst"] if direction != "reply" else [])
            + (["reply_src", "reply_dst"] if direction != "orig" else []))
    for key in keys:
        fields[key] = _addr(draw, family)
    if proto in ("tcp", "udp", "udplite", "sctp", "dccp", "gre"):
        pk = PORTS.get(proto, ("sport", "dport", "reply_sport", "reply_dport"))
        chosen = pk[:2] if direction != "reply" else pk[2:]
        if direction == "both":
            chosen = draw(st.sampled_from([pk[:2], pk[2:], pk]))
        for key in chosen:
            fields[key] = draw(st.integers(0, 65535))
    if proto in STATES:
        fields["state"] = draw(st.sampled_from(STATES[proto]))
    if proto == "sctp":
        fields["orig_vtag"] = draw(st.integers(0, 2**32 - 1))
        fields["reply_vtag"] = draw(st.integers(0, 2**32 - 1))
    if proto == "dccp":
        fields["role"] = draw(st.sampled_from([DCCPRole.CLIENT, DCCPRole.SERVER, "client", "server"]))
    if proto in ("icmp", "icmpv6"):
        fields["icmp_type"] = draw(st.integers(0, 255))
        fields["icmp_code"] = draw(st.integers(0, 255))
        if draw(st.booleans()):
            fields["icmp_id"] = draw(st.integers(0, 65535))
    fields["timeout"] = draw(st.integers(1, 2**32 - 1))
    if draw(st.booleans()):
        fields["status"] = draw(st.sampled_from([Status.ASSURED, Status.SEEN_REPLY | Status.ASSURED,
                                                 Status.FIXED_TIMEOUT, "ASSURED", ["SEEN_REPLY", "ASSURED"]]))
    if draw(st.booleans()):
        fields["mark"] = draw(st.integers(0, 2**32 - 1))
    for key in ("zone", "orig_zone", "reply_zone"):
        if draw(st.integers(0, 3)) == 0:
            fields[key] = draw(st.integers(0, 65535))
    for key in ("snat", "dnat"):
        if draw(st.integers(0, 3)) == 0:
            addr = _addr(draw, family)
            fields[key] = (addr, draw(st.integers(0, 65535))) if draw(st.booleans()) else addr
    if draw(st.integers(0, 3)) == 0:
        items = st.integers(0, 127) | st.sampled_from(sorted(LABELS)) if names else st.integers(0, 127)
        fields["labels"] = draw(st.lists(items, min_size=1, max_size=4))
        if len(fields["labels"]) == 1 and draw(st.booleans()):
            fields["labels"] = fields["labels"][0]
    return FlowSpec(proto, **fields)


@SETTINGS
@given(spec=flowspecs(), add=st.booleans())
def test_the_direct_request_is_the_templates(labelmap, spec, add):
    direct = spec_request(spec._v, labelmap)
    assert direct is not None, f"{spec!r} was left to the template path"
    assert direct == template_request(spec, add, labelmap), spec


@settings(max_examples=300, deadline=None)
@given(spec=flowspecs(names=False))
def test_label_bits_need_no_label_map(spec):
    direct = spec_request(spec._v, None)
    assert direct is not None, f"{spec!r} was left to the template path"
    assert direct == template_request(spec, False, None), spec


def test_label_names_without_a_label_map_go_the_template_way():
    spec = FlowSpec("udp", src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, timeout=5, labels=["web", 3])
    assert spec_request(spec._v, None) is None


def test_unknown_label_names_go_the_template_way(labelmap):
    spec = FlowSpec("udp", src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, timeout=5, labels="nosuch")
    assert spec_request(spec._v, labelmap) is None


@pytest.mark.parametrize("v", [
    {"proto": 17, "src": (2, b"\x0a\0\0\1", 32), "dst": (2, b"\x0a\0\0\2", 32), "sport": 1, "dport": 2,
     "timeout": 5, "secmark": 3},                                                     # a key it does not read
    {"proto": 17, "src": (2, b"\x0a\0\0\1", 24), "dst": (2, b"\x0a\0\0\2", 32), "timeout": 5},   # a network
    {"proto": 17, "src": (2, b"\x0a\0\0\1", 32), "dst": (10, b"\0" * 16, 128), "timeout": 5},  # mixed families
    {"proto": 17, "src": (2, b"\x0a\0\0\1", 32), "timeout": 5},                         # half a direction
    {"proto": 17, "src": (2, b"\x0a\0\0\1", 32), "dst": (2, b"\x0a\0\0\2", 32)},        # no timeout
    {"proto": 17, "src": (2, b"\x0a\0\0\1", 32), "dst": (2, b"\x0a\0\0\2", 32), "timeout": 5,
     "icmp_type": 8},                                                                  # another protocol's
    {"proto": 17, "src": (2, b"\x0a\0\0\1", 32), "dst": (2, b"\x0a\0\0\2", 32), "timeout": 5, "state": 3},
])
def test_values_it_does_not_know_go_the_template_way(v):
    assert spec_request(v, None) is None
