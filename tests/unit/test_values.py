"""Flow and Event as values, without a kernel: Flow.from_dict() / as_dict(), equality and hashing, the
connection key, pickling (exact, hidden attributes included), and Event.as_dict() / from_dict().

Flows are built from as_dict()-style objects and from hand-made ctnetlink messages (the form the kernel
sends an entry in), so no conntrack table is needed; tests/integration/test_flow_value.py does the same
over real tables and events.
"""
import copy
import json
import pickle
import struct

import pytest

from _nfct.events import Event
from _nfct.flow import Flow, FlowKey, parse_message, raw_state
from _nfct.format import Format, LabelMap
from pynfct.events import EventType
from pynfct.template import Out

# --- as_dict() objects of every kind of entry ------------------------------------------------------------


def tup(src, dst, **kw):
    return dict(src=src, dst=dst, **kw)


V4 = ("192.0.2.1", "198.51.100.1")
V6 = ("2001:db8::1", "2001:db8::2")

DICTS = {
    "tcp4": dict(family="ipv4", proto="tcp", protonum=6, timeout=431999, state="ESTABLISHED",
                 orig=tup(*V4, sport=40000, dport=443, packets=12, bytes=1400),
                 reply=tup(*V4[::-1], sport=443, dport=40000, packets=10, bytes=9000),
                 status=["SEEN_REPLY", "ASSURED", "CONFIRMED"], mark=0, use=1, id=2829014795),
    "tcp6-labels": dict(family="ipv6", proto="tcp", protonum=6, timeout=10, state="SYN_SENT2",
                        orig=tup(*V6, sport=1, dport=2), reply=tup(*V6[::-1], sport=2, dport=1),
                        status=[], labels=[0, 63, 64, 127]),
    "udp4-nat-zones": dict(family="ipv4", proto="udp", protonum=17, timeout=30,
                           orig=tup("10.0.0.1", "203.0.113.1", sport=33001, dport=53, zone=2),
                           reply=tup("203.0.113.1", "198.51.100.100", sport=53, dport=61000, zone=3),
                           status=["CONFIRMED", "SRC_NAT", "SRC_NAT_DONE", "DST_NAT_DONE"], mark=0xFFFFFFFF,
                           secmark=7, use=2, id=1),
    "udp6-zone": dict(family="ipv6", proto="udp", protonum=17, orig=tup(*V6, sport=5, dport=6),
                      reply=tup(*V6[::-1], sport=6, dport=5), zone=65535),
    "udplite": dict(family="ipv4", proto="udplite", protonum=136, timeout=1,
                    orig=tup(*V4, sport=5000, dport=5001), reply=tup(*V4[::-1], sport=5001, dport=5000)),
    "icmp": dict(family="ipv4", proto="icmp", protonum=1, timeout=29,
                 orig=tup(*V4, type=8, code=0, id=65535, packets=1, bytes=84),
                 reply=tup(*V4[::-1], id=65535, packets=1, bytes=84),
                 status=["SEEN_REPLY", "CONFIRMED"], start=1700000000000000000, stop=1700000001000000000),
    "icmp-timestamp": dict(family="ipv4", proto="icmp", protonum=1, orig=tup(*V4, type=13, code=0, id=2),
                           reply=tup(*V4[::-1], id=2)),
    "icmpv6-ni": dict(family="ipv6", proto="icmpv6", protonum=58, timeout=29,
                      orig=tup(*V6, type=139, code=0, id=5), reply=tup(*V6[::-1], id=5), status=[]),
    "sctp": dict(family="ipv4", proto="sctp", protonum=132, timeout=3, state="HEARTBEAT_ACKED",
                 orig=tup(*V4, sport=3000, dport=3868, vtag=0xDEADBEEF),
                 reply=tup(*V4[::-1], sport=3868, dport=3000, vtag=1), status=["ASSURED"]),
    "dccp": dict(family="ipv6", proto="dccp", protonum=33, timeout=3, state="PARTOPEN", role="server",
                 orig=tup(*V6, sport=4000, dport=5004), reply=tup(*V6[::-1], sport=5004, dport=4000)),
    "gre": dict(family="ipv4", proto="gre", protonum=47, timeout=100,
                orig=tup(*V4, srckey=0x1234, dstkey=0), reply=tup(*V4[::-1], srckey=0, dstkey=0x1234)),
    "generic": dict(family="ipv4", proto="unknown", protonum=99, orig=tup(*V4), reply=tup(*V4[::-1]), mark=5),
    "everything": dict(family="ipv4", proto="tcp", protonum=6, timeout=7, state="TIME_WAIT",
                       orig=tup("10.0.0.6", "203.0.113.6", sport=34000, dport=25, zone=9, packets=0, bytes=0),
                       reply=tup("203.0.113.6", "198.51.100.106", sport=25, dport=34002, packets=2 ** 64 - 1,
                                 bytes=2 ** 63),
                       status=["EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT",
                               "SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT", "TEMPLATE",
                               "UNTRACKED", "HELPER", "OFFLOAD", "HW_OFFLOAD"],
                       mark=1, secmark=2, secctx='system_u:object_r:"quoted"\\x', zone=9, use=3, id=4,
                       helper="ftp", start=5, stop=6, labels=[1, 127]),
}


