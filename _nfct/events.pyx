# cython: language_level=3
"""Conntrack and expectation events: one multicast socket, drained in batches without the GIL.

The kernel queues one datagram per event on the socket. Under a burst (a flush of 200,000 entries
takes well under a second) the socket buffer is all that stands between the kernel and lost events,
so the socket gets a large buffer (SO_RCVBUFFORCE) and the loop empties it as fast as it can:
recvmmsg() takes up to SLOTS datagrams per system call, every event is parsed, filtered and formatted
in C, and text goes out in large write()s. Output is written whenever the socket is empty, before the
loop sleeps, so a terminal or a pipe reader sees each event as it happens while a burst is written in
1 MiB blocks. Nothing here holds the GIL while it waits or works.

What the kernel can check of a filter is also attached to the socket as a BPF filter (evfilter.pyx);
the exact choice is still ct_filter_reject(), conntrack's own filter, run on every event.
"""
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport errno, EINTR, EAGAIN, ENOBUFS
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset, strlen
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from posix.unistd cimport write, read, close

from _nfct.libmnl cimport *
from _nfct.libnfct cimport *
from _nfct.netlink cimport *
from _nfct.pthread cimport pthread_mutex_t, pthread_mutex_init, pthread_mutex_destroy, \
    pthread_mutex_lock, pthread_mutex_unlock
from _nfct.sysapi cimport timeval, gettimeofday, socklen_t, iovec, mmsghdr, recvmmsg, \
    setsockopt, getsockopt, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, SO_MEMINFO, MSG_DONTWAIT, MSG_TRUNC, \
    SK_MEMINFO_DROPS, SK_MEMINFO_VARS, pollfd, poll, POLLIN, eventfd, EFD_CLOEXEC, EFD_NONBLOCK
from _nfct.socket cimport NfctSocket
from _nfct.filter cimport Filter, ct_filter, ct_filter_reject
from _nfct.format cimport Format, fmt_t, format_ct
from _nfct.flow cimport Flow
from _nfct.progname cimport names_t, NAME_MAX, port_name
from _nfct.evfilter cimport attach_filter

import os

from pynfct.errors import from_errno

cdef enum:
    SLOTS = 256              # datagrams per recvmmsg()
    SLOT_SIZE = 8192         # one event per datagram; conntrack reads events into 4 KiB
    OUT_SIZE = 1 << 20       # text is written in blocks of up to 1 MiB
    LINE_MAX = 1024          # conntrack formats an event into 1024 bytes (longer lines are cut)
    LINE_ROOM = LINE_MAX + 256   # + timestamp, [USERSPACE] suffix, newline
    REC_CAP = 4096           # events one fetch() hands to Python at most

cdef double DRAIN_SECONDS = 2.0     # on SIGINT: write what is queued, but do not chase a flood

# Reasons the loop returns.
cdef enum:
    R_STOP = 1          # the caller's stop fd became readable (a signal)
    R_CLOSED = 2        # close() was called
    R_INTR = 3          # a signal interrupted a system call: Python runs its handlers, then calls again
    R_TIMEOUT = 4
    R_BATCH = 5         # fetch(): events are ready
    R_DRAINED = 6       # drain(): the socket is empty
    R_ERROR = 7

#: The default receive buffer: room for a burst of ~200,000 events (the kernel doubles the value).
DEFAULT_RCVBUF = 128 << 20

GROUPS_NEW = NF_NETLINK_CONNTRACK_NEW
GROUPS_UPDATE = NF_NETLINK_CONNTRACK_UPDATE
GROUPS_DESTROY = NF_NETLINK_CONNTRACK_DESTROY
GROUPS_EXP_NEW = NF_NETLINK_CONNTRACK_EXP_NEW
GROUPS_EXP_UPDATE = NF_NETLINK_CONNTRACK_EXP_UPDATE
GROUPS_EXP_DESTROY = NF_NETLINK_CONNTRACK_EXP_DESTROY
T_NEW = NFCT_T_NEW
T_UPDATE = NFCT_T_UPDATE
T_DESTROY = NFCT_T_DESTROY

