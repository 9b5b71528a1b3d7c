"""One meaning on a real table: a selection built from typed values (Match) and from the equivalent
conntrack command line selects the same entries, and an update built both ways leaves the same table.

Selections are drawn from the entries of a filled table (so they select something): a random subset
of one entry's fields, addresses sometimes widened to a network, marks to a mask. The typed side runs
through the library (ct.dump / ct.update); the command-line side through the real conntrack for -L and
through pynfct's CLI (its port of conntrack's parser) for -U, whose conntrack 1.4.7 version is broken
for many entries (see README).
"""
from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import pynfct
from pynfct import Mark, Match, Update
from differential import pynfct_argv, run
from fill import DEFAULT_LABELMAP
from netns import NetNS
from test_write import small_fill

LABELS = sorted(DEFAULT_LABELMAP.values())
STATUS_WORDS = ["ASSURED", "SEEN_REPLY", "FIXED_TIMEOUT", "EXPECTED"]
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PORTS = {"tcp", "udp", "udplite", "sctp", "dccp"}


def _entries(ct):
    """What a selection can be drawn from: one dict of typed fields per entry of the table."""
    out = []
    for f in ct.dump():
        e = {"family": f.family, "proto": f.proto if f.proto != "unknown" else f.protonum,
             "src": f.orig.src, "dst": f.orig.dst,
             "reply_src": f.reply.src, "reply_dst": f.reply.dst, "mark": f.mark, "zone": f.zone}
        if f.proto in PORTS:
            e.update(sport=f.orig.sport, dport=f.orig.dport, reply_sport=f.reply.sport, reply_dport=f.reply.dport)
        if f.proto in ("tcp", "sctp", "dccp") and f.state:
            e["state"] = f.state
        if f.proto in ("icmp", "icmpv6"):
            e.update(icmp_type=f.orig.icmp_type, icmp_code=f.orig.icmp_code)
        out.append({k: v for k, v in e.items() if v is not None})
    # in a fixed order (the dump's follows the namespace's hash seed): the derandomized draws then
    # pick the same entries every run, and the share of updates that change something is fixed too
    out.sort(key=lambda e: sorted((k, str(v)) for k, v in e.items()))
    return out


@st.composite
def selection(draw, entries, update=False):
    """(Match keywords, conntrack argv) of a random subset of one entry's fields."""
    e = draw(st.sampled_from(entries))
    fields, argv = {}, []
    fam = 4 if e["family"] == "ipv4" else 6
    if draw(st.integers(0, 3)) == 0:
        fields["family"] = e["family"]
        argv += ["-f", e["family"]]
    for key, opt in (("src", "-s"), ("dst", "-d"), ("reply_src", "-r"), ("reply_dst", "-q")):
        if draw(st.integers(0, 3)) == 0:
            ip = ipaddress.ip_address(e[key])
            if key in ("src", "dst") and draw(st.booleans()):
                plen = draw(st.integers(8 if fam == 4 else 16, ip.max_prefixlen))   # (not /0: refused)
                net = ipaddress.ip_network(f"{ip}/{plen}", strict=False)
                fields[key] = draw(st.sampled_from([net, str(net)]))
                argv += [opt, f"{net.network_address}/{plen}"]
            else:
                fields[key] = draw(st.sampled_from([ip, str(ip)]))
                argv += [opt, str(ip)]
    if draw(st.integers(0, 2)) > 0:
        fields["proto"] = e["proto"]
        argv += ["-p", str(e["proto"])]
        for key, opt in (("sport", "--sport"), ("dport", "--dport"), ("reply_sport", "--reply-port-src"),
                         ("reply_dport", "--reply-port-dst"), ("state", "--state")):
            if key in e and (key != "state" or not update) and draw(st.integers(0, 2)) == 0:
                fields[key] = e[key]
                argv += [opt, str(e[key])]
        for key in ("icmp_type", "icmp_code"):
            if key in e and draw(st.booleans()):
                fields[key] = e[key]
                argv += [f"--{e['proto']}-{key[5:]}", str(e[key])]
    if not update:
        # -u before -m: conntrack's -u also writes the mark's value (a later -m puts it back)
        if draw(st.integers(0, 4)) == 0:
            words = draw(st.lists(st.sampled_from(STATUS_WORDS), min_size=1, max_size=2, unique=True))
            neg = draw(st.booleans())
            fields["status"] = [("!" if neg else "") + w for w in words]
            argv += ["-u", ",".join(fields["status"])]
        if draw(st.integers(0, 3)) == 0:
            mask = draw(st.sampled_from([0xFFFFFFFF, 0xFF, 0xFFFF0000, 0x1]))
            fields["mark"] = Mark(e["mark"] & mask, mask)
            argv += ["-m", f"{e['mark'] & mask}/{mask}"]
        if "zone" in e and draw(st.integers(0, 3)) == 0:
            fields["zone"] = e["zone"]
            argv += ["-w", str(e["zone"])]
        if draw(st.integers(0, 6)) == 0:
            key, opt = draw(st.sampled_from([("snat", "--src-nat"), ("dnat", "--dst-nat"), ("any_nat", "--any-nat")]))
            fields[key] = True
            argv += [opt]
    if draw(st.integers(0, 5)) == 0:
        names = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=2, unique=True))
        fields["labels"] = names
        argv += ["-l", ",".join(names)]
    return fields, argv


