from libc.stdint cimport uint8_t, uint16_t, uint32_t

from _nfct.libmnl cimport mnl_socket, mnl_cb_t, mnl_nlmsg_put_header, mnl_nlmsg_put_extra_header
from _nfct.netlink cimport nlmsghdr, nfgenmsg, NLM_F_REQUEST, NFNETLINK_V0


cdef inline nlmsghdr *put_nfnl_header(char *buf, uint16_t subsys, uint16_t type, uint16_t flags,
                                      uint8_t family, uint32_t seq) noexcept nogil:
    """Start an nfnetlink request at buf: the netlink header and the nfgenmsg of `family`."""
    cdef nlmsghdr *nlh = mnl_nlmsg_put_header(buf)
    cdef nfgenmsg *nfh
    nlh.nlmsg_type = (subsys << 8) | type
    nlh.nlmsg_flags = NLM_F_REQUEST | flags
    nlh.nlmsg_seq = seq
    nfh = <nfgenmsg *>mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg))
    nfh.nfgen_family = family
    nfh.version = NFNETLINK_V0
    nfh.res_id = 0
    return nlh


cdef class NfctSocket:
    cdef mnl_socket *mnl
    cdef readonly unsigned int portid
    cdef unsigned int seq

    cdef int fd(self) noexcept nogil
    cdef nlmsghdr *put_header(self, char *buf, uint16_t subsys, uint16_t type,
                              uint16_t flags, uint8_t family) noexcept nogil
    cdef int talk(self, nlmsghdr *nlh, mnl_cb_t cb, void *data) except -1
    cdef int close_(self) noexcept
