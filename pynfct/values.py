"""Typed values of the Python API, and the checks every keyword goes through.

A Python value is checked as a Python value: a ``bool`` is not a port, ``"abc"`` is not a mark, 99999 is
not a port, ``None`` is not "any". Wrong type: ``TypeError``; wrong value: :class:`pynfct.ParameterError`
(a ``ValueError``). Every message starts with the keyword and the value as the caller wrote them.

Only the command line keeps conntrack's lax C number parsing (``pynfct.cli``); nothing here parses
command-line words.
"""
from __future__ import annotations

import enum
import ipaddress
import socket
from datetime import timedelta
from typing import Any, Dict, Iterable, List, Literal, Mapping, NamedTuple, Optional, Tuple, Union

from .errors import ParameterError
from .status import Status

__all__ = ["Family", "Proto", "TCPState", "SCTPState", "DCCPState", "DCCPRole", "Mark", "Address", "Network",
           "FamilyLike", "ProtoLike", "MarkLike", "StatusLike", "LabelsLike", "TimeoutLike", "NatLike"]


class Family(enum.IntEnum):
    """Address family of an entry (``-f``); the values are the kernel's AF_* numbers."""

    IPV4 = socket.AF_INET
    IPV6 = socket.AF_INET6


class Proto(enum.IntEnum):
    """Layer-4 protocols with their own conntrack options (``-p``); values are IPPROTO_* numbers.

    Any other protocol number (0-255) is accepted as an int; it has no protocol options."""

    ICMP = 1
    TCP = 6
    UDP = 17
    DCCP = 33
    GRE = 47
    ICMPV6 = 58
    SCTP = 132
    UDPLITE = 136


class TCPState(enum.IntEnum):
    """enum tcp_conntrack (linux/netfilter/nf_conntrack_tcp.h)."""

    NONE = 0
    SYN_SENT = 1
    SYN_RECV = 2
    ESTABLISHED = 3
    FIN_WAIT = 4
    CLOSE_WAIT = 5
    LAST_ACK = 6
    TIME_WAIT = 7
    CLOSE = 8
    SYN_SENT2 = 9      # TCP_CONNTRACK_LISTEN has the same value
    LISTEN = 9


class SCTPState(enum.IntEnum):
    """enum sctp_conntrack (linux/netfilter/nf_conntrack_sctp.h)."""

    NONE = 0
    CLOSED = 1
    COOKIE_WAIT = 2
    COOKIE_ECHOED = 3
    ESTABLISHED = 4
    SHUTDOWN_SENT = 5
    SHUTDOWN_RECD = 6
    SHUTDOWN_ACK_SENT = 7
    HEARTBEAT_SENT = 8


class DCCPState(enum.IntEnum):
    """enum ct_dccp_states (linux/netfilter/nf_conntrack_dccp.h)."""

    NONE = 0
    REQUEST = 1
    RESPOND = 2
    PARTOPEN = 3
    OPEN = 4
    CLOSEREQ = 5
    CLOSING = 6
    TIMEWAIT = 7
    IGNORE = 8
    INVALID = 9


class DCCPRole(enum.IntEnum):
    """enum ct_dccp_roles (``--role``)."""

    CLIENT = 0
    SERVER = 1


class Mark(NamedTuple):
    """A mark and the bits of it that count: ``Mark(0x10, 0xf0)``.

    As a filter, an entry matches when ``entry.mark & mask == value``; as an update, the entry keeps
    its bits outside ``mask`` and gets ``value`` xor-ed in (conntrack's MARK/MASK)."""

    value: int
    mask: int = 0xFFFFFFFF