def _lines(flows):
    return sorted(str(f) for f in flows)


def _no_labels(text):
    """What differs between two reads: the timeout and delta-time tick; and conntrack prints label
    names once -l made it load the map, str(flow) the line without a map."""
    text = re.sub(r"^(\S+\s+\d+\s+)\d+", r"\1", text)
    text = re.sub(r" delta-time=\d+", "", text)
    return re.sub(r" labels=\S+", "", text)


@pytest.fixture(scope="module")
def table(filled_ns):
    labelmap = f"/etc/netns/{filled_ns.name}/xtables/connlabel.conf"
    with pynfct.Conntrack(filled_ns.name, labelmap=labelmap) as ct:
        yield filled_ns, ct, _entries(ct)


def test_a_typed_selection_lists_what_conntrack_lists(table):
    ns, ct, entries = table
    selected = []

    @SETTINGS
    @given(st.data())
    def check(data):
        fields, argv = data.draw(selection(entries))
        r = run(ns, ["conntrack", "-L", *argv])
        assert r.returncode == 0, (argv, r.err)
        expected = sorted(_no_labels(l) for l in r.out.splitlines())
        got = sorted(_no_labels(l) for l in _lines(ct.dump(Match(**fields))))
        assert got == expected, (fields, argv)
        selected.append(len(expected))

    check()
    # the draws must exercise real selections, not empty == empty
    assert sum(1 for n in selected if n > 0) >= len(selected) // 3, selected


def _table(ns):
    r = run(ns, ["conntrack", "-L", "-o", "labels"])
    assert r.returncode == 0, r.err
    return sorted(re.sub(r"^(\S+\s+\d+\s+)\d+", r"\1", l) for l in r.out.splitlines())


@st.composite
def values(draw):
    fields, argv = {}, []
    if draw(st.integers(0, 3)) == 0:
        fields["status"] = ["FIXED_TIMEOUT"]
        argv += ["-u", "FIXED_TIMEOUT"]
    if draw(st.booleans()) or not fields:
        mask = draw(st.sampled_from([0xFFFFFFFF, 0xFF00, 0x1]))
        value = draw(st.integers(0, 2**32 - 1)) & mask
        fields["mark"] = Mark(value, mask)
        argv += ["-m", f"{value}/{mask}"]
    lab = draw(st.sampled_from([None, None, "add", "del"]))
    if lab:
        names = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=2, unique=True))
        fields[f"{lab}_labels"] = names
        argv += [f"--label-{lab}", ",".join(names)]
    return fields, argv


