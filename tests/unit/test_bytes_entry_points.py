"""The bytes entry points (a message, a dump batch, an event datagram, an expectation) refuse what the kernel
never sends with ValueError, where libnetfilter_conntrack would end the process or read out of bounds:
exit(1) on an attribute length ("ctnetlink kernel ABI is broken"), abort() on a long expectation function
name, a name without its NUL read past the attribute, attribute types written past the end of a table on
the stack (CTA_PROTOINFO, CTA_EXPECT_NAT), a message shorter than its header read as a huge one, and
libmnl walking into an nlmsg_len of 2 GiB. Each crafted input runs in a child process, so a crash shows
as a signal or an exit status instead of taking the test run down.

And what they accept, they decode as the socket paths do: a recorded dump batch gives the entries one
by one parsing gives, attribute types the library does not know are skipped, not refused.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from _nfct.dump import parse_batch
from _nfct.events import parse_events
from _nfct.flow import Flow, parse_message
from _nfct.query import parse_expect

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
REGRESSIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz", "regressions")
NESTED = 0x8000

# ctnetlink numbers (linux/netfilter/nfnetlink_conntrack.h)
CT_NEW, EXP_NEW = (1 << 8) | 0, (2 << 8) | 0
CTA_TUPLE_ORIG, CTA_PROTOINFO, CTA_HELP, CTA_MARK, CTA_SECCTX = 1, 4, 5, 8, 19
CTA_TUPLE_IP, CTA_TUPLE_PROTO, CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_PROTO_NUM = 1, 2, 1, 2, 1
CTA_EXPECT_MASTER, CTA_EXPECT_CLASS, CTA_EXPECT_NAT, CTA_EXPECT_FN = 1, 9, 10, 11


def nla(t: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), t) + payload + bytes(-len(payload) % 4)


def nest(t: int, *attrs: bytes) -> bytes:
    return nla(t | NESTED, b"".join(attrs))


def message(typ: int, *attrs: bytes, family: int = 2) -> bytes:
    body = struct.pack("=BBH", family, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), typ, 0, 0, 0) + body


TUPLE_ATTRS = (nest(CTA_TUPLE_IP, nla(CTA_IP_V4_SRC, bytes([10, 0, 0, 1])), nla(CTA_IP_V4_DST, bytes([10, 0, 0, 2]))),
               nest(CTA_TUPLE_PROTO, nla(CTA_PROTO_NUM, b"\x11")))
TUPLE = nest(CTA_TUPLE_ORIG, *TUPLE_ATTRS)

HEADER_ONLY = struct.pack("=IHHII", 16, CT_NEW, 0, 0, 0)     # no room for its nfgenmsg

# name: (entry point, message); each would end or corrupt the process without the policy check
REFUSED = {
    "mark of 2 bytes (exit)": ("parse_message", message(CT_NEW, TUPLE, nla(CTA_MARK, b"\0\1"))),
    "address of 3 bytes (exit)": ("parse_message", message(CT_NEW, nest(CTA_TUPLE_ORIG, nest(
        CTA_TUPLE_IP, nla(CTA_IP_V4_SRC, b"\1\2\3"))))),
    "protoinfo type 5 (stack overflow)": ("parse_message", message(CT_NEW, TUPLE, nest(CTA_PROTOINFO, nla(5, b"")))),
    "helper without NUL (over-read)": ("parse_message", message(CT_NEW, TUPLE, nest(CTA_HELP, nla(1, b"ftp" * 7)))),
    "secctx without NUL (over-read)": ("parse_message", message(CT_NEW, TUPLE, nest(CTA_SECCTX, nla(1, b"x" * 9)))),
    "message of 16 bytes in a batch (huge read)": ("parse_batch", HEADER_ONLY),
    "event of 16 bytes": ("parse_events", HEADER_ONLY),
    "expectfn of 40 bytes (abort)": ("parse_expect", message(EXP_NEW, nla(CTA_EXPECT_FN, b"f" * 39 + b"\0"))),
    "expectfn without NUL (over-read)": ("parse_expect", message(EXP_NEW, nla(CTA_EXPECT_FN, b"sip"))),
    "expect nat type 7 (stack overflow)": ("parse_expect", message(EXP_NEW, nest(CTA_EXPECT_NAT, nla(7, b"\0" * 4)))),
    "expect class of 1 byte (over-read)": ("parse_expect", message(EXP_NEW, nla(CTA_EXPECT_CLASS, b"\1"))),
}

CHILD = r"""
import sys
from _nfct.dump import parse_batch
from _nfct.events import parse_events
from _nfct.flow import parse_message
from _nfct.query import parse_expect
fn = {"parse_message": parse_message, "parse_batch": parse_batch, "parse_events": parse_events,
      "parse_expect": parse_expect}[sys.argv[1]]
try:
    fn(bytes.fromhex(sys.argv[2]))
except ValueError as e:
    print("ValueError:", e)
else:
    print("accepted")
