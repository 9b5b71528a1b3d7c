# The event loop: receive, filter and format events without the GIL (events.pyx wraps it for Python).
from libc.stdint cimport uint8_t, uint32_t

from _nfct.libnfct cimport nf_conntrack
from _nfct.sysapi cimport iovec, mmsghdr
from _nfct.filter cimport ct_filter
from _nfct.format cimport fmt_t
from _nfct.progname cimport names_t

cdef enum:
    OUT_SIZE = 1 << 20       # text is written in blocks of up to 1 MiB
    LINE_MAX = 1024          # conntrack formats an event into 1024 bytes (longer lines are cut)
    SLOT_SIZE = 8192         # one event per datagram; conntrack reads events into 4 KiB

# Reasons the loop returns.
cdef enum:
    R_STOP = 1          # the caller's stop fd became readable (a signal)
    R_CLOSED = 2        # close() was called
    R_INTR = 3          # a signal interrupted a system call: Python runs its handlers, then calls again
    R_TIMEOUT = 4
    R_BATCH = 5         # fetch(): events are ready
    R_DRAINED = 6       # drain(): the socket is empty
    R_ERROR = 7


cdef struct rec_t:
    nf_conntrack *ct
    uint32_t portid
    uint8_t type


cdef struct loop_t:
    int fd
    int wake_fd
    int stop_fd
    bint expect
    const ct_filter *filt
    int family                # conntrack's filter_family: events of other families are not shown
    bint closing
    # text output
    bint text
    fmt_t fmt
    bint tms                  # -o timestamp: a "[sec.usec]\t" prefix
    bint lookup_names         # look up who sent a change (progname=)
    unsigned int exp_type     # expectations: nfexp_snprintf's output type and flags
    unsigned int exp_flags
    int out_fd
    bint out_lines            # out_fd is no regular file: written in whole lines (line_chunk())
    bint lossy                # a failed write other than EPIPE loses its text (stdio's way, conntrack's)
    char *out
    size_t len
    const char *header
    size_t header_len
    bint header_done
    size_t head_end           # out[:head_end] is the header, not yet written (no event line)
    long shown                # event lines written (stopping: those dropped are taken off)
    int err
    bint err_is_write         # err came from writing the output (EPIPE: the reader went away)
    double deadline           # stopping (drain()): when reading gives up; 0: never
    long dropped              # bytes of text a reader did not take while stopping (whole lines)
    # records for Python
    rec_t *recs
    int nrec
    int cap
    # counters
    long received
    long overruns
    long lost
    bint congested            # an overrun was seen since the socket was last found empty
    long truncated
    names_t names


cdef struct bufs_t:
    char *slab
    mmsghdr *msgs
    iovec *iov


# The receive slots and the record array; -1 when out of memory (loop_free() frees what was got).
cdef int loop_alloc(loop_t *L, bufs_t *B) noexcept nogil
# Frees the buffers, the records not handed over and the name cache (not the fds).
cdef void loop_free(loop_t *L, bufs_t *B) noexcept nogil
cdef int flush_out(loop_t *L) noexcept nogil
# Stopping: drain() and flush_out() give up DRAIN_SECONDS from now.
cdef void stop_by(loop_t *L) noexcept nogil
cdef int run_loop(loop_t *L, bufs_t *B, int timeout_ms, bint drain_only) noexcept nogil
# Parse, filter and hand over (or format) every event message of one datagram; -1 on a write error.
cdef int handle_datagram(loop_t *L, const char *buf, int len) noexcept nogil
