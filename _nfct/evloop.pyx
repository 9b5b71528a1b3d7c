# cython: language_level=3
"""The event loop: one multicast socket drained in batches, without the GIL.

The kernel queues one datagram per event on the socket. Under a burst (a flush of 200,000 entries
takes well under a second) the socket buffer is all that stands between the kernel and lost events,
so the socket gets a large buffer (SO_RCVBUFFORCE) and the loop empties it as fast as it can:
recvmmsg() takes up to SLOTS datagrams per system call, every event is parsed, filtered and formatted
in C, and text goes out in large write()s. Output is written whenever the socket is empty, before the
loop sleeps, so a terminal or a pipe reader sees each event as it happens while a burst is written in
1 MiB blocks. Nothing here holds the GIL while it waits or works.
"""
from libc.errno cimport errno, EINTR, EAGAIN, ENOBUFS, EPIPE
from libc.stdint cimport uint8_t, uint32_t
from libc.stdio cimport snprintf
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memmove, strlen
from posix.unistd cimport write

from _nfct.libmnl cimport *
from _nfct.libnfct cimport *
from _nfct.netlink cimport *
from _nfct.sysapi cimport timeval, gettimeofday, socklen_t, iovec, mmsghdr, recvmmsg, getsockopt, \
    SOL_SOCKET, SO_MEMINFO, MSG_DONTWAIT, MSG_TRUNC, SK_MEMINFO_DROPS, SK_MEMINFO_VARS, pollfd, poll, POLLIN, POLLOUT
from _nfct.filter cimport ct_filter_reject
from _nfct.format cimport format_ct, json_string
from _nfct.progname cimport NAME_MAX, port_name
from _nfct.fdio cimport WRITE_MS, mono_now as now, line_chunk, wait_room

cdef enum:
    SLOTS = 256              # datagrams per recvmmsg()
    LINE_ROOM = LINE_MAX + 256   # + timestamp, [USERSPACE] suffix, newline
    REC_CAP = 4096           # events one fetch() hands to Python at most

# On SIGINT/SIGTERM: write what is queued for this long at most, then stop (the program must end within
# 0.2 s of the signal, whether events keep flooding in or the reader of the output stopped reading).
cdef double DRAIN_SECONDS = 0.03
# ... and after the signal, text already formatted is written while the reader takes it, for WRITE_MS
# at most (_nfct.fdio's, as -D/-U); then only what the output takes without waiting (a file: all of it).
cdef double WRITE_SECONDS = WRITE_MS * 1e-3

#: conntrack's words when the socket buffer overflowed (conntrack.c, CT_EVENT)
ENOBUFS_WARNING = (b"WARNING: We have hit ENOBUFS! We are losing events.\n"
                   b"This message means that the current netlink socket buffer size is too small.\n"
                   b"Please, check --buffer-size in conntrack(8) manpage.\n")
cdef bytes _enobufs_warning = ENOBUFS_WARNING
cdef const char *c_enobufs_warning = _enobufs_warning


cdef int loop_alloc(loop_t *L, bufs_t *B) noexcept nogil:
    cdef int i
    B.slab = <char *>malloc(SLOTS * SLOT_SIZE)
    B.msgs = <mmsghdr *>calloc(SLOTS, sizeof(mmsghdr))
    B.iov = <iovec *>calloc(SLOTS, sizeof(iovec))
    L.recs = <rec_t *>calloc(REC_CAP, sizeof(rec_t))
    L.cap = REC_CAP
    if B.slab == NULL or B.msgs == NULL or B.iov == NULL or L.recs == NULL:
        return -1
    for i in range(SLOTS):
        B.iov[i].iov_base = B.slab + i * SLOT_SIZE
        B.iov[i].iov_len = SLOT_SIZE
        B.msgs[i].msg_hdr.msg_iov = &B.iov[i]
        B.msgs[i].msg_hdr.msg_iovlen = 1
    return 0


cdef void loop_free(loop_t *L, bufs_t *B) noexcept nogil:
    cdef int i
    if L.recs != NULL:
        for i in range(L.nrec):
            if L.recs[i].ct != NULL:
                nfct_destroy(L.recs[i].ct)
        free(L.recs)
    free(L.out)
    free(L.names.owners)
    free(B.slab)
    free(B.msgs)
    free(B.iov)


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


cdef void drop_rest(loop_t *L, size_t off) noexcept nogil:
    """Stopping: the reader did not take L.out[off:] in time. Whole lines are dropped (off is at a line
    end) and are no longer counted as shown; a header not written means no footer either."""
    cdef size_t i = off if off > L.head_end else L.head_end
    L.dropped += L.len - off
    while i < L.len:
        if L.out[i] == b'\n':
            L.shown -= 1
        i += 1
    if L.head_end > off:
        L.header_done = False
    L.head_end = 0


