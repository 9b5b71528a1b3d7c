# cython: language_level=3
"""The dump path: one reader thread receives, the calling thread parses, filters and formats.

The kernel builds each batch of a dump inside recvmsg(), on the receiving thread. A dedicated reader
thread keeps that going while the caller's thread parses and formats the previous batch, so the two
costs overlap on two cores. Neither thread holds the GIL while it works.
"""
from libc.errno cimport errno, EINTR, ENOMEM, ENOBUFS
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy, memset
from posix.unistd cimport write

from _nfct.libmnl cimport *
from _nfct.libnfct cimport *
from _nfct.netlink cimport *
from _nfct.pthread cimport *
from _nfct.socket cimport NfctSocket
from _nfct.filter cimport Filter, ct_filter, ct_filter_reject
from _nfct.format cimport Format, fmt_t, outbuf_entry
from _nfct.flow cimport Flow
from _nfct.sysapi cimport recv, send, setsockopt, getsockopt, socklen_t, SOL_SOCKET, SO_RCVBUF
from _nfct.fdio cimport outbuf_t, outbuf_flush
from _nfct.policy cimport batch_bad

from _nfct.errors import from_errno


cdef enum:
    AF_INET = 2
    AF_INET6 = 10
    NSLOTS = 32             # batches in flight by default: enough to keep the kernel busy
    SLOT_SIZE = 65536       # the kernel fills at most 32 KiB per dump batch
    OUT_SIZE = 1 << 20      # text is written in 1 MiB blocks
    DEFER_MIN_RCVBUF = 1 << 17  # SO_RCVBUF as getsockopt reports it, below which start_deferred does not defer

# Table names for the message type of the request.
DUMP_CONNTRACK = IPCTNL_MSG_CT_GET
DUMP_ZERO = IPCTNL_MSG_CT_GET_CTRZERO
DUMP_DYING = IPCTNL_MSG_CT_GET_DYING
DUMP_UNCONFIRMED = IPCTNL_MSG_CT_GET_UNCONFIRMED
# While one family's filtered dump is read, the other's keeps going into up to this many batches
# (at most 64 KiB each, allocated as filled), so the two kernel table walks overlap.
SPLIT_BATCHES = 1024


cdef bint batch_is_last(const char *buf, ssize_t len) noexcept nogil:
    """Does this batch end the dump (NLMSG_DONE, or an error)?"""
    cdef const nlmsghdr *nlh = <const nlmsghdr *>buf
    cdef int left = <int>len
    while mnl_nlmsg_ok(nlh, left):
        if nlh.nlmsg_type == NLMSG_DONE or nlh.nlmsg_type == NLMSG_ERROR:
            return True
        nlh = mnl_nlmsg_next(nlh, &left)
    return False


cdef int start_deferred(pipe_t *p) noexcept nogil:
    """Send the dump request so that the kernel walks the table in recvmsg(), not inside send().

    The kernel builds a dump's first batch inside the send, holding the ctnetlink subsystem mutex;
    a filtered dump that matches little walks the whole table there, and every other ctnetlink
    request (the other family's dump, deletes, other processes) waits for it. With an answer left
    in a minimal receive buffer, the kernel cannot queue that first batch: the start returns
    ENOBUFS as an error message and the dump goes on in our recvmsg() calls, without the mutex.
    """
    cdef int orig = 0, small = 1, sent
    cdef socklen_t l = sizeof(int)
    # Not with a receive buffer that is small already: the dump then fails with ENOBUFS (seen below
    # 64 KiB on Linux 6.18), and the walk in send() is short anyway. A fresh socket reports
    # net.core.rmem_default as it is, so deferring is off when that is below 128 KiB; one given a
    # size (Dump's rcvbuf) reports twice the size, so there below 64 KiB.
    if (getsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &orig, &l) < 0 or orig < DEFER_MIN_RCVBUF
            or setsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(int)) < 0):
        return send(p.fd, p.req, p.req_len, 0)
    p.skipping = send(p.fd, p.pre, (<const nlmsghdr *>p.pre).nlmsg_len, 0) >= 0
    sent = send(p.fd, p.req, p.req_len, 0)
    orig //= 2              # setsockopt doubles what it is given: half the reported size restores it
    setsockopt(p.fd, SOL_SOCKET, SO_RCVBUF, &orig, sizeof(int))
    return sent


