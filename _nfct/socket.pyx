# cython: language_level=3
"""A NETLINK_NETFILTER socket, opened in the network namespace the caller names."""
import os

from libc.errno cimport errno
from libc.stdlib cimport malloc, free

from _nfct.libmnl cimport *
from _nfct.netlink cimport *
from _nfct.sysapi cimport setns, CLONE_NEWNET

from _nfct.errors import from_errno


cdef int _nsfd_of(netns) except -2:
    """An fd for `netns` (None: -1, a name under /run/netns, a path, or an open fd)."""
    if netns is None:
        return -1
    if isinstance(netns, int):
        return os.dup(netns)
    path = os.fspath(netns)
    if os.sep not in path:
        path = os.path.join("/run/netns", path)
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


cdef object _failed(int err, str call, str what):
    """The NfctError of a failed libmnl call; `.call` names it (conntrack's perror() prints that name)."""
    e = from_errno(err, what)
    e.call = call
    return e


def enter_netns(netns):
    """Open the namespace fd once, so later sockets need no path lookups. Returns an owned fd or -1."""
    return _nsfd_of(netns)


cdef class NfctSocket:
    """Owns one mnl_socket; `nsfd` (or -1) picks the namespace it is created in."""

    def __cinit__(self, int nsfd=-1, unsigned int groups=0):
        cdef int own = -1, err = 0
        self.mnl = NULL
        if nsfd >= 0:
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            if setns(nsfd, CLONE_NEWNET) < 0:
                err = errno
                os.close(own)
                raise from_errno(err, "setns into the network namespace")
        try:
            self.mnl = mnl_socket_open(NETLINK_NETFILTER)
            if self.mnl == NULL:
                raise _failed(errno, "mnl_socket_open", "can't open netlink socket")
            if mnl_socket_bind(self.mnl, groups, MNL_SOCKET_AUTOPID) < 0:
                err = errno
                self.close_()
                raise _failed(err, "mnl_socket_bind", "can't bind netlink socket")
        finally:
            if own >= 0:
                # Go back even if the socket failed: the thread must not stay in the test namespace.
                if setns(own, CLONE_NEWNET) < 0:
                    err = errno
                    os.close(own)
                    raise from_errno(err, "setns back to the caller's namespace")
                os.close(own)
        self.portid = mnl_socket_get_portid(self.mnl)
        self.seq = 0

    def __dealloc__(self):
        self.close_()

    cdef int close_(self) noexcept:
        if self.mnl != NULL:
            mnl_socket_close(self.mnl)
            self.mnl = NULL
        return 0

    def close(self):
        self.close_()

    def fileno(self):
        return mnl_socket_get_fd(self.mnl) if self.mnl != NULL else -1

    cdef int fd(self) noexcept nogil:
        return mnl_socket_get_fd(self.mnl)

    cdef nlmsghdr *put_header(self, char *buf, uint16_t subsys, uint16_t type,
                              uint16_t flags, uint8_t family) noexcept nogil:
        self.seq += 1
        return put_nfnl_header(buf, subsys, type, flags, family, self.seq)

    cdef int talk(self, nlmsghdr *nlh, mnl_cb_t cb, void *data) except -1:
        """Send one request and run `cb` on every answer until the kernel says done or acks."""
        cdef size_t bufsize = 65536
        cdef char *buf = <char *>malloc(bufsize)
        cdef ssize_t n
        cdef int ret = 1, err = 0
        if buf == NULL:
            raise MemoryError()
        try:
            with nogil:
                if mnl_socket_sendto(self.mnl, nlh, nlh.nlmsg_len) < 0:
                    err = errno
                else:
                    while ret > MNL_CB_STOP:
                        n = mnl_socket_recvfrom(self.mnl, buf, bufsize)
                        if n < 0:
                            err = errno
                            break
                        ret = mnl_cb_run(buf, n, nlh.nlmsg_seq, self.portid, cb, data)
                        if ret < 0:
                            err = errno
                            break
                        # A plain request without NLM_F_ACK ends with its one answer.
                        if not (nlh.nlmsg_flags & (NLM_F_ACK | NLM_F_DUMP)):
                            break
            if err:
                raise from_errno(err)
        finally:
            free(buf)
        return 0
