# cython: language_level=3
"""The numbers of a command that the C layer and pynfct share, as Python enums: the single definition.

* :class:`Attr` -- libnetfilter_conntrack's enum nf_conntrack_attr, and :data:`ATTR_KIND`, how a template
  value of each attribute is passed to ``nfct_set_attr_*``;
* :class:`Cmd`, :class:`Opt`, :class:`Out`, :class:`Table` and :data:`CT_COMPARISON` -- conntrack-tools'
  own command, option and output bits, which no installed header declares (see constants.pxd).

The values come from the C declarations (libnfct.pxd, constants.pxd), so C and Python cannot disagree.
pynfct re-exports these objects (pynfct.attrs, pynfct.template); this module imports nothing from
pynfct. What entries and events carry (Status, EventType) is in _nfct.flags, which the command line's
start does not need.
"""
import enum

from _nfct.libnfct cimport *
# constants.pxd (conntrack-tools' bits) is this module's own: its names are in scope here.

__all__ = ["Attr", "ATTR_KIND", "Cmd", "Opt", "Out", "Table", "CT_COMPARISON"]


class Attr(enum.IntEnum):
    """ATTR_* of libnetfilter_conntrack 1.0.9; values are the C enum values."""

    ORIG_IPV4_SRC = ATTR_ORIG_IPV4_SRC
    ORIG_IPV4_DST = ATTR_ORIG_IPV4_DST
    REPL_IPV4_SRC = ATTR_REPL_IPV4_SRC
    REPL_IPV4_DST = ATTR_REPL_IPV4_DST
    ORIG_IPV6_SRC = ATTR_ORIG_IPV6_SRC
    ORIG_IPV6_DST = ATTR_ORIG_IPV6_DST
    REPL_IPV6_SRC = ATTR_REPL_IPV6_SRC
    REPL_IPV6_DST = ATTR_REPL_IPV6_DST
    ORIG_PORT_SRC = ATTR_ORIG_PORT_SRC
    ORIG_PORT_DST = ATTR_ORIG_PORT_DST
    REPL_PORT_SRC = ATTR_REPL_PORT_SRC
    REPL_PORT_DST = ATTR_REPL_PORT_DST
    ICMP_TYPE = ATTR_ICMP_TYPE
    ICMP_CODE = ATTR_ICMP_CODE
    ICMP_ID = ATTR_ICMP_ID
    ORIG_L3PROTO = ATTR_ORIG_L3PROTO
    REPL_L3PROTO = ATTR_REPL_L3PROTO
    ORIG_L4PROTO = ATTR_ORIG_L4PROTO
    REPL_L4PROTO = ATTR_REPL_L4PROTO
    TCP_STATE = ATTR_TCP_STATE
    SNAT_IPV4 = ATTR_SNAT_IPV4
    DNAT_IPV4 = ATTR_DNAT_IPV4
    SNAT_PORT = ATTR_SNAT_PORT
    DNAT_PORT = ATTR_DNAT_PORT
    TIMEOUT = ATTR_TIMEOUT
    MARK = ATTR_MARK
    ORIG_COUNTER_PACKETS = ATTR_ORIG_COUNTER_PACKETS
    REPL_COUNTER_PACKETS = ATTR_REPL_COUNTER_PACKETS
    ORIG_COUNTER_BYTES = ATTR_ORIG_COUNTER_BYTES
    REPL_COUNTER_BYTES = ATTR_REPL_COUNTER_BYTES
    USE = ATTR_USE
    ID = ATTR_ID
    STATUS = ATTR_STATUS
    TCP_FLAGS_ORIG = ATTR_TCP_FLAGS_ORIG
    TCP_FLAGS_REPL = ATTR_TCP_FLAGS_REPL
    TCP_MASK_ORIG = ATTR_TCP_MASK_ORIG
    TCP_MASK_REPL = ATTR_TCP_MASK_REPL
    MASTER_IPV4_SRC = ATTR_MASTER_IPV4_SRC
    MASTER_IPV4_DST = ATTR_MASTER_IPV4_DST
    MASTER_IPV6_SRC = ATTR_MASTER_IPV6_SRC
    MASTER_IPV6_DST = ATTR_MASTER_IPV6_DST
    MASTER_PORT_SRC = ATTR_MASTER_PORT_SRC
    MASTER_PORT_DST = ATTR_MASTER_PORT_DST
    MASTER_L3PROTO = ATTR_MASTER_L3PROTO
    MASTER_L4PROTO = ATTR_MASTER_L4PROTO
    SECMARK = ATTR_SECMARK
    ORIG_NAT_SEQ_CORRECTION_POS = ATTR_ORIG_NAT_SEQ_CORRECTION_POS
    ORIG_NAT_SEQ_OFFSET_BEFORE = ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE
    ORIG_NAT_SEQ_OFFSET_AFTER = ATTR_ORIG_NAT_SEQ_OFFSET_AFTER
    REPL_NAT_SEQ_CORRECTION_POS = ATTR_REPL_NAT_SEQ_CORRECTION_POS
    REPL_NAT_SEQ_OFFSET_BEFORE = ATTR_REPL_NAT_SEQ_OFFSET_BEFORE
    REPL_NAT_SEQ_OFFSET_AFTER = ATTR_REPL_NAT_SEQ_OFFSET_AFTER
    SCTP_STATE = ATTR_SCTP_STATE
    SCTP_VTAG_ORIG = ATTR_SCTP_VTAG_ORIG
    SCTP_VTAG_REPL = ATTR_SCTP_VTAG_REPL
    HELPER_NAME = ATTR_HELPER_NAME
    DCCP_STATE = ATTR_DCCP_STATE
    DCCP_ROLE = ATTR_DCCP_ROLE
    DCCP_HANDSHAKE_SEQ = ATTR_DCCP_HANDSHAKE_SEQ
    TCP_WSCALE_ORIG = ATTR_TCP_WSCALE_ORIG
    TCP_WSCALE_REPL = ATTR_TCP_WSCALE_REPL
    ZONE = ATTR_ZONE
    SECCTX = ATTR_SECCTX
    TIMESTAMP_START = ATTR_TIMESTAMP_START
    TIMESTAMP_STOP = ATTR_TIMESTAMP_STOP
    HELPER_INFO = ATTR_HELPER_INFO
    CONNLABELS = ATTR_CONNLABELS
    CONNLABELS_MASK = ATTR_CONNLABELS_MASK
    ORIG_ZONE = ATTR_ORIG_ZONE
    REPL_ZONE = ATTR_REPL_ZONE
    SNAT_IPV6 = ATTR_SNAT_IPV6
    DNAT_IPV6 = ATTR_DNAT_IPV6
    SYNPROXY_ISN = ATTR_SYNPROXY_ISN
    SYNPROXY_ITS = ATTR_SYNPROXY_ITS
    SYNPROXY_TSOFF = ATTR_SYNPROXY_TSOFF


