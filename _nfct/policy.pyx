# cython: language_level=3
"""The kernel's attribute policy for the messages it sends (conntrack entries and expectations), checked
before libnetfilter_conntrack reads bytes that did not come from a netlink socket.

libnetfilter_conntrack 1.0.9 trusts what it parses. An attribute of a length the kernel never sends
ends the process (exit(1), "ctnetlink kernel ABI is broken"); an expectation's CTA_EXPECT_FN longer than
24 bytes aborts it (an assert); names are copied up to a NUL that may lie past the attribute
(CTA_HELP_NAME, CTA_SECCTX_NAME, CTA_EXPECT_HELP_NAME, CTA_EXPECT_FN), CTA_EXPECT_CLASS is read as 4
bytes whatever its length; a message shorter than its nfgenmsg is read as a huge one; and two nested
levels accept attribute types past the end of the table they fill on the stack (CTA_PROTOINFO takes
types up to CTA_PROTOINFO_TCP_MAX, CTA_EXPECT_NAT up to CTA_MAX).

The bytes entry points (flow.parse_message, dump.parse_batch, events.parse_events, query.parse_expect)
check every message here first and refuse what fails with ValueError. What a netlink socket receives is
not checked, as conntrack does not: it comes from the kernel, which builds it by this policy.
"""
from libc.stdint cimport uint8_t, uint16_t
from libc.string cimport memchr

from _nfct.libmnl cimport mnl_nlmsg_ok, mnl_nlmsg_next
from _nfct.netlink cimport *


cdef enum:
    NTYPES = 64            # attribute types a level may define (the highest, CTA_MAX, is below 32)
    EXPECTFN_MAX = 24      # __NFCT_EXPECTFN_MAX, libnetfilter_conntrack's internal/object.h
    MSG_MIN = 20           # nlmsghdr + nfgenmsg

# What an attribute holds.
cdef enum:
    K_ANY = 0      # not read, or read safely whatever its length (the default)
    K_U8
    K_U16
    K_U32
    K_U64
    K_IN6          # an IPv6 address: 16 bytes
    K_TCP_FLAGS    # struct nf_ct_tcp_flags: 2 bytes
    K_STRING       # a NUL inside the attribute
    K_EXPECTFN     # a string of at most EXPECTFN_MAX bytes, NUL included
    K_NESTED       # empty, or attributes of the level in NEST

# The nested levels, each with its own attribute numbers.
cdef enum:
    L_CT = 0
    L_TUPLE
    L_IP
    L_PROTO
    L_PROTOINFO
    L_TCP
    L_DCCP
    L_SCTP
    L_COUNTERS
    L_NAT_SEQ
    L_HELP
    L_SECCTX
    L_TIMESTAMP
    L_SYNPROXY
    L_EXPECT
    L_EXPECT_NAT
    NLEVELS

cdef uint8_t KIND[NLEVELS][NTYPES]
cdef uint8_t NEST[NLEVELS][NTYPES]
cdef uint16_t MAXTYPE[NLEVELS]     # types above are skipped by the library ...
cdef bint STRICT[NLEVELS]          # ... except here, where they would overflow its table


cdef void level(int lv, int maxtype, bint strict=False):
    MAXTYPE[lv] = maxtype
    STRICT[lv] = strict


cdef void rule(int lv, int t, int kind, int nest=0):
    KIND[lv][t] = kind
    NEST[lv][t] = nest


