# Declarations from <libmnl/libmnl.h> (libmnl 1.0.4): only what pynfct uses, C names kept.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from posix.types cimport pid_t
from libc.stddef cimport size_t

ctypedef unsigned int socklen_t

from _nfct.netlink cimport nlmsghdr, nlattr


cdef extern from "libmnl/libmnl.h" nogil:
    struct mnl_socket:
        pass

    size_t MNL_SOCKET_BUFFER_SIZE
    unsigned int MNL_SOCKET_AUTOPID
    int MNL_CB_ERROR
    int MNL_CB_STOP
    int MNL_CB_OK

    ctypedef int (*mnl_cb_t)(const nlmsghdr *nlh, void *data) noexcept nogil
    ctypedef int (*mnl_attr_cb_t)(const nlattr *attr, void *data) noexcept nogil

    mnl_socket *mnl_socket_open(int bus)
    int mnl_socket_bind(mnl_socket *nl, unsigned int groups, pid_t pid)
    int mnl_socket_close(mnl_socket *nl)
    int mnl_socket_get_fd(const mnl_socket *nl)
    unsigned int mnl_socket_get_portid(const mnl_socket *nl)
    ssize_t mnl_socket_sendto(const mnl_socket *nl, const void *req, size_t siz)
    ssize_t mnl_socket_recvfrom(const mnl_socket *nl, void *buf, size_t siz)
    int mnl_socket_setsockopt(const mnl_socket *nl, int type, void *buf, socklen_t len)

    nlmsghdr *mnl_nlmsg_put_header(void *buf)
    void *mnl_nlmsg_put_extra_header(nlmsghdr *nlh, size_t size)
    void *mnl_nlmsg_get_payload(const nlmsghdr *nlh)
    bint mnl_nlmsg_ok(const nlmsghdr *nlh, int len)
    nlmsghdr *mnl_nlmsg_next(const nlmsghdr *nlh, int *len)

    int mnl_cb_run(const void *buf, size_t numbytes, unsigned int seq,
                   unsigned int portid, mnl_cb_t cb_data, void *data)

    uint16_t mnl_attr_get_type(const nlattr *attr)
    uint32_t mnl_attr_get_u32(const nlattr *attr)
    int mnl_attr_type_valid(const nlattr *attr, uint16_t maxtype)
    int mnl_attr_parse(const nlmsghdr *nlh, unsigned int offset, mnl_attr_cb_t cb, void *data)
    void mnl_attr_put_u8(nlmsghdr *nlh, uint16_t type, uint8_t data)
    void mnl_attr_put_u16(nlmsghdr *nlh, uint16_t type, uint16_t data)
    void mnl_attr_put_u32(nlmsghdr *nlh, uint16_t type, uint32_t data)
    void mnl_attr_put(nlmsghdr *nlh, uint16_t type, size_t len, const void *data)
    nlattr *mnl_attr_nest_start(nlmsghdr *nlh, uint16_t type)
    void mnl_attr_nest_end(nlmsghdr *nlh, nlattr *start)