# How a template value is passed to C: u8/u16/u32/u64 are ints exactly as conntrack passes them to
# nfct_set_attr_uN (so ports and vtags are already in network byte order, as conntrack stores them);
# ip4/ip6 are 4/16 bytes in network order; str is a Python str; bitmask is a set of label bit numbers;
# bytes is raw bytes.
ATTR_KIND = {
    Attr.ORIG_IPV4_SRC: "ip4",
    Attr.ORIG_IPV4_DST: "ip4",
    Attr.REPL_IPV4_SRC: "ip4",
    Attr.REPL_IPV4_DST: "ip4",
    Attr.ORIG_IPV6_SRC: "ip6",
    Attr.ORIG_IPV6_DST: "ip6",
    Attr.REPL_IPV6_SRC: "ip6",
    Attr.REPL_IPV6_DST: "ip6",
    Attr.ORIG_PORT_SRC: "u16",
    Attr.ORIG_PORT_DST: "u16",
    Attr.REPL_PORT_SRC: "u16",
    Attr.REPL_PORT_DST: "u16",
    Attr.ICMP_TYPE: "u8",
    Attr.ICMP_CODE: "u8",
    Attr.ICMP_ID: "u16",
    Attr.ORIG_L3PROTO: "u8",
    Attr.REPL_L3PROTO: "u8",
    Attr.ORIG_L4PROTO: "u8",
    Attr.REPL_L4PROTO: "u8",
    Attr.TCP_STATE: "u8",
    Attr.SNAT_IPV4: "ip4",
    Attr.DNAT_IPV4: "ip4",
    Attr.SNAT_PORT: "u16",
    Attr.DNAT_PORT: "u16",
    Attr.TIMEOUT: "u32",
    Attr.MARK: "u32",
    Attr.ORIG_COUNTER_PACKETS: "u64",
    Attr.REPL_COUNTER_PACKETS: "u64",
    Attr.ORIG_COUNTER_BYTES: "u64",
    Attr.REPL_COUNTER_BYTES: "u64",
    Attr.USE: "u32",
    Attr.ID: "u32",
    Attr.STATUS: "u32",
    Attr.TCP_FLAGS_ORIG: "u8",
    Attr.TCP_FLAGS_REPL: "u8",
    Attr.TCP_MASK_ORIG: "u8",
    Attr.TCP_MASK_REPL: "u8",
    Attr.MASTER_IPV4_SRC: "ip4",
    Attr.MASTER_IPV4_DST: "ip4",
    Attr.MASTER_IPV6_SRC: "ip6",
    Attr.MASTER_IPV6_DST: "ip6",
    Attr.MASTER_PORT_SRC: "u16",
    Attr.MASTER_PORT_DST: "u16",
    Attr.MASTER_L3PROTO: "u8",
    Attr.MASTER_L4PROTO: "u8",
    Attr.SECMARK: "u32",
    Attr.ORIG_NAT_SEQ_CORRECTION_POS: "u32",
    Attr.ORIG_NAT_SEQ_OFFSET_BEFORE: "u32",
    Attr.ORIG_NAT_SEQ_OFFSET_AFTER: "u32",
    Attr.REPL_NAT_SEQ_CORRECTION_POS: "u32",
    Attr.REPL_NAT_SEQ_OFFSET_BEFORE: "u32",
    Attr.REPL_NAT_SEQ_OFFSET_AFTER: "u32",
    Attr.SCTP_STATE: "u8",
    Attr.SCTP_VTAG_ORIG: "u32",
    Attr.SCTP_VTAG_REPL: "u32",
    Attr.HELPER_NAME: "str",
    Attr.DCCP_STATE: "u8",
    Attr.DCCP_ROLE: "u8",
    Attr.DCCP_HANDSHAKE_SEQ: "u64",
    Attr.TCP_WSCALE_ORIG: "u8",
    Attr.TCP_WSCALE_REPL: "u8",
    Attr.ZONE: "u16",
    Attr.SECCTX: "str",
    Attr.TIMESTAMP_START: "u64",
    Attr.TIMESTAMP_STOP: "u64",
    Attr.HELPER_INFO: "bytes",
    Attr.CONNLABELS: "bitmask",
    Attr.CONNLABELS_MASK: "bitmask",
    Attr.ORIG_ZONE: "u16",
    Attr.REPL_ZONE: "u16",
    Attr.SNAT_IPV6: "ip6",
    Attr.DNAT_IPV6: "ip6",
    Attr.SYNPROXY_ISN: "u32",
    Attr.SYNPROXY_ITS: "u32",
    Attr.SYNPROXY_TSOFF: "u32",
}


