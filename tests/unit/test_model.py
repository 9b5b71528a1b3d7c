"""One meaning, two builders: the typed model (Match, Update, FlowSpec) and the CLI's port of conntrack's
parser build the same template for the same selection, update or create.

Hypothesis draws a valid selection as typed values *and* as the equivalent conntrack command line; the
two Commands must agree on every field the C layer reads. Root-free: nothing is sent to a kernel (the
same draws run against a real table in tests/integration/test_model_kernel.py).
"""
from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from _nfct.format import LabelMap
from pynfct import Family, FlowSpec, Mark, Match, Proto, Status, TCPState, Update
from pynfct.cli.parse import parse
from pynfct.template import Cmd, Opt

LABELS = {"web": 1, "db": 5, "blue": 42}


@pytest.fixture(scope="module")
def labelmap_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "connlabel.conf"
    path.write_text("".join(f"{bit} {name}\n" for name, bit in LABELS.items()))
    return str(path)


def same_command(typed, cli) -> None:
    """Every field of the Command that the C layer reads."""
    assert typed.command == cli.command
    assert int(typed.options) == int(cli.options), (typed.options, cli.options)
    assert typed.family == cli.family
    assert typed.protonum == cli.protonum
    t, c = typed.tmpl, cli.tmpl
    assert t.ct == c.ct
    assert t.mask == c.mask
    assert t.exptuple == c.exptuple
    assert t.exp == c.exp
    if typed.options & (Opt.MARK | Opt.STATUS):
        assert t.mark == c.mark
    assert t.filter_mark_kernel == c.filter_mark_kernel
    assert t.filter_status_kernel == c.filter_status_kernel
    assert t.label == c.label
    assert t.label_modify == c.label_modify
    assert t.setup == c.setup


# -- drawing a selection as typed values and as conntrack words -----------------------------------------

def _addr(draw, family, network):
    if family == 4:
        ip = ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1)))
    else:
        ip = ipaddress.IPv6Address(draw(st.integers(0, 2**128 - 1)))
    if network and draw(st.booleans()):
        plen = draw(st.integers(1, ip.max_prefixlen))
        net = ipaddress.ip_network(f"{ip}/{plen}", strict=False)
        value = draw(st.sampled_from([net, str(net)]))
        return value, f"{net.network_address}/{plen}"
    return draw(st.sampled_from([ip, str(ip)])), str(ip)