STATUS_NAMES = DICTS["everything"]["status"]          # bit 0 first


@pytest.mark.parametrize("name", sorted(DICTS))
def test_as_dict_round_trip(name):
    d = DICTS[name]
    f = Flow.from_dict(d)
    assert f.as_dict() == d                       # every field, nothing added (they are in as_dict's order)
    assert list(f.as_dict()) == list(d)
    assert Flow.from_dict(f.as_dict()) == f
    assert json.loads(Format(Out.JSON).format(f)) == d        # what -o json prints for it


@pytest.mark.parametrize("name", sorted(DICTS))
def test_attributes_of_a_built_flow(name):
    d = DICTS[name]
    f = Flow.from_dict(d)
    assert (f.family, f.protonum, f.proto) == (d["family"], d["protonum"], d["proto"])
    assert (f.orig.src, f.orig.dst, f.reply.src, f.reply.dst) == (d["orig"]["src"], d["orig"]["dst"],
                                                                  d["reply"]["src"], d["reply"]["dst"])
    for key in ("timeout", "state", "mark", "secmark", "secctx", "zone", "use", "id", "helper", "start", "stop",
                "role"):
        assert getattr(f, key) == d.get(key), key
    assert f.labels == frozenset(d.get("labels", ()))
    assert int(f.status) == sum(1 << STATUS_NAMES.index(name) for name in d.get("status", ()))
    for t, td in ((f.orig, d["orig"]), (f.reply, d["reply"])):
        for key, attr in (("sport", "sport"), ("dport", "dport"), ("srckey", "srckey"), ("dstkey", "dstkey"),
                          ("vtag", "vtag"), ("zone", "zone"), ("packets", "packets"), ("bytes", "bytes")):
            if key in td:
                assert getattr(t, attr) == td[key], key
    if "type" in d["orig"]:
        assert (f.orig.icmp_type, f.orig.icmp_code, f.orig.icmp_id) == (d["orig"]["type"], d["orig"]["code"],
                                                                        d["orig"]["id"])
    assert str(f) and repr(f).startswith("<Flow ")


def test_reply_direction_of_icmp_is_the_answer():
    # the kernel's reply tuple holds the answer's type; conntrack prints it
    assert " type=0 code=0 id=65535 " in str(Flow.from_dict(DICTS["icmp"]))
    assert " type=14 code=0 id=2" in str(Flow.from_dict(DICTS["icmp-timestamp"]))
    assert " type=140 code=0 id=5" in str(Flow.from_dict(DICTS["icmpv6-ni"]))


