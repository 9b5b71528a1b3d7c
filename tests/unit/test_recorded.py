"""Decoding and formatting from recorded kernel messages, without root or a kernel.

tests/fixtures/ holds real ctnetlink messages with what conntrack 1.4.7 printed for them (made by
tests/fixtures/record.py): conntrack-dump.json, dumps of a table with every protocol, states, marks,
zones, labels, NAT, counters and timestamps, each with ``conntrack -L -o FORMAT``'s output;
conntrack-events.json, the events of real traffic (NAT'd too) and of conntrack -U/-D, with
``conntrack -E -o FORMAT``'s output; conntrack-expect.json, the expectation table of a namespace whose
ftp helper expects data connections (IPv4, IPv6, one made by conntrack -I expect) with ``conntrack -L
expect [-f ipv6] [-o xml]``'s output, and its expectation events with ``conntrack -E expect [-o xml]``'s.
Each message goes through the parser the dump and event paths use (_nfct.flow.parse_message; for
expectations _nfct.query.parse_expect/format_expect) and the CLI's formatter: the text must be
conntrack's, byte for byte, except ``delta-time`` (seconds since the entry started, which conntrack
computes from the clock when it prints) and, for events, ``progname=`` (conntrack looks the sender's
name up in /proc while it runs).
"""
from __future__ import annotations

import json
import os
import pickle
import re
import struct
import time

import pytest

from _nfct.events import T_DESTROY, T_NEW, T_UPDATE, Event
from _nfct.flow import parse_message
from _nfct.format import Format
from _nfct.query import format_expect, format_flows, parse_expect
from pynfct.cli.listing import _labelmap_for
from pynfct.cli.parse import parse
from pynfct.expect import Expectation
from pynfct.template import Out

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


def _load(name: str) -> dict:
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


DUMP = _load("conntrack-dump.json")
EVENTS = _load("conntrack-events.json")
EXPECT = _load("conntrack-expect.json")
DELTA = re.compile(r"(delta-time=|<deltatime>)\d+")
PROGNAME = re.compile(r"( \[USERSPACE\] portid=\d+) progname=\S+")


def _same_clock(text: str) -> str:
    return DELTA.sub(r"\g<1>N", text)


def _messages(record: dict, fmt: str):
    return [bytes.fromhex(record["messages"][i]) for i in record["outputs"][fmt]["messages"]]


@pytest.fixture(scope="module")
def labelmap_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("xtables") / "connlabel.conf"
    path.write_text(DUMP["labelmap"])
    return str(path)


@pytest.fixture(autouse=True)
def _recorded_timezone(monkeypatch):
    """[start=...] and [stop=...] are local times: the recording's time zone."""
    monkeypatch.setenv("TZ", DUMP["tz"])
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _format(fmt: str, labelmap_path: str, events: bool = False) -> Format:
    cmd = parse(["-E" if events else "-L", *(["-o", fmt] if fmt else [])])
    cmd.labelmap_path = labelmap_path      # the recorded namespace's /etc/xtables/connlabel.conf
    return Format(cmd.output, _labelmap_for(cmd))


def _event_type(msg: bytes) -> int:
    """What libnetfilter_conntrack makes of the header: a DELETE is a DESTROY, a NEW with CREATE or EXCL
    a NEW, any other NEW an UPDATE."""
    typ, flags = struct.unpack_from("=HH", msg, 4)
    if typ & 0xFF == 2:
        return T_DESTROY
    return T_NEW if flags & (0x400 | 0x200) else T_UPDATE


def _portid(msg: bytes) -> int:
    return struct.unpack_from("=I", msg, 12)[0]


# --- what was recorded ----------------------------------------------------------------------------------