# The members have the C names, so the class is made by a call (a class body would look them up as
# Python names).
Cmd = enum.IntFlag("Cmd", [
    ("NONE", CT_NONE),
    ("CT_LIST", CT_LIST),
    ("CT_CREATE", CT_CREATE),
    ("CT_UPDATE", CT_UPDATE),
    ("CT_DELETE", CT_DELETE),
    ("CT_GET", CT_GET),
    ("CT_FLUSH", CT_FLUSH),
    ("CT_EVENT", CT_EVENT),
    ("CT_VERSION", CT_VERSION),
    ("CT_HELP", CT_HELP),
    ("EXP_LIST", EXP_LIST),
    ("EXP_CREATE", EXP_CREATE),
    ("EXP_DELETE", EXP_DELETE),
    ("EXP_GET", EXP_GET),
    ("EXP_FLUSH", EXP_FLUSH),
    ("EXP_EVENT", EXP_EVENT),
    ("CT_COUNT", CT_COUNT),
    ("EXP_COUNT", EXP_COUNT),
    ("CT_STATS", CT_STATS),
    ("EXP_STATS", EXP_STATS),
    ("CT_ADD", CT_ADD),
], module=__name__, qualname="Cmd")
Cmd.__doc__ = """enum ct_command of conntrack-tools (one bit per command and table)."""


class Opt(enum.IntFlag):
    """enum ct_options of conntrack-tools: which options were given."""

    ORIG_SRC = O_ORIG_SRC
    ORIG_DST = O_ORIG_DST
    REPL_SRC = O_REPL_SRC
    REPL_DST = O_REPL_DST
    PROTO = O_PROTO
    TIMEOUT = O_TIMEOUT
    STATUS = O_STATUS
    ZERO = O_ZERO
    EVENT_MASK = O_EVENT_MASK
    EXP_SRC = O_EXP_SRC
    EXP_DST = O_EXP_DST
    MASK_SRC = O_MASK_SRC
    MASK_DST = O_MASK_DST
    NATRANGE = O_NATRANGE
    MARK = O_MARK
    ID = O_ID
    FAMILY = O_FAMILY
    SRC_NAT = O_SRC_NAT
    DST_NAT = O_DST_NAT
    OUTPUT = O_OUTPUT
    SECMARK = O_SECMARK
    BUFFERSIZE = O_BUFFERSIZE
    ANY_NAT = O_ANY_NAT
    ZONE = O_ZONE
    LABEL = O_LABEL
    ADD_LABEL = O_ADD_LABEL
    DEL_LABEL = O_DEL_LABEL
    ORIG_ZONE = O_ORIG_ZONE
    REPL_ZONE = O_REPL_ZONE

    ORIG = O_ORIG
    REPL = O_REPL


#: Options that make -L/-D/-U/-E compare each entry with the template (conntrack's CT_COMPARISON).
CT_COMPARISON = Opt(O_COMPARISON)


class Out(enum.IntFlag):
    """-o output flags (conntrack's _O_* bits), plus pynfct's JSON."""

    XML = OUT_XML
    EXT = OUT_EXT
    TMS = OUT_TMS    # timestamp
    ID = OUT_ID
    KTMS = OUT_KTMS  # ktimestamp
    CL = OUT_CL      # labels
    SAVE = OUT_SAVE
    US = OUT_US      # userspace: conntrack accepts it and sets no bit; kept so -E can print portids
    JSON = OUT_JSON


class Table(enum.IntEnum):
    """The table a command works on."""

    CONNTRACK = TABLE_CONNTRACK
    EXPECT = TABLE_EXPECT
    DYING = TABLE_DYING
    UNCONFIRMED = TABLE_UNCONFIRMED
