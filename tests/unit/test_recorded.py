"""Decoding and formatting from recorded kernel messages, without root or a kernel.

tests/fixtures/conntrack-dump.json holds one real ctnetlink dump (every protocol, states, marks, zones,
labels, NAT, counters, timestamps; see tests/fixtures/record.py) and what ``conntrack -L -o FORMAT``
printed for it. Each message goes through the parser the dump path uses (_nfct.flow.parse_message) and
the CLI's formatter; the text must be conntrack's, byte for byte, except ``delta-time`` (seconds since the
entry started, which conntrack and pynfct compute from the clock when they print).
"""
from __future__ import annotations

import json
import os
import pickle
import re

import pytest

from _nfct.flow import parse_message
from _nfct.format import Format
from _nfct.query import format_flows
from pynfct.cli.listing import _labelmap_for
from pynfct.cli.parse import parse

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                       "conntrack-dump.json")
with open(FIXTURE) as _f:
    RECORD = json.load(_f)
MESSAGES = [bytes.fromhex(m) for m in RECORD["messages"]]
DELTA = re.compile(r"(delta-time=|<deltatime>)\d+")


def _no_delta(text: str) -> str:
    return DELTA.sub(r"\g<1>N", text)


@pytest.fixture(scope="module")
def labelmap_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("xtables") / "connlabel.conf"
    path.write_text(RECORD["labelmap"])
    return str(path)


def test_the_recording_covers_what_it_should():
    default = RECORD["outputs"][""].splitlines()
    assert len(default) == len(MESSAGES) >= 50
    protos = {line.split()[0] for line in default}
    assert {"tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", "dccp", "gre", "unknown"} <= protos
    extended = RECORD["outputs"]["extended,id,ktimestamp,labels"]
    for word in ("ipv4 ", "ipv6 ", "zone=", "mark=1 ", "packets=", "bytes=", "[start=", "[ASSURED]",
                 "[UNREPLIED]", "labels=", "id="):
        assert word in extended, word
    # NAT: a reply tuple that is not the original one reversed
    assert any(_nat(line) for line in default)


def _nat(line: str) -> bool:
    addrs = re.findall(r"\b(?:src|dst)=(\S+)", line)
    return len(addrs) >= 4 and (addrs[0], addrs[1]) != (addrs[3], addrs[2])


@pytest.mark.parametrize("fmt", sorted(RECORD["outputs"]), ids=lambda f: f or "default")
def test_formats_as_conntrack_printed(fmt, labelmap_path):
    cmd = parse(["-L", *(["-o", fmt] if fmt else [])])
    cmd.labelmap_path = labelmap_path      # the recorded namespace's /etc/xtables/connlabel.conf
    f = Format(cmd.output, _labelmap_for(cmd))
    flows = [parse_message(m) for m in MESSAGES]
    got = (f.header + format_flows(flows, f) + f.footer).decode()
    expected = RECORD["outputs"][fmt]
    assert _no_delta(got).splitlines() == _no_delta(expected).splitlines()


def test_each_message_decodes_to_what_conntrack_showed():
    for msg, line in zip(MESSAGES, RECORD["outputs"]["extended,id,ktimestamp,labels"].splitlines()):
        flow = parse_message(msg)
        words = line.split()
        assert flow.family == words[0] and flow.proto == words[2], line
        assert f"src={flow.orig.src}" in line and f"dst={flow.reply.dst}" in line, line
        assert f"id={flow.id}" in line and f"use={flow.use}" in line, line
        if flow.mark is not None:
            assert f"mark={flow.mark} " in line, line
        if flow.orig.packets is not None:
            assert f"packets={flow.orig.packets} bytes={flow.orig.bytes}" in line, line


def test_json_and_pickle_of_recorded_flows_round_trip():
    for msg in MESSAGES:
        flow = parse_message(msg)
        assert pickle.loads(pickle.dumps(flow)) == flow
        as_dict = flow.as_dict()
        assert json.loads(json.dumps(as_dict)) == as_dict
        assert as_dict["family"] == flow.family and as_dict["orig"]["src"] == flow.orig.src


def test_a_truncated_message_is_refused():
    msg = MESSAGES[0]
    with pytest.raises(ValueError):
        parse_message(msg[: len(msg) // 2])