PROTOS = [None, "tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "gre", 50]
PROTO_VALUE = {"tcp": [Proto.TCP, "tcp", socket.IPPROTO_TCP, 6], "udp": [Proto.UDP, "UDP", socket.IPPROTO_UDP],
               "udplite": [Proto.UDPLITE, "udplite"], "sctp": [Proto.SCTP, "sctp", 132],
               "dccp": [Proto.DCCP, "dccp"], "icmp": [Proto.ICMP, "icmp", socket.IPPROTO_ICMP],
               "icmpv6": [Proto.ICMPV6, "icmpv6", 58], "gre": [Proto.GRE, "gre", 47], 50: [50]}
STATES = {"tcp": ["SYN_SENT", "ESTABLISHED", "TIME_WAIT", "CLOSE", "FIN_WAIT"],
          "sctp": ["CLOSED", "COOKIE_WAIT", "ESTABLISHED", "SHUTDOWN_SENT"],
          "dccp": ["REQUEST", "RESPOND", "OPEN", "TIMEWAIT"]}
STATUS_WORDS = ["ASSURED", "SEEN_REPLY", "FIXED_TIMEOUT", "EXPECTED", "OFFLOAD", "HW_OFFLOAD"]

# which options conntrack 1.4.7 takes with each command (its option table)
LEGAL = {
    Cmd.CT_LIST: {"family", "status", "mark", "zone", "orig_zone", "reply_zone", "snat", "dnat",
                  "any_nat", "labels"},
    Cmd.CT_DELETE: {"family", "status", "mark", "zone", "orig_zone", "reply_zone", "id", "snat", "dnat", "labels"},
    Cmd.CT_UPDATE: {"family", "id", "snat", "dnat", "labels"},
    Cmd.CT_EVENT: {"family", "mark", "zone", "orig_zone", "reply_zone", "snat", "dnat", "any_nat",
                   "labels"},
}


@st.composite
def selections(draw, command):
    """(Match keywords, conntrack argv words) meaning the same selection."""
    legal = LEGAL[command]
    fields, argv = {}, []
    proto = draw(st.sampled_from(PROTOS))
    family = 4 if proto == "icmp" else 6 if proto == "icmpv6" else draw(st.sampled_from([4, 6]))
    if "family" in legal and draw(st.booleans()):
        fields["family"] = draw(st.sampled_from(
            [Family.IPV4, "ipv4", socket.AF_INET] if family == 4 else [Family.IPV6, "ipv6", socket.AF_INET6]))
        argv += ["-f", f"ipv{family}"]
    for key, opt in (("src", "-s"), ("dst", "-d"), ("reply_src", "-r"), ("reply_dst", "-q")):
        if draw(st.integers(0, 2)) == 0:
            value, word = _addr(draw, family, key in ("src", "dst"))
            fields[key] = value
            argv += [opt, word]
    if proto is not None:
        fields["proto"] = draw(st.sampled_from(PROTO_VALUE[proto]))
        argv += ["-p", str(proto)]
        if proto in ("tcp", "udp", "udplite", "sctp", "dccp"):
            for key, opt in (("sport", "--sport"), ("dport", "--dport"), ("reply_sport", "--reply-port-src"),
                             ("reply_dport", "--reply-port-dst")):
                if draw(st.integers(0, 2)) == 0:
                    port = draw(st.integers(0, 65535))
                    fields[key] = port
                    argv += [opt, str(port)]
        # (no GRE keys: no filter compares them, so Match takes them for get() only)
        if proto in STATES and command != Cmd.CT_UPDATE and draw(st.booleans()):
            name = draw(st.sampled_from(STATES[proto]))
            fields["state"] = draw(st.sampled_from([name, name.lower()] + (
                [TCPState[name]] if proto == "tcp" else [])))
            argv += ["--state", name]
        if proto in ("icmp", "icmpv6"):
            for key in ("icmp_type", "icmp_code", "icmp_id"):
                if draw(st.booleans()):
                    n = draw(st.integers(0, 65535 if key == "icmp_id" else 255))
                    fields[key] = n
                    argv += [f"--{proto}-{key[5:]}", str(n)]
    if "status" in legal and draw(st.integers(0, 2)) == 0:
        # conntrack 1.4.7 gets "ASSURED,!SEEN_REPLY" wrong (its kernel filter mask leaves out the
        # positive bits, so nothing matches): draw all set or all clear
        words = draw(st.lists(st.sampled_from(STATUS_WORDS), min_size=1, max_size=3, unique=True))
        neg = draw(st.booleans())
        if neg:
            fields["status"] = ["!" + w for w in words]
        else:
            value = draw(st.sampled_from(["list", "flags", "str"]))
            fields["status"] = (words if value == "list" else words[0] if value == "str" and len(words) == 1
                                else _flags(words))
        argv += ["-u", ",".join(("!" if neg else "") + w for w in words)]
    if "mark" in legal and draw(st.integers(0, 2)) == 0:
        value = draw(st.integers(0, 2**32 - 1))
        if draw(st.booleans()):
            mask = draw(st.integers(1, 2**32 - 1))
            value &= mask
            fields["mark"] = draw(st.sampled_from([Mark(value, mask), (value, mask)]))
            argv += ["-m", f"{value}/{mask}"]
        else:
            fields["mark"] = value
            argv += ["-m", str(value)]
    for key, opt in (("zone", "-w"), ("orig_zone", "--orig-zone"), ("reply_zone", "--reply-zone")):
        if key in legal and draw(st.integers(0, 3)) == 0:
            z = draw(st.integers(0, 65535))
            fields[key] = z
            argv += [opt, str(z)]
    for key, opt in (("id", "--id"),):
        if key in legal and draw(st.integers(0, 4)) == 0:
            n = draw(st.integers(0, 2**32 - 1))
            fields[key] = n
            argv += [opt + "=" + str(n)] if opt == "--id" else [opt, str(n)]
    nat_keys = [k for k in ("snat", "dnat", "any_nat") if k in legal]
    if nat_keys and draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(nat_keys))
        opt = {"snat": "--src-nat", "dnat": "--dst-nat", "any_nat": "--any-nat"}[key]
        if key == "any_nat" or family == 6 or draw(st.booleans()):
            fields[key] = True
            argv += [opt]
        else:
            ip = str(ipaddress.IPv4Address(draw(st.integers(0, 2**32 - 1))))
            if draw(st.booleans()):
                port = draw(st.integers(0, 65535))
                fields[key] = (ip, port)
                argv += [opt, f"{ip}:{port}"]
            else:
                fields[key] = ip
                argv += [opt, ip]
    if "labels" in legal and draw(st.integers(0, 3)) == 0:
        names = draw(st.lists(st.sampled_from(sorted(LABELS)), min_size=1, max_size=3, unique=True))
        fields["labels"] = names
        argv += ["-l", ",".join(names)]
    return fields, argv


def _flags(words):
    f = Status(0)
    for w in words:
        f |= Status[w]
    return f


