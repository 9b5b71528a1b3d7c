"""What selects entries: :class:`Match`, the filter of ``dump()``, ``get()``, ``delete()``, ``update()``
and ``events()``.

>>> Match(proto="tcp", dport=443, dst="10.0.0.0/8", status=Status.ASSURED)

Every keyword is checked when the Match is built (see :mod:`pynfct.values`). Leaving a keyword out means
"any"; giving it as ``None`` is a ``TypeError``, so a variable that is unexpectedly None never widens a
delete or an update. The keywords read like conntrack's options:

===================  =====================================================  ====================
keyword              value                                                  conntrack
===================  =====================================================  ====================
family               Family, socket.AF_INET/AF_INET6, "ipv4"/"ipv6"         -f
proto                Proto, socket.IPPROTO_*, 0-255, or a name              -p
src, dst             address, or network ("10.0.0.0/8", ip_network)         -s, -d (with a mask)
reply_src, reply_dst address                                                -r, -q
sport, dport         0-65535 (tcp, udp, udplite, sctp, dccp)                --sport, --dport
reply_sport/_dport   0-65535                                                --reply-port-src/dst
srckey, dstkey       0-65535 (gre; get() only: no filter compares them)    --srckey, --dstkey
state                TCPState/SCTPState/DCCPState or its name               --state
icmp_type/_code/_id  0-255, 0-255, 0-65535 (icmp and icmpv6)                --icmp-type ...
mark                 int, Mark(value, mask) or (value, mask)                -m
status               Status flags, names, or a list; "!NAME": must be clear -u
zone, orig_zone, ... 0-65535 (also reply_zone)                              -w, --orig-zone ...
id                   0-2**32-1 (the kernel's entry id)                      -i
snat, dnat, any_nat  True (NATed), an IPv4 address, or (address, port)      --src-nat ...
labels               label names (the handle's label map) or bits 0-127     -l
===================  =====================================================  ====================
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, FrozenSet, Mapping, Optional, Tuple

from .builder import ICMP_PROTOS, PORT_PROTOS, Builder
from .errors import ParameterError
from .template import Cmd, Command, Table
from .values import (Checked, Family, Proto, check_address, check_family, check_int, check_labels, check_mark,
                     check_nat, check_port, check_proto, check_state, check_status, check_u16, check_u32)

if TYPE_CHECKING:
    from typing_extensions import TypedDict, Unpack

    from _nfct.format import LabelMap
    from .values import (Address, FamilyLike, LabelsLike, MarkLike, NatLike, Network, ProtoLike,
                         StatusLike, DCCPState, SCTPState, TCPState)

    class MatchFields(TypedDict, total=False):
        """The keywords of a Match (and of the calls that take its keywords)."""

        family: FamilyLike
        proto: ProtoLike
        src: Network
        dst: Network
        reply_src: Address
        reply_dst: Address
        sport: int
        dport: int
        reply_sport: int
        reply_dport: int
        srckey: int
        dstkey: int
        reply_srckey: int
        reply_dstkey: int
        state: TCPState | SCTPState | DCCPState | str
        icmp_type: int
        icmp_code: int
        icmp_id: int
        mark: MarkLike
        status: StatusLike
        zone: int
        orig_zone: int
        reply_zone: int
        id: int
        snat: NatLike
        dnat: NatLike
        any_nat: NatLike
        labels: LabelsLike

    class GetFields(TypedDict, total=False):
        """The keywords of get(): one entry's original tuple (and zone)."""

        family: FamilyLike
        proto: ProtoLike
        src: Address
        dst: Address
        sport: int
        dport: int
        srckey: int
        dstkey: int
        icmp_type: int
        icmp_code: int
        icmp_id: int
        zone: int
        orig_zone: int
        reply_zone: int

__all__ = ["Match"]

_ADDRESSES = ("src", "dst", "reply_src", "reply_dst")
_PORTS = ("sport", "dport", "reply_sport", "reply_dport")
_KEYS = ("srckey", "dstkey", "reply_srckey", "reply_dstkey")
_ICMP = ("icmp_type", "icmp_code", "icmp_id")
# conntrack -L/-D/-E take no --orig-vtag/--reply-vtag (nfct_cmp does not compare them): FlowSpec only
_VTAGS = ("orig_vtag", "reply_vtag")
_ZONES = ("zone", "orig_zone", "reply_zone")
_NATS = ("snat", "dnat", "any_nat")

#: every keyword, in the order they are applied (conntrack's natural order: addresses, protocol, the
#: protocol's options, the rest)
KEYWORDS: Tuple[str, ...] = (("family",) + _ADDRESSES + ("proto",) + _PORTS + _KEYS + ("state",) + _ICMP
                             + ("status", "mark") + _ZONES + ("id",) + _NATS + ("labels",))