def test_the_dump_covers_what_it_should():
    default = DUMP["outputs"][""]["text"].splitlines()
    assert len(default) == len(DUMP["outputs"][""]["messages"]) >= 50
    protos = {line.split()[0] for line in default}
    assert {"tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", "dccp", "gre", "unknown"} <= protos
    extended = DUMP["outputs"]["extended,id,ktimestamp,labels"]["text"]
    for word in ("ipv4 ", "ipv6 ", "zone=", "mark=1 ", "packets=", "bytes=", "[start=", "[ASSURED]",
                 "[UNREPLIED]", "labels=", "id="):
        assert word in extended, word
    assert any(_nat(line) for line in default)


def test_the_events_cover_what_they_should():
    text = EVENTS["outputs"][""]["text"]
    for word in ("[NEW]", "[UPDATE]", "[DESTROY]", "[USERSPACE] portid=", "packets=", "delta-time=",
                 "icmpv6", "udp", "[ASSURED]"):
        assert word in text, word
    assert any(_nat(line) for line in text.splitlines())


def _nat(line: str) -> bool:
    """A reply tuple that is not the original one reversed."""
    addrs = re.findall(r"\b(?:src|dst)=(\S+)", line)
    return len(addrs) >= 4 and (addrs[0], addrs[1]) != (addrs[3], addrs[2])


# --- -L -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(DUMP["outputs"]), ids=lambda f: f or "default")
def test_list_formats_as_conntrack_printed(fmt, labelmap_path):
    f = _format(fmt, labelmap_path)
    flows = [parse_message(m) for m in _messages(DUMP, fmt)]
    got = (f.header + format_flows(flows, f) + f.footer).decode()
    assert _same_clock(got).splitlines() == _same_clock(DUMP["outputs"][fmt]["text"]).splitlines()


def test_each_message_decodes_to_what_conntrack_showed():
    fmt = "extended,id,ktimestamp,labels"
    lines = DUMP["outputs"][fmt]["text"].splitlines()
    msgs = _messages(DUMP, fmt)
    assert len(lines) == len(msgs)
    for msg, line in zip(msgs, lines):
        flow = parse_message(msg)
        words = line.split()
        assert flow.family == words[0] and flow.proto == words[2], line
        assert f"src={flow.orig.src} dst={flow.orig.dst} " in line, line
        assert f"src={flow.reply.src} dst={flow.reply.dst} " in line, line
        assert f" id={flow.id}" in line and f"use={flow.use} " in line, line
        if flow.mark is not None:
            assert f"mark={flow.mark} " in line, line
        if flow.zone:
            assert f"zone={flow.zone} " in line, line
        if flow.orig.packets is not None:
            assert f"packets={flow.orig.packets} bytes={flow.orig.bytes} " in line, line
        if flow.labels:
            assert "labels=" in line, line


# --- -E -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(EVENTS["outputs"]), ids=lambda f: f or "default")
def test_event_formats_as_conntrack_printed(fmt, labelmap_path):
    f = _format(fmt, labelmap_path, events=True)
    lines = []
    for msg in _messages(EVENTS, fmt):
        line = f.format(parse_message(msg), _event_type(msg))
        portid = _portid(msg)
        lines.append(f"{line} [USERSPACE] portid={portid}" if portid else line)
    header = "" if f.header is None or (_out(fmt) & Out.SAVE) else f.header.decode()
    got = header + "".join(line + "\n" for line in lines) + (f.footer.decode() if header else "")
    expected = PROGNAME.sub(r"\g<1>", EVENTS["outputs"][fmt]["text"])
    assert _same_clock(got).splitlines() == _same_clock(expected).splitlines()


def _out(fmt: str) -> int:
    return int(parse(["-E", *(["-o", fmt] if fmt else [])]).output)


def test_events_are_values():
    for msg in _messages(EVENTS, ""):
        ev = Event(_event_type(msg), parse_message(msg), _portid(msg))
        assert pickle.loads(pickle.dumps(ev)) == ev
        assert Event.from_dict(ev.as_dict()) == ev


# --- the values -----------------------------------------------------------------------------------------