#: conntrack's words when the socket buffer overflowed (conntrack.c, CT_EVENT)
ENOBUFS_WARNING = (b"WARNING: We have hit ENOBUFS! We are losing events.\n"
                   b"This message means that the current netlink socket buffer size is too small.\n"
                   b"Please, check --buffer-size in conntrack(8) manpage.\n")
cdef bytes _enobufs_warning = ENOBUFS_WARNING
cdef const char *c_enobufs_warning = _enobufs_warning


# --- the loop ---------------------------------------------------------------------------------------

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
    char *out
    size_t len
    const char *header
    size_t header_len
    bint header_done
    long shown
    int err
    bint err_is_write         # err came from writing the output (EPIPE: the reader went away)
    # records for Python
    rec_t *recs
    int nrec
    int cap
    # counters
    long received
    long overruns
    long lost
    long truncated
    names_t names


cdef long socket_drops(int fd) noexcept nogil:
    cdef uint32_t mem[16]
    cdef socklen_t l = sizeof(mem)
    if SK_MEMINFO_VARS > 16 or getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &l) < 0:
        return -1
    return mem[SK_MEMINFO_DROPS]


cdef bint fd_readable(int fd) noexcept nogil:
    cdef pollfd p
    if fd < 0:
        return False
    p.fd = fd
    p.events = POLLIN
    p.revents = 0
    return poll(&p, 1, 0) > 0 and (p.revents & POLLIN) != 0


cdef int flush_out(loop_t *L) noexcept nogil:
    """Write the pending text. A signal that asks to stop aborts a write blocked on a full pipe."""
    cdef size_t off = 0
    cdef ssize_t n
    cdef pollfd p
    while off < L.len:
        n = write(L.out_fd, L.out + off, L.len - off)
        if n < 0:
            if errno == EINTR:
                if fd_readable(L.stop_fd):
                    break
                continue
            if errno == EAGAIN:
                p.fd = L.out_fd
                p.events = 4     # POLLOUT
                poll(&p, 1, 100)
                continue
            L.err = errno
            L.err_is_write = True
            return -1
        off += n
    if off < L.len:
        memcpy(L.out, L.out + off, L.len - off)
    L.len -= off
    return 0


cdef inline void put(loop_t *L, const char *s) noexcept nogil:
    cdef size_t n = strlen(s)
    memcpy(L.out + L.len, s, n)
    L.len += n


cdef void put_json_str(loop_t *L, const char *s) noexcept nogil:
    cdef char tmp[8]
    put(L, "\"")
    while s[0]:
        if s[0] == b'"' or s[0] == b'\\':
            L.out[L.len] = b'\\'
            L.out[L.len + 1] = s[0]
            L.len += 2
        elif <unsigned char>s[0] < 0x20:
            snprintf(tmp, 8, "\\u%04x", <unsigned int><unsigned char>s[0])
            put(L, tmp)
        else:
            L.out[L.len] = s[0]
            L.len += 1
        s += 1
    put(L, "\"")


cdef int emit_ct(loop_t *L, const nf_conntrack *ct, unsigned int type, uint32_t portid) noexcept nogil:
    """One event as conntrack -E prints it (event_cb in conntrack.c), appended to the output."""
    cdef timeval tv
    cdef char tmp[128]
    cdef const char *name = NULL
    if L.len + L.header_len + LINE_ROOM > OUT_SIZE and flush_out(L) < 0:
        return -1
    if not L.fmt.save:
        if not L.header_done:
            memcpy(L.out + L.len, L.header, L.header_len)
            L.len += L.header_len
            L.header_done = True
        if L.tms and L.fmt.out_type != NFCT_O_XML and not L.fmt.json:
            gettimeofday(&tv, NULL)
            L.len += snprintf(L.out + L.len, 64, "[%-.8ld.%-.6ld]\t", tv.tv_sec, tv.tv_usec)
    L.len += format_ct(L.out + L.len, LINE_MAX, ct, &L.fmt, type)
    if portid and L.lookup_names:
        name = port_name(&L.names, portid)
    if L.fmt.json:
        # pynfct's own: the sender and the time go inside the object.
        if L.len and L.out[L.len - 1] == b'}' and (portid or L.tms):
            L.len -= 1
            if portid:
                snprintf(tmp, 128, ",\"portid\":%u", portid)
                put(L, tmp)
                if name != NULL:
                    put(L, ",\"progname\":")
                    put_json_str(L, name)
            if L.tms:
                gettimeofday(&tv, NULL)
                snprintf(tmp, 128, ",\"time\":%ld.%06ld", tv.tv_sec, tv.tv_usec)
                put(L, tmp)
            put(L, "}")
    elif portid:
        if name != NULL:
            L.len += snprintf(L.out + L.len, NAME_MAX + 64, " [USERSPACE] portid=%u progname=%s", portid, name)
        else:
            L.len += snprintf(L.out + L.len, 64, " [USERSPACE] portid=%u", portid)
    L.out[L.len] = b'\n'
    L.len += 1
    L.shown += 1
    return 0


