# cython: language_level=3
"""The create request of a FlowSpec, built straight from its checked values (create_many()).

pynfct.FlowSpec keeps the values it checked in a dict (`_v`: ints, (family, packed address, prefix
length) tuples, ...). Its command() fills the typed template (pynfct.builder) that template_ct() turns
into the object conntrack -I sends; for a bulk create that Python detour costs more than the kernel
takes to create the entry. spec_ct() reads the dict (by its keys; nothing of pynfct is imported here)
and sets the same attributes on the object directly: the tuples with their L3/L4 protocol numbers,
ports and keys in network byte order, the protocol's state and options, the TCP flags of conntrack's
final check, the setup of a missing direction, timeout, status, mark, zones, NAT and labels.
tests/unit/test_spec_encoding.py proves both ways give the same request, byte for byte.

Anything it does not know (a key it does not read, a value of another shape, a label name it cannot
resolve) makes it decline, and the caller takes the template path, which also raises the errors.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memset

from _nfct.libmnl cimport mnl_nlmsg_put_header, mnl_nlmsg_put_extra_header
from _nfct.libnfct cimport *
from _nfct.netlink cimport nlmsghdr, nfgenmsg
from _nfct.sysapi cimport htons, htonl

cdef enum:
    AF_INET = 2
    AF_INET6 = 10
    P_ICMP = 1
    P_TCP = 6
    P_UDP = 17
    P_DCCP = 33
    P_GRE = 47
    P_ICMPV6 = 58
    P_SCTP = 132
    P_UDPLITE = 136
    # the TCP flags conntrack's tcp extension sets in its final check (nf_conntrack_tcp.h)
    TCP_FLAG_SACK_PERM = 0x02
    TCP_FLAG_CLOSE_INIT = 0x04
    TCP_FLAG_BE_LIBERAL = 0x08
    TCP_TIME_WAIT = 7
    LABEL_BITS = 128


cdef inline bint is_port_proto(int p) noexcept nogil:
    return p == P_TCP or p == P_UDP or p == P_UDPLITE or p == P_SCTP or p == P_DCCP


cdef struct counter_t:
    Py_ssize_t left           # keys of the dict not read yet


cdef inline object take(dict v, str key, counter_t *n):
    """v[key] or None; counts what was found."""
    cdef object value
    if n.left == 0:
        return None
    value = v.get(key)
    if value is not None:
        n.left -= 1
    return value


cdef int set_address(nf_conntrack *ct, object value, nf_conntrack_attr a4, nf_conntrack_attr a6,
                     nf_conntrack_attr l3, int *family) except -1:
    """An address value (family, packed, prefix length); 1: not a single address of the family."""
    cdef tuple t
    cdef int fam, plen
    cdef bytes raw
    if type(value) is not tuple or len(<tuple>value) != 3:
        return 1
    t = <tuple>value
    fam = t[0]
    raw = t[1]
    plen = t[2]
    if fam == AF_INET and len(raw) == 4 and plen == 32:
        nfct_set_attr_l(ct, a4, <const char *>raw, 4)
    elif fam == AF_INET6 and len(raw) == 16 and plen == 128:
        nfct_set_attr_l(ct, a6, <const char *>raw, 16)
    else:
        return 1        # a network (FlowSpec takes none): its mask is the template path's
    if family[0] == 0:
        family[0] = fam
    elif family[0] != fam:
        return 1
    nfct_set_attr_u8(ct, l3, fam)
    return 0


cdef int set_nat(nf_conntrack *ct, object value, bint snat, int *family) except -1:
    """snat/dnat ((family, packed), port or None) as the builder's nat(); 1: another shape."""
    cdef tuple t, a
    cdef int fam
    cdef bytes raw
    if type(value) is not tuple or len(<tuple>value) != 2:
        return 1
    t = <tuple>value
    if type(t[0]) is not tuple or len(<tuple>t[0]) != 2:
        return 1
    a = <tuple>t[0]
    fam = a[0]
    raw = a[1]
    if family[0] == 0:
        family[0] = fam
    elif family[0] != fam:
        return 1
    nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO, fam)
    if fam == AF_INET and len(raw) == 4:
        nfct_set_attr_l(ct, ATTR_SNAT_IPV4 if snat else ATTR_DNAT_IPV4, <const char *>raw, 4)
    elif fam == AF_INET6 and len(raw) == 16:
        nfct_set_attr_l(ct, ATTR_SNAT_IPV6 if snat else ATTR_DNAT_IPV6, <const char *>raw, 16)
    else:
        return 1
    if t[1] is not None:
        nfct_set_attr_u16(ct, ATTR_SNAT_PORT if snat else ATTR_DNAT_PORT, htons(<uint16_t>t[1]))
    return 0