OPT_OF = {Cmd.CT_LIST: "-L", Cmd.CT_DELETE: "-D", Cmd.CT_UPDATE: "-U", Cmd.CT_EVENT: "-E"}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("command", [Cmd.CT_LIST, Cmd.CT_DELETE, Cmd.CT_EVENT], ids=lambda c: c.name)
@SETTINGS
@given(data=st.data())
def test_a_selection_builds_the_template_conntrack_builds(labelmap_path, command, data):
    fields, argv = data.draw(selections(command))
    labels = LabelMap(labelmap_path)
    typed = Match(**fields).command(command, labels)
    cli = parse([OPT_OF[command], *argv], connlabel_conf=labelmap_path, warn=lambda m: None)
    same_command(typed, cli)


@st.composite
def updates(draw):
    fields, argv = {}, []
    if draw(st.booleans()):
        words = draw(st.lists(st.sampled_from(["ASSURED", "SEEN_REPLY", "FIXED_TIMEOUT"]), min_size=1,
                              max_size=2, unique=True))
        fields["status"] = words
        argv += ["-u", ",".join(words)]
    if draw(st.booleans()) or not fields:
        mask = draw(st.integers(1, 2**32 - 1))
        value = draw(st.integers(0, 2**32 - 1)) & mask
        fields["mark"] = Mark(value, mask)
        argv += ["-m", f"{value}/{mask}"]
    if draw(st.booleans()):
        t = draw(st.integers(1, 2**32 - 1))
        fields["timeout"] = t
        argv += ["-t", str(t)]
    lab = draw(st.sampled_from([None, "add", "del", "del_all"]))
    if lab == "del_all":
        fields["del_labels"] = True
        argv += ["--label-del"]
    elif lab is not None:
        names = draw(st.lists(st.sampled_from(sorted(LABELS)), min_size=1, max_size=2, unique=True))
        fields[f"{lab}_labels"] = names
        argv += [f"--label-{lab}", ",".join(names)]
    return fields, argv


@SETTINGS
@given(data=st.data())
def test_an_update_builds_the_template_conntrack_builds(labelmap_path, data):
    from pynfct.builder import Builder
    fields, argv = data.draw(selections(Cmd.CT_UPDATE))
    values, vargv = data.draw(updates())
    labels = LabelMap(labelmap_path)
    b = Builder(Cmd.CT_UPDATE)
    Match(**fields).fill(b, labels)
    Update(**values).fill(b, labels)
    typed = b.finish()
    # conntrack writes -u into the mark's value: the values come in -u, -m order, as Update.fill does
    cli = parse(["-U", *argv, *vargv], connlabel_conf=labelmap_path, warn=lambda m: None)
    same_command(typed, cli)


@st.composite
def creates(draw):
    """(FlowSpec, conntrack -I argv) of one complete entry."""
    family = draw(st.sampled_from([4, 6]))
    proto = draw(st.sampled_from(["tcp", "udp", "udplite", "sctp", "dccp", "gre", "icmp", "icmpv6", 50]))
    if proto == "icmp":
        family = 4
    elif proto == "icmpv6":
        family = 6
    fields, argv = {}, ["-p", str(proto)]
    direction = draw(st.sampled_from(["orig", "reply", "both"]))
    keys = ((["src", "dst"] if direction != "reply" else [])
            + (["reply_src", "reply_dst"] if direction != "orig" else []))
    opts = {"src": "-s", "dst": "-d", "reply_src": "-r", "reply_dst": "-q"}
    for key in keys:
        value, word = _addr(draw, family, False)
        fields[key] = value
        argv += [opts[key], word]
    if proto in ("tcp", "udp", "udplite", "sctp", "dccp", "gre"):
        pk = (("sport", "--sport"), ("dport", "--dport"), ("reply_sport", "--reply-port-src"),
              ("reply_dport", "--reply-port-dst"))
        if proto == "gre":
            pk = (("srckey", "--srckey"), ("dstkey", "--dstkey"), ("reply_srckey", "--reply-key-src"),
                  ("reply_dstkey", "--reply-key-dst"))
        chosen = pk[:2] if direction != "reply" else pk[2:]
        if direction == "both" and draw(st.booleans()):
            chosen = pk
        for key, opt in chosen:
            n = draw(st.integers(0, 65535))
            fields[key] = n
            argv += [opt, str(n)]
    if proto in STATES:
        name = draw(st.sampled_from(STATES[proto]))
        fields["state"] = name
        argv += ["--state", name]
    if proto == "sctp":
        for key, opt in (("orig_vtag", "--orig-vtag"), ("reply_vtag", "--reply-vtag")):
            n = draw(st.integers(0, 2**31 - 1))     # conntrack reads it with atoi()
            fields[key] = n
            argv += [opt, str(n)]
    if proto == "dccp":
        role = draw(st.sampled_from(["client", "server"]))
        fields["role"] = role
        argv += ["--role", role]
    if proto in ("icmp", "icmpv6"):
        for key in ("icmp_type", "icmp_code") + (("icmp_id",) if draw(st.booleans()) else ()):
            n = draw(st.integers(0, 65535 if key == "icmp_id" else 255))
            fields[key] = n
            argv += [f"--{proto}-{key[5:]}", str(n)]
    t = draw(st.integers(1, 2**31 - 1))
    fields["timeout"] = t
    argv += ["-t", str(t)]
    if draw(st.booleans()):
        words = draw(st.lists(st.sampled_from(["ASSURED", "SEEN_REPLY", "FIXED_TIMEOUT"]), min_size=1,
                              max_size=2, unique=True))
        fields["status"] = words
        argv += ["-u", ",".join(words)]
    if draw(st.booleans()):
        m = draw(st.integers(0, 2**32 - 1))
        fields["mark"] = m
        argv += ["-m", str(m)]
    for key, opt in (("zone", "-w"), ("orig_zone", "--orig-zone"), ("reply_zone", "--reply-zone")):
        if draw(st.integers(0, 3)) == 0:
            z = draw(st.integers(0, 65535))
            fields[key] = z
            argv += [opt, str(z)]
    if draw(st.integers(0, 3)) == 0:
        names = draw(st.lists(st.sampled_from(sorted(LABELS)), min_size=1, max_size=2, unique=True))
        fields["labels"] = names
        argv += ["--label-add", ",".join(names)]
    return fields, argv, proto


