"""Checked values -> the typed template (:class:`pynfct.template.Command`) the C layer runs.

The CLI's parser (a port of conntrack's ``do_parse``) fills the same :class:`Command` from command-line
words; this builder fills it from values that :mod:`pynfct.values` has already checked, with the same
attributes, option bits and side effects conntrack's parser has for the equivalent options (the TCP
flags of the protocol's final check, the missing direction of a create, the address families), so that
a selection means the same to the C layer whichever way it was built. ``tests/unit/test_model.py``
proves it by building both ways and comparing.

What conntrack gets wrong is not copied here: ``--any-nat ADDR`` writes the address into the original
source of conntrack's template (so ``-p tcp -j A.B.C.D`` matches only entries from 2.B.C.D); here it
only sets the NAT addresses.
"""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from .attrs import Attr
from .errors import ParameterError
from .template import Cmd, Command, Opt, Table
from .values import Family, Proto

if TYPE_CHECKING:
    from _nfct.format import LabelMap

# protocol numbers whose tuples carry ports (conntrack's proto-tcp/udp/udplite/sctp/dccp extensions)
PORT_PROTOS = frozenset((Proto.TCP, Proto.UDP, Proto.UDPLITE, Proto.SCTP, Proto.DCCP))
ICMP_PROTOS = frozenset((Proto.ICMP, Proto.ICMPV6))

# the TCP flags conntrack's tcp extension sets in its final check (ip_ct_tcp flags of nf_conntrack_tcp.h)
_TCP_FLAG_SACK_PERM = 0x02
_TCP_FLAG_CLOSE_INIT = 0x04
_TCP_FLAG_BE_LIBERAL = 0x08
_TCP_TIME_WAIT = 7
ATTR_EXP_TIMEOUT = 3   # enum nf_expect_attr of libnetfilter_conntrack

# (ipv4 attr, ipv6 attr, l3proto attr, option bit) of each address keyword
_ADDR = {
    "src": (Attr.ORIG_IPV4_SRC, Attr.ORIG_IPV6_SRC, Attr.ORIG_L3PROTO, Opt.ORIG_SRC),
    "dst": (Attr.ORIG_IPV4_DST, Attr.ORIG_IPV6_DST, Attr.ORIG_L3PROTO, Opt.ORIG_DST),
    "reply_src": (Attr.REPL_IPV4_SRC, Attr.REPL_IPV6_SRC, Attr.REPL_L3PROTO, Opt.REPL_SRC),
    "reply_dst": (Attr.REPL_IPV4_DST, Attr.REPL_IPV6_DST, Attr.REPL_L3PROTO, Opt.REPL_DST),
}
_MASK_OPT = {"src": Opt.MASK_SRC, "dst": Opt.MASK_DST}

# port-like keyword -> (attribute, l4proto attribute)
PORT_ATTRS = {
    "sport": (Attr.ORIG_PORT_SRC, Attr.ORIG_L4PROTO), "dport": (Attr.ORIG_PORT_DST, Attr.ORIG_L4PROTO),
    "reply_sport": (Attr.REPL_PORT_SRC, Attr.REPL_L4PROTO), "reply_dport": (Attr.REPL_PORT_DST, Attr.REPL_L4PROTO),
    "srckey": (Attr.ORIG_PORT_SRC, Attr.ORIG_L4PROTO), "dstkey": (Attr.ORIG_PORT_DST, Attr.ORIG_L4PROTO),
    "reply_srckey": (Attr.REPL_PORT_SRC, Attr.REPL_L4PROTO), "reply_dstkey": (Attr.REPL_PORT_DST, Attr.REPL_L4PROTO),
}
_STATE_ATTR = {Proto.TCP: Attr.TCP_STATE, Proto.SCTP: Attr.SCTP_STATE, Proto.DCCP: Attr.DCCP_STATE}
_ZONE = {"zone": (Attr.ZONE, Opt.ZONE), "orig_zone": (Attr.ORIG_ZONE, Opt.ORIG_ZONE),
         "reply_zone": (Attr.REPL_ZONE, Opt.REPL_ZONE)}


# option bits as plain ints: IntFlag arithmetic costs a microsecond an operation
_O = {name: int(member) for name, member in Opt.__members__.items()}