class Checked:
    """What Match, Update and FlowSpec share: built from keywords that are checked at once, immutable,
    equal when their checked values are, hashable, picklable (rebuilt from the keywords as given)."""

    __slots__ = ("_given", "_v")
    _given: Dict[str, object]      # the keywords as the caller wrote them (for repr and pickling)
    _v: Dict[str, Any]             # the checked values

    @classmethod
    def _keywords(cls, given: Dict[str, object], known: Tuple[str, ...], none: str) -> Dict[str, object]:
        """The keywords as given, once none is unknown (TypeError naming the known ones) and none is None
        (TypeError: ``none`` says what to do instead, with {key} for the keyword)."""
        unknown = given.keys() - set(known)
        if unknown:
            raise TypeError(f"{cls.__name__}() got unknown keyword(s) {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(known)}")
        for key, value in given.items():
            if value is None:
                raise TypeError(f"{key}=None: {none.format(key=key)}")
        return given

    def _set(self, given: Dict[str, object], checked: Dict[str, Any]) -> None:
        object.__setattr__(self, "_given", given)
        object.__setattr__(self, "_v", checked)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a {type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._given.items())})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._v == other._v

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + tuple(sorted((k, repr(v)) for k, v in self._v.items())))

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_rebuild, (type(self), self._given))

    @property
    def fields(self) -> Mapping[str, object]:
        """The keywords as given."""
        return dict(self._given)


def _rebuild(cls: "type[Checked]", given: Dict[str, Any]) -> Checked:
    return cls(**given)


Address = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[Address, ipaddress.IPv4Network, ipaddress.IPv6Network]
FamilyLike = Union[Family, int, str]
ProtoLike = Union[Proto, int, str]
MarkLike = Union[int, Mark, Tuple[int, int]]
StatusLike = Union[Status, str, Iterable[Union[Status, str]]]
LabelsLike = Union[str, int, Iterable[Union[str, int]]]
TimeoutLike = Union[int, timedelta]
NatLike = Union[Literal[True], Address, Tuple[Address, int]]

U16 = 0xFFFF
U32 = 0xFFFFFFFF
LABEL_BITS = 128       # the kernel's NF_CT_LABELS_MAX_SIZE * 8


def _show(key: str, value: object) -> str:
    return f"{key}={value!r}"


def check_int(key: str, value: object, hi: int, what: str, lo: int = 0, shown: object = None) -> int:
    """An int (not a bool) from lo to hi; ``shown``: the caller's whole value, when value is part of it."""
    whole = value if shown is None else shown
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{_show(key, whole)}: {what} is an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ParameterError(f"{_show(key, whole)}: {what} is from {lo} to {hi}")
    return int(value)


def check_port(key: str, value: object) -> int:
    return check_int(key, value, U16, "a port")


def check_u16(key: str, value: object, what: str) -> int:
    return check_int(key, value, U16, what)


def check_u32(key: str, value: object, what: str) -> int:
    return check_int(key, value, U32, what)