cdef bint is_skipped(pipe_t *p, const char *buf, ssize_t len) noexcept nogil:
    """Is this datagram the pre request's answer or the deferred start's ENOBUFS?"""
    cdef const nlmsghdr *nlh = <const nlmsghdr *>buf
    cdef const nlmsgerr *e
    if len < <ssize_t>sizeof(nlmsghdr) or <ssize_t>nlh.nlmsg_len != len:
        return False
    if nlh.nlmsg_seq == p.pre_seq:
        return True
    if nlh.nlmsg_type == NLMSG_ERROR and nlh.nlmsg_seq == p.seq:
        e = <const nlmsgerr *>mnl_nlmsg_get_payload(nlh)
        return e.error == -ENOBUFS
    return False


cdef void *reader_main(void *arg) noexcept nogil:
    cdef pipe_t *p = <pipe_t *>arg
    cdef slot_t *s
    cdef bint last
    cdef int sent
    if p.defer:
        sent = start_deferred(p)
    else:
        sent = send(p.fd, p.req, p.req_len, 0)
    if sent < 0:
        # Reported to the consumer like a failed receive.
        pthread_mutex_lock(&p.lock)
        s = &p.slots[p.head]
        s.len = -1
        s.err = errno
        p.head = (p.head + 1) % p.nslots
        p.count += 1
        p.done = True
        pthread_cond_broadcast(&p.cond)
        pthread_mutex_unlock(&p.lock)
        return NULL
    while True:
        pthread_mutex_lock(&p.lock)
        while p.count == p.nslots and not p.stop:
            pthread_cond_wait(&p.cond, &p.lock)
        if p.stop:
            p.done = True
            pthread_cond_broadcast(&p.cond)
            pthread_mutex_unlock(&p.lock)
            return NULL
        s = &p.slots[p.head]
        pthread_mutex_unlock(&p.lock)
        if s.buf == NULL:
            s.buf = <char *>malloc(SLOT_SIZE)

        while s.buf != NULL:
            s.len = recv(p.fd, s.buf, SLOT_SIZE, 0)
            if s.len >= 0 or errno != EINTR:
                break
        if s.buf == NULL:
            s.len = -1
            s.err = ENOMEM
        else:
            s.err = errno if s.len < 0 else 0
            if p.skipping and s.len > 0:
                if is_skipped(p, s.buf, s.len):
                    continue
                p.skipping = False
        last = s.len <= 0 or batch_is_last(s.buf, s.len)

        pthread_mutex_lock(&p.lock)
        p.head = (p.head + 1) % p.nslots
        p.count += 1
        if last:
            p.done = True
        pthread_cond_broadcast(&p.cond)
        pthread_mutex_unlock(&p.lock)
        if last:
            return NULL


cdef struct text_ctx:
    const ct_filter *filt
    const fmt_t *fmt
    outbuf_t o
    long count
    const char *header
    size_t header_len
    bint header_done


cdef nf_conntrack *parse_kept(const nlmsghdr *nlh, const ct_filter *filt) noexcept nogil:
    """The message's entry, or NULL when the filter drops it (or no memory is left)."""
    cdef nf_conntrack *ct = nfct_new()
    if ct == NULL:
        return NULL
    nfct_nlmsg_parse(nlh, ct)
    if filt != NULL and ct_filter_reject(filt, ct):
        nfct_destroy(ct)
        return NULL
    return ct


cdef int text_cb(const nlmsghdr *nlh, void *data) noexcept nogil:
    cdef text_ctx *t = <text_ctx *>data
    cdef nf_conntrack *ct = parse_kept(nlh, t.filt)
    if ct == NULL:
        return MNL_CB_OK
    if not t.header_done:       # before the first entry, so the buffer is empty
        memcpy(t.o.buf, t.header, t.header_len)
        t.o.len = t.header_len
        t.header_done = True
    # conntrack writes saved entries as -A lines (ct_save_snprintf with NFCT_T_NEW).
    if outbuf_entry(&t.o, ct, t.fmt, NFCT_T_NEW if t.fmt.save else NFCT_T_UNKNOWN) < 0:
        nfct_destroy(ct)
        return MNL_CB_ERROR
    t.count += 1
    nfct_destroy(ct)
    return MNL_CB_OK


cdef int flow_cb(const nlmsghdr *nlh, void *data) noexcept nogil:
    cdef flow_ctx *c = <flow_ctx *>data
    cdef nf_conntrack *ct
    if c.n == c.cap:
        return MNL_CB_OK      # cannot happen: a 64 KiB batch holds fewer entries than cap
    ct = parse_kept(nlh, c.filt)
    if ct == NULL:
        return MNL_CB_OK
    c.items[c.n] = ct
    c.n += 1
    return MNL_CB_OK


