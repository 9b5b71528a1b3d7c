from libc.stdint cimport uint32_t

from _nfct.libnfct cimport nf_conntrack, nfct_bitmask
from _nfct.netlink cimport nlmsghdr


cdef struct ct_network:
    uint32_t netmask[4]
    uint32_t network[4]


# What conntrack's nfct_filter() consults for each entry, as plain C data.
cdef struct ct_filter:
    unsigned int options       # CT_OPT_* bits of the command
    int family                 # the command's family (filter_family)
    nf_conntrack *obj          # tmpl.ct: the comparison template
    uint32_t mark_value
    uint32_t mark_mask
    nfct_bitmask *label        # -l: every bit must be set on the entry
    ct_network net[2]          # --mask-src / --mask-dst networks
    uint32_t status_clear      # status bits that must be clear (the library's "!NAME"; conntrack leaves
                               # them to the kernel's dump filter alone)


cdef int ct_filter_reject(const ct_filter *f, const nf_conntrack *ct) noexcept nogil

# Pieces of the filter that -U uses on their own (its filter is not -L's), and the template replay.
cdef int labels_missing(const nfct_bitmask *want, const nf_conntrack *ct) noexcept nogil
cdef int _filter_nat(const ct_filter *f, const nf_conntrack *ct) noexcept nogil
cdef int _filter_network(const ct_filter *f, const nf_conntrack *ct, int dir) noexcept nogil
cdef nfct_bitmask *bitmask_of(bits) except? NULL
cdef int set_attrs(nf_conntrack *ct, dict attrs) except -1


cdef class Filter:
    cdef ct_filter f
    cdef nf_conntrack *ct        # owned template objects
    cdef nf_conntrack *mask
    cdef nf_conntrack *exptuple
    cdef readonly int family
    cdef readonly object command
    cdef public bint kernel_tuple  # add a CTA_FILTER to dumps

    cdef unsigned int tuple_flags(self, int family, bint reply) noexcept
    cdef int put_dump_filter(self, nlmsghdr *nlh, int family) except -1
    cdef int put_tuple(self, nlmsghdr *nlh, int type, unsigned int flags, bint reply) except -1