cdef void _init():
    cdef int t, i
    for t in (L_CT, L_TUPLE, L_IP, L_PROTO, L_PROTOINFO, L_TCP, L_DCCP, L_SCTP, L_COUNTERS, L_NAT_SEQ,
              L_HELP, L_SECCTX, L_TIMESTAMP, L_SYNPROXY, L_EXPECT, L_EXPECT_NAT):
        for i in range(NTYPES):
            KIND[t][i] = K_ANY
            NEST[t][i] = 0
    level(L_CT, CTA_MAX)
    for t in (CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_TUPLE_MASTER):
        rule(L_CT, t, K_NESTED, L_TUPLE)
    for t in (CTA_NAT_SEQ_ADJ_ORIG, CTA_NAT_SEQ_ADJ_REPLY):
        rule(L_CT, t, K_NESTED, L_NAT_SEQ)
    for t in (CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY):
        rule(L_CT, t, K_NESTED, L_COUNTERS)
    rule(L_CT, CTA_PROTOINFO, K_NESTED, L_PROTOINFO)
    rule(L_CT, CTA_HELP, K_NESTED, L_HELP)
    rule(L_CT, CTA_SECCTX, K_NESTED, L_SECCTX)
    rule(L_CT, CTA_TIMESTAMP, K_NESTED, L_TIMESTAMP)
    rule(L_CT, CTA_SYNPROXY, K_NESTED, L_SYNPROXY)
    for t in (CTA_STATUS, CTA_TIMEOUT, CTA_MARK, CTA_SECMARK, CTA_USE, CTA_ID):
        rule(L_CT, t, K_U32)
    rule(L_CT, CTA_ZONE, K_U16)
    # CTA_NAT_SRC/DST (deprecated), CTA_LABELS (any length), CTA_LABELS_MASK: K_ANY

    level(L_TUPLE, CTA_TUPLE_MAX)
    rule(L_TUPLE, CTA_TUPLE_IP, K_NESTED, L_IP)
    rule(L_TUPLE, CTA_TUPLE_PROTO, K_NESTED, L_PROTO)
    rule(L_TUPLE, CTA_TUPLE_ZONE, K_U16)

    level(L_IP, CTA_IP_MAX)
    rule(L_IP, CTA_IP_V4_SRC, K_U32)
    rule(L_IP, CTA_IP_V4_DST, K_U32)
    rule(L_IP, CTA_IP_V6_SRC, K_IN6)
    rule(L_IP, CTA_IP_V6_DST, K_IN6)

    level(L_PROTO, CTA_PROTO_MAX)
    for t in (CTA_PROTO_NUM, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE, CTA_PROTO_ICMPV6_TYPE,
              CTA_PROTO_ICMPV6_CODE):
        rule(L_PROTO, t, K_U8)
    for t in (CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT, CTA_PROTO_ICMP_ID, CTA_PROTO_ICMPV6_ID):
        rule(L_PROTO, t, K_U16)

    level(L_PROTOINFO, CTA_PROTOINFO_MAX, True)
    rule(L_PROTOINFO, CTA_PROTOINFO_TCP, K_NESTED, L_TCP)
    rule(L_PROTOINFO, CTA_PROTOINFO_DCCP, K_NESTED, L_DCCP)
    rule(L_PROTOINFO, CTA_PROTOINFO_SCTP, K_NESTED, L_SCTP)

    level(L_TCP, CTA_PROTOINFO_TCP_MAX)
    for t in (CTA_PROTOINFO_TCP_STATE, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, CTA_PROTOINFO_TCP_WSCALE_REPLY):
        rule(L_TCP, t, K_U8)
    rule(L_TCP, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, K_TCP_FLAGS)
    rule(L_TCP, CTA_PROTOINFO_TCP_FLAGS_REPLY, K_TCP_FLAGS)

    level(L_DCCP, CTA_PROTOINFO_DCCP_MAX)
    rule(L_DCCP, CTA_PROTOINFO_DCCP_STATE, K_U8)
    rule(L_DCCP, CTA_PROTOINFO_DCCP_ROLE, K_U8)
    rule(L_DCCP, CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ, K_U64)

    level(L_SCTP, CTA_PROTOINFO_SCTP_MAX)
    rule(L_SCTP, CTA_PROTOINFO_SCTP_STATE, K_U8)
    rule(L_SCTP, CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, K_U32)
    rule(L_SCTP, CTA_PROTOINFO_SCTP_VTAG_REPLY, K_U32)

    level(L_COUNTERS, CTA_COUNTERS_MAX)
    rule(L_COUNTERS, CTA_COUNTERS_PACKETS, K_U64)
    rule(L_COUNTERS, CTA_COUNTERS_BYTES, K_U64)
    rule(L_COUNTERS, CTA_COUNTERS32_PACKETS, K_U32)
    rule(L_COUNTERS, CTA_COUNTERS32_BYTES, K_U32)

    level(L_NAT_SEQ, CTA_NAT_SEQ_MAX)
    for t in (CTA_NAT_SEQ_CORRECTION_POS, CTA_NAT_SEQ_OFFSET_BEFORE, CTA_NAT_SEQ_OFFSET_AFTER):
        rule(L_NAT_SEQ, t, K_U32)

    level(L_HELP, CTA_HELP_MAX)
    rule(L_HELP, CTA_HELP_NAME, K_STRING)       # CTA_HELP_INFO: copied whatever its length

    level(L_SECCTX, CTA_SECCTX_MAX)
    rule(L_SECCTX, CTA_SECCTX_NAME, K_STRING)

    level(L_TIMESTAMP, CTA_TIMESTAMP_MAX)
    rule(L_TIMESTAMP, CTA_TIMESTAMP_START, K_U64)
    rule(L_TIMESTAMP, CTA_TIMESTAMP_STOP, K_U64)

    level(L_SYNPROXY, CTA_SYNPROXY_MAX)
    for t in (CTA_SYNPROXY_ISN, CTA_SYNPROXY_ITS, CTA_SYNPROXY_TSOFF):
        rule(L_SYNPROXY, t, K_U32)

    level(L_EXPECT, CTA_EXPECT_MAX)
    for t in (CTA_EXPECT_MASTER, CTA_EXPECT_TUPLE, CTA_EXPECT_MASK):
        rule(L_EXPECT, t, K_NESTED, L_TUPLE)
    for t in (CTA_EXPECT_TIMEOUT, CTA_EXPECT_ID, CTA_EXPECT_FLAGS, CTA_EXPECT_CLASS):
        rule(L_EXPECT, t, K_U32)
    rule(L_EXPECT, CTA_EXPECT_HELP_NAME, K_STRING)
    rule(L_EXPECT, CTA_EXPECT_ZONE, K_U16)
    rule(L_EXPECT, CTA_EXPECT_NAT, K_NESTED, L_EXPECT_NAT)
    rule(L_EXPECT, CTA_EXPECT_FN, K_EXPECTFN)

    level(L_EXPECT_NAT, CTA_EXPECT_NAT_MAX, True)
    rule(L_EXPECT_NAT, CTA_EXPECT_NAT_DIR, K_U32)
    rule(L_EXPECT_NAT, CTA_EXPECT_NAT_TUPLE, K_NESTED, L_TUPLE)