cdef int set_labels(nf_conntrack *ct, object value, object labelmap) except -1:
    """The labels to add (bits, or names the label map resolves); 1: a name it cannot resolve."""
    cdef list bits = []
    cdef int bit, top = 0
    cdef nfct_bitmask *b
    if type(value) is not tuple or len(<tuple>value) == 0:
        return 1
    for item in <tuple>value:
        if type(item) is str:
            if labelmap is None:
                return 1
            bit = labelmap.bit(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            bit = item
        else:
            return 1
        if bit < 0 or bit >= LABEL_BITS:
            return 1
        bits.append(bit)
        if bit > top:
            top = bit
    b = nfct_bitmask_new(top)
    if b == NULL:
        raise MemoryError()
    for bit in bits:
        nfct_bitmask_set_bit(b, bit)
    nfct_set_attr(ct, ATTR_CONNLABELS, b)      # the object takes ownership
    return 0


cdef int set_ports(nf_conntrack *ct, dict v, counter_t *n, str k1, str k2, nf_conntrack_attr a1,
                   nf_conntrack_attr a2, nf_conntrack_attr l4, int proto) except -1:
    """The ports (keys for gre) of one direction, in network byte order, with its L4 protocol."""
    cdef object x = take(v, k1, n)
    if x is not None:
        nfct_set_attr_u16(ct, a1, htons(<uint16_t>x))
        nfct_set_attr_u8(ct, l4, proto)
    x = take(v, k2, n)
    if x is not None:
        nfct_set_attr_u16(ct, a2, htons(<uint16_t>x))
        nfct_set_attr_u8(ct, l4, proto)
    return 0


cdef int build(nf_conntrack *ct, dict v, object labelmap, int *family) except -1:
    """Set the attributes; 0, or 1 when the values are not all of the shapes read here."""
    cdef counter_t n
    cdef object x, y
    cdef int proto, state
    cdef bint orig = False, repl = False, icmp_set = False
    cdef uint8_t flags
    n.left = len(v)
    family[0] = 0
    take(v, "family", &n)        # checked against the addresses already; the addresses give the family
    x = take(v, "src", &n)
    y = take(v, "dst", &n)
    if (x is None) != (y is None):
        return 1
    if x is not None:
        orig = True
        if set_address(ct, x, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, ATTR_ORIG_L3PROTO, family) \
                or set_address(ct, y, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, ATTR_ORIG_L3PROTO, family):
            return 1
    x = take(v, "reply_src", &n)
    y = take(v, "reply_dst", &n)
    if (x is None) != (y is None):
        return 1
    if x is not None:
        repl = True
        if set_address(ct, x, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, ATTR_REPL_L3PROTO, family) \
                or set_address(ct, y, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST, ATTR_REPL_L3PROTO, family):
            return 1
    if not (orig or repl):
        return 1
    x = take(v, "proto", &n)
    if x is None:
        return 1
    proto = x
    nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO, proto)
    # ports (keys for gre): both of a direction, in network byte order, with the direction's L4 protocol
    if is_port_proto(proto):
        set_ports(ct, v, &n, "sport", "dport", ATTR_ORIG_PORT_SRC, ATTR_ORIG_PORT_DST, ATTR_ORIG_L4PROTO, proto)
        set_ports(ct, v, &n, "reply_sport", "reply_dport", ATTR_REPL_PORT_SRC, ATTR_REPL_PORT_DST,
                  ATTR_REPL_L4PROTO, proto)
    elif proto == P_GRE:
        set_ports(ct, v, &n, "srckey", "dstkey", ATTR_ORIG_PORT_SRC, ATTR_ORIG_PORT_DST, ATTR_ORIG_L4PROTO, proto)
        set_ports(ct, v, &n, "reply_srckey", "reply_dstkey", ATTR_REPL_PORT_SRC, ATTR_REPL_PORT_DST,
                  ATTR_REPL_L4PROTO, proto)
    # the state (tcp, sctp, dccp)
    x = take(v, "state", &n)
    if x is not None:
        state = x
        if proto == P_TCP:
            nfct_set_attr_u8(ct, ATTR_TCP_STATE, state)
        elif proto == P_SCTP:
            nfct_set_attr_u8(ct, ATTR_SCTP_STATE, state)
        elif proto == P_DCCP:
            nfct_set_attr_u8(ct, ATTR_DCCP_STATE, state)
        else:
            return 1
    else:
        state = -1
    if proto == P_ICMP or proto == P_ICMPV6:
        x = take(v, "icmp_type", &n)
        if x is not None:
            nfct_set_attr_u8(ct, ATTR_ICMP_TYPE, <uint8_t>x)
            icmp_set = True
        x = take(v, "icmp_code", &n)
        if x is not None:
            nfct_set_attr_u8(ct, ATTR_ICMP_CODE, <uint8_t>x)
            icmp_set = True
        x = take(v, "icmp_id", &n)
        if x is not None:
            nfct_set_attr_u16(ct, ATTR_ICMP_ID, htons(<uint16_t>x))
            icmp_set = True
        if icmp_set and repl:
            nfct_set_attr_u8(ct, ATTR_REPL_L4PROTO, proto)
    if proto == P_SCTP:
        x = take(v, "orig_vtag", &n)
        if x is not None:
            nfct_set_attr_u32(ct, ATTR_SCTP_VTAG_ORIG, htonl(<uint32_t>x))
        x = take(v, "reply_vtag", &n)
        if x is not None:
            nfct_set_attr_u32(ct, ATTR_SCTP_VTAG_REPL, htonl(<uint32_t>x))
    if proto == P_DCCP:
        x = take(v, "role", &n)
        if x is not None:
            nfct_set_attr_u8(ct, ATTR_DCCP_ROLE, <uint8_t>x)
    x = take(v, "timeout", &n)
    if x is None:
        return 1
    nfct_set_attr_u32(ct, ATTR_TIMEOUT, <uint32_t>x)
    x = take(v, "status", &n)
    if x is not None:
        nfct_set_attr_u32(ct, ATTR_STATUS, <uint32_t>x)
    x = take(v, "mark", &n)
    if x is not None:
        nfct_set_attr_u32(ct, ATTR_MARK, <uint32_t>x)
    x = take(v, "zone", &n)
    if x is not None:
        nfct_set_attr_u16(ct, ATTR_ZONE, <uint16_t>x)
    x = take(v, "orig_zone", &n)
    if x is not None:
        nfct_set_attr_u16(ct, ATTR_ORIG_ZONE, <uint16_t>x)
    x = take(v, "reply_zone", &n)
    if x is not None:
        nfct_set_attr_u16(ct, ATTR_REPL_ZONE, <uint16_t>x)
    x = take(v, "snat", &n)
    if x is not None and set_nat(ct, x, True, family):
        return 1
    x = take(v, "dnat", &n)
    if x is not None and set_nat(ct, x, False, family):
        return 1
    x = take(v, "labels", &n)
    if x is not None and set_labels(ct, x, labelmap):
        return 1
    if n.left != 0:
        return 1        # a key not read here (or one of another protocol): the template path decides
    if proto == P_TCP:
        # the tcp extension's final check: window tracking off (and re-open from TIME_WAIT)
        flags = TCP_FLAG_BE_LIBERAL | TCP_FLAG_SACK_PERM
        if state >= TCP_TIME_WAIT:
            flags |= TCP_FLAG_CLOSE_INIT
        nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_ORIG, flags)
        nfct_set_attr_u8(ct, ATTR_TCP_MASK_ORIG, flags)
        nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_REPL, flags)
        nfct_set_attr_u8(ct, ATTR_TCP_MASK_REPL, flags)
    elif not is_port_proto(proto) and proto != P_ICMP and proto != P_ICMPV6 and proto != P_GRE:
        # conntrack's "unknown" protocol: the reply direction gets the protocol too
        if repl:
            nfct_set_attr_u8(ct, ATTR_REPL_L4PROTO, proto)
    # conntrack -I sends the missing direction as the inverse of the given one
    if orig and not repl:
        nfct_setobjopt(ct, NFCT_SOPT_SETUP_REPLY)
    elif repl and not orig:
        nfct_setobjopt(ct, NFCT_SOPT_SETUP_ORIGINAL)
    return 0


