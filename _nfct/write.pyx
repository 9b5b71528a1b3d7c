# cython: language_level=3
"""The single writes: create (-I/-A), delete one entry, flush (-F), and the expectation table.

They go through NfctSocket.talk, one request and its answer, as conntrack sends them. The bulk writes
are pipelined: -D/-U over a dump in _nfct.modify, the creates of a -R file in _nfct.load.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint16_t
from libc.string cimport memset

from _nfct.libmnl cimport *
from _nfct.libnfct cimport *
from _nfct.netlink cimport *
from _nfct.socket cimport NfctSocket
from _nfct.filter cimport set_attrs
from _nfct.flow cimport Flow
from _nfct.request cimport family_of, put_lookup, template_ct, creatable_clone

from _nfct.errors import from_errno


# --- single requests ----------------------------------------------------------------------------------

cdef int _ignore_answer(const nlmsghdr *nlh, void *data) noexcept nogil:
    return MNL_CB_OK


cdef int _talk_ct(int nsfd, uint16_t type, uint16_t flags, uint8_t family, const nf_conntrack *ct) except -1:
    cdef char req[8192]
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh
    memset(req, 0, sizeof(req))    # the builders leave some attribute padding unwritten
    nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK, type, flags, family)
    try:
        if ct != NULL and nfct_nlmsg_build(nlh, ct) < 0:
            raise from_errno(errno, "build request")
        sock.talk(nlh, _ignore_answer, NULL)
    finally:
        sock.close()
    return 0


def create(int nsfd, command):
    """-I or -A: one NEW request with NLM_F_CREATE|NLM_F_EXCL, as conntrack sends it."""
    cdef nf_conntrack *ct = template_ct(command)
    try:
        _talk_ct(nsfd, IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, command.family, ct)
    finally:
        nfct_destroy(ct)


def create_flow(int nsfd, Flow flow not None, bint exclusive=True):
    """Create an entry like a dumped one (see creatable_clone)."""
    cdef nf_conntrack *ct = creatable_clone(flow.ct)
    try:
        _talk_ct(nsfd, IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_ACK | (NLM_F_EXCL if exclusive else 0),
                 family_of(ct), ct)
    finally:
        nfct_destroy(ct)


def delete_flow(int nsfd, Flow flow not None):
    """Delete the entry a dumped Flow describes (by tuple, zone and id)."""
    cdef char req[8192]
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, NLM_F_ACK,
                                         family_of(flow.ct))
    try:
        if put_lookup(nlh, flow.ct, True) < 0:
            raise MemoryError()
        sock.talk(nlh, _ignore_answer, NULL)
    finally:
        sock.close()


def flush(int nsfd, int family):
    """-F: IPCTNL_MSG_CT_DELETE without a tuple. Like conntrack (nfgen version 0), the kernel then
    empties the whole table whatever the family."""
    _talk_ct(nsfd, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family, NULL)


# --- the expectation table ----------------------------------------------------------------------------

cdef int _talk_exp(int nsfd, uint16_t type, uint16_t flags, uint8_t family, const nf_expect *exp) except -1:
    cdef char req[8192]
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK_EXP, type, flags, family)
    try:
        if exp != NULL and nfexp_nlmsg_build(nlh, exp) < 0:
            raise from_errno(errno, "build request")
        sock.talk(nlh, _ignore_answer, NULL)
    finally:
        sock.close()
    return 0


cdef class _Objects:
    """The template objects of an expectation command (conntrack's tmpl.ct, exptuple, mask, exp)."""
    cdef nf_conntrack *ct
    cdef nf_conntrack *exptuple
    cdef nf_conntrack *mask
    cdef nf_expect *exp

    def __cinit__(self, command):
        self.ct = nfct_new()
        self.exptuple = nfct_new()
        self.mask = nfct_new()
        self.exp = nfexp_new()
        if self.ct == NULL or self.exptuple == NULL or self.mask == NULL or self.exp == NULL:
            raise MemoryError()
        tmpl = command.tmpl
        set_attrs(self.ct, tmpl.ct)
        set_attrs(self.exptuple, tmpl.exptuple)
        set_attrs(self.mask, tmpl.mask)
        for attr, value in tmpl.exp.items():
            nfexp_set_attr_u32(self.exp, attr, value)

    def __dealloc__(self):
        if self.exp != NULL:
            nfexp_destroy(self.exp)      # copies of the objects set in it, not these
        if self.ct != NULL:
            nfct_destroy(self.ct)
        if self.exptuple != NULL:
            nfct_destroy(self.exptuple)
        if self.mask != NULL:
            nfct_destroy(self.mask)


cdef uint8_t _exp_family(const nf_conntrack *master, const nf_conntrack *expected) noexcept:
    # the library's choice for nfexp requests: the master's family, else the expected tuple's
    if nfct_attr_is_set(master, ATTR_ORIG_L3PROTO):
        return nfct_get_attr_u8(master, ATTR_ORIG_L3PROTO)
    return nfct_get_attr_u8(expected, ATTR_ORIG_L3PROTO)


def expect_create(int nsfd, command):
    """-I expect: master = the -s/-d/-p tuple, expected = --tuple-src/--tuple-dst, mask = --mask-*."""
    cdef _Objects o = _Objects(command)
    nfexp_set_attr(o.exp, ATTR_EXP_MASTER, o.ct)
    nfexp_set_attr(o.exp, ATTR_EXP_EXPECTED, o.exptuple)
    nfexp_set_attr(o.exp, ATTR_EXP_MASK, o.mask)
    _talk_exp(nsfd, IPCTNL_MSG_EXP_NEW, NLM_F_CREATE | NLM_F_ACK | NLM_F_EXCL, _exp_family(o.ct, o.exptuple),
              o.exp)


def expect_delete(int nsfd, command):
    """-D expect: the expectation whose expected tuple is the -s/-d/-p tuple."""
    cdef _Objects o = _Objects(command)
    nfexp_set_attr(o.exp, ATTR_EXP_EXPECTED, o.ct)
    _talk_exp(nsfd, IPCTNL_MSG_EXP_DELETE, NLM_F_ACK, nfct_get_attr_u8(o.ct, ATTR_ORIG_L3PROTO), o.exp)


def expect_delete_flow(int nsfd, Flow expected not None):
    """Delete the expectation of this expected tuple (an Expectation's `tuple`)."""
    cdef nf_expect *exp = nfexp_new()
    if exp == NULL:
        raise MemoryError()
    try:
        nfexp_set_attr(exp, ATTR_EXP_EXPECTED, expected.ct)
        _talk_exp(nsfd, IPCTNL_MSG_EXP_DELETE, NLM_F_ACK, family_of(expected.ct), exp)
    finally:
        nfexp_destroy(exp)


def expect_get_request(command):
    """-G expect: (family, attributes) of the GET conntrack sends, the -s/-d/-p tuple as master."""
    cdef char buf[8192]
    cdef _Objects o = _Objects(command)
    cdef nlmsghdr *nlh = mnl_nlmsg_put_header(buf)
    cdef size_t start
    mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg))
    start = nlh.nlmsg_len
    nfexp_set_attr(o.exp, ATTR_EXP_MASTER, o.ct)
    if nfexp_nlmsg_build(nlh, o.exp) < 0:
        raise from_errno(errno, "build request")
    return _exp_family(o.ct, o.ct), PyBytes_FromStringAndSize(buf + start, nlh.nlmsg_len - start)


def expect_flush(int nsfd, int family):
    """-F expect."""
    _talk_exp(nsfd, IPCTNL_MSG_EXP_DELETE, NLM_F_ACK, family, NULL)