cdef int emit_exp(loop_t *L, const nf_expect *exp, unsigned int type) noexcept nogil:
    """One expectation event as conntrack -E expect prints it (event_exp_cb)."""
    cdef timeval tv
    cdef int n
    if L.len + L.header_len + LINE_ROOM > OUT_SIZE and flush_out(L) < 0:
        return -1
    if not L.header_done:
        memcpy(L.out + L.len, L.header, L.header_len)
        L.len += L.header_len
        L.header_done = True
    if L.tms and L.exp_type != NFCT_O_XML:
        gettimeofday(&tv, NULL)
        L.len += snprintf(L.out + L.len, 64, "[%-8ld.%-6ld]\t", tv.tv_sec, tv.tv_usec)
    n = nfexp_snprintf(L.out + L.len, LINE_MAX, exp, type, L.exp_type, L.exp_flags)
    if n > 0:
        L.len += n if n < LINE_MAX else LINE_MAX - 1
    L.out[L.len] = b'\n'
    L.len += 1
    L.shown += 1
    return 0


cdef int handle_ct(loop_t *L, const nlmsghdr *nlh) noexcept nogil:
    cdef unsigned int type
    cdef uint8_t t = nlh.nlmsg_type & 0xff
    cdef nf_conntrack *ct
    cdef rec_t *grown
    cdef const nfgenmsg *nfh = <const nfgenmsg *>mnl_nlmsg_get_payload(nlh)
    # As conntrack 1.4.7: NLM_F_CREATE makes a NEW (the kernel sends NEW events with CREATE|EXCL).
    if t == IPCTNL_MSG_CT_NEW:
        type = NFCT_T_NEW if nlh.nlmsg_flags & NLM_F_CREATE else NFCT_T_UPDATE
    elif t == IPCTNL_MSG_CT_DELETE:
        type = NFCT_T_DESTROY
    else:
        type = NFCT_T_UNKNOWN
    ct = nfct_new()
    if ct == NULL:
        return 0
    if nfct_nlmsg_parse(nlh, ct) < 0 or (L.family != 0 and L.family != nfh.nfgen_family) \
            or (L.filt != NULL and ct_filter_reject(L.filt, ct)):
        nfct_destroy(ct)
        return 0
    if L.text:
        if emit_ct(L, ct, type, nlh.nlmsg_pid) < 0:
            nfct_destroy(ct)
            return -1
        nfct_destroy(ct)
        return 0
    if L.nrec == L.cap:
        grown = <rec_t *>realloc(L.recs, 2 * L.cap * sizeof(rec_t))
        if grown == NULL:
            nfct_destroy(ct)
            return 0
        L.recs = grown
        L.cap *= 2
    L.recs[L.nrec].ct = ct
    L.recs[L.nrec].type = type
    L.recs[L.nrec].portid = nlh.nlmsg_pid
    L.nrec += 1
    return 0


cdef int handle_exp(loop_t *L, const nlmsghdr *nlh) noexcept nogil:
    cdef unsigned int type
    cdef uint8_t t = nlh.nlmsg_type & 0xff
    cdef nf_expect *exp
    cdef int ret = 0
    if t == IPCTNL_MSG_EXP_NEW:
        type = NFCT_T_NEW if nlh.nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL) else NFCT_T_UPDATE
    elif t == IPCTNL_MSG_EXP_DELETE:
        type = NFCT_T_DESTROY
    else:
        return 0     # nfexp_catch() passes only these three to conntrack's callback
    exp = nfexp_new()
    if exp == NULL:
        return 0
    if nfexp_nlmsg_parse(nlh, exp) >= 0 and L.text:
        ret = emit_exp(L, exp, type)
    nfexp_destroy(exp)
    return ret