def check_timeout(key: str, value: object) -> int:
    """Seconds, 1 to 2**32-1: an int or a timedelta of whole seconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds != int(seconds):
            raise ParameterError(f"{_show(key, value)}: a timeout is whole seconds")
        value = int(seconds)
        return check_int(key, value, U32, "a timeout in seconds", lo=1)
    return check_int(key, value, U32, "a timeout in seconds", lo=1)


def check_family(key: str, value: object) -> Family:
    """Family.IPV4/IPV6, socket.AF_INET/AF_INET6, 2/10, or "ipv4"/"ipv6"."""
    if isinstance(value, str):
        try:
            return Family[value.upper()]
        except KeyError:
            raise ParameterError(f"{_show(key, value)}: a family is 'ipv4' or 'ipv6'") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{_show(key, value)}: a family is a pynfct.Family, a socket.AF_* or a str, "
                        f"not {type(value).__name__}")
    try:
        return Family(int(value))
    except ValueError:
        raise ParameterError(f"{_show(key, value)}: a family is AF_INET or AF_INET6") from None


_PROTO_NAMES = {p.name.lower(): p for p in Proto}
_PROTO_NAMES["ipv6-icmp"] = Proto.ICMPV6


def check_proto(key: str, value: object) -> int:
    """A Proto, a socket.IPPROTO_*/int 0-255, or a name (tcp, udp, ... or one from /etc/protocols)."""
    if isinstance(value, str):
        name = value.lower()
        if name in _PROTO_NAMES:
            return _PROTO_NAMES[name]
        try:
            return socket.getprotobyname(name)
        except OSError:
            raise ParameterError(f"{_show(key, value)}: unknown protocol name") from None
    n = check_int(key, value, 255, "a protocol number")
    try:
        return Proto(n)
    except ValueError:
        return n


def check_address(key: str, value: object, *, network: bool = False) -> Tuple[int, bytes, int]:
    """(family, address bytes, prefix length) of an address, or of a network where one is allowed.

    A str is an address ("10.0.0.1", "2001:db8::1") or, where allowed, a network in CIDR notation
    ("10.0.0.0/8"; host bits are ignored as the kernel's netmask does); ipaddress addresses and
    networks are taken as they are. The prefix length is 32/128 for a single address."""
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        raise TypeError(f"{_show(key, value)}: give the interface's .ip or .network, not the interface")
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        ip = value
        if getattr(ip, "scope_id", None):
            raise ParameterError(f"{_show(key, value)}: a scoped address cannot be matched")
        return (Family.IPV4 if ip.version == 4 else Family.IPV6), ip.packed, ip.max_prefixlen
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        if not network and value.prefixlen != value.max_prefixlen:
            raise ParameterError(f"{_show(key, value)}: takes an address, not a network")
        if value.prefixlen == 0:
            raise ParameterError(f"{_show(key, value)}: a /0 network is every address; to select a "
                                 f"family, use family=")
        return ((Family.IPV4 if value.version == 4 else Family.IPV6), value.network_address.packed,
                value.prefixlen)
    if not isinstance(value, str):
        raise TypeError(f"{_show(key, value)}: an address is a str or an ipaddress object, "
                        f"not {type(value).__name__}")
    if "/" not in value and "%" not in value:
        # the common case without building an ipaddress object (inet_pton is as strict: no leading
        # zeros, no scope)
        for family, n in ((Family.IPV4, 32), (Family.IPV6, 128)):
            try:
                return family, socket.inet_pton(family, value), n
            except OSError:
                pass
        raise ParameterError(f"{_show(key, value)}: not an IPv4 or IPv6 address")
    if "/" in value:
        if not network:
            raise ParameterError(f"{_show(key, value)}: takes an address, not a network")
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError as e:
            raise ParameterError(f"{_show(key, value)}: {e}") from None
        if net.prefixlen == 0:
            raise ParameterError(f"{_show(key, value)}: a /0 network is every address; to select a "
                                 f"family, use family=")
        return check_address(key, net, network=True)
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ParameterError(f"{_show(key, value)}: not an IPv4 or IPv6 address") from None
    return check_address(key, ip, network=network)


def check_mark(key: str, value: object) -> Mark:
    """An int (all 32 bits count), a Mark or a (value, mask) pair, each 0 to 2**32-1, with no bit of the
    value outside the mask (as a filter it would match nothing; as an update it would change bits the
    mask says to keep) and a mask that is not 0 (a filter of nothing; an update of nothing)."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ParameterError(f"{_show(key, value)}: a mark is an int or a (value, mask) pair")
        mark = Mark(check_int(key, value[0], U32, "a mark", shown=value),
                    check_int(key, value[1], U32, "a mark mask", shown=value))
        if mark.value & ~mark.mask:
            raise ParameterError(f"{_show(key, value)}: the value has bits outside the mask")
        if not mark.mask:
            raise ParameterError(f"{_show(key, value)}: a mask of 0 leaves no bit to compare or set")
        return mark
    return Mark(check_u32(key, value, "a mark"))


_STATE_ENUMS = {Proto.TCP: TCPState, Proto.SCTP: SCTPState, Proto.DCCP: DCCPState}


def check_state(key: str, value: object, proto: Optional[int]) -> int:
    """A state of the protocol's enum (TCPState, SCTPState, DCCPState) or its name."""
    cls = _STATE_ENUMS.get(Proto(proto)) if proto in _STATE_ENUMS else None
    if cls is None or proto is None:
        raise ParameterError(f"{_show(key, value)}: a state needs proto tcp, sctp or dccp")
    if isinstance(value, enum.Enum):
        if not isinstance(value, cls):
            raise ParameterError(f"{_show(key, value)}: not a {cls.__name__} (proto is {Proto(proto).name})")
        return int(value)
    if isinstance(value, str):
        try:
            return int(cls[value.upper()])
        except KeyError:
            names = ", ".join(m for m in cls.__members__)
            raise ParameterError(f"{_show(key, value)}: unknown {Proto(proto).name} state; one of {names}") \
                from None
    raise TypeError(f"{_show(key, value)}: a state is a {cls.__name__} or its name, not {type(value).__name__}")


def _one_or_many(key: str, value: object, one: Tuple[type, ...], what: str) -> List[object]:
    """One item of the types `one`, or an iterable of items (not a str's characters, nor the ints of
    bytes, nor a mapping's keys, nor a bool or None): a list to check item by item."""
    if isinstance(value, one) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, (bool, int, bytes, bytearray, dict)) and value is not None:
        try:
            items: List[object] = list(value)  # type: ignore[call-overload]
            return items
        except TypeError:
            pass
    raise TypeError(f"{_show(key, value)}: {what}, not {type(value).__name__}")