@SETTINGS
@given(data=st.data(), add=st.booleans())
def test_a_create_builds_the_template_conntrack_builds(labelmap_path, data, add):
    fields, argv, proto = data.draw(creates())
    typed = FlowSpec(proto, **fields).command(add, LabelMap(labelmap_path))
    cli = parse(["-A" if add else "-I", *argv], connlabel_conf=labelmap_path, warn=lambda m: None)
    same_command(typed, cli)


def test_any_nat_with_an_address_sets_only_the_nat_addresses():
    """conntrack's -j ADDR also overwrites the template's original source (so -p tcp -j ADDR matches
    only entries from 2.B.C.D, see test_api.test_any_nat_with_proto); the typed model sets only what it
    means."""
    from pynfct.attrs import Attr
    typed = Match(proto="tcp", any_nat="10.0.0.2").command(Cmd.CT_LIST)
    assert typed.tmpl.ct[Attr.SNAT_IPV4] == typed.tmpl.ct[Attr.DNAT_IPV4] == bytes([10, 0, 0, 2])
    assert Attr.ORIG_IPV4_SRC not in typed.tmpl.ct
    cli = parse(["-L", "-p", "tcp", "-j", "10.0.0.2"], warn=lambda m: None)
    assert Attr.ORIG_IPV4_SRC in cli.tmpl.ct


def test_mixed_status_keeps_both_kinds_of_bit():
    """"-u ASSURED,!SEEN_REPLY": conntrack's kernel filter mask is only the negated bits (nothing
    matches); the typed model asks for ASSURED set and SEEN_REPLY clear."""
    typed = Match(status=["ASSURED", "!SEEN_REPLY"]).command(Cmd.CT_LIST)
    assert typed.tmpl.filter_status_kernel == (int(Status.ASSURED), int(Status.ASSURED | Status.SEEN_REPLY))
    cli = parse(["-L", "-u", "ASSURED,!SEEN_REPLY"], warn=lambda m: None)
    assert cli.tmpl.filter_status_kernel == (int(Status.ASSURED), int(Status.SEEN_REPLY))


def test_typed_values_are_picklable_and_compare_by_value():
    import pickle
    m = Match(proto="tcp", dport=443, dst="10.0.0.0/8", status=Status.ASSURED)
    assert pickle.loads(pickle.dumps(m)) == m == Match(proto=Proto.TCP, dport=443, dst="10.1.2.3/8",
                                                      status="assured")
    assert hash(m) == hash(pickle.loads(pickle.dumps(m)))
    u = Update(mark=Mark(1, 3), timeout=5)
    assert pickle.loads(pickle.dumps(u)) == u
    f = FlowSpec("udp", src="10.0.0.1", dst="10.0.0.2", sport=1, dport=2, timeout=30)
    assert pickle.loads(pickle.dumps(f)) == f
    with pytest.raises(AttributeError):
        m.proto = "udp"  # type: ignore[misc]
