"""libnetfilter_conntrack attribute numbers (enum nf_conntrack_attr in libnetfilter_conntrack.h).

A template is a set of (Attr, value) pairs, the same calls conntrack makes with nfct_set_attr_*().
"""
from __future__ import annotations

import enum


class Attr(enum.IntEnum):
    """ATTR_* of libnetfilter_conntrack 1.0.9; values are the C enum values."""

    ORIG_IPV4_SRC = 0  # ATTR_ORIG_IPV4_SRC: u32 bits
    ORIG_IPV4_DST = 1  # ATTR_ORIG_IPV4_DST: u32 bits
    REPL_IPV4_SRC = 2  # ATTR_REPL_IPV4_SRC: u32 bits
    REPL_IPV4_DST = 3  # ATTR_REPL_IPV4_DST: u32 bits
    ORIG_IPV6_SRC = 4  # ATTR_ORIG_IPV6_SRC: u128 bits
    ORIG_IPV6_DST = 5  # ATTR_ORIG_IPV6_DST: u128 bits
    REPL_IPV6_SRC = 6  # ATTR_REPL_IPV6_SRC: u128 bits
    REPL_IPV6_DST = 7  # ATTR_REPL_IPV6_DST: u128 bits
    ORIG_PORT_SRC = 8  # ATTR_ORIG_PORT_SRC: u16 bits
    ORIG_PORT_DST = 9  # ATTR_ORIG_PORT_DST: u16 bits
    REPL_PORT_SRC = 10  # ATTR_REPL_PORT_SRC: u16 bits
    REPL_PORT_DST = 11  # ATTR_REPL_PORT_DST: u16 bits
    ICMP_TYPE = 12  # ATTR_ICMP_TYPE: u8 bits
    ICMP_CODE = 13  # ATTR_ICMP_CODE: u8 bits
    ICMP_ID = 14  # ATTR_ICMP_ID: u16 bits
    ORIG_L3PROTO = 15  # ATTR_ORIG_L3PROTO: u8 bits
    REPL_L3PROTO = 16  # ATTR_REPL_L3PROTO: u8 bits
    ORIG_L4PROTO = 17  # ATTR_ORIG_L4PROTO: u8 bits
    REPL_L4PROTO = 18  # ATTR_REPL_L4PROTO: u8 bits
    TCP_STATE = 19  # ATTR_TCP_STATE: u8 bits
    SNAT_IPV4 = 20  # ATTR_SNAT_IPV4: u32 bits
    DNAT_IPV4 = 21  # ATTR_DNAT_IPV4: u32 bits
    SNAT_PORT = 22  # ATTR_SNAT_PORT: u16 bits
    DNAT_PORT = 23  # ATTR_DNAT_PORT: u16 bits
    TIMEOUT = 24  # ATTR_TIMEOUT: u32 bits
    MARK = 25  # ATTR_MARK: u32 bits
    ORIG_COUNTER_PACKETS = 26  # ATTR_ORIG_COUNTER_PACKETS: u64 bits
    REPL_COUNTER_PACKETS = 27  # ATTR_REPL_COUNTER_PACKETS: u64 bits
    ORIG_COUNTER_BYTES = 28  # ATTR_ORIG_COUNTER_BYTES: u64 bits
    REPL_COUNTER_BYTES = 29  # ATTR_REPL_COUNTER_BYTES: u64 bits
    USE = 30  # ATTR_USE: u32 bits
    ID = 31  # ATTR_ID: u32 bits
    STATUS = 32  # ATTR_STATUS: u32 bits
    TCP_FLAGS_ORIG = 33  # ATTR_TCP_FLAGS_ORIG: u8 bits
    TCP_FLAGS_REPL = 34  # ATTR_TCP_FLAGS_REPL: u8 bits
    TCP_MASK_ORIG = 35  # ATTR_TCP_MASK_ORIG: u8 bits
    TCP_MASK_REPL = 36  # ATTR_TCP_MASK_REPL: u8 bits
    MASTER_IPV4_SRC = 37  # ATTR_MASTER_IPV4_SRC: u32 bits
    MASTER_IPV4_DST = 38  # ATTR_MASTER_IPV4_DST: u32 bits
    MASTER_IPV6_SRC = 39  # ATTR_MASTER_IPV6_SRC: u128 bits
    MASTER_IPV6_DST = 40  # ATTR_MASTER_IPV6_DST: u128 bits
    MASTER_PORT_SRC = 41  # ATTR_MASTER_PORT_SRC: u16 bits
    MASTER_PORT_DST = 42  # ATTR_MASTER_PORT_DST: u16 bits
    MASTER_L3PROTO = 43  # ATTR_MASTER_L3PROTO: u8 bits
    MASTER_L4PROTO = 44  # ATTR_MASTER_L4PROTO: u8 bits
    SECMARK = 45  # ATTR_SECMARK: u32 bits
    ORIG_NAT_SEQ_CORRECTION_POS = 46  # ATTR_ORIG_NAT_SEQ_CORRECTION_POS: u32 bits
    ORIG_NAT_SEQ_OFFSET_BEFORE = 47  # ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE: u32 bits
    ORIG_NAT_SEQ_OFFSET_AFTER = 48  # ATTR_ORIG_NAT_SEQ_OFFSET_AFTER: u32 bits
    REPL_NAT_SEQ_CORRECTION_POS = 49  # ATTR_REPL_NAT_SEQ_CORRECTION_POS: u32 bits
    REPL_NAT_SEQ_OFFSET_BEFORE = 50  # ATTR_REPL_NAT_SEQ_OFFSET_BEFORE: u32 bits
    REPL_NAT_SEQ_OFFSET_AFTER = 51  # ATTR_REPL_NAT_SEQ_OFFSET_AFTER: u32 bits
    SCTP_STATE = 52  # ATTR_SCTP_STATE: u8 bits
    SCTP_VTAG_ORIG = 53  # ATTR_SCTP_VTAG_ORIG: u32 bits
    SCTP_VTAG_REPL = 54  # ATTR_SCTP_VTAG_REPL: u32 bits
    HELPER_NAME = 55  # ATTR_HELPER_NAME: string (30 bytes max)
    DCCP_STATE = 56  # ATTR_DCCP_STATE: u8 bits
    DCCP_ROLE = 57  # ATTR_DCCP_ROLE: u8 bits
    DCCP_HANDSHAKE_SEQ = 58  # ATTR_DCCP_HANDSHAKE_SEQ: u64 bits
    TCP_WSCALE_ORIG = 59  # ATTR_TCP_WSCALE_ORIG: u8 bits
    TCP_WSCALE_REPL = 60  # ATTR_TCP_WSCALE_REPL: u8 bits
    ZONE = 61  # ATTR_ZONE: u16 bits
    SECCTX = 62  # ATTR_SECCTX: string
    TIMESTAMP_START = 63  # ATTR_TIMESTAMP_START: u64 bits, linux >= 2.6.38
    TIMESTAMP_STOP = 64  # ATTR_TIMESTAMP_STOP: u64 bits, linux >= 2.6.38
    HELPER_INFO = 65  # ATTR_HELPER_INFO: variable length
    CONNLABELS = 66  # ATTR_CONNLABELS: variable length
    CONNLABELS_MASK = 67  # ATTR_CONNLABELS_MASK: variable length
    ORIG_ZONE = 68  # ATTR_ORIG_ZONE: u16 bits
    REPL_ZONE = 69  # ATTR_REPL_ZONE: u16 bits
    SNAT_IPV6 = 70  # ATTR_SNAT_IPV6: u128 bits
    DNAT_IPV6 = 71  # ATTR_DNAT_IPV6: u128 bits
    SYNPROXY_ISN = 72  # ATTR_SYNPROXY_ISN: u32 bits
    SYNPROXY_ITS = 73  # ATTR_SYNPROXY_ITS: u32 bits
    SYNPROXY_TSOFF = 74  # ATTR_SYNPROXY_TSOFF: u32 bits


# How a template value is passed to C: u8/u16/u32/u64 are ints exactly as conntrack passes them to
# nfct_set_attr_uN (so ports and vtags are already in network byte order, as conntrack stores them);
# ip4/ip6 are 4/16 bytes in network order; str is a Python str; bitmask is a set of label bit numbers.
ATTR_KIND: dict[Attr, str] = {
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