cdef class Dump:
    """One dump request of the conntrack table (or dying/unconfirmed lists), consumed once.

    Iterate it for Flow objects, or call to_fd() to write text without creating any.
    """

    def __cinit__(self):
        self.pipe.slots = NULL
        self.pipe.nslots = 0
        self.started = self.joined = False
        self.fc.items = NULL

    def __init__(self, int nsfd, int msg_type=DUMP_CONNTRACK, int family=0, Filter filt=None,
                 bint kernel_filter=True, bint userspace_filter=True, int batches=NSLOTS, int rcvbuf=0):
        """`batches`: how many received batches may wait for the consumer (64 KiB each at most,
        allocated only when used). A larger ring lets the kernel go on dumping while the caller
        waits for something else, e.g. the other family's dump. `rcvbuf` (> 0): the socket's
        SO_RCVBUF instead of the system's default (tests of a tiny receive buffer)."""
        cdef nlmsghdr *nlh
        cdef int i
        self.filt = filt
        self.count = 0
        self.sock = NfctSocket(nsfd)
        nlh = self.sock.put_header(self.req, NFNL_SUBSYS_CTNETLINK, msg_type, NLM_F_DUMP, family)
        if filt is not None and kernel_filter and msg_type in (DUMP_CONNTRACK, DUMP_ZERO):
            filt.put_dump_filter(nlh, family)
        self.seq = nlh.nlmsg_seq
        self.pipe.req = self.req
        self.pipe.req_len = nlh.nlmsg_len
        self.pipe.seq = self.seq
        # Defer the start of dumps the kernel filters (a family, or filter attributes): their first
        # batch may be a whole walk of the table (see start_deferred).
        self.pipe.defer = (msg_type in (DUMP_CONNTRACK, DUMP_ZERO)
                           and (family != 0 or nlh.nlmsg_len > sizeof(nlmsghdr) + sizeof(nfgenmsg)))
        self.pipe.skipping = False
        if self.pipe.defer:
            nlh = self.sock.put_header(self.pre, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS, 0, 0)
            self.pipe.pre = self.pre
            self.pipe.pre_seq = nlh.nlmsg_seq
        self.pipe.nslots = max(batches, 2)
        self.pipe.slots = <slot_t *>calloc(self.pipe.nslots, sizeof(slot_t))
        self.fc.items = <nf_conntrack **>malloc(SLOT_SIZE // 16 * sizeof(nf_conntrack *))
        if self.pipe.slots == NULL or self.fc.items == NULL:
            raise MemoryError()
        self.fc.cap = SLOT_SIZE // 16
        self.fc.n = self.fi = 0
        # -U sends the kernel part of its filter but applies its own rules in userspace.
        self.fc.filt = &filt.f if filt is not None and userspace_filter else NULL
        self.pipe.head = self.pipe.tail = self.pipe.count = 0
        self.pipe.done = self.pipe.stop = False
        self.pipe.fd = self.sock.fd()
        if rcvbuf > 0 and setsockopt(self.pipe.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(int)) < 0:
            raise from_errno(errno, "setsockopt SO_RCVBUF")
        self.finished = False
        pthread_mutex_init(&self.pipe.lock, NULL)
        pthread_cond_init(&self.pipe.cond, NULL)
        if pthread_create(&self.thread, NULL, reader_main, &self.pipe) != 0:
            raise from_errno(errno, "can't start the reader thread")
        self.started = True

    cdef slot_t *take(self) noexcept nogil:
        """The next received batch, or NULL once the reader is done and all is consumed."""
        cdef slot_t *s = NULL
        pthread_mutex_lock(&self.pipe.lock)
        while self.pipe.count == 0 and not self.pipe.done:
            pthread_cond_wait(&self.pipe.cond, &self.pipe.lock)
        if self.pipe.count > 0:
            s = &self.pipe.slots[self.pipe.tail]
        pthread_mutex_unlock(&self.pipe.lock)
        return s

    cdef void release(self) noexcept nogil:
        pthread_mutex_lock(&self.pipe.lock)
        self.pipe.tail = (self.pipe.tail + 1) % self.pipe.nslots
        self.pipe.count -= 1
        pthread_cond_broadcast(&self.pipe.cond)
        pthread_mutex_unlock(&self.pipe.lock)

    cdef int run_batch(self, slot_t *s, mnl_cb_t cb, void *data, int *err) noexcept nogil:
        """Parse one batch; returns >0 to go on, 0 at the end of the dump, -1 on error (errno in err)."""
        cdef int ret
        if s.len < 0:
            err[0] = s.err
            return -1
        if s.len == 0:
            return 0
        ret = mnl_cb_run(s.buf, s.len, self.seq, self.sock.portid, cb, data)
        if ret < 0:
            err[0] = errno
            return -1
        return ret

    def to_fd(self, int fd, Format fmt not None, bint lossy=False):
        """Write every kept entry to fd as text; returns how many were written (with `lossy`, how many
        were formatted: text a write fails for, other than EPIPE, is dropped as conntrack's stdio drops
        it, and the dump goes on)."""
        cdef text_ctx t
        cdef slot_t *s
        cdef int ret = 1, err = 0
        if not self.started:
            raise ValueError("this Dump was never started")
        cdef bytes header = fmt.header
        t.filt = &self.filt.f if self.filt is not None else NULL
        t.fmt = &fmt.f
        memset(&t.o, 0, sizeof(t.o))     # (-L keeps SIGINT's default: no stop, written in large blocks)
        t.o.fd = fd
        t.o.lossy = lossy
        t.o.cap = OUT_SIZE
        t.count = 0
        t.header = header
        t.header_len = len(header)
        t.header_done = t.header_len == 0
        t.o.buf = <char *>malloc(OUT_SIZE)
        if t.o.buf == NULL:
            raise MemoryError()
        try:
            with nogil:
                while ret > 0:
                    s = self.take()
                    if s == NULL:
                        break
                    ret = self.run_batch(s, text_cb, &t, &err)
                    self.release()
                    if t.o.err:
                        err = t.o.err
                        ret = -1
                if ret >= 0 and outbuf_flush(&t.o) < 0:
                    err = t.o.err
                    ret = -1
            self.count = t.count
            self.close()
            if ret < 0:
                raise from_errno(err, "dump")
            if t.header_done and t.header_len:
                _write_all(fd, fmt.footer, lossy)
        finally:
            free(t.o.buf)
        return t.count

    def __iter__(self):
        return self

    def __next__(self):
        cdef slot_t *s
        cdef int ret, err = 0
        cdef nf_conntrack *ct
        if not self.started:
            # Dump.__new__(Dump) without __init__: no reader to take batches from (it would wait forever)
            raise ValueError("this Dump was never started")
        while self.fi >= self.fc.n:
            self.fc.n = self.fi = 0
            if self.finished:
                raise StopIteration
            with nogil:
                s = self.take()
                if s != NULL:
                    ret = self.run_batch(s, flow_cb, &self.fc, &err)
                    self.release()
            if s == NULL or ret == 0:
                self.finished = True
            elif ret < 0:
                self.finished = True
                self.close()
                raise from_errno(err, "dump")
        ct = self.fc.items[self.fi]
        self.fc.items[self.fi] = NULL
        self.fi += 1
        self.count += 1
        return Flow.adopt(ct)

    cdef long feed(self, entry_cb_t cb, void *data) except -1:
        """Hand every remaining kept entry to the C callback `cb`, without the GIL.

        The write path (-D, -U) acts on entries in C as they arrive; entries already parsed by a
        peek through __next__ go first. Returns how many entries were handed over. C only: a
        callback and its data are addresses, which Python code must not be able to pass.
        """
        cdef slot_t *s
        cdef int ret = 1, err = 0, i, stop = 0
        cdef long n = 0
        cdef nf_conntrack *ct
        with nogil:
            while True:
                while self.fi < self.fc.n:
                    ct = self.fc.items[self.fi]
                    self.fc.items[self.fi] = NULL
                    self.fi += 1
                    n += 1
                    if cb(ct, data) < 0:
                        stop = 1
                        break
                if stop or self.finished:
                    break
                self.fc.n = self.fi = 0
                s = self.take()
                if s == NULL:
                    self.finished = True
                    break
                ret = self.run_batch(s, flow_cb, &self.fc, &err)
                self.release()
                if ret <= 0:
                    self.finished = True
                    if ret == 0:
                        continue      # hand over what the last batch held
                    break
        self.count += n
        if ret < 0:
            self.close()
            raise from_errno(err, "dump")
        if stop:
            self.close()
        return n

    def close(self):
        """Stop early: the reader drains nothing more and the socket is closed."""
        cdef int i
        if self.started and not self.joined:
            with nogil:
                pthread_mutex_lock(&self.pipe.lock)
                self.pipe.stop = True
                pthread_cond_broadcast(&self.pipe.cond)
                pthread_mutex_unlock(&self.pipe.lock)
                pthread_join(self.thread, NULL)
            self.joined = True
            pthread_mutex_destroy(&self.pipe.lock)
            pthread_cond_destroy(&self.pipe.cond)
        if self.fc.items != NULL:
            for i in range(self.fi, self.fc.n):
                if self.fc.items[i] != NULL:
                    nfct_destroy(self.fc.items[i])
            self.fc.n = self.fi = 0
        if self.sock is not None:
            self.sock.close()
        self.finished = True

    def __dealloc__(self):
        cdef int i
        if self.started and not self.joined:
            self.close()
        if self.fc.items != NULL:
            free(self.fc.items)
        if self.pipe.slots != NULL:
            for i in range(self.pipe.nslots):
                free(self.pipe.slots[i].buf)
            free(self.pipe.slots)


def split_dump(int nsfd, int msg_type, int family, Filter filt, bint userspace_filter=True,
               int batches=NSLOTS):
    """The dump of a command, filtered in the kernel as far as it can without changing conntrack's
    order: (entries already read, the Dump to go on with). -L, the API's dump() and -D/-U all start so.

    The kernel filters tuples only within one family. For a filter on both families (see
    Filter.split_families), one filtered dump per family runs at once (each may hold `batches`, so the
    two table walks overlap); when only one family has matches, its dump alone is the answer in the
    kernel's order. When both do, the order of a single dump cannot be rebuilt from the two, so one
    dump filtered in userspace is read instead.
    """
    cdef Dump d4, d6
    if not filt.split_families:
        return [], Dump(nsfd, msg_type, family, filt, True, userspace_filter)
    d6 = Dump(nsfd, msg_type, AF_INET6, filt, True, userspace_filter, batches)
    d4 = Dump(nsfd, msg_type, AF_INET, filt, True, userspace_filter, batches)
    first6 = next(d6, None)
    if first6 is None:
        d6.close()
        return [], d4
    first4 = next(d4, None)
    d4.close()
    if first4 is None:
        return [first6], d6
    d6.close()
    filt.kernel_tuple = False
    return [], Dump(nsfd, msg_type, family, filt, True, userspace_filter)


def parse_batch(bytes data not None, Filter filt=None):
    """The entries of one dump batch (the messages one recv() of a dump returns) from bytes, parsed as a
    Dump parses a received batch (libmnl's mnl_cb_run, the same callback and filter), with no socket:
    for recorded messages and the fuzzer. Parsing stops at NLMSG_DONE; an NLMSG_ERROR raises as a dump
    does. ValueError: longer than a dump's receive buffer (64 KiB), or a message that is not an entry as
    the kernel sends it (_nfct.policy).
    """
    cdef flow_ctx fc
    cdef const char *buf = data
    cdef size_t n = len(data)
    cdef long bad
    cdef int ret, err = 0, i
    cdef list flows = []
    if n > SLOT_SIZE:
        raise ValueError(f"a dump batch holds at most {SLOT_SIZE} bytes, not {n}")
    bad = batch_bad(buf, n, False)
    if bad >= 0:
        raise ValueError(f"message {bad}: not a conntrack entry as the kernel sends it (attribute lengths or types)")
    fc.items = <nf_conntrack **>malloc(SLOT_SIZE // 16 * sizeof(nf_conntrack *))
    if fc.items == NULL:
        raise MemoryError()
    fc.cap = SLOT_SIZE // 16      # more than a 64 KiB batch can hold (a message has at least 20 bytes)
    fc.n = 0
    fc.filt = &filt.f if filt is not None else NULL
    try:
        with nogil:
            ret = mnl_cb_run(buf, n, 0, 0, flow_cb, &fc)
            if ret < 0:
                err = errno
        for i in range(fc.n):
            flows.append(Flow.adopt(fc.items[i]))
            fc.items[i] = NULL
    finally:
        for i in range(fc.n):
            if fc.items[i] != NULL:
                nfct_destroy(fc.items[i])
        free(fc.items)
    if ret < 0:
        raise from_errno(err, "dump")
    return flows


def _write_all(int fd, bytes data, bint lossy=False):
    import os
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError:
            raise
        except OSError:
            if lossy:
                return
            raise
        view = view[n:]