_ORDER = {k: i for i, k in enumerate(KEYWORDS)}

# Keywords conntrack -U does not select by (its -m, -u, -t are values to set): update() refuses them
# as filters instead of ignoring them, which would widen the update.
_NOT_FOR_UPDATE = frozenset(("mark", "status", "state"))
# Keywords no filter of the C layer compares (libnetfilter_conntrack's nfct_cmp compares no GRE keys;
# the kernel sends no secmark of 0, and an attribute an entry lacks compares equal): as filters they
# would select everything. The GRE keys still name an entry to get(); secmark is not a keyword at all.
_ONLY_FOR_GET = frozenset(_KEYS)
# get() names one entry by its tuple (and zone)
_FOR_GET = frozenset(("family", "proto", "src", "dst", "sport", "dport", "srckey", "dstkey") + _ICMP + _ZONES)


class Match(Checked):
    """A checked selection of conntrack entries; see the module doc for the keywords.

    Build it once and pass it to ``dump()``, ``delete()``, ``update()``, ``events()`` or ``get()``, or
    pass the same keywords to those calls directly. Matches are immutable and compare by value.
    """

    __slots__ = ()

    def __init__(self, **fields: Unpack[MatchFields]) -> None:
        given = self._keywords(dict(fields), KEYWORDS, "leave the keyword out to match any {key}")
        self._set(given, _check(given))

    def keys(self) -> FrozenSet[str]:
        """The keywords given."""
        return frozenset(self._v)

    def __contains__(self, keyword: object) -> bool:
        """Whether the Match has this keyword (``"labels" in match``)."""
        return keyword in self._v

    def check_for(self, command: Cmd, table: Table = Table.CONNTRACK, what: str = "dump()") -> None:
        """Whether this selection means something to one command (CT_LIST, CT_DELETE, CT_UPDATE,
        CT_GET, CT_EVENT); ``what`` names the call in messages."""
        v = self._v
        if command != Cmd.CT_GET:
            bad = sorted(_ONLY_FOR_GET & v.keys())
            if bad:
                raise TypeError(f"{what} cannot select by {', '.join(bad)}: no filter compares GRE keys "
                                f"(get() takes them, to name one entry)")
        if command == Cmd.CT_UPDATE:
            bad = sorted(_NOT_FOR_UPDATE & set(v))
            if bad:
                raise TypeError(f"{what} cannot select by {', '.join(bad)} (conntrack -U does not)")
        if command == Cmd.CT_GET:
            bad = sorted(v.keys() - _FOR_GET)
            if bad:
                raise TypeError(f"{what} names one entry by its tuple; it takes no {', '.join(bad)}")
            _check_tuple(v, what)
        negated = v.get("status", (0, 0))[1]
        if negated and (command == Cmd.CT_EVENT or table in (Table.DYING, Table.UNCONFIRMED)):
            raise ParameterError(f"status={self._given['status']!r}: '!' (must not be set) is checked by "
                                 f"the kernel's dump filter, which {what} does not have")

    def command(self, command: Cmd, labelmap: Optional["LabelMap"] = None, *,
                table: Table = Table.CONNTRACK, what: str = "dump()") -> Command:
        """The typed template of this selection for one command (see check_for)."""
        self.check_for(command, table, what)
        return build(command, self._v, labelmap, table)

    def fill(self, b: Builder, labelmap: Optional["LabelMap"]) -> None:
        """Add this selection to a Builder (before the values of an update)."""
        fill(b, self._v, labelmap)


def _status(key: str, value: object) -> Tuple[int, int]:
    on, off = check_status(key, value, negation=True)
    if not on and not off:
        raise ParameterError(f"status={value!r}: selects nothing in particular; leave it out")
    return on, off


def _u32(key: str, value: object) -> int:
    return check_u32(key, value, f"a {key}")


# keyword -> its check (state is checked against the protocol, in _check)
_CHECKS: Dict[str, Callable[[str, object], Any]] = {
    "family": check_family, "proto": check_proto,
    "src": lambda k, x: check_address(k, x, network=True), "dst": lambda k, x: check_address(k, x, network=True),
    "reply_src": check_address, "reply_dst": check_address,
    **{k: check_port for k in _PORTS},
    **{k: (lambda k, x: check_u16(k, x, "a GRE key")) for k in _KEYS},
    "icmp_type": lambda k, x: check_int(k, x, 255, "an ICMP type or code"),
    "icmp_code": lambda k, x: check_int(k, x, 255, "an ICMP type or code"),
    "icmp_id": lambda k, x: check_u16(k, x, "an ICMP id"),
    "status": _status, "mark": check_mark,
    **{k: (lambda k, x: check_u16(k, x, "a zone")) for k in _ZONES},
    "id": _u32,
    **{k: check_nat for k in _NATS},
    "labels": check_labels,
}