cdef int spec_ct(dict v, object labelmap, nf_conntrack **out, int *family) except -1:
    """The object to create for a FlowSpec's checked values `v` (label names resolved with
    `labelmap`, a LabelMap or None) in *out, its address family in *family: 0. 1 (nothing in *out):
    not built here, take the template path (FlowSpec.command() and template_ct())."""
    cdef nf_conntrack *ct = nfct_new()
    cdef int ret
    if ct == NULL:
        raise MemoryError()
    try:
        ret = build(ct, v, labelmap, family)
    except BaseException:
        nfct_destroy(ct)
        raise
    if ret != 0:
        nfct_destroy(ct)
        return 1
    out[0] = ct
    return 0


def spec_request(dict v, labelmap=None):
    """(family, request bytes) of the create spec_ct() builds for a FlowSpec's values, framed as
    _nfct.fastparse.create_request() frames the template path's; None where it declines. For tests."""
    cdef char buf[8192]
    cdef nf_conntrack *ct
    cdef int family
    cdef nlmsghdr *nlh
    if spec_ct(v, labelmap, &ct, &family) != 0:
        return None
    memset(buf, 0, sizeof(buf))           # attribute padding is left as it was: compare zeros
    nlh = mnl_nlmsg_put_header(buf)
    mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg))
    nfct_nlmsg_build(nlh, ct)
    nfct_destroy(ct)
    return family, PyBytes_FromStringAndSize(buf, nlh.nlmsg_len)