def test_a_typed_update_leaves_the_table_the_command_line_leaves():
    """Twin tables: the library updates one, pynfct -U the other; they stay the same table."""
    with NetNS() as a, NetNS() as b:
        small_fill(a)
        small_fill(b)
        assert _table(a) == _table(b)
        with pynfct.Conntrack(a.name, labelmap=f"/etc/netns/{a.name}/xtables/connlabel.conf") as ct:
            entries = _entries(ct)
            changed = []

            @settings(max_examples=25, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
            @given(st.data())
            def check(data):
                fields, argv = data.draw(selection(entries, update=True))
                vals, vargv = data.draw(values())
                r = ct.update(Match(**fields), set=Update(**vals))
                c = run(b, [*pynfct_argv(), "-U", *argv, *vargv])
                assert c.returncode in (0, 1), (argv, vargv, c.err)
                assert _table(a) == _table(b), (fields, vals, argv, vargv)
                changed.append(int(r))

            check()
            assert sum(1 for n in changed if n > 0) >= len(changed) // 3, changed


def test_a_selection_no_entry_has_selects_nothing(table):
    """The other half of one meaning: each keyword is applied, not ignored. A selection drawn from an
    entry, with one field changed to a value no entry of the table has, lists nothing (an ignored
    keyword would list the entry it was drawn from, and a delete would delete it)."""
    ns, ct, entries = table
    flows = list(ct.dump())
    used = {
        "port": {p for f in flows for p in (f.orig.sport, f.orig.dport, f.reply.sport, f.reply.dport) if p is not None},
        "mark": {f.mark for f in flows}, "zone": {z for f in flows for z in (f.zone, f.orig.zone, f.reply.zone)},
        "id": {f.id for f in flows}, "icmp_type": {f.orig.icmp_type for f in flows},
    }
    unused = {k: next(n for n in range(1, 70000) if n not in v) for k, v in used.items()}
    other = {"ipv4": "198.18.254.253", "ipv6": "2001:db8:fffe::fd"}
    changes = {"src": lambda e: other[e["family"]], "dst": lambda e: other[e["family"]],
               "reply_src": lambda e: other[e["family"]], "reply_dst": lambda e: other[e["family"]],
               "sport": lambda e: unused["port"], "dport": lambda e: unused["port"],
               "reply_sport": lambda e: unused["port"], "reply_dport": lambda e: unused["port"],
               "mark": lambda e: unused["mark"], "zone": lambda e: unused["zone"],
               "icmp_type": lambda e: unused["icmp_type"]}
    tried = set()
    for e in entries:
        for key, change in changes.items():
            if key not in e and key not in ("mark", "zone"):
                continue
            fields = {k: e[k] for k in ("family", "proto", "src", "dst") if k in e}
            if key in ("sport", "dport", "reply_sport", "reply_dport", "icmp_type"):
                fields.update((k, e[k]) for k in ("sport", "dport", "icmp_type", "icmp_code") if k in e)
            fields[key] = change(e)
            assert list(ct.dump(Match(**fields))) == [], fields
            tried.add(key)
        fields = {"family": e["family"], "proto": e["proto"], "src": e["src"], "id": unused["id"]}
        assert list(ct.dump(Match(**fields))) == [], fields
        tried.add("id")
    assert tried == set(changes) | {"id"}, tried
    # deletes: nothing selected, nothing deleted
    before = ct.count()
    assert int(ct.delete(Match(proto="udp", dport=unused["port"]))) == 0
    assert int(ct.delete(Match(mark=unused["mark"]))) == 0
    assert int(ct.delete(Match(zone=unused["zone"]))) == 0
    assert ct.count() == before


def test_bits_that_must_be_clear_are_checked_without_the_kernel_filter(table):
    """status="!NAME" relies on nothing the kernel may lack: with the dump's kernel filter left out,
    the library's own check keeps what conntrack -L -u !NAME lists (the command line, like conntrack,
    leaves it to the kernel: without it every entry comes through)."""
    from _nfct.dump import DUMP_CONNTRACK, Dump
    from _nfct.filter import Filter
    from pynfct.template import Cmd
    ns, ct, _ = table
    cmd = Match(status="!SEEN_REPLY").command(Cmd.CT_LIST)
    expected = sorted(_no_labels(l) for l in run(ns, ["conntrack", "-L", "-u", "!SEEN_REPLY"]).out.splitlines())
    fd = ct._fd()
    kept = [str(f) for f in Dump(fd, DUMP_CONNTRACK, 0, Filter(cmd, False, status_clear=True), False)]
    every = [str(f) for f in Dump(fd, DUMP_CONNTRACK, 0, Filter(cmd, False), False)]
    assert 0 < len(expected) < len(every)
    assert sorted(_no_labels(l) for l in kept) == expected