def test_status_and_state_names_agree_with_the_json_writer():
    f = Flow.from_dict(DICTS["everything"])
    assert f.as_dict()["status"] == DICTS["everything"]["status"]
    assert int(f.status) == 0xFFFF
    states = {6: ["NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
                  "TIME_WAIT", "CLOSE", "SYN_SENT2"],
              132: ["NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_SENT",
                    "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT", "HEARTBEAT_ACKED"],
              33: ["NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING", "TIMEWAIT", "IGNORE",
                   "INVALID"]}
    for num, names in states.items():
        for name in names:
            d = dict(family="ipv4", protonum=num, state=name, orig=tup(*V4, sport=1, dport=2),
                     reply=tup(*V4[::-1], sport=2, dport=1))
            f = Flow.from_dict(d)
            assert f.state == name and f.as_dict()["state"] == name


def test_labels_by_name_with_a_labelmap(tmp_path):
    conf = tmp_path / "connlabel.conf"
    conf.write_text("0 zero\n5 five\n127 last\n")
    d = dict(DICTS["tcp4"], labels=["zero", 5, "last"])
    f = Flow.from_dict(d, labelmap=LabelMap(str(conf)))
    assert f.labels == frozenset({0, 5, 127}) and f.as_dict()["labels"] == [0, 5, 127]
    with pytest.raises(ValueError, match="labels: 'nosuch' is not in the label map"):
        Flow.from_dict(dict(d, labels=["nosuch"]), labelmap=LabelMap(str(conf)))
    with pytest.raises(ValueError, match="labels: 'zero' is a name"):
        Flow.from_dict(d)


def test_status_in_any_order():
    f = Flow.from_dict(dict(DICTS["tcp4"], status=["CONFIRMED", "ASSURED", "SEEN_REPLY", "ASSURED"]))
    assert f == Flow.from_dict(DICTS["tcp4"])


def test_none_is_an_absent_field():
    f = Flow.from_dict(dict(DICTS["tcp4"], secctx=None, labels=None, mark=None))
    assert f.mark is None and f.as_dict() == {k: v for k, v in DICTS["tcp4"].items() if k != "mark"}


# --- errors name the key -------------------------------------------------------------------------------

def bad(**changes):
    d = json.loads(json.dumps(DICTS["tcp4"]))
    for key, value in changes.items():
        where = d
        path = key.split("__")
        for p in path[:-1]:
            where = where[p]
        if value is KeyError:
            del where[path[-1]]
        else:
            where[path[-1]] = value
    return d


