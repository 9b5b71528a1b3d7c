# cython: language_level=3
"""The kernel-side event filter: a BPF socket filter built from conntrack's filter.

Filters the kernel can apply (protocol, TCP state, IPv4/IPv6 source and destination with a netmask,
mark) are attached as a BPF socket filter built by libnetfilter_conntrack (nfct_filter_*): events it
rejects never reach the socket buffer. It only ever lets through more than conntrack would show; the
exact choice is still ct_filter_reject(), conntrack's own filter, run on every event.
"""
from libc.stdint cimport uint8_t, uint32_t

from _nfct.libnfct cimport *
from _nfct.sysapi cimport ntohl
from _nfct.filter cimport ct_filter

from _nfct.constants cimport O_COMPARISON, O_MASK_SRC, O_MASK_DST, O_MARK

cdef enum:
    AF_INET = 2
    AF_INET6 = 10


cdef void add_ip(nfct_filter *flt, bint v6, bint dst, const uint32_t *addr, const uint32_t *mask) noexcept nogil:
    cdef nfct_filter_ipv4 f4
    cdef nfct_filter_ipv6 f6
    cdef int i
    if not v6:
        f4.addr = ntohl(addr[0])
        f4.mask = ntohl(mask[0]) if mask != NULL else 0xffffffff
        nfct_filter_add_attr(flt, NFCT_FILTER_DST_IPV4 if dst else NFCT_FILTER_SRC_IPV4, &f4)
        return
    for i in range(4):
        f6.addr[i] = ntohl(addr[i])
        f6.mask[i] = ntohl(mask[i]) if mask != NULL else 0xffffffff
    nfct_filter_add_attr(flt, NFCT_FILTER_DST_IPV6 if dst else NFCT_FILTER_SRC_IPV6, &f6)


cdef int attach_filter(int fd, const ct_filter *f) noexcept nogil:
    """Attach what the kernel can check of conntrack's filter; 1 if attached, 0 if nothing, -1 on error.

    Each block the library emits lets an event through when the attribute is missing, and each
    compares a superset of what conntrack compares (nfct_cmp with NFCT_CMP_MASK rejects an event
    lacking a template attribute; filter_mark rejects an event without a mark).
    """
    cdef nfct_filter *flt = nfct_filter_create()
    cdef const nf_conntrack *obj = f.obj
    cdef nfct_filter_proto st
    cdef nfct_filter_dump_mark mark
    cdef int n = 0, ret, d
    cdef bint v6
    cdef uint8_t proto
    cdef nf_conntrack_attr a4[2]
    cdef nf_conntrack_attr a6[2]
    cdef unsigned int opt_mask[2]
    a4[0] = ATTR_ORIG_IPV4_SRC
    a4[1] = ATTR_ORIG_IPV4_DST
    a6[0] = ATTR_ORIG_IPV6_SRC
    a6[1] = ATTR_ORIG_IPV6_DST
    opt_mask[0] = O_MASK_SRC
    opt_mask[1] = O_MASK_DST
    if flt == NULL:
        return -1
    if f.options & O_COMPARISON:
        if nfct_attr_is_set(obj, ATTR_ORIG_L4PROTO):
            proto = nfct_get_attr_u8(obj, ATTR_ORIG_L4PROTO)
            nfct_filter_add_attr_u32(flt, NFCT_FILTER_L4PROTO, proto)
            n += 1
            if proto == 6 and nfct_attr_is_set(obj, ATTR_TCP_STATE) and nfct_get_attr_u8(obj, ATTR_TCP_STATE) < 16:
                st.proto = 6
                st.state = nfct_get_attr_u8(obj, ATTR_TCP_STATE)
                nfct_filter_add_attr(flt, NFCT_FILTER_L4PROTO_STATE, &st)
                n += 1
        for d in range(2):
            if nfct_attr_is_set(obj, a4[d]):
                add_ip(flt, False, d == 1, <const uint32_t *>nfct_get_attr(obj, a4[d]), NULL)
                n += 1
            elif nfct_attr_is_set(obj, a6[d]):
                add_ip(flt, True, d == 1, <const uint32_t *>nfct_get_attr(obj, a6[d]), NULL)
                n += 1
    for d in range(2):
        if f.options & opt_mask[d] and (f.family == AF_INET or f.family == AF_INET6):
            v6 = f.family == AF_INET6
            add_ip(flt, v6, d == 1, f.net[d].network, f.net[d].netmask)
            n += 1
    if f.options & O_MARK:
        mark.val = f.mark_value
        mark.mask = f.mark_mask
        nfct_filter_add_attr(flt, NFCT_FILTER_MARK, &mark)
        n += 1
    ret = 0
    if n:
        ret = 1 if nfct_filter_attach(fd, flt) == 0 else -1
    nfct_filter_destroy(flt)
    return ret