cdef inline double write_end(loop_t *L) noexcept nogil:
    return L.deadline - DRAIN_SECONDS + WRITE_SECONDS      # (stop_by() set the deadline at the signal)


cdef int flush_out(loop_t *L) noexcept nogil:
    """Write the pending text. A signal that asks to stop aborts a write blocked on a full pipe; once
    stopping (L.deadline set), writes never block: what a reader does not take in time is dropped,
    whole lines at a time (drop_rest). A regular file always takes it."""
    cdef size_t off = 0
    cdef ssize_t n
    cdef pollfd p
    while off < L.len:
        # a signal that came while no write was blocked: the next write must not block past the deadline
        if L.deadline > 0 or stopping(L):
            if not wait_room(L.out_fd, write_end(L)):
                drop_rest(L, off)
                off = L.len
                break
        n = write(L.out_fd, L.out + off, line_chunk(L.out, off, L.len) if L.out_lines else L.len - off)
        if n < 0:
            if errno == EINTR:
                stopping(L)     # from now on the write waits until the deadline at most
                continue
            if errno == EAGAIN:
                if L.deadline > 0:
                    if now() < write_end(L):
                        continue    # wait_room() waits what is left of the time
                    drop_rest(L, off)
                    off = L.len
                    break
                p.fd = L.out_fd
                p.events = POLLOUT
                poll(&p, 1, 100)
                continue
            if L.lossy and errno != EPIPE:
                off = L.len
                break
            L.err = errno
            L.err_is_write = True
            return -1
        off += n
    if off < L.len:
        memmove(L.out, L.out + off, L.len - off)     # (the two overlap)
    L.len -= off
    L.head_end = L.head_end - off if L.head_end > off else 0
    return 0


cdef inline void put(loop_t *L, const char *s) noexcept nogil:
    cdef size_t n = strlen(s)
    memcpy(L.out + L.len, s, n)
    L.len += n


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
            L.head_end = L.len
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
                    L.len += json_string(L.out + L.len, OUT_SIZE - L.len, name)
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
        L.head_end = L.len
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
    if nlh.nlmsg_type >> 8 != NFNL_SUBSYS_CTNETLINK:
        return 0     # libnfnetlink hands a conntrack handle only its subsystem's messages
    # As conntrack 1.4.7: NLM_F_CREATE makes a NEW (the kernel sends NEW events with CREATE|EXCL).
    if t == IPCTNL_MSG_CT_NEW:
        type = NFCT_T_NEW if nlh.nlmsg_flags & NLM_F_CREATE else NFCT_T_UPDATE
    elif t == IPCTNL_MSG_CT_DELETE:
        type = NFCT_T_DESTROY
    else:
        # As nfct_catch(), whose callback is registered for these two only; an Event of another type
        # would have no EventType (the fuzzer's finding, tests/fuzz/regressions/event-of-type-get).
        return 0
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
    if nlh.nlmsg_type >> 8 != NFNL_SUBSYS_CTNETLINK_EXP:
        return 0
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

cdef bint stopping(loop_t *L) noexcept nogil:
    """A signal asked the caller to stop (its stop fd is readable): the deadline is set from then on."""
    if L.deadline > 0:
        return True
    if fd_readable(L.stop_fd):
        stop_by(L)
        return True
    return False


cdef void stop_by(loop_t *L) noexcept nogil:
    """The caller is stopping: reading and writing end DRAIN_SECONDS from now."""
    L.deadline = now() + DRAIN_SECONDS


cdef int run_loop(loop_t *L, bufs_t *B, int timeout_ms, bint drain_only) noexcept nogil:
    """Receive, filter, format until something the caller must see happens; returns an R_* reason.

    drain_only: empty the socket without waiting, for at most DRAIN_SECONDS (events may keep coming).
    """
    cdef int n, i, r, e
    cdef long drops
    cdef pollfd fds[3]
    cdef double end = L.deadline if drain_only and L.deadline > 0 else now() + DRAIN_SECONDS
    while True:
        if L.closing:
            return R_CLOSED
        if not drain_only and L.deadline > 0:
            return R_STOP       # stopping() saw the signal while writing; drain() writes what is left
        if drain_only and (now() > end or L.dropped):     # (L.dropped: the reader takes nothing)
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
            if not drain_only and stopping(L):
                return R_STOP   # a flood keeps the socket full: look for the signal after each batch
            continue
        e = errno
        if n < 0 and e == ENOBUFS:
            # The kernel dropped events since the last read; count them and go on reading.
            L.overruns += 1
            L.congested = True
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
        # The socket is empty. After an overrun, read the drop count again: the kernel reports ENOBUFS
        # once per congestion (until its queue is empty), so drops after the report are counted only now.
        if L.congested:
            L.congested = False
            drops = socket_drops(L.fd)
            if drops >= 0:
                L.lost = drops
        # Hand over what we have, then sleep.
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