@pytest.mark.parametrize("d,exc,message", [
    (bad(family=KeyError), ValueError, "family: missing"),
    (bad(family="ipx"), ValueError, "family: 'ipx'"),
    (bad(family=2), TypeError, "family: expected a str"),
    (bad(protonum=KeyError, proto=KeyError), ValueError, "protonum: missing"),
    (bad(proto="udp"), ValueError, "proto: 'udp' is not protocol number 6"),
    (bad(proto="nosuch"), ValueError, "proto: unknown protocol"),
    (bad(protonum="6"), TypeError, "protonum: expected an int, got str"),
    (bad(protonum=256), ValueError, r"protonum: 256 is out of range 0..255"),
    (bad(protonum=True), TypeError, "protonum: expected an int, got bool"),
    (bad(bogus=1), ValueError, "bogus: unknown key"),
    (bad(type="new"), ValueError, "type: unknown key"),
    (bad(orig=KeyError), ValueError, "orig: missing"),
    (bad(reply=[]), TypeError, "reply: expected a dict, got list"),
    (bad(orig__src=KeyError), ValueError, "orig.src: missing"),
    (bad(orig__src="2001:db8::1"), ValueError, "orig.src: '2001:db8::1' is not an IPv4 address"),
    (bad(reply__dst="1.2.3.4\0"), ValueError, "reply.dst: contains a NUL"),
    (bad(orig__sport=65536), ValueError, r"orig.sport: 65536 is out of range 0..65535"),
    (bad(orig__dport=-1), ValueError, "orig.dport: -1 is out of range"),
    (bad(orig__sport=1.0), TypeError, "orig.sport: expected an int, got float"),
    (bad(orig__srckey=1), ValueError, "orig.srckey: not a field of tcp entries"),
    (bad(orig__vtag=1), ValueError, "orig.vtag: not a field of tcp entries"),
    (bad(orig__type=8), ValueError, "orig.type: not a field of tcp entries"),
    (bad(orig__nosuch=8), ValueError, "orig.nosuch: unknown key"),
    (bad(reply__bytes=KeyError), ValueError, r"reply.bytes: missing \(packets and bytes come together\)"),
    (bad(orig__packets=KeyError), ValueError, "orig.packets: missing"),
    (bad(orig__packets=2 ** 64), ValueError, "orig.packets: .* out of range"),
    (bad(state="NOSUCH"), ValueError, "state: unknown tcp state 'NOSUCH'"),
    (bad(state="(null)"), ValueError, "state: unknown tcp state"),
    (bad(state=3), TypeError, "state: expected a str"),
    (bad(role="client"), ValueError, "role: tcp entries have no DCCP role"),
    (bad(status="ASSURED"), TypeError, "status: expected a list"),
    (bad(status=["ASSURED", 4]), TypeError, "status: expected names"),
    (bad(status=["NOSUCH"]), ValueError, "status: unknown flag 'NOSUCH'"),
    (bad(mark=2 ** 32), ValueError, "mark: .* out of range 0..4294967295"),
    (bad(zone=65536), ValueError, "zone: .* out of range 0..65535"),
    (bad(timeout=-5), ValueError, "timeout: -5"),
    (bad(start="1"), TypeError, "start: expected an int"),
    (bad(helper="x" * 16), ValueError, "helper: .* longer than 15 bytes"),
    (bad(secctx=b"x"), TypeError, "secctx: expected a str, got bytes"),
    (bad(labels=[128]), ValueError, r"labels: bit 128 is out of range 0..127"),
    (bad(labels=[-1]), ValueError, "labels: bit -1"),
    (bad(labels=[1.5]), TypeError, "labels: expected bit numbers or names"),
    (bad(labels="1"), TypeError, "labels: expected a list"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_from_dict_errors(d, exc, message):
    with pytest.raises(exc, match=message):
        Flow.from_dict(d)


def test_from_dict_protocol_specific_errors():
    icmp = json.loads(json.dumps(DICTS["icmp"]))
    with pytest.raises(ValueError, match="reply.type: the reply's ICMP type follows from orig.type"):
        Flow.from_dict(dict(icmp, reply=dict(icmp["reply"], type=0)))
    with pytest.raises(ValueError, match="reply.id: 7 differs from orig.id 65535"):
        Flow.from_dict(dict(icmp, reply=dict(icmp["reply"], id=7)))
    with pytest.raises(ValueError, match="orig.type: ICMP type 3 has no reply type"):
        Flow.from_dict(dict(icmp, orig=dict(icmp["orig"], type=3)))
    with pytest.raises(ValueError, match="orig.sport: not a field of icmp entries"):
        Flow.from_dict(dict(icmp, orig=dict(icmp["orig"], sport=1)))
    with pytest.raises(ValueError, match="state: icmp entries have no state"):
        Flow.from_dict(dict(icmp, state="ESTABLISHED"))
    with pytest.raises(ValueError, match="protonum: missing \\(proto 'unknown' has no number\\)"):
        Flow.from_dict(dict(DICTS["generic"], protonum=None))
    with pytest.raises(ValueError, match="role: 'peer' is neither"):
        Flow.from_dict(dict(DICTS["dccp"], role="peer"))
    with pytest.raises(TypeError, match="takes a dict, not list"):
        Flow.from_dict([])
    # the id of an ICMP entry may be given on either side
    one_sided = dict(icmp, orig={k: v for k, v in icmp["orig"].items() if k != "id"})
    assert Flow.from_dict(one_sided) == Flow.from_dict(icmp)


def test_flow_is_not_built_by_its_constructor():
    with pytest.raises(TypeError, match="Flow.from_dict"):
        Flow()


# --- equality, hash, key ---------------------------------------------------------------------------------

def test_value_equality_and_hash():
    flows = [Flow.from_dict(d) for d in DICTS.values()]
    again = [Flow.from_dict(d) for d in DICTS.values()]
    for f, g in zip(flows, again):
        assert f == g and not (f != g) and hash(f) == hash(g) and f is not g
    assert len(set(flows) | set(again)) == len(DICTS)
    assert all(f != g for i, f in enumerate(flows) for g in flows[i + 1:])
    assert flows[0] != DICTS["tcp4"] and flows[0] != "x" and flows[0] is not None
    assert {flows[0]: 1}[again[0]] == 1


@pytest.mark.parametrize("change", [
    dict(timeout=431998), dict(mark=1), dict(use=2), dict(id=1), dict(status=["SEEN_REPLY"]),
    dict(state="TIME_WAIT"), dict(orig=tup(*V4, sport=40000, dport=443, packets=13, bytes=1400)),
    dict(reply=tup(*V4[::-1], sport=443, dport=40000)), dict(labels=[]), dict(zone=0), dict(secmark=0),
])
def test_snapshots_of_one_connection_differ_in_value_not_key(change):
    f = Flow.from_dict(DICTS["tcp4"])
    g = Flow.from_dict(dict(DICTS["tcp4"], **change))
    assert f != g
    if "zone" not in change:
        assert f.key == g.key and hash(f.key) == hash(g.key)


def test_key():
    f = Flow.from_dict(DICTS["tcp4"])
    assert f.key == FlowKey("ipv4", 6, "192.0.2.1", "198.51.100.1", (40000, 443), 0)
    assert f.key.l4 == (40000, 443) and isinstance(f.key, tuple)
    assert Flow.from_dict(DICTS["udp4-nat-zones"]).key.zone == 2          # the original direction's zone
    assert Flow.from_dict(DICTS["udp6-zone"]).key.zone == 65535
    assert Flow.from_dict(DICTS["icmp"]).key.l4 == (8, 0, 65535)
    assert Flow.from_dict(DICTS["gre"]).key.l4 == (0x1234, 0)
    assert Flow.from_dict(DICTS["generic"]).key.l4 == (None, None)
    reply_zone_only = dict(DICTS["udp6-zone"], zone=None, reply=dict(DICTS["udp6-zone"]["reply"], zone=4))
    assert Flow.from_dict(reply_zone_only).key.zone == 0
    # the same tuple in another zone is another connection
    assert Flow.from_dict(dict(DICTS["tcp4"], zone=1)).key != f.key


def test_copies_are_the_flow_itself():
    f = Flow.from_dict(DICTS["tcp4"])
    assert copy.copy(f) is f and copy.deepcopy(f) is f and copy.deepcopy([f])[0] is f


# --- pickle: exact ------------------------------------------------------------------------------------------

FORMATS = [Out(0), Out.EXT, Out.XML, Out.ID, Out.KTMS, Out.SAVE, Out.JSON, Out.EXT | Out.ID | Out.KTMS,
           Out.XML | Out.ID]


def same_everywhere(f, g):
    assert raw_state(f) == raw_state(g)
    assert f == g and hash(f) == hash(g) and str(f) == str(g) and f.as_dict() == g.as_dict()
    for out in FORMATS:
        assert Format(out).format(f) == Format(out).format(g), out
    assert g._message() == f._message()


@pytest.mark.parametrize("name", sorted(DICTS))
def test_pickle_round_trip(name):
    f = Flow.from_dict(DICTS[name])
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        g = pickle.loads(pickle.dumps(f, proto))
        same_everywhere(f, g)


# Hand-made kernel messages with what as_dict() does not show: TCP window scale and flags, the master
# tuple of an expected connection, NAT sequence adjustment, helper data, synproxy, DCCP handshake
# sequence, a NAT'd ICMP id. Attribute numbers of <linux/netfilter/nfnetlink_conntrack.h>.

def attr(kind, payload):
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def nest(kind, *attrs):
    return attr(kind | 0x8000, b"".join(attrs))


def message(family, *attrs):
    body = struct.pack("=BBH", family, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (1 << 8) | 0, 0, 0, 0) + body


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def tuple4(kind, src, dst, proto, *l4):
    return nest(kind, nest(1, attr(1, ip4(src)), attr(2, ip4(dst))), nest(2, attr(1, bytes([proto])), *l4))


def ports(s, d):
    return attr(2, struct.pack("!H", s)), attr(3, struct.pack("!H", d))


def u32(kind, v):
    return attr(kind, struct.pack("!I", v))


def u64(kind, v):
    return attr(kind, struct.pack("!Q", v))


HIDDEN = {
    "tcp-window-seqadj-synproxy-helper": message(
        2, tuple4(1, "10.0.0.1", "10.0.0.2", 6, *ports(40000, 21)),
        tuple4(2, "10.0.0.2", "10.0.0.1", 6, *ports(21, 40000)),
        u32(3, 0x18e), nest(4, nest(1, attr(1, b"\x03"), attr(2, b"\x07"), attr(3, b"\x09"),
                                    attr(4, b"\x23\x2b"), attr(5, b"\x33\x00"))),
        u32(7, 431999), u32(8, 0), nest(9, u64(1, 5), u64(2, 300)), nest(10, u64(1, 4), u64(2, 200)),
        u32(11, 1), u32(12, 99),
        nest(15, u32(1, 100), u32(2, 3), u32(3, 7)), nest(16, u32(1, 200), u32(2, 0), u32(3, 0)),
        nest(5, attr(1, b"ftp\0"), attr(2, b"private helper data")),
        nest(20, u64(1, 10 ** 18), u64(2, 10 ** 18 + 5)),
        nest(24, u32(1, 11), u32(2, 12), u32(3, 13)),
        attr(22, struct.pack("=4I", 1, 0, 0, 1 << 31))),
    "expected-with-master": message(
        2, tuple4(1, "10.0.0.1", "10.0.0.2", 6, *ports(40001, 51210)),
        tuple4(2, "10.0.0.2", "10.0.0.1", 6, *ports(51210, 40001)),
        tuple4(14, "10.0.0.1", "10.0.0.2", 6, *ports(40000, 21)),
        u32(3, 0x9), nest(4, nest(1, attr(1, b"\x01"))), u32(7, 120), u32(12, 100)),
    "icmp-natd-id": message(
        2, tuple4(1, "10.0.0.1", "8.8.8.8", 1, attr(4, struct.pack("!H", 7)), attr(5, b"\x08"), attr(6, b"\x00")),
        tuple4(2, "8.8.8.8", "192.0.2.1", 1, attr(4, struct.pack("!H", 9)), attr(5, b"\x00"), attr(6, b"\x00")),
        u32(3, 0x1ba), u32(7, 29), u32(12, 101)),
    "dccp-handshake": message(
        2, tuple4(1, "10.0.0.1", "10.0.0.2", 33, *ports(4000, 5004)),
        tuple4(2, "10.0.0.2", "10.0.0.1", 33, *ports(5004, 4000)),
        nest(4, nest(2, attr(1, b"\x04"), attr(2, b"\x01"), u64(3, 0x0102030405060708))), u32(7, 5)),
    "partial-tuples": message(
        10, nest(1, nest(2, attr(1, b"\x11"), attr(2, struct.pack("!H", 53)))), u32(3, 0)),
}


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_pickle_keeps_what_as_dict_does_not_show(name):
    f = parse_message(HIDDEN[name])
    g = pickle.loads(pickle.dumps(f))
    same_everywhere(f, g)
    assert parse_message(f._message()) == f and raw_state(parse_message(f._message())) == raw_state(f)


def test_value_ignores_what_as_dict_does_not_show():
    f = parse_message(HIDDEN["tcp-window-seqadj-synproxy-helper"])
    g = Flow.from_dict(f.as_dict())
    assert g == f and hash(g) == hash(f)
    assert raw_state(g) != raw_state(f)                       # window scale, flags, ... are not in it
    icmp = parse_message(HIDDEN["icmp-natd-id"])
    assert " id=9 " in str(icmp) + " " and str(pickle.loads(pickle.dumps(icmp))) == str(icmp)
    assert Flow.from_dict(icmp.as_dict()) == icmp


# --- Event ---------------------------------------------------------------------------------------------------

def test_event_as_dict_from_dict_pickle():
    f = Flow.from_dict(DICTS["tcp4"])
    for kind, name in ((EventType.NEW, "new"), (EventType.UPDATE, "update"), (EventType.DESTROY, "destroy")):
        for portid in (0, 4242):
            ev = Event(kind, f, portid)
            d = ev.as_dict()
            assert d["type"] == name and list(d)[0] == "type"
            assert ("portid" in d) == bool(portid) and d.get("portid", 0) == portid
            assert {k: v for k, v in d.items() if k not in ("type", "portid")} == f.as_dict()
            # the JSON writer's own event object (-E -o json), before portid
            assert json.loads(Format(Out.JSON).format(f, int(kind))) == {k: v for k, v in d.items() if k != "portid"}
            back = Event.from_dict(d)
            assert back == ev and hash(back) == hash(ev) and back.type == kind and back.portid == portid
            assert pickle.loads(pickle.dumps(ev)) == ev and str(pickle.loads(pickle.dumps(ev))) == str(ev)
    cli_line = dict(Event(EventType.NEW, f, 7).as_dict(), progname="conntrack", time=1.5)
    assert Event.from_dict(cli_line) == Event("NEW", f, 7)


def test_event_equality():
    f, g = Flow.from_dict(DICTS["tcp4"]), Flow.from_dict(DICTS["udplite"])
    ev = Event("new", f, 1)
    assert ev == Event(1, Flow.from_dict(DICTS["tcp4"]), 1)
    assert ev != Event("update", f, 1) and ev != Event("new", f, 2) and ev != Event("new", g, 1) and ev != f
    assert len({ev, Event("new", f, 1), Event("destroy", f, 1)}) == 2


@pytest.mark.parametrize("args,exc,message", [
    (("nosuch",), ValueError, "type: unknown event type"),
    ((3,), ValueError, "type: 3 is not one event type"),
    ((0,), ValueError, "type: 0 is not one event type"),
    ((1.0,), TypeError, "type: expected an EventType"),
    ((True,), TypeError, "type: expected an EventType"),
])
def test_event_type_errors(args, exc, message):
    with pytest.raises(exc, match=message):
        Event(*args, Flow.from_dict(DICTS["tcp4"]))


def test_event_from_dict_errors():
    d = Event("new", Flow.from_dict(DICTS["tcp4"]), 3).as_dict()
    with pytest.raises(ValueError, match="type: missing"):
        Event.from_dict({k: v for k, v in d.items() if k != "type"})
    with pytest.raises(TypeError, match="type: expected a str"):
        Event.from_dict(dict(d, type=1))
    with pytest.raises(TypeError, match="portid: expected an int"):
        Event.from_dict(dict(d, portid="3"))
    with pytest.raises(ValueError, match="portid: -1 is out of range"):
        Event.from_dict(dict(d, portid=-1))
    with pytest.raises(ValueError, match="bogus: unknown key"):
        Event.from_dict(dict(d, bogus=1))
    with pytest.raises(TypeError):
        Event()