# The headers' numbers must fit the tables (a newer kernel header could add types).
assert CTA_MAX < NTYPES and CTA_EXPECT_MAX < NTYPES and CTA_PROTO_MAX < NTYPES
_init()


cdef bint value_ok(int kind, int nest, const char *p, size_t n) noexcept nogil:
    if kind == K_ANY:
        return True
    if kind == K_U8:
        return n == 1
    if kind == K_U16 or kind == K_TCP_FLAGS:
        return n == 2
    if kind == K_U32:
        return n == 4
    if kind == K_U64:
        return n == 8
    if kind == K_IN6:
        return n == 16
    if kind == K_STRING:
        return n > 0 and memchr(p, 0, n) != NULL
    if kind == K_EXPECTFN:
        return 0 < n <= EXPECTFN_MAX and memchr(p, 0, n) != NULL
    # K_NESTED: as libmnl's MNL_TYPE_NESTED (empty, or room for one attribute), then its attributes
    return n == 0 or (n >= <size_t>NLA_HDRLEN and attrs_ok(p, n, nest))


cdef bint attrs_ok(const char *p, size_t n, int lv) noexcept nogil:
    """Are the attributes in p[0:n] whole, and each as the level's policy says?"""
    cdef const nlattr *a
    cdef size_t alen
    cdef uint16_t t
    while n >= <size_t>NLA_HDRLEN:
        a = <const nlattr *>p
        alen = a.nla_len
        if alen < <size_t>NLA_HDRLEN or alen > n:
            return False        # libmnl stops here quietly; the kernel never sends it
        t = a.nla_type & NLA_TYPE_MASK
        if t > MAXTYPE[lv]:
            if STRICT[lv]:
                return False
        elif not value_ok(KIND[lv][t], NEST[lv][t], p + NLA_HDRLEN, alen - NLA_HDRLEN):
            return False
        alen = (alen + 3) & ~(<size_t>3)       # NLA_ALIGN
        if alen >= n:
            break
        p += alen
        n -= alen
    return True


cdef bint message_ok(const nlmsghdr *nlh, bint expect) noexcept nogil:
    """Is this message (its nlmsg_len already checked against the buffer) what the kernel sends for a
    conntrack entry (expect: an expectation)?"""
    if nlh.nlmsg_len < MSG_MIN:
        return False
    return attrs_ok(<const char *>nlh + MSG_MIN, nlh.nlmsg_len - MSG_MIN, L_EXPECT if expect else L_CT)


cdef long batch_bad(const char *buf, size_t len, bint expect) noexcept nogil:
    """The index of the first message of a batch (messages as one recv returns them, walked as libmnl
    walks them) that is refused: a length past the end, or a data message message_ok() refuses; -1 when
    there is none. libmnl compares nlmsg_len as an int, so it walks into a length of 2 GiB or more."""
    cdef const nlmsghdr *nlh = <const nlmsghdr *>buf
    cdef int left = <int>len
    cdef long i = 0
    while mnl_nlmsg_ok(nlh, left):
        if nlh.nlmsg_len > <unsigned int>left:
            return i
        if nlh.nlmsg_type >= 16 and not message_ok(nlh, expect):    # NLMSG_MIN_TYPE: not control
            return i
        i += 1
        nlh = mnl_nlmsg_next(nlh, &left)
    return -1


cdef const nlmsghdr *checked_message(bytes data, bint expect) except NULL:
    """data as one message: ValueError unless its length field fits and message_ok() takes it."""
    cdef const nlmsghdr *nlh = <const nlmsghdr *><const char *>data
    if len(data) < MSG_MIN or nlh.nlmsg_len < MSG_MIN or nlh.nlmsg_len > len(data):
        raise ValueError("not one whole netlink message")
    if not message_ok(nlh, expect):
        raise ValueError(f"not {'an expectation' if expect else 'a conntrack entry'} as the kernel sends it "
                         "(attribute lengths or types)")
    return nlh