def netmask(prefixlen: int, nbytes: int) -> bytes:
    bits = nbytes * 8
    return (((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1)).to_bytes(nbytes, "big")


class Builder:
    """Fills one Command. Callers add values in conntrack's natural order (addresses, protocol,
    protocol options, the rest) and call :meth:`finish` last."""

    __slots__ = ("cmd", "ct", "options", "family", "protonum")

    def __init__(self, command: Cmd, table: Table = Table.CONNTRACK) -> None:
        self.cmd = Command(command=command, table=table)
        self.ct: Dict[Attr, Any] = self.cmd.tmpl.ct
        self.options = 0
        self.family = 0
        self.protonum: Optional[int] = None

    def set_family(self, key: str, family: int) -> None:
        family = int(family)
        if self.family == 0:
            self.family = family
        elif self.family != family:
            name = {2: "IPv4", 10: "IPv6"}
            raise ParameterError(f"{key}: an {name.get(family, family)} value where the other addresses (or "
                                 f"family) are {name.get(self.family, self.family)}")

    def family_option(self, family: Family) -> None:
        self.options |= _O["FAMILY"]
        self.set_family("family", family)

    def address(self, key: str, family: int, addr: bytes, prefixlen: int) -> None:
        """src/dst/reply_src/reply_dst; a prefix shorter than the address is a network (src, dst)."""
        a4, a6, l3, opt = _ADDR[key]
        self.set_family(key, family)
        self.options |= int(opt)
        self.ct[a4 if family == Family.IPV4 else a6] = addr
        self.ct[l3] = int(family)
        full = 32 if family == Family.IPV4 else 128
        if prefixlen != full:
            mask = self.cmd.tmpl.mask
            self.options |= int(_MASK_OPT[key])
            mask[a4 if family == Family.IPV4 else a6] = netmask(prefixlen, len(addr))
            mask[Attr.ORIG_L3PROTO] = int(family)

    def expect_address(self, key: str, family: int, addr: bytes, mask_addr: bytes) -> None:
        """--tuple-src/--tuple-dst and their --mask-src/--mask-dst (the expectation table)."""
        src = key == "src"
        a4, a6 = ((Attr.ORIG_IPV4_SRC, Attr.ORIG_IPV6_SRC) if src else (Attr.ORIG_IPV4_DST, Attr.ORIG_IPV6_DST))
        self.set_family("tuple_" + key, family)
        self.options |= (_O["EXP_SRC"] | _O["MASK_SRC"]) if src else (_O["EXP_DST"] | _O["MASK_DST"])
        for obj, value in ((self.cmd.tmpl.exptuple, addr), (self.cmd.tmpl.mask, mask_addr)):
            obj[a4 if family == Family.IPV4 else a6] = value
            obj[Attr.ORIG_L3PROTO] = int(family)

    def proto(self, protonum: int) -> None:
        protonum = int(protonum)
        self.options |= _O["PROTO"]
        self.protonum = protonum
        self.cmd.protonum = protonum
        self.ct[Attr.ORIG_L4PROTO] = protonum

    def port(self, key: str, value: int) -> None:
        attr, l4 = PORT_ATTRS[key]
        assert self.protonum is not None
        self.ct[attr] = socket.htons(value)
        self.ct[l4] = self.protonum

    def expect_port(self, obj: str, key: str, value: int) -> None:
        attr = Attr.ORIG_PORT_SRC if key == "sport" else Attr.ORIG_PORT_DST
        target = self.cmd.tmpl.exptuple if obj == "tuple" else self.cmd.tmpl.mask
        assert self.protonum is not None
        target[attr] = socket.htons(value)
        target[Attr.ORIG_L4PROTO] = self.protonum

    def state(self, value: int) -> None:
        assert self.protonum is not None
        self.ct[_STATE_ATTR[Proto(self.protonum)]] = int(value)

    def icmp(self, key: str, value: int) -> None:
        attr = {"icmp_type": Attr.ICMP_TYPE, "icmp_code": Attr.ICMP_CODE, "icmp_id": Attr.ICMP_ID}[key]
        self.ct[attr] = socket.htons(value) if key == "icmp_id" else value
        self.ct[Attr.ORIG_L4PROTO] = self.protonum
        if Attr.REPL_L3PROTO in self.ct:
            self.ct[Attr.REPL_L4PROTO] = self.protonum

    def vtag(self, key: str, value: int) -> None:
        self.ct[Attr.SCTP_VTAG_ORIG if key == "orig_vtag" else Attr.SCTP_VTAG_REPL] = socket.htonl(value)

    def role(self, value: int) -> None:
        self.ct[Attr.DCCP_ROLE] = int(value)

    def timeout(self, seconds: int) -> None:
        self.options |= _O["TIMEOUT"]
        self.ct[Attr.TIMEOUT] = seconds
        self.cmd.tmpl.exp[ATTR_EXP_TIMEOUT] = seconds    # -t is the expectation's timeout too

    def status(self, on: int, off: int) -> None:
        """-u: the bits to have, and (filters) the bits that must be clear."""
        tmpl = self.cmd.tmpl
        self.options |= _O["STATUS"]
        self.ct[Attr.STATUS] = on
        mask = (on | off) if off else on
        tmpl.mark = (on, tmpl.mark[1])          # conntrack's -u also writes the mark's value
        tmpl.filter_status_kernel = (on, mask)

    def mark(self, value: int, mask: int) -> None:
        self.options |= _O["MARK"]
        self.cmd.tmpl.mark = (value, mask)
        self.cmd.tmpl.filter_mark_kernel = (value, mask)

    def u32(self, key: str, value: int) -> None:
        attr, opt = {"id": (Attr.ID, Opt.ID)}[key]
        self.options |= int(opt)
        self.ct[attr] = value

    def zone(self, key: str, value: int) -> None:
        attr, opt = _ZONE[key]
        self.options |= int(opt)
        self.ct[attr] = value

    def nat(self, key: str, addr: Optional[Tuple[int, bytes]], port: Optional[int]) -> None:
        """snat/dnat/any_nat: NATed at all, or to this address (and port)."""
        self.options |= _O[{"snat": "SRC_NAT", "dnat": "DST_NAT", "any_nat": "ANY_NAT"}[key]]
        sides = {"snat": "n", "dnat": "g", "any_nat": "gn"}[key]
        if addr is not None:
            family, raw = addr
            self.set_family(key, family)
            if key != "any_nat":
                self.ct[Attr.ORIG_L3PROTO] = int(family)
            for side in sides:
                if family == Family.IPV4:
                    self.ct[Attr.SNAT_IPV4 if side == "n" else Attr.DNAT_IPV4] = raw
                else:
                    self.ct[Attr.SNAT_IPV6 if side == "n" else Attr.DNAT_IPV6] = raw
                if port is not None:
                    self.ct[Attr.SNAT_PORT if side == "n" else Attr.DNAT_PORT] = socket.htons(port)

    def labels(self, key: str, names: Tuple[object, ...], labelmap: Optional["LabelMap"],
               modify: bool) -> None:
        bits = set()
        for item in names:
            if isinstance(item, int):
                bits.add(item)
                continue
            if labelmap is None:
                raise ParameterError(f"{key}={item!r}: no label map to find the name in")
            bit = labelmap.bit(str(item))
            if bit < 0:
                raise ParameterError(f"{key}={item!r}: unknown label (not in the label map)")
            bits.add(bit)
        tmpl = self.cmd.tmpl
        if modify:
            self.options |= _O["ADD_LABEL"] if key != "del_labels" else _O["DEL_LABEL"]
            tmpl.label_modify = bits if tmpl.label_modify is None else tmpl.label_modify | bits
        else:
            self.options |= _O["LABEL"]
            tmpl.label = bits

    def del_all_labels(self) -> None:
        self.options |= _O["DEL_LABEL"]

    def finish(self) -> Command:
        cmd = self.cmd
        ct = self.ct
        command = cmd.command
        if self.family == 0 and command not in (Cmd.CT_LIST, Cmd.CT_UPDATE, Cmd.CT_DELETE, Cmd.CT_GET,
                                                Cmd.CT_FLUSH, Cmd.CT_EVENT):
            self.family = socket.AF_INET
        proto = self.protonum
        if proto is not None:
            if proto == Proto.TCP:
                flags = _TCP_FLAG_BE_LIBERAL | _TCP_FLAG_SACK_PERM
                if int(ct.get(Attr.TCP_STATE, 0)) >= _TCP_TIME_WAIT:
                    flags |= _TCP_FLAG_CLOSE_INIT
                for a in (Attr.TCP_FLAGS_ORIG, Attr.TCP_MASK_ORIG, Attr.TCP_FLAGS_REPL, Attr.TCP_MASK_REPL):
                    ct[a] = flags
            elif proto not in PORT_PROTOS and proto not in ICMP_PROTOS and proto != Proto.GRE:
                # conntrack's "unknown" protocol: the reply direction gets the protocol too
                if Attr.REPL_L3PROTO in ct and Attr.REPL_L4PROTO not in ct:
                    ct[Attr.REPL_L4PROTO] = ct[Attr.ORIG_L4PROTO]
        # Opt(x) builds the flag member each time; a value seen before is looked up
        cmd.options = Opt._value2member_map_.get(self.options) or Opt(self.options)  # type: ignore[assignment]
        cmd.family = self.family
        if command in (Cmd.CT_CREATE, Cmd.CT_ADD):
            orig = self.options & _O["ORIG"]
            repl = self.options & _O["REPL"]
            if orig and not repl:
                cmd.tmpl.setup = "reply"
            elif repl and not orig:
                cmd.tmpl.setup = "original"
        return cmd
