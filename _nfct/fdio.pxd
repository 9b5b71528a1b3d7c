# Writing a whole buffer to a file descriptor, shared by the text paths that run without the GIL.
from libc.errno cimport errno, EINTR, EPIPE
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from posix.unistd cimport write

from _nfct.sysapi cimport pollfd, poll, POLLOUT

cdef enum:
    PIPE_BUF = 4096          # linux/limits.h: a write this small to a pipe with room never blocks
    # After a signal that stops a run, text is written while the reader takes it for this long at most;
    # then only what the output takes without waiting (the program must end within 0.2 s of the
    # signal, also when the reader of the output stopped reading).
    WRITE_MS = 50
    # With a stop callback, a write never waits in write(): the output is polled for room this long at
    # a time, and the callback asked between (a signal handled while no write waited interrupts none).
    STOP_POLL_MS = 20


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


cdef inline double mono_now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline size_t line_chunk(const char *buf, size_t off, size_t end) noexcept nogil:
    """How much of buf[off:end] to write at once to a pipe: whole lines, PIPE_BUF bytes at most when
    they fit (a pipe takes that much whole or not at all, and with room without blocking), else the
    one long line."""
    cdef size_t i = off + PIPE_BUF if end - off > PIPE_BUF else end
    if i == end:
        return end - off
    while i > off and buf[i - 1] != b'\n':
        i -= 1
    if i > off:
        return i - off
    i = off + PIPE_BUF
    while i < end and buf[i - 1] != b'\n':
        i += 1
    return i - off


cdef inline bint wait_room(int fd, double until) noexcept nogil:
    """Stopping: wait until the output has room, up to `until` (mono_now() time), then only look (an
    error such as a closed pipe counts: the write reports it)."""
    cdef pollfd p
    cdef double left = until - mono_now()
    p.fd = fd
    p.events = POLLOUT
    p.revents = 0
    return poll(&p, 1, <int>(left * 1000) if left > 0 else 0) > 0


# Text built in a buffer and written out in large blocks (-L's text, the entries -D/-U print).
ctypedef bint (*stop_cb)(void *arg) noexcept nogil

cdef struct outbuf_t:
    int fd                   # -1: nothing is written
    char *buf
    size_t len
    size_t cap
    int err                  # errno of a failed write
    bint lossy               # stdio's way (conntrack's): a failed write other than EPIPE loses its text
    # A reader that stops reading (a pipe, a socket) must not hold a stopping run for ever:
    bint lines               # fd is one: written in whole lines (line_chunk()), never half a line (a
                             # socket's write cut short by a signal aside)
    stop_cb stop             # before a flush and when a write says EINTR: True if a signal asks to stop
    void *stop_arg
    double stop_at           # > 0: stopping; the reader gets until then (mono_now() time) to take the text
    long dropped             # lines not written because the reader did not take them in time


cdef inline void outbuf_stop(outbuf_t *o) noexcept nogil:
    """The run stops (a signal): writes from now on wait WRITE_MS at most for the reader."""
    if o.stop_at == 0:
        o.stop_at = mono_now() + WRITE_MS * 1e-3


cdef inline int write_lines(outbuf_t *o) noexcept nogil:
    """outbuf_flush() to a pipe, socket or terminal: whole lines at a time; once stopping, what the
    reader does not take in time is dropped (whole lines, counted in o.dropped). 0, or the errno of a
    failed write."""
    cdef size_t off = 0
    cdef size_t i, chunk
    cdef ssize_t n
    cdef pollfd p
    cdef int ready
    if o.stop != NULL and o.stop_at == 0 and o.stop(o.stop_arg):
        outbuf_stop(o)          # a signal came while no write was blocked: this one must not block
    while off < o.len:
        if o.stop_at > 0:
            if not wait_room(o.fd, o.stop_at):
                for i in range(off, o.len):
                    if o.buf[i] == b'\n':
                        o.dropped += 1
                return 0
        elif o.stop != NULL:
            # Room first (a pipe with room takes PIPE_BUF bytes without waiting): a signal that came
            # after the last look would not interrupt a write() that then waits for a stopped reader.
            p.fd = o.fd
            p.events = POLLOUT
            p.revents = 0
            ready = poll(&p, 1, STOP_POLL_MS)
            if ready < 0 and errno != EINTR:
                return errno
            if ready <= 0:      # no room yet, or a signal: does one ask to stop?
                if o.stop(o.stop_arg):
                    outbuf_stop(o)
                continue
        chunk = line_chunk(o.buf, off, o.len)
        n = write(o.fd, o.buf + off, chunk)
        if n < 0 and errno != EINTR:
            return errno
        # EINTR, or a socket's write cut short by a signal: does it ask to stop?
        if <size_t>n != chunk and o.stop != NULL and o.stop_at == 0 and o.stop(o.stop_arg):
            outbuf_stop(o)
        if n > 0:
            off += n
    return 0


cdef inline int outbuf_flush(outbuf_t *o) noexcept nogil:
    """Write out what the buffer holds; 0, or -1 with o.err set."""
    o.err = write_lines(o) if o.lines else write_all(o.fd, o.buf, o.len)
    if o.err and o.lossy and o.err != EPIPE:
        o.err = 0
    if o.err:
        return -1
    o.len = 0
    return 0
