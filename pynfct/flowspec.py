"""What ``create()``/``add()``/``create_many()`` take: :class:`FlowSpec`, an entry to create (``conntrack -I``).

>>> FlowSpec("tcp", src="10.0.0.1", dst="10.0.0.2", sport=1234, dport=80, state=TCPState.ESTABLISHED,
...          timeout=120, status=Status.SEEN_REPLY | Status.ASSURED, mark=7)

Checked when built, as :class:`pynfct.Match` is (same value rules, see :mod:`pynfct.values`), and
complete as conntrack wants it: ``proto`` and ``timeout``, both addresses of at least one direction
(the other direction is its inverse), both ports of that direction for port protocols, the state for
tcp, sctp and dccp, the verification tags for sctp, the role for dccp, type and code for icmp.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Tuple

from .builder import ICMP_PROTOS, PORT_PROTOS, Builder
from .errors import ParameterError
from .match import _CHECKS as MATCH_CHECKS, check_protocol_options, fill
from .template import Cmd, Command
from .values import (Checked, DCCPRole, Family, Proto, check_address, check_nat_address, check_proto, check_state,
                     check_status, check_timeout, check_u32)

if TYPE_CHECKING:
    from typing_extensions import TypedDict, Unpack

    from _nfct.format import LabelMap
    from .values import (Address, DCCPState, FamilyLike, LabelsLike, ProtoLike, SCTPState, StatusLike,
                         TCPState, TimeoutLike)

    class FlowFields(TypedDict, total=False):
        family: FamilyLike
        src: Address
        dst: Address
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
        orig_vtag: int
        reply_vtag: int
        role: DCCPRole | str
        timeout: TimeoutLike
        status: StatusLike
        mark: int
        zone: int
        orig_zone: int
        reply_zone: int
        labels: LabelsLike
        snat: Address | Tuple[Address, int]
        dnat: Address | Tuple[Address, int]

__all__ = ["FlowSpec"]

KEYWORDS = ("family", "src", "dst", "reply_src", "reply_dst", "sport", "dport", "reply_sport", "reply_dport",
            "srckey", "dstkey", "reply_srckey", "reply_dstkey", "state", "icmp_type", "icmp_code", "icmp_id",
            "orig_vtag", "reply_vtag", "role", "timeout", "status", "mark", "zone", "orig_zone", "reply_zone",
            "labels", "snat", "dnat")
_MATCH_LIKE = ("src", "dst", "reply_src", "reply_dst", "sport", "dport", "reply_sport",
               "reply_dport", "srckey", "dstkey", "reply_srckey", "reply_dstkey", "icmp_type", "icmp_code",
               "icmp_id", "zone", "orig_zone", "reply_zone")


class FlowSpec(Checked):
    """A checked conntrack entry to create; immutable, compared by value. ``proto`` is positional or a
    keyword; the other fields are keywords (see the module doc and :class:`pynfct.Match`)."""

    __slots__ = ()

    def __init__(self, proto: ProtoLike, **fields: Unpack[FlowFields]) -> None:
        given = self._keywords({"proto": proto, **fields}, ("proto",) + KEYWORDS,
                            "leave the keyword out (a FlowSpec has no 'any' value)")
        self._set(given, _check(given))

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> "FlowSpec":
        """A FlowSpec of a mapping of its keywords (``proto`` included)."""
        if "proto" not in fields:
            raise TypeError("FlowSpec needs proto")
        rest = {k: v for k, v in fields.items() if k != "proto"}
        return cls(fields["proto"], **rest)

    def command(self, add: bool = False, labelmap: Optional["LabelMap"] = None) -> Command:
        """The typed template of ``conntrack -I`` (``-A`` with add) for this entry."""
        v = self._v
        b = Builder(Cmd.CT_ADD if add else Cmd.CT_CREATE)
        fill(b, {k: v[k] for k in _MATCH_LIKE if k in v} | {"proto": v["proto"]}, labelmap)
        if "state" in v:
            b.state(v["state"])
        for key in ("orig_vtag", "reply_vtag"):
            if key in v:
                b.vtag(key, v[key])
        if "role" in v:
            b.role(v["role"])
        b.timeout(v["timeout"])
        if "status" in v:
            b.status(v["status"], 0)
        if "mark" in v:
            b.mark(v["mark"], 0xFFFFFFFF)
        if "labels" in v:
            b.labels("labels", v["labels"], labelmap, modify=True)
        for key in ("snat", "dnat"):
            if key in v:
                b.nat(key, *v[key])
        return b.finish()


# keyword -> its check: Match's where the meaning is the same, a FlowSpec's own where it is not (an
# address, not a network; a mark, not a mask; status bits to set; what only a create has)
_CHECKS: Dict[str, Callable[[str, object], Any]] = {
    **{k: MATCH_CHECKS[k] for k in ("family", "reply_src", "reply_dst", "sport", "dport", "reply_sport",
                                    "reply_dport", "srckey", "dstkey", "reply_srckey", "reply_dstkey",
                                    "icmp_type", "icmp_code", "icmp_id", "zone", "orig_zone", "reply_zone",
                                    "labels")},
    "src": check_address, "dst": check_address,
    "orig_vtag": lambda k, x: check_u32(k, x, "a verification tag"),
    "reply_vtag": lambda k, x: check_u32(k, x, "a verification tag"),
    "role": lambda k, x: _check_role(x),
    "timeout": check_timeout,
    "status": lambda k, x: check_status(k, x, negation=False)[0],
    "mark": lambda k, x: check_u32(k, x, "a mark"),
    "snat": check_nat_address, "dnat": check_nat_address,
}


def _check(given: Mapping[str, object]) -> Dict[str, Any]:
    v: Dict[str, Any] = {"proto": check_proto("proto", given["proto"])}
    for key, value in given.items():
        if key == "state":
            v[key] = check_state(key, value, v["proto"])
        elif key != "proto":
            v[key] = _CHECKS[key](key, value)
    check_protocol_options(v, given)
    if "role" in v and v["proto"] != Proto.DCCP:
        raise ParameterError(f"role={given['role']!r}: needs proto dccp")
    _check_complete(v, given)
    return v


def _check_role(value: object) -> int:
    if isinstance(value, DCCPRole):
        return int(value)
    if isinstance(value, str):
        try:
            return int(DCCPRole[value.upper()])
        except KeyError:
            raise ParameterError(f"role={value!r}: 'client' or 'server'") from None
    raise TypeError(f"role={value!r}: a role is a DCCPRole or 'client'/'server', not {type(value).__name__}")


def _check_complete(v: Mapping[str, Any], given: Mapping[str, object]) -> None:
    """What conntrack -I needs (its option table's compulsory columns)."""
    if "timeout" not in v:
        raise TypeError("FlowSpec needs timeout (seconds)")
    orig = "src" in v and "dst" in v
    reply = "reply_src" in v and "reply_dst" in v
    for a, b in (("src", "dst"), ("reply_src", "reply_dst")):
        if (a in v) != (b in v):
            raise TypeError(f"FlowSpec needs both {a} and {b}")
    if not (orig or reply):
        raise TypeError("FlowSpec needs src and dst (or reply_src and reply_dst)")
    proto = v["proto"]
    pairs = {p: (("sport", "dport"), ("reply_sport", "reply_dport")) for p in PORT_PROTOS}
    pairs[Proto.GRE] = (("srckey", "dstkey"), ("reply_srckey", "reply_dstkey"))
    if proto in pairs:
        for a, b in pairs[proto]:
            if (a in v) != (b in v):
                raise TypeError(f"FlowSpec needs both {a} and {b}")
        (o1, o2), (r1, r2) = pairs[proto]
        if not ((o1 in v) or (r1 in v)):
            raise TypeError(f"FlowSpec needs {o1} and {o2} (or {r1} and {r2}) for this proto")
    if proto in (Proto.TCP, Proto.SCTP, Proto.DCCP) and "state" not in v:
        raise TypeError(f"FlowSpec needs state for proto {Proto(proto).name.lower()}")
    if proto == Proto.SCTP and not ("orig_vtag" in v and "reply_vtag" in v):
        raise TypeError("FlowSpec needs orig_vtag and reply_vtag for proto sctp")
    if proto == Proto.DCCP and "role" not in v:
        raise TypeError("FlowSpec needs role for proto dccp")
    if proto in ICMP_PROTOS and not ("icmp_type" in v and "icmp_code" in v):
        raise TypeError("FlowSpec needs icmp_type and icmp_code")
    first: Optional[Tuple[str, int]] = ("family", v["family"]) if "family" in v else None
    for k in ("src", "dst", "reply_src", "reply_dst", "snat", "dnat"):
        if k not in v:
            continue
        fam = v[k][0][0] if k in ("snat", "dnat") else v[k][0]
        if first is None:
            first = (k, fam)
        elif fam != first[1]:
            raise ParameterError(f"{k}={given[k]!r}: its address family is not the one of {first[0]}="
                                 f"{given[first[0]]!r}")
    if first is not None and ((first[1] == Family.IPV6 and proto == Proto.ICMP)
                              or (first[1] == Family.IPV4 and proto == Proto.ICMPV6)):
        raise ParameterError(f"proto={given['proto']!r}: icmp is IPv4's, icmpv6 IPv6's")