"""


def _child(entry: str, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, entry, data.hex()], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_the_library_cannot_take_is_refused(name):
    entry, data = REFUSED[name]
    r = _child(entry, data)
    assert r.returncode == 0 and r.stdout.startswith("ValueError:"), (r.returncode, r.stdout, r.stderr[-2000:])


def test_the_regression_inputs_are_refused():
    names = sorted(os.listdir(REGRESSIONS))
    assert names
    entries = {ord("D"): "parse_batch", ord("E"): "parse_events", ord("X"): "parse_expect"}
    for name in names:
        with open(os.path.join(REGRESSIONS, name), "rb") as f:
            data = f.read()
        kind = data[0] if data[0] in entries else b"DEX"[data[0] % 3]
        r = _child(entries[kind], data[1:])
        assert r.returncode == 0 and r.stdout.startswith(("ValueError:", "accepted")), (name, r.stderr[-2000:])


def test_the_same_message_whole_is_accepted():
    flow = parse_message(message(CT_NEW, TUPLE, nla(CTA_MARK, b"\0\0\0\7")))
    assert (flow.orig.src, flow.orig.dst, flow.protonum, flow.mark) == ("10.0.0.1", "10.0.0.2", 17, 7)
    rec = parse_expect(message(EXP_NEW, *[nest(t, *TUPLE_ATTRS) for t in (1, 2, 3)],   # master, tuple, mask
                               nla(CTA_EXPECT_FN, b"sip\0")))
    assert rec["fn"] == "sip" and rec["master"].orig.dst == "10.0.0.2"


def test_unknown_attribute_types_are_skipped_not_refused():
    plain = parse_message(message(CT_NEW, TUPLE))
    assert parse_message(message(CT_NEW, TUPLE, nla(60, b"\1\2\3"), nla(0x3fff, b""))) == plain
    assert parse_batch(message(CT_NEW, TUPLE, nla(60, b"\1\2"))) == [plain]


def _recorded(name: str) -> list:
    with open(os.path.join(FIXTURES, name)) as f:
        return [bytes.fromhex(m) for m in json.load(f)["messages"]]


def test_a_recorded_batch_decodes_as_its_messages_do():
    msgs = _recorded("conntrack-dump.json")
    batch = b"".join(m + bytes(-len(m) % 4) for m in msgs[:64])
    assert len(batch) <= 65536
    assert parse_batch(batch) == [parse_message(m) for m in msgs[:64]]
    done = struct.pack("=IHHII", 20, 3, 2, 0, 0) + bytes(4)           # NLMSG_DONE ends the dump
    assert parse_batch(batch + done + batch) == parse_batch(batch)
    with pytest.raises(ValueError):
        parse_batch(batch * 8)                                          # more than one receive buffer


def test_an_error_message_in_a_batch_raises_as_a_dump_does():
    err = struct.pack("=IHHII", 36, 2, 0, 0, 0) + struct.pack("=i", -1) + bytes(16)   # NLMSG_ERROR, EPERM
    with pytest.raises(PermissionError):
        parse_batch(err)


def test_recorded_events_decode_with_their_type_and_sender():
    msgs = _recorded("conntrack-events.json")
    one_by_one = [e for m in msgs for e in parse_events(m)]
    assert len(one_by_one) == len(msgs)
    assert parse_events(b"".join(m + bytes(-len(m) % 4) for m in msgs[:8])) == one_by_one[:8]
    assert {e.type.name for e in one_by_one} == {"NEW", "UPDATE", "DESTROY"}
    assert any(e.portid for e in one_by_one) and any(not e.portid for e in one_by_one)


def test_event_messages_of_other_types_are_skipped_as_nfct_catch_does():
    """The fuzzer's finding (tests/fuzz/regressions/event-of-type-get): a GET (or any type but NEW and
    DELETE, or another subsystem's message) in an event datagram became an Event without an EventType."""
    msg = _recorded("conntrack-events.json")[0]
    assert len(parse_events(msg)) == 1
    for typ in (0x0101, 0x01fa, 0x0200, 0x0300):
        assert parse_events(msg[:4] + struct.pack("=H", typ) + msg[6:]) == [], hex(typ)


def test_an_expectation_s_flows_have_its_family_and_come_back_from_pickles():
    """The fuzzer's finding (tests/fuzz/regressions/expect-without-tuple): libnetfilter_conntrack gives each
    tuple's family to another one, so without CTA_EXPECT_TUPLE the mask had none, and its pickle lost it."""
    import pickle
    for present in ((1, 2, 3), (1, 3), (2,), (3,)):          # master, tuple, mask
        rec = parse_expect(message(EXP_NEW, *[nest(t, *TUPLE_ATTRS) for t in present], family=2))
        for key, t in (("master", 1), ("tuple", 2), ("mask", 3)):
            flow = rec[key]
            assert (flow is None) == (t not in present), (present, key)
            if flow is not None:
                assert flow.family == "ipv4" and flow.protonum == 17, (present, key, flow.as_dict())
                assert pickle.loads(pickle.dumps(flow)) == flow, (present, key)


@pytest.mark.parametrize("name,shown", [(b"\xc0ftp", "\ufffdftp"), (b"f\xc3\xa9\xe2\x82", "f\xe9\ufffd\ufffd"),
                                        (b"\xed\xa0\x80", "\ufffd" * 3), (b"ftp", "ftp")])
def test_names_that_are_not_utf8_still_give_json(name, shown):
    """The fuzzer's finding (tests/fuzz/regressions/json-helper-not-utf8): a helper name with a byte that is
    not UTF-8 went into -o json as it was, and as_dict() raised UnicodeDecodeError."""
    reply = nest(2, nest(CTA_TUPLE_IP, nla(CTA_IP_V4_SRC, bytes([10, 0, 0, 2])),
                         nla(CTA_IP_V4_DST, bytes([10, 0, 0, 1]))),
                 nest(CTA_TUPLE_PROTO, nla(CTA_PROTO_NUM, b"\x11")))
    flow = parse_message(message(CT_NEW, TUPLE, reply, nest(CTA_HELP, nla(1, name + b"\0"))))
    assert flow.as_dict()["helper"] == shown
    # and the Flow built from that is equal (json-replacement-equality: U+FFFD was escaped in one only)
    assert Flow.from_dict(flow.as_dict()) == flow