def test_json_and_pickle_of_recorded_flows_round_trip():
    for msg in _messages(DUMP, "") + _messages(EVENTS, ""):
        flow = parse_message(msg)
        assert pickle.loads(pickle.dumps(flow)) == flow
        as_dict = flow.as_dict()
        assert json.loads(json.dumps(as_dict)) == as_dict
        assert as_dict["family"] == flow.family and as_dict["orig"]["src"] == flow.orig.src


def test_a_truncated_message_is_refused():
    msg = _messages(DUMP, "")[0]
    with pytest.raises(ValueError):
        parse_message(msg[: len(msg) // 2])


# --- expectations ---------------------------------------------------------------------------------------

XML_EXPECT = Format(Out.XML, None, root=b"expect")     # the header and footer conntrack prints around them


def _exp_event_type(msg: bytes) -> int:
    """As nfexp_catch(): IPCTNL_MSG_EXP_DELETE is a DESTROY, a NEW with CREATE or EXCL a NEW, else UPDATE."""
    typ, flags = struct.unpack_from("=HH", msg, 4)
    if typ & 0xFF == 2:
        return T_DESTROY
    return T_NEW if flags & (0x400 | 0x200) else T_UPDATE


def test_the_expectations_cover_what_they_should():
    assert {"", "xml", "ipv6", "ipv6,xml"} <= set(EXPECT["outputs"])
    text = EXPECT["outputs"][""]["text"] + EXPECT["outputs"]["ipv6"]["text"]
    assert len(text.splitlines()) == len(EXPECT["messages"]) >= 2
    for word in ("src=::1", "src=127.0.0.1", "proto=6", "helper=ftp", "master-src=", "mask-src="):
        assert word in text, word
    events = EXPECT["events"]["outputs"][""]
    assert "[NEW]" in events and "[DESTROY]" in events


@pytest.mark.parametrize("name", sorted(EXPECT["outputs"]), ids=lambda f: f or "default")
def test_expect_list_formats_as_conntrack_printed(name):
    xml = "xml" in name.split(",")
    lines = b"".join(format_expect(m, xml) for m in _messages(EXPECT, name))
    got = XML_EXPECT.header + lines + XML_EXPECT.footer if xml and lines else lines
    assert got.decode() == EXPECT["outputs"][name]["text"]


@pytest.mark.parametrize("fmt", sorted(EXPECT["events"]["outputs"]), ids=lambda f: f or "default")
def test_expect_events_format_as_conntrack_printed(fmt):
    xml = fmt == "xml"
    msgs = [bytes.fromhex(m) for m in EXPECT["events"]["messages"]]
    lines = b"".join(format_expect(m, xml, _exp_event_type(m)) for m in msgs)
    got = XML_EXPECT.header + lines + XML_EXPECT.footer if xml else lines
    assert got.decode() == EXPECT["events"]["outputs"][fmt]


def test_each_expectation_decodes_to_what_conntrack_showed():
    for name in ("", "ipv6"):
        lines = EXPECT["outputs"][name]["text"].splitlines()
        msgs = _messages(EXPECT, name)
        assert len(lines) == len(msgs)
        for msg, line in zip(msgs, lines):
            e = Expectation.from_record(parse_expect(msg))
            assert line.startswith(f"{e.timeout} proto={e.tuple.protonum} "), line
            assert f" src={e.tuple.orig.src} dst={e.tuple.orig.dst} " in line, line
            assert f" mask-src={e.mask.orig.src} mask-dst={e.mask.orig.dst} " in line, line
            assert f" master-src={e.master.orig.src} master-dst={e.master.orig.dst} " in line, line
            assert f" sport={e.master.orig.sport} dport={e.master.orig.dport} " in line, line
            assert e.family == ("ipv6" if name else "ipv4") and line.endswith(f" helper={e.helper}"), line
            if e.proto == "tcp":
                assert f" sport={e.tuple.orig.sport} dport={e.tuple.orig.dport} " in line, line


def test_a_truncated_expectation_is_refused():
    msg = _messages(EXPECT, "ipv6")[0]
    for cut in (msg[:len(msg) // 2], msg[:19]):
        with pytest.raises(ValueError):
            parse_expect(cut)