def _check(given: Mapping[str, object]) -> Dict[str, Any]:
    """Each keyword checked on its own, then those that depend on the protocol."""
    v: Dict[str, Any] = {}
    for key in sorted(given, key=_ORDER.__getitem__):
        if key == "state":
            v[key] = check_state(key, given[key], v.get("proto"))
        else:
            v[key] = _CHECKS[key](key, given[key])
    check_protocol_options(v, given)
    if "any_nat" in v and ("snat" in v or "dnat" in v):
        raise ParameterError("any_nat: give it alone, or snat/dnat")
    return v


# protocol options -> (the protocols that have them, their names)
_NEEDS_PROTO: Dict[str, Tuple[FrozenSet[int], str]] = {
    **{k: (PORT_PROTOS, "tcp, udp, udplite, sctp or dccp") for k in _PORTS},
    **{k: (frozenset((Proto.GRE,)), "gre") for k in _KEYS},
    **{k: (ICMP_PROTOS, "icmp or icmpv6") for k in _ICMP},
    **{k: (frozenset((Proto.SCTP,)), "sctp") for k in _VTAGS},
}


def check_protocol_options(v: Mapping[str, Any], given: Mapping[str, object]) -> None:
    """Options that only exist for some protocols need that protocol."""
    proto = v.get("proto")
    for key in v:
        need = _NEEDS_PROTO.get(key)
        if need is not None and proto not in need[0]:
            why = "no proto was given" if proto is None else f"proto is {_proto_name(proto)}"
            raise ParameterError(f"{key}={given[key]!r}: needs proto {need[1]} ({why})")
    family = v.get("family")
    if family is not None and proto is not None:
        if (proto == Proto.ICMP and family == Family.IPV6) or (proto == Proto.ICMPV6 and family == Family.IPV4):
            raise ParameterError(f"proto={given['proto']!r} does not exist in family {Family(family).name}")


def _proto_name(proto: int) -> str:
    try:
        return Proto(proto).name.lower()
    except ValueError:
        return str(proto)


# the port-like keywords of each direction, per protocol
_PAIRS = {**{p: (("sport", "dport"), ("reply_sport", "reply_dport")) for p in PORT_PROTOS},
          Proto.GRE: (("srckey", "dstkey"), ("reply_srckey", "reply_dstkey"))}


def _check_tuple(v: Mapping[str, Any], what: str) -> None:
    """get() names an entry by its original tuple (as conntrack -G): proto, src, dst and the ports
    (keys, icmp type and code) of that direction."""
    need = ["proto", "src", "dst"]
    proto = v.get("proto")
    if proto in _PAIRS:
        need += _PAIRS[proto][0]
    elif proto in ICMP_PROTOS:
        need += ["icmp_type", "icmp_code"]
    missing = [k for k in need if k not in v]
    if missing:
        raise TypeError(f"{what} needs {', '.join(missing)}: it names one entry by its original tuple")
    for key in ("src", "dst"):
        if v[key][2] != (32 if v[key][0] == Family.IPV4 else 128):
            raise ParameterError(f"{key}: {what} takes an address, not a network")


def build(command: Cmd, v: Mapping[str, Any], labelmap: Optional["LabelMap"],
          table: Table = Table.CONNTRACK) -> Command:
    """The Command of checked values."""
    b = Builder(command, table)
    fill(b, v, labelmap)
    return b.finish()


# keyword -> how its checked value goes into a Builder (labels need the label map: in fill)
_FILLS: Dict[str, Callable[[Builder, str, Any], None]] = {
    "family": lambda b, k, x: b.family_option(x),
    **{k: (lambda b, k, x: b.address(k, *x)) for k in _ADDRESSES},
    "proto": lambda b, k, x: b.proto(x),
    **{k: Builder.port for k in _PORTS + _KEYS},
    "state": lambda b, k, x: b.state(x),
    **{k: Builder.icmp for k in _ICMP},
    **{k: Builder.vtag for k in _VTAGS},
    "status": lambda b, k, x: b.status(*x),
    "mark": lambda b, k, x: b.mark(*x),
    **{k: Builder.zone for k in _ZONES},
    "id": Builder.u32,
    **{k: (lambda b, k, x: b.nat(k, *x)) for k in _NATS},
}


def fill(b: Builder, v: Mapping[str, Any], labelmap: Optional["LabelMap"]) -> None:
    """Add checked values to a Builder, in KEYWORDS order."""
    for key in sorted(v, key=_ORDER.__getitem__):
        if key == "labels":
            b.labels(key, v[key], labelmap, modify=False)
        else:
            _FILLS[key](b, key, v[key])