cdef int handle_datagram(loop_t *L, const char *buf, int len) noexcept nogil:
    cdef const nlmsghdr *nlh = <const nlmsghdr *>buf
    while mnl_nlmsg_ok(nlh, len):
        if nlh.nlmsg_type >= 16:     # NLMSG_MIN_TYPE: no control messages on an event socket
            L.received += 1
            if L.expect:
                if handle_exp(L, nlh) < 0:
                    return -1
            elif handle_ct(L, nlh) < 0:
                return -1
        nlh = mnl_nlmsg_next(nlh, &len)
    return 0


cdef struct bufs_t:
    char *slab
    mmsghdr *msgs
    iovec *iov


cdef double now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef int run_loop(loop_t *L, bufs_t *B, int timeout_ms, bint drain_only) noexcept nogil:
    """Receive, filter, format until something the caller must see happens; returns an R_* reason.

    drain_only: empty the socket without waiting, for at most DRAIN_SECONDS (events may keep coming).
    """
    cdef int n, i, r, e
    cdef long drops
    cdef pollfd fds[3]
    cdef double end = now() + DRAIN_SECONDS if drain_only else 0
    while True:
        if L.closing:
            return R_CLOSED
        if drain_only and now() > end:
            if L.text and flush_out(L) < 0:
                return R_ERROR
            return R_DRAINED
        for i in range(SLOTS):
            B.msgs[i].msg_hdr.msg_flags = 0
            B.msgs[i].msg_len = 0
        n = recvmmsg(L.fd, B.msgs, SLOTS, MSG_DONTWAIT, NULL)
        if n > 0:
            L.names.loaded = False
            for i in range(n):
                if B.msgs[i].msg_hdr.msg_flags & MSG_TRUNC:
                    L.truncated += 1
                    continue
                if handle_datagram(L, B.slab + i * SLOT_SIZE, B.msgs[i].msg_len) < 0:
                    return R_ERROR
            if not L.text and L.nrec > REC_CAP - SLOTS:
                return R_BATCH
            continue
        e = errno
        if n < 0 and e == ENOBUFS:
            # The kernel dropped events since the last read; count them and go on reading.
            L.overruns += 1
            drops = socket_drops(L.fd)
            if drops >= 0:
                L.lost = drops
            if L.text:
                if flush_out(L) < 0:
                    return R_ERROR
                write(2, c_enobufs_warning, strlen(c_enobufs_warning))
            continue
        if n < 0 and e == EINTR:
            if L.text:
                flush_out(L)
            return R_INTR
        if n < 0 and e != EAGAIN:
            L.err = e
            return R_ERROR
        # The socket is empty: hand over what we have, then sleep.
        if not L.text and L.nrec > 0:
            return R_BATCH
        if L.text and flush_out(L) < 0:
            return R_ERROR
        if drain_only:
            return R_DRAINED
        fds[0].fd = L.fd
        fds[1].fd = L.wake_fd
        fds[2].fd = L.stop_fd
        for i in range(3):
            fds[i].events = POLLIN
            fds[i].revents = 0
        r = poll(fds, 3 if L.stop_fd >= 0 else 2, timeout_ms)
        if r < 0:
            if errno == EINTR:
                return R_INTR
            L.err = errno
            return R_ERROR
        if r == 0:
            return R_TIMEOUT
        if fds[1].revents or L.closing:
            return R_CLOSED
        if L.stop_fd >= 0 and fds[2].revents:
            return R_STOP


# --- Python objects -------------------------------------------------------------------------------------

cdef fmt_t _plain_fmt
memset(&_plain_fmt, 0, sizeof(fmt_t))
_plain_fmt.out_type = NFCT_O_DEFAULT

cdef object _EventType = None


