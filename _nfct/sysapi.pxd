# Declarations from the C library's network and time headers that libc.*/posix.* of Cython lack.
from libc.stdint cimport uint16_t, uint32_t


cdef extern from "<arpa/inet.h>" nogil:
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    uint32_t htonl(uint32_t)
    uint32_t ntohl(uint32_t)
    const char *inet_ntop(int af, const void *src, char *dst, unsigned int size)


cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int fd, void *buf, size_t n, int flags)


cdef extern from "<sys/time.h>" nogil:
    struct timeval:
        long tv_sec
        long tv_usec
    int gettimeofday(timeval *tv, void *tz)


cdef extern from "<sched.h>" nogil:
    int setns(int fd, int nstype)
    int CLONE_NEWNET
