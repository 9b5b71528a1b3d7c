from libc.stdint cimport uint8_t, uint16_t, uint32_t

from _nfct.libmnl cimport mnl_socket, mnl_cb_t
from _nfct.netlink cimport nlmsghdr


cdef class NfctSocket:
    cdef mnl_socket *mnl
    cdef readonly unsigned int portid
    cdef unsigned int seq

    cdef int fd(self) noexcept nogil
    cdef nlmsghdr *put_header(self, char *buf, uint16_t subsys, uint16_t type,
                              uint16_t flags, uint8_t family) noexcept nogil
    cdef int talk(self, nlmsghdr *nlh, mnl_cb_t cb, void *data) except -1
    cdef int close_(self) noexcept
