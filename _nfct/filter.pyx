# cython: language_level=3
"""Which entries a command keeps: conntrack's nfct_filter(), run in C on every dumped entry.

The template objects are built with the same nfct_set_attr_*() calls conntrack makes, and compared with
the same library function (nfct_cmp), so pynfct keeps exactly the entries conntrack keeps. Where the
kernel can drop entries before they are copied to userspace (mark, status, family, exact tuple fields),
the dump request says so; the userspace check still runs, so the kernel filter only ever saves work.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from _nfct.libnfct cimport *
from _nfct.libmnl cimport *
from _nfct.netlink cimport *
from _nfct.sysapi cimport htons, htonl

from _nfct.constants cimport (O_ORIG_SRC, O_ORIG_DST, O_REPL_SRC, O_REPL_DST, O_PROTO, O_MASK_SRC, O_MASK_DST,
                              O_SRC_NAT, O_DST_NAT, O_ANY_NAT, O_MARK, O_COMPARISON, O_ZONE)

from _nfct.constants import ATTR_KIND as _ATTR_KIND
from _nfct.errors import ParameterError


cdef enum:
    AF_INET = 2
    AF_INET6 = 10
    DIR_SRC = 0
    DIR_DST = 1

# CTA_FILTER_F_* of the kernel's nf_internals.h (not in the UAPI headers).
cdef enum:
    CTA_FILTER_F_CTA_IP_SRC = 1 << 0
    CTA_FILTER_F_CTA_IP_DST = 1 << 1
    CTA_FILTER_F_CTA_TUPLE_ZONE = 1 << 2
    CTA_FILTER_F_CTA_PROTO_NUM = 1 << 3
    CTA_FILTER_F_CTA_PROTO_SRC_PORT = 1 << 4
    CTA_FILTER_F_CTA_PROTO_DST_PORT = 1 << 5

cdef int famdir2attr[2][2]
famdir2attr[0][0] = ATTR_ORIG_IPV4_SRC
famdir2attr[0][1] = ATTR_ORIG_IPV4_DST
famdir2attr[1][0] = ATTR_ORIG_IPV6_SRC
famdir2attr[1][1] = ATTR_ORIG_IPV6_DST


cdef int _nat_side(const nf_conntrack *obj, const nf_conntrack *ct, nf_conntrack_attr ip_attr,
                   nf_conntrack_attr port_attr, unsigned int is_nat, unsigned int is_pat,
                   nf_conntrack_attr repl_ip, nf_conntrack_attr repl_port) noexcept nogil:
    """Does `ct` carry the NAT (SNAT or DNAT) that the template asks for?"""
    cdef int check_address = 0, check_port = 0, has = 0, ret
    if nfct_attr_is_set(obj, ip_attr):
        check_address = 1
        if nfct_getobjopt(ct, is_nat) and nfct_get_attr_u32(obj, ip_attr) == nfct_get_attr_u32(ct, repl_ip):
            has = 1
    if nfct_attr_is_set(obj, port_attr):
        check_port = 1
        ret = (nfct_getobjopt(ct, is_pat)
               and nfct_get_attr_u16(obj, port_attr) == nfct_get_attr_u16(ct, repl_port))
        if check_address and has and not ret:
            has = 0       # the address matches but the port does not
        if not check_address and ret:
            has = 1
    if not check_address and not check_port and (nfct_getobjopt(ct, is_nat) or nfct_getobjopt(ct, is_pat)):
        has = 1
    return has


cdef int _filter_nat(const ct_filter *f, const nf_conntrack *ct) noexcept nogil:
    cdef bint any_nat = f.options & O_ANY_NAT
    cdef bint want_s = any_nat or (f.options & O_SRC_NAT)
    cdef bint want_d = any_nat or (f.options & O_DST_NAT)
    cdef int has_s = 0, has_d = 0
    # As conntrack: only the IPv4 NAT address is compared (an IPv6 NAT filter matches on the port or
    # on "is NATed" alone).
    if want_s:
        has_s = _nat_side(f.obj, ct, ATTR_SNAT_IPV4, ATTR_SNAT_PORT, NFCT_GOPT_IS_SNAT, NFCT_GOPT_IS_SPAT,
                          ATTR_REPL_IPV4_DST, ATTR_REPL_PORT_DST)
    if want_d:
        has_d = _nat_side(f.obj, ct, ATTR_DNAT_IPV4, ATTR_DNAT_PORT, NFCT_GOPT_IS_DNAT, NFCT_GOPT_IS_DPAT,
                          ATTR_REPL_IPV4_SRC, ATTR_REPL_PORT_SRC)
    if any_nat:
        return not (has_s or has_d)
    if (f.options & O_SRC_NAT) and (f.options & O_DST_NAT):
        return not (has_s and has_d)
    if f.options & O_SRC_NAT:
        return not has_s
    if f.options & O_DST_NAT:
        return not has_d
    return 0


cdef int _filter_network(const ct_filter *f, const nf_conntrack *ct, int dir) noexcept nogil:
    cdef const uint32_t *addr
    cdef int i
    if nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO) != f.family:
        return 1
    addr = <const uint32_t *>nfct_get_attr(ct, <nf_conntrack_attr>famdir2attr[f.family == AF_INET6][dir])
    if addr == NULL:
        return 1
    if f.family == AF_INET:
        return (addr[0] & f.net[dir].netmask[0]) != f.net[dir].network[0]
    if f.family == AF_INET6:
        for i in range(4):
            if (addr[i] & f.net[dir].netmask[i]) != f.net[dir].network[i]:
                return 1
    return 0


cdef int labels_missing(const nfct_bitmask *want, const nf_conntrack *ct) noexcept nogil:
    """1 when `ct` lacks one of the label bits of `want` (conntrack's filter_label)."""
    cdef const nfct_bitmask *have = <const nfct_bitmask *>nfct_get_attr(ct, ATTR_CONNLABELS)
    cdef unsigned int i
    if have == NULL:
        return 1
    for i in range(nfct_bitmask_maxbit(want) + 1):
        if nfct_bitmask_test_bit(want, i) and not nfct_bitmask_test_bit(have, i):
            return 1
    return 0


cdef int ct_filter_reject(const ct_filter *f, const nf_conntrack *ct) noexcept nogil:
    """1 when conntrack would not show `ct` for this command (nfct_filter in conntrack.c)."""
    if f.options & (O_SRC_NAT | O_DST_NAT | O_ANY_NAT):
        if _filter_nat(f, ct):
            return 1
    if f.status_clear and nfct_get_attr_u32(ct, ATTR_STATUS) & f.status_clear:
        return 1
    if f.options & O_MARK:
        if not (nfct_attr_is_set(ct, ATTR_MARK)
                and (nfct_get_attr_u32(ct, ATTR_MARK) & f.mark_mask) == f.mark_value):
            return 1
    if f.label != NULL and labels_missing(f.label, ct):
        return 1
    if f.options & O_MASK_SRC and _filter_network(f, ct, DIR_SRC):
        return 1
    if f.options & O_MASK_DST and _filter_network(f, ct, DIR_DST):
        return 1
    if f.options & O_COMPARISON and not nfct_cmp(f.obj, ct, NFCT_CMP_ALL | NFCT_CMP_MASK):
        return 1
    return 0


cdef nfct_bitmask *bitmask_of(bits) except? NULL:
    cdef nfct_bitmask *b
    if bits is None:
        return NULL
    b = nfct_bitmask_new(max(bits) if bits else 0)
    if b == NULL:
        raise MemoryError()
    for bit in bits:
        nfct_bitmask_set_bit(b, bit)
    return b


def _attr_name(attr):
    """The Attr member's name, for an error message (the enum is made on first use)."""
    from _nfct.constants import Attr
    return Attr(attr).name


cdef int set_attrs(nf_conntrack *ct, dict attrs) except -1:
    """Replay a template dict as nfct_set_attr_*() calls."""
    cdef bytes raw
    cdef nf_conntrack_attr a
    for attr, value in attrs.items():
        a = <nf_conntrack_attr><int>attr
        kind = _ATTR_KIND[attr]
        if kind == "u8":
            nfct_set_attr_u8(ct, a, value)
        elif kind == "u16":
            nfct_set_attr_u16(ct, a, value)
        elif kind == "u32":
            nfct_set_attr_u32(ct, a, value)
        elif kind == "u64":
            nfct_set_attr_u64(ct, a, value)
        elif kind in ("ip4", "ip6"):
            raw = bytes(value)
            if len(raw) != (4 if kind == "ip4" else 16):
                raise ParameterError(f"{_attr_name(attr)}: address of wrong length")
            nfct_set_attr_l(ct, a, <const char *>raw, len(raw))
        elif kind == "str":
            raw = value.encode() + b"\0"
            nfct_set_attr(ct, a, <const char *>raw)
        elif kind == "bitmask":
            nfct_set_attr(ct, a, bitmask_of(value))   # the object takes ownership
        else:
            raise ParameterError(f"{_attr_name(attr)} cannot be set from a template")
    return 0


cdef class Filter:
    """The compiled filter of a command: anything with the attributes of pynfct.template.Command."""

    def __cinit__(self):
        memset(&self.f, 0, sizeof(ct_filter))
        self.ct = nfct_new()
        self.mask = nfct_new()
        self.exptuple = nfct_new()
        if self.ct == NULL or self.mask == NULL or self.exptuple == NULL:
            raise MemoryError()

    def __init__(self, command, bint kernel_tuple=True, bint prepare_networks=True, bint status_clear=False):
        cdef int d
        cdef const uint32_t *address
        cdef const uint32_t *netmask
        tmpl = command.tmpl
        self.command = command
        self.family = command.family
        self.kernel_tuple = kernel_tuple
        set_attrs(self.ct, tmpl.ct)
        set_attrs(self.mask, tmpl.mask)
        set_attrs(self.exptuple, tmpl.exptuple)
        self.f.options = command.options
        self.f.family = command.family
        self.f.obj = self.ct
        self.f.mark_value, self.f.mark_mask = tmpl.mark
        self.f.label = bitmask_of(tmpl.label)
        if status_clear and tmpl.filter_status_kernel is not None:
            # Also check here the bits the kernel's status filter keeps clear (a kernel without that
            # filter would otherwise let every entry through): the library asks for it, the command
            # line does as conntrack does.
            val, smask = tmpl.filter_status_kernel
            self.f.status_clear = smask & ~val
        if not prepare_networks:
            # conntrack skips nfct_filter_init() for the dying and unconfirmed lists: no network is
            # prepared and the filter family stays 0, so a --mask-src/--mask-dst keeps nothing there.
            self.f.family = 0
            return
        # nfct_filter_init(): turn --mask-src/--mask-dst into networks and drop the exact address.
        for d, opt, need, name in ((DIR_SRC, O_MASK_SRC, O_ORIG_SRC, "src"),
                                   (DIR_DST, O_MASK_DST, O_ORIG_DST, "dst")):
            if not (self.f.options & opt):
                continue
            if not (self.f.options & need):
                raise ParameterError(f"Can't use --mask-{name} without --{name}")
            if self.family not in (AF_INET, AF_INET6):
                raise ParameterError(f"--mask-{name} needs an address family")
            a = <nf_conntrack_attr>famdir2attr[self.family == AF_INET6][d]
            address = <const uint32_t *>nfct_get_attr(self.ct, a)
            netmask = <const uint32_t *>nfct_get_attr(self.mask, a)
            if address == NULL or netmask == NULL:
                raise ParameterError(f"--mask-{name} needs --{name}")
            for i in range(1 if self.family == AF_INET else 4):
                self.f.net[d].network[i] = address[i] & netmask[i]
                self.f.net[d].netmask[i] = netmask[i]
            nfct_attr_unset(self.ct, a)

    def __dealloc__(self):
        if self.f.label != NULL:
            nfct_bitmask_destroy(self.f.label)
        if self.ct != NULL:
            nfct_destroy(self.ct)
        if self.mask != NULL:
            nfct_destroy(self.mask)
        if self.exptuple != NULL:
            nfct_destroy(self.exptuple)

    cdef unsigned int tuple_flags(self, int family, bint reply) noexcept:
        """CTA_FILTER flags the kernel can safely apply for one direction of this template.

        Only exact fields whose kernel match keeps every entry conntrack would keep: IPv4 addresses
        (IPv6 address filters are inverted in Linux 5.8 to 6.18 at least), the protocol, and TCP/UDP
        ports. ICMP fields, CIDR matches and everything else stay in userspace.
        """
        cdef unsigned int flags = 0
        cdef uint8_t proto = nfct_get_attr_u8(self.ct, ATTR_ORIG_L4PROTO)
        cdef unsigned int opts = self.f.options
        if family != AF_INET and family != AF_INET6:
            return 0
        # Only what nfct_cmp() compares, and only attributes an address option set on purpose:
        # --any-nat also writes ORIG_IPV4_SRC as a side effect (conntrack's opt2family_attr has no
        # row for -j), and without a comparison option nothing of the template is compared at all.
        if not (opts & O_COMPARISON):
            return 0
        if family == AF_INET:
            if opts & (O_REPL_SRC if reply else O_ORIG_SRC) and nfct_attr_is_set(self.ct, ATTR_REPL_IPV4_SRC if reply else ATTR_ORIG_IPV4_SRC):
                flags |= CTA_FILTER_F_CTA_IP_SRC
            if opts & (O_REPL_DST if reply else O_ORIG_DST) and nfct_attr_is_set(self.ct, ATTR_REPL_IPV4_DST if reply else ATTR_ORIG_IPV4_DST):
                flags |= CTA_FILTER_F_CTA_IP_DST
        if opts & O_PROTO and nfct_attr_is_set(self.ct, ATTR_ORIG_L4PROTO):
            if not reply:
                flags |= CTA_FILTER_F_CTA_PROTO_NUM
            if proto == 6 or proto == 17:
                if nfct_attr_is_set(self.ct, ATTR_REPL_PORT_SRC if reply else ATTR_ORIG_PORT_SRC):
                    flags |= CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_SRC_PORT
                if nfct_attr_is_set(self.ct, ATTR_REPL_PORT_DST if reply else ATTR_ORIG_PORT_DST):
                    flags |= CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT
        return flags

    @property
    def split_families(self):
        """True when the kernel could filter each family but not both in one request."""
        return (self.kernel_tuple and self.family == 0
                and (self.tuple_flags(AF_INET, False) | self.tuple_flags(AF_INET, True)) != 0)

    cdef int put_dump_filter(self, nlmsghdr *nlh, int family) except -1:
        """Add what the kernel can filter on to a dump request of `family`.

        Mark, status and family go as conntrack sends them; with kernel_tuple, exact tuple fields go
        in a CTA_FILTER (Linux 5.8+) and a nonzero -w in CTA_ZONE.
        """
        cdef nfct_filter_dump *fd = nfct_filter_dump_create()
        cdef nfct_filter_dump_mark m
        cdef unsigned int oflags, rflags
        if fd == NULL:
            raise MemoryError()
        tmpl = self.command.tmpl
        if tmpl.filter_mark_kernel is not None:
            m.val, m.mask = tmpl.filter_mark_kernel
            nfct_filter_dump_set_attr(fd, NFCT_FILTER_DUMP_MARK, &m)
        nfct_filter_dump_set_attr_u8(fd, NFCT_FILTER_DUMP_L3NUM, family)
        if tmpl.filter_status_kernel is not None:
            m.val, m.mask = tmpl.filter_status_kernel
            nfct_filter_dump_set_attr(fd, NFCT_FILTER_DUMP_STATUS, &m)
        nfct_nlmsg_build_filter(nlh, fd)
        nfct_filter_dump_destroy(fd)
        if not self.kernel_tuple:
            return 0
        if (self.f.options & O_ZONE) and nfct_get_attr_u16(self.ct, ATTR_ZONE) != 0:
            # Only nonzero: the kernel's zone 0 misses entries zoned in one direction only.
            mnl_attr_put_u16(nlh, CTA_ZONE, htons(nfct_get_attr_u16(self.ct, ATTR_ZONE)))
        oflags = self.tuple_flags(family, False)
        rflags = self.tuple_flags(family, True)
        if oflags == 0 and rflags == 0:
            return 0
        if oflags:
            self.put_tuple(nlh, CTA_TUPLE_ORIG, oflags, False)
        if rflags:
            self.put_tuple(nlh, CTA_TUPLE_REPLY, rflags, True)
        nest = mnl_attr_nest_start(nlh, CTA_FILTER)
        mnl_attr_put_u32(nlh, CTA_FILTER_ORIG_FLAGS, oflags)     # host byte order, as the kernel reads it
        mnl_attr_put_u32(nlh, CTA_FILTER_REPLY_FLAGS, rflags)
        mnl_attr_nest_end(nlh, nest)
        return 0

    cdef int put_tuple(self, nlmsghdr *nlh, int type, unsigned int flags, bint reply) except -1:
        cdef nlattr *tuple_nest = mnl_attr_nest_start(nlh, type)
        cdef nlattr *nest
        if flags & (CTA_FILTER_F_CTA_IP_SRC | CTA_FILTER_F_CTA_IP_DST):
            nest = mnl_attr_nest_start(nlh, CTA_TUPLE_IP)
            if flags & CTA_FILTER_F_CTA_IP_SRC:
                mnl_attr_put(nlh, CTA_IP_V4_SRC, 4,
                             nfct_get_attr(self.ct, ATTR_REPL_IPV4_SRC if reply else ATTR_ORIG_IPV4_SRC))
            if flags & CTA_FILTER_F_CTA_IP_DST:
                mnl_attr_put(nlh, CTA_IP_V4_DST, 4,
                             nfct_get_attr(self.ct, ATTR_REPL_IPV4_DST if reply else ATTR_ORIG_IPV4_DST))
            mnl_attr_nest_end(nlh, nest)
        if flags & CTA_FILTER_F_CTA_PROTO_NUM:
            nest = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO)
            mnl_attr_put_u8(nlh, CTA_PROTO_NUM, nfct_get_attr_u8(self.ct, ATTR_ORIG_L4PROTO))
            if flags & CTA_FILTER_F_CTA_PROTO_SRC_PORT:
                mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT,
                                 nfct_get_attr_u16(self.ct, ATTR_REPL_PORT_SRC if reply else ATTR_ORIG_PORT_SRC))
            if flags & CTA_FILTER_F_CTA_PROTO_DST_PORT:
                mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT,
                                 nfct_get_attr_u16(self.ct, ATTR_REPL_PORT_DST if reply else ATTR_ORIG_PORT_DST))
            mnl_attr_nest_end(nlh, nest)
        mnl_attr_nest_end(nlh, tuple_nest)
        return 0