def check_status(key: str, value: object, negation: bool) -> Tuple[int, int]:
    """(bits that must be set, bits that must be clear): Status flags, a name, or an iterable of them;
    with ``negation`` a name may start with "!" (that bit must be clear)."""
    words = _one_or_many(key, value, (Status, str), "a status is a pynfct.Status, a name or a list of them")
    on = off = 0
    for w in words:
        if isinstance(w, Status):
            on |= int(w)
        elif isinstance(w, str):
            neg = w.startswith("!")
            name = w[1:] if neg else w
            if neg and not negation:
                raise ParameterError(f"{_show(key, value)}: '!' (must not be set) is for filters of dump() "
                                     f"and delete() only")
            try:
                bit = int(Status[name.upper()])
            except KeyError:
                raise ParameterError(f"{_show(key, value)}: unknown status {name!r}; one of "
                                     f"{', '.join(Status.__members__)}") from None
            if neg:
                off |= bit
            else:
                on |= bit
        else:
            raise TypeError(f"{_show(key, value)}: a status is a pynfct.Status or a name, not {type(w).__name__}")
    if on & off:
        raise ParameterError(f"{_show(key, value)}: a status both set and not set")
    return on, off


def check_labels(key: str, value: object) -> Tuple[Union[str, int], ...]:
    """Label names (resolved with the handle's label map) or bit numbers 0-127; one, or an iterable."""
    items = _one_or_many(key, value, (str, int), "labels are names or bit numbers")
    out: List[Union[str, int]] = []
    for item in items:
        if isinstance(item, str):
            if not item or "," in item:
                raise ParameterError(f"{_show(key, value)}: {item!r} is not a label name")
            out.append(item)
        else:
            out.append(check_int(key, item, LABEL_BITS - 1, "a label bit", shown=value))
    if not out:
        raise ParameterError(f"{_show(key, value)}: no labels")
    return tuple(out)


def check_nat_address(key: str, value: object) -> Tuple[Tuple[int, bytes], Optional[int]]:
    """An address, or an (address, port) pair -> ((family, address), port or None)."""
    port = None
    address = value
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ParameterError(f"{_show(key, value)}: an address or (address, port)")
        address, port = value
        port = check_int(key, port, U16, "a port", shown=value)
    family, addr, _ = check_address(key, address)
    return (family, addr), port


def check_nat(key: str, value: object) -> Tuple[Optional[Tuple[int, bytes]], Optional[int]]:
    """True (NATed at all), an IPv4 address, or an (address, port) pair (as a filter)."""
    if value is True:
        return None, None
    if value is False:
        raise ParameterError(f"{_show(key, value)}: leave the keyword out to not filter on NAT")
    (family, addr), port = check_nat_address(key, value)
    if family == Family.IPV6:
        # conntrack compares only IPv4 NAT addresses: an IPv6 one would match every NATed entry.
        raise ParameterError(f"{_show(key, value)}: IPv6 NAT addresses cannot be matched")
    return (family, addr), port
