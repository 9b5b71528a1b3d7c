# Writing a whole buffer to a file descriptor, shared by the text paths that run without the GIL.
from libc.errno cimport errno, EINTR, EPIPE
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


# Text built in a buffer and written out in large blocks (-L's text, the entries -D/-U print).
cdef struct outbuf_t:
    int fd                   # -1: nothing is written
    char *buf
    size_t len
    size_t cap
    int err                  # errno of a failed write
    bint lossy               # stdio's way (conntrack's): a failed write other than EPIPE loses its text


cdef inline int outbuf_flush(outbuf_t *o) noexcept nogil:
    """Write out what the buffer holds; 0, or -1 with o.err set."""
    o.err = write_all(o.fd, o.buf, o.len)
    if o.err and o.lossy and o.err != EPIPE:
        o.err = 0
    if o.err:
        return -1
    o.len = 0
    return 0