cdef class Event:
    """One conntrack event: what happened (``type``) to which entry (``flow``), and who did it.

    ``portid`` is the netlink port of the program whose request caused the event (``conntrack -I``,
    ``-D``, ``-F``, ...), 0 when the kernel itself did (traffic, timeouts). ``str(event)`` is the line
    ``conntrack -E`` prints for it (without the program name).
    """
    cdef readonly Flow flow
    cdef readonly unsigned int portid
    cdef unsigned int _type

    def __init__(self):
        raise TypeError("Event objects come from Conntrack.events()")

    @property
    def type(self):
        """pynfct.EventType.NEW, UPDATE or DESTROY."""
        global _EventType
        if _EventType is None:
            from pynfct.events import EventType
            _EventType = EventType
        return _EventType(self._type)

    def __str__(self):
        cdef char buf[LINE_MAX]
        cdef size_t n = format_ct(buf, LINE_MAX, self.flow.ct, &_plain_fmt, self._type)
        line = buf[:n].decode("utf-8", "replace")
        return f"{line} [USERSPACE] portid={self.portid}" if self.portid else line

    def __repr__(self):
        return f"<Event {self.type.name} {self.flow!r}>"


cdef Event make_event(rec_t *r):
    cdef Event ev = Event.__new__(Event)
    ev.flow = Flow.adopt(r.ct)
    ev.portid = r.portid
    ev._type = r.type
    r.ct = NULL
    return ev


