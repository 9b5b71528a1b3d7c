# Writing a whole buffer to a file descriptor, shared by the text paths that run without the GIL.
from libc.errno cimport errno, EINTR
from posix.unistd cimport write


cdef inline int write_all(int fd, const char *buf, size_t len) noexcept nogil:
    """Write all of buf, retrying after signals; returns 0, or the errno of the failed write."""
    cdef size_t off = 0
    cdef ssize_t n
    while off < len:
        n = write(fd, buf + off, len - off)
        if n < 0:
            if errno == EINTR:
                continue
            return errno
        off += n
    return 0
