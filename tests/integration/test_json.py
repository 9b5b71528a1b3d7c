"""-o json: one object per line, the same entries in the same order as conntrack -L, and every field of
every object equal to what conntrack's own outputs say about that entry.

conntrack has no JSON, so the expected object of each entry is rebuilt from four conntrack listings of
the same (static) table, read in the same dump order: ``-o extended,id,labels`` (family, protocol,
timeout, state, both tuples with ports / ICMP type, code and id / GRE keys, counters, directional zones,
mark, zone, use, id, label names), ``-o save`` (SCTP verification tags), ``-o xml,ktimestamp`` (the
kernel's start/stop timestamps) and, for the status bits, conntrack's status filter ``-L -u BIT`` for
each bit it can select (SEEN_REPLY, ASSURED, EXPECTED, FIXED_TIMEOUT, OFFLOAD, HW_OFFLOAD).  Bits it
cannot name come from what the kernel does: every listed entry is CONFIRMED; the NAT bits are set on
fill_nat's entries only (entries made by ``conntrack -I`` or before the NAT table was loaded have none),
SRC_NAT/DST_NAT exactly where NAT changed the source / destination, both _DONE bits on all of them.
Only the timeout may differ (by the seconds between two reads).
"""
import json
import re
from typing import Dict, List

from differential import _pynfct_env, pynfct_argv, run

SELECTABLE = ("SEEN_REPLY", "ASSURED", "EXPECTED", "FIXED_TIMEOUT", "OFFLOAD", "HW_OFFLOAD")
STATUS_ORDER = ["EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT", "SEQ_ADJUST",
                "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT", "TEMPLATE", "UNTRACKED", "HELPER",
                "OFFLOAD", "HW_OFFLOAD"]


def _conntrack(ns, *args) -> List[str]:
    r = run(ns, ["conntrack", "-L", *args])
    assert r.returncode == 0, r.err
    return r.out.splitlines()


def expected_from_extended(line: str, labelmap: Dict[int, str]) -> dict:
    """The JSON object conntrack's ``-o extended,id,labels`` line describes (no status, vtags, timestamps)."""
    f = line.split()
    obj: dict = {"family": f[0], "proto": f[2], "protonum": int(f[3]), "timeout": int(f[4])}
    rest = f[5:]
    if rest and "=" not in rest[0] and not rest[0].startswith("["):
        obj["state"] = rest.pop(0)
    dirs = [{}, {}]
    d = -1
    tail: dict = {}
    for tok in rest:
        if tok.startswith("["):
            continue
        key, _, value = tok.partition("=")
        if key == "src":
            d += 1
        if key == "use" or "use" in tail:
            tail[key] = value
        elif key in ("src", "dst"):
            dirs[d][key] = value
        elif key in ("sport", "dport", "type", "code", "id", "packets", "bytes"):
            dirs[d][key] = int(value)
        elif key in ("srckey", "dstkey"):
            dirs[d][key] = int(value, 16)
        elif key == "zone-orig":
            dirs[0]["zone"] = int(value)
        elif key == "zone-reply":
            dirs[1]["zone"] = int(value)
        elif key in ("mark", "zone"):
            obj[key] = int(value)
        elif key == "delta-time":
            pass                      # computed from the start timestamp by the printer
        else:
            raise AssertionError(f"unexpected field {tok!r} in {line}")
    orig, reply = dirs
    if obj["proto"] in ("icmp", "icmpv6"):
        reply.pop("type")             # the reply's type/code are the answer's: not in the JSON object
        reply.pop("code")
    if obj["proto"] == "dccp" and orig.get("sport") == 0 and orig.get("dport") == 0:
        for t in dirs:                # no DCCP tracker (Linux >= 6.16): conntrack prints zeros, JSON none
            del t["sport"], t["dport"]
    obj["orig"], obj["reply"] = orig, reply
    obj["use"] = int(tail["use"])
    obj["id"] = int(tail["id"])
    if "labels" in tail:
        names = {name: bit for bit, name in labelmap.items()}
        obj["labels"] = sorted(names[n] for n in tail["labels"].split(","))
    return obj


def test_json_matches_conntrack(filled_ns):
    ns = filled_ns
    ext = _conntrack(ns, "-o", "extended,id,labels")
    save = _conntrack(ns, "-o", "save")
    xml = [l for l in _conntrack(ns, "-o", "xml,ktimestamp,id") if l.startswith("<flow>")]
    py = run(ns, [*pynfct_argv(), "-L", "-o", "json"], env=_pynfct_env())
    assert py.returncode == 0, py.err
    objs = [json.loads(line) for line in py.out.splitlines()]
    assert len(objs) == len(ext) == len(save) == len(xml) > 100
    assert py.err.endswith(f"{len(objs)} flow entries have been shown.\n")
    with_bit = {bit: {int(re.search(r" id=(\d+)$", l).group(1)) for l in _conntrack(ns, "-u", bit, "-o", "id")}
                for bit in SELECTABLE}
    nat = {(f.src, f.sport if f.proto != "icmp" else f.icmp_id): f for f in ns.nat.flows}
    checked_status = set()
    for line, sline, xline, o in zip(ext, save, xml, objs):
        exp = expected_from_extended(line, ns.labelmap or {})
        assert f" -s {exp['orig']['src']} -d {exp['orig']['dst']} " in sline, (line, sline)
        assert f"<id>{exp['id']}</id>" in xline, (line, xline)
        vtags = re.search(r"--orig-vtag (\d+) --reply-vtag (\d+)", sline)
        if vtags:
            exp["orig"]["vtag"], exp["reply"]["vtag"] = int(vtags.group(1)), int(vtags.group(2))
        for key in ("start", "stop"):
            m = re.search(rf"<{key}>(\d+)</{key}>", xline)
            if m:
                exp[key] = int(m.group(1))
        status = {bit for bit in SELECTABLE if exp["id"] in with_bit[bit]} | {"CONFIRMED"}
        flow = nat.get((exp["orig"]["src"], exp["orig"].get("sport", exp["orig"].get("id"))))
        if flow is not None and flow.dst == exp["orig"]["dst"]:
            status |= {"SRC_NAT_DONE", "DST_NAT_DONE"}
            if flow.snat or flow.spat:
                status.add("SRC_NAT")
            if flow.dnat or flow.dpat:
                status.add("DST_NAT")
        exp["status"] = [b for b in STATUS_ORDER if b in status]
        checked_status |= status
        assert abs(o.pop("timeout") - exp.pop("timeout")) <= 2, line
        assert o == exp, f"\nconntrack: {line}\n  {sline}\n  expected {exp}\n  json     {o}"
    # the comparison met each kind of field
    assert {"SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT", "SRC_NAT_DONE"} <= checked_status
    keys = {k for o in objs for k in o} | {k for o in objs for t in (o["orig"], o["reply"]) for k in t}
    assert {"state", "zone", "labels", "start", "vtag", "srckey", "packets", "type", "id"} <= keys, keys