cdef class EventSocket:
    """A socket subscribed to conntrack (or expectation) events of one network namespace.

    ``groups`` are NF_NETLINK_CONNTRACK_* bits. ``rcvbuf``: the receive buffer asked for (None:
    DEFAULT_RCVBUF) with SO_RCVBUFFORCE, or SO_RCVBUF (capped by net.core.rmem_max) when not allowed.
    ``reliable`` sets NETLINK_BROADCAST_ERROR: a DESTROY event the socket had no room for is then sent
    again by the kernel (it keeps the entry until it can), so destroy events are not lost.
    Either run() writes events as text (the CLI), or fetch() returns them as Event objects.
    close() may be called from any thread: a thread waiting in fetch()/run() returns at once.
    """
    cdef NfctSocket sock
    cdef Filter filt
    cdef loop_t L
    cdef bufs_t B
    cdef pthread_mutex_t run_lock
    cdef bint _closed
    cdef readonly int rcvbuf
    cdef readonly bint kernel_filter
    cdef readonly bint expect
    cdef public object timeout       # iteration: seconds to wait for an event, None forever
    cdef public object on_lost       # called with the number of events lost at each overrun
    cdef long reported_lost
    cdef long reported_overruns
    cdef list pending
    cdef Py_ssize_t pi
    cdef object fmt_ref

    def __cinit__(self):
        memset(&self.L, 0, sizeof(loop_t))
        memset(&self.B, 0, sizeof(bufs_t))
        self.L.wake_fd = -1
        self.L.stop_fd = -1
        self.L.fd = -1
        self._closed = True
        pthread_mutex_init(&self.run_lock, NULL)

    def __init__(self, int nsfd, unsigned int groups, Filter filt=None, rcvbuf=None, bint kernel_filter=True,
                 bint reliable=True, bint expect=False):
        cdef int i, one = 1, size, got
        cdef socklen_t sl = sizeof(int)
        self.expect = expect
        self.pending = []
        self.pi = 0
        self.timeout = None
        self.on_lost = None
        self.reported_lost = self.reported_overruns = 0
        self.sock = NfctSocket(nsfd, groups)
        self._closed = False
        self.L.fd = self.sock.fd()
        self.L.expect = expect
        self.L.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)
        if self.L.wake_fd < 0:
            raise from_errno(errno, "eventfd")
        self.B.slab = <char *>malloc(SLOTS * SLOT_SIZE)
        self.B.msgs = <mmsghdr *>calloc(SLOTS, sizeof(mmsghdr))
        self.B.iov = <iovec *>calloc(SLOTS, sizeof(iovec))
        self.L.recs = <rec_t *>calloc(REC_CAP, sizeof(rec_t))
        self.L.cap = REC_CAP
        if self.B.slab == NULL or self.B.msgs == NULL or self.B.iov == NULL or self.L.recs == NULL:
            raise MemoryError()
        for i in range(SLOTS):
            self.B.iov[i].iov_base = self.B.slab + i * SLOT_SIZE
            self.B.iov[i].iov_len = SLOT_SIZE
            self.B.msgs[i].msg_hdr.msg_iov = &self.B.iov[i]
            self.B.msgs[i].msg_hdr.msg_iovlen = 1
        if rcvbuf is None:
            rcvbuf = DEFAULT_RCVBUF
        # As conntrack hands -b to the kernel: the low 32 bits of the number, read as an int.
        size = <int><uint32_t>(rcvbuf & 0xffffffff)
        if setsockopt(self.L.fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(int)) < 0:
            setsockopt(self.L.fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(int))
        got = 0
        getsockopt(self.L.fd, SOL_SOCKET, SO_RCVBUF, &got, &sl)
        self.rcvbuf = got
        if reliable:
            setsockopt(self.L.fd, SOL_NETLINK, NETLINK_BROADCAST_ERROR, &one, sizeof(int))
        self.kernel_filter = False
        if filt is not None:
            self.set_filter(filt, kernel_filter)

    def set_filter(self, Filter filt not None, bint kernel_filter=True):
        """Show only the events conntrack would show with this filter (its command's options).

        With kernel_filter, what the kernel can check is attached as a BPF program too (only an
        optimisation: every event is still checked here).
        """
        self.filt = filt
        self.L.filt = &filt.f
        self.L.family = filt.family
        if kernel_filter and not self.expect and not self._closed:
            self.kernel_filter = attach_filter(self.L.fd, &filt.f) == 1

    def __dealloc__(self):
        cdef int i
        self._close_fds()
        if self.L.recs != NULL:
            for i in range(self.L.nrec):
                if self.L.recs[i].ct != NULL:
                    nfct_destroy(self.L.recs[i].ct)
            free(self.L.recs)
        free(self.L.out)
        free(self.L.names.owners)
        free(self.B.slab)
        free(self.B.msgs)
        free(self.B.iov)
        pthread_mutex_destroy(&self.run_lock)

    cdef void _close_fds(self) noexcept:
        if self.sock is not None:
            self.sock.close()
        self.L.fd = -1
        if self.L.wake_fd >= 0:
            close(self.L.wake_fd)
            self.L.wake_fd = -1
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wake_fileno(self) -> int:
        """An fd that becomes readable when close() is called (for event loops)."""
        return self.L.wake_fd

    def fileno(self) -> int:
        """The netlink socket's fd (readable when events wait), -1 once closed."""
        return -1 if self._closed else self.L.fd

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self):
        """Close the socket; a thread blocked in fetch() or run() returns promptly. Any thread."""
        cdef uint64_t one = 1
        if self._closed:
            return
        self.L.closing = True
        if self.L.wake_fd >= 0:
            write(self.L.wake_fd, &one, 8)
        with nogil:
            pthread_mutex_lock(&self.run_lock)
        try:
            if not self._closed:
                self._close_fds()
        finally:
            pthread_mutex_unlock(&self.run_lock)

    # -- counters
    @property
    def shown(self) -> int:
        """Events written by run() or returned by fetch()."""
        return self.L.shown

    @property
    def received(self) -> int:
        """Events received (before filtering)."""
        return self.L.received

    @property
    def overruns(self) -> int:
        """How often the socket buffer overflowed (ENOBUFS)."""
        return self.L.overruns

    @property
    def lost(self) -> int:
        """Events the kernel dropped for this socket since it was opened (SO_MEMINFO), as of the last overrun."""
        return self.L.lost

    @property
    def header_written(self) -> bool:
        return self.L.header_done and self.L.header_len > 0

    # -- text (the CLI)
    def set_output(self, int out_fd, Format fmt not None, bint timestamp=False, bint names=True,
                   bytes header=b""):
        """Make run() write conntrack's lines to out_fd: `header` before the first event (xml)."""
        if self.L.out == NULL:
            self.L.out = <char *>malloc(OUT_SIZE)
            if self.L.out == NULL:
                raise MemoryError()
        self.fmt_ref = (fmt, header)
        self.L.text = True
        self.L.fmt = fmt.f
        if timestamp and fmt.f.out_type == NFCT_O_XML:
            self.L.fmt.out_flags |= NFCT_OF_TIME
        self.L.tms = timestamp
        self.L.lookup_names = names
        # expectations: conntrack's event_exp_cb passes only xml, and the time in xml
        self.L.exp_type = fmt.f.out_type
        self.L.exp_flags = NFCT_OF_TIME if timestamp and fmt.f.out_type == NFCT_O_XML else 0
        self.L.out_fd = out_fd
        self.L.len = 0
        self.L.header = header
        self.L.header_len = len(header)
        self.L.header_done = self.L.header_len == 0

    cdef int _run(self, int timeout_ms, bint drain_only) except -1:
        cdef int r
        if self._closed:
            return R_CLOSED
        with nogil:
            pthread_mutex_lock(&self.run_lock)
            if self._closed or self.L.fd < 0:
                r = R_CLOSED
            else:
                r = run_loop(&self.L, &self.B, timeout_ms, drain_only)
            pthread_mutex_unlock(&self.run_lock)
        if r == R_ERROR:
            err = self.L.err
            self.L.err = 0
            if self.L.err_is_write:
                self.L.err_is_write = False
                raise OSError(err, os.strerror(err))    # EPIPE: BrokenPipeError
            raise from_errno(err, "events")
        return r

    def run(self, int stop_fd=-1):
        """Write events until stop_fd is readable ("stop"), close() ("closed") or a signal ("signal").

        After "signal" the caller's Python handlers have run; call run() again to go on.
        """
        cdef int r
        if not self.L.text:
            raise ValueError("set_output() first")
        self.L.stop_fd = stop_fd
        while True:
            r = self._run(-1, False)
            if r == R_INTR:
                PyErr_CheckSignals()
                return "signal"
            if r == R_STOP:
                return "stop"
            if r == R_CLOSED:
                return "closed"

    def drain(self):
        """Write what the socket holds now, without waiting (before exiting on a signal)."""
        cdef int r = R_INTR
        cdef int rounds = 0
        if not self.L.text:
            return
        while r == R_INTR and rounds < 100:
            r = self._run(0, True)
            rounds += 1
        if self.L.len:
            with nogil:
                flush_out(&self.L)

    # -- Event objects (the Python API)
    def fetch(self, timeout=None):
        """The next batch of events (a list): waits up to `timeout` seconds (None: forever).

        Returns [] when the time ran out and None once the socket is closed.
        """
        cdef int r, i, ms
        cdef list out
        if self.L.text:
            raise ValueError("this socket writes text")
        ms = -1 if timeout is None else max(0, <int>(float(timeout) * 1000 + 0.999))
        while True:
            if self.L.nrec == 0:
                r = self._run(ms, False)
            else:
                r = R_BATCH
            if r == R_INTR:
                PyErr_CheckSignals()
                continue
            break
        if self.L.overruns != self.reported_overruns:
            lost = max(0, self.L.lost - self.reported_lost)
            self.reported_overruns = self.L.overruns
            self.reported_lost = self.L.lost
            if self.on_lost is not None:
                self.on_lost(lost)
        if self.L.nrec:
            out = [make_event(&self.L.recs[i]) for i in range(self.L.nrec)]
            self.L.shown += self.L.nrec
            self.L.nrec = 0
            return out
        if r == R_CLOSED:
            return None
        return []

    def __iter__(self):
        return self

    def __next__(self):
        """The next event; StopIteration once closed or after `timeout` seconds without one."""
        cdef object batch
        if self.pi < len(self.pending):
            ev = self.pending[self.pi]
            self.pi += 1
            return ev
        batch = self.fetch(self.timeout)
        if not batch:
            self.close()
            raise StopIteration
        self.pending = batch
        self.pi = 1
        return batch[0]

    def next_nowait(self):
        """The next event already received, or None (asyncio: call after the socket is readable)."""
        cdef object batch
        if self.pi < len(self.pending):
            ev = self.pending[self.pi]
            self.pi += 1
            return ev
        batch = self.fetch(0)
        if not batch:
            return None
        self.pending = batch
        self.pi = 1
        return batch[0]
