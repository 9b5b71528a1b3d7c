# Declarations from the C library's network and time headers that libc.*/posix.* of Cython lack.
from libc.stdint cimport uint16_t, uint32_t


cdef extern from "<arpa/inet.h>" nogil:
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    uint32_t htonl(uint32_t)
    uint32_t ntohl(uint32_t)
    const char *inet_ntop(int af, const void *src, char *dst, unsigned int size)
    int inet_pton(int af, const char *src, void *dst)
    int inet_aton(const char *cp, void *inp)


cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)

    ctypedef unsigned int socklen_t
    struct iovec:
        void *iov_base
        size_t iov_len
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    int recvmmsg(int fd, mmsghdr *vmessages, unsigned int vlen, int flags, void *timeout)
    int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
    int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
    int SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, SO_SNDBUF, SO_SNDBUFFORCE, SO_MEMINFO
    int MSG_DONTWAIT, MSG_TRUNC


cdef extern from "<linux/sock_diag.h>" nogil:
    # SO_MEMINFO's array: SK_MEMINFO_DROPS counts datagrams dropped for a full receive buffer.
    int SK_MEMINFO_DROPS
    int SK_MEMINFO_VARS


cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    short POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL


cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    int EFD_CLOEXEC, EFD_NONBLOCK


cdef extern from "<dirent.h>" nogil:
    # /proc walks (which process owns a netlink port)
    ctypedef struct DIR:
        pass
    struct dirent:
        unsigned char d_type
        char d_name[256]
    DIR *opendir(const char *name)
    dirent *readdir(DIR *dirp)
    int closedir(DIR *dirp)
    unsigned char DT_DIR, DT_LNK


cdef extern from "<sys/time.h>" nogil:
    struct timeval:
        long tv_sec
        long tv_usec
    int gettimeofday(timeval *tv, void *tz)


cdef extern from "<sched.h>" nogil:
    int setns(int fd, int nstype)
    int CLONE_NEWNET
