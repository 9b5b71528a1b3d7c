# cython: language_level=3
"""The request pipeline of the bulk writes, and the requests built from an entry or a command.

Bulk work (-D/-U over a dump in _nfct.modify, the creates of a -R file in _nfct.load) is pipelined:
requests are packed back to back into one sendmsg, only failures and the last request of each batch
are acknowledged, and since the kernel runs every request of a sendmsg before the call returns, one
pass over the receive queue after each send sees every answer of that batch. Nothing is lost and
nothing is waited for per request. The structs and the per-request inline helpers are in request.pxd.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport errno, EINTR, EPERM, EAGAIN
from libc.stdint cimport uint8_t, uint32_t
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memset

from _nfct.libmnl cimport *
from _nfct.libnfct cimport *
from _nfct.netlink cimport *
from _nfct.pthread cimport *
from _nfct.sysapi cimport htonl, htons, recv, setsockopt, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, \
    SO_SNDBUF, SO_SNDBUFFORCE, MSG_DONTWAIT
from _nfct.filter cimport bitmask_of, set_attrs
from _nfct.flow cimport Flow

from _nfct.constants cimport O_MARK, O_ADD_LABEL

cdef enum:
    AF_INET = 2
    AF_INET6 = 10
    RECV_SIZE = 1 << 16
    RCVBUF = 8 << 20        # room for the GET answers of a -U batch (each a ~4 KiB skb)
    SNDBUF = 1 << 20

# status bits a user may set on a new entry (the kernel refuses EXPECTED, CONFIRMED, NAT bits, ...)
cdef uint32_t SETTABLE_STATUS = (1 << 1) | (1 << 2) | (1 << 10)


# --- the request pipeline -----------------------------------------------------------------------------

# --- the hand-off between the builder and the sender ------------------------------------------------

cdef void handoff_init(handoff_t *h, sender_main_t sender, void *arg, bint threaded) noexcept nogil:
    """Ready the hand-off; with `threaded`, start `sender(arg)` (if the thread cannot start, the
    builder sends itself)."""
    pthread_mutex_init(&h.lock, NULL)
    pthread_cond_init(&h.cond, NULL)
    h.submitted = h.processed = 0
    h.done = False
    h.threaded = threaded and pthread_create(&h.thread, NULL, sender, arg) == 0


cdef void handoff_give(handoff_t *h, bint batch, long in_flight) noexcept nogil:
    """Builder: hand the batch being built over (if `batch`), then wait until fewer than `in_flight`
    batches are unsent (1: all of them sent)."""
    pthread_mutex_lock(&h.lock)
    if batch:
        h.submitted += 1
        pthread_cond_broadcast(&h.cond)
    while h.submitted - h.processed >= in_flight:
        pthread_cond_wait(&h.cond, &h.lock)
    pthread_mutex_unlock(&h.lock)


cdef long handoff_take(handoff_t *h) noexcept nogil:
    """Sender: the number of the next batch to send, or -1 once the builder stopped and all are sent."""
    cdef long n = -1
    pthread_mutex_lock(&h.lock)
    while h.processed == h.submitted and not h.done:
        pthread_cond_wait(&h.cond, &h.lock)
    if h.processed != h.submitted:
        n = h.processed
    pthread_mutex_unlock(&h.lock)
    return n


cdef void handoff_sent(handoff_t *h) noexcept nogil:
    """Sender: the batch handoff_take() gave is done."""
    pthread_mutex_lock(&h.lock)
    h.processed += 1
    pthread_cond_broadcast(&h.cond)
    pthread_mutex_unlock(&h.lock)


cdef void handoff_stop(handoff_t *h) noexcept nogil:
    """Builder: nothing more comes; the sender finishes what it was given and ends."""
    if not h.threaded:
        return
    pthread_mutex_lock(&h.lock)
    h.done = True
    pthread_cond_broadcast(&h.cond)
    pthread_mutex_unlock(&h.lock)
    pthread_join(h.thread, NULL)
    h.threaded = False


cdef void handoff_free(handoff_t *h) noexcept nogil:
    pthread_mutex_destroy(&h.lock)
    pthread_cond_destroy(&h.cond)


cdef int req_init(req_t *r, NfctSocket sock) except -1:
    cdef int one = 1
    memset(r, 0, sizeof(req_t))
    r.nl = sock.mnl
    r.portid = sock.portid
    r.rbuf = <char *>malloc(RECV_SIZE)
    if r.rbuf == NULL:
        raise MemoryError()
    # Errors carry only the failed request's header, not its payload.
    mnl_socket_setsockopt(r.nl, NETLINK_CAP_ACK, &one, sizeof(int))
    set_buffer(sock.fd(), SO_RCVBUFFORCE, SO_RCVBUF, RCVBUF)
    set_buffer(sock.fd(), SO_SNDBUFFORCE, SO_SNDBUF, SNDBUF)
    return 0


cdef void set_buffer(int fd, int force, int plain, int size) noexcept nogil:
    # SO_*BUFFORCE: root may go beyond net.core.[rw]mem_max; others get the capped plain option.
    if setsockopt(fd, SOL_SOCKET, force, &size, sizeof(int)) < 0:
        setsockopt(fd, SOL_SOCKET, plain, &size, sizeof(int))


cdef void req_free(req_t *r) noexcept nogil:
    free(r.rbuf)
    r.rbuf = NULL


cdef int batch_init(batch_t *b) noexcept nogil:
    memset(b, 0, sizeof(batch_t))
    # Zeroed: the builders leave some attribute padding unwritten, and the buffer is sent as is
    # (req_put clears it again before each later batch).
    b.buf = <char *>calloc(1, SEND_SIZE)
    return 0 if b.buf != NULL else -1


cdef int req_flush(req_t *r, batch_t *b, answer_cb cb, void *data) noexcept nogil:
    """Send the batch and hand every answer to cb; 0, or -1 with r.err set."""
    cdef nlmsghdr *lastmsg
    cdef const nlmsghdr *nlh
    cdef uint32_t last, seq
    cdef ssize_t got
    cdef int left, err, i
    cdef bint done = False
    cdef bint refused = False
    if b.n == 0:
        return 0
    lastmsg = <nlmsghdr *>(b.buf + b.last)
    lastmsg.nlmsg_flags |= NLM_F_ACK
    last = lastmsg.nlmsg_seq
    while mnl_socket_sendto(r.nl, b.buf, b.len) < 0:
        if errno != EINTR:
            r.err = errno
            return -1
    while not done:
        # After an EPERM for the first request, the rest may have been dropped unanswered (below):
        # the kernel answered all it ran within the send, so an empty queue means no more answers.
        if refused:
            got = recv(mnl_socket_get_fd(r.nl), r.rbuf, RECV_SIZE, MSG_DONTWAIT)
        else:
            got = mnl_socket_recvfrom(r.nl, r.rbuf, RECV_SIZE)
        if got < 0:
            if errno == EINTR:
                continue
            if refused and errno == EAGAIN:
                for i in range(1, b.n):
                    cb(data, i, EPERM, NULL)
                break
            r.err = errno
            return -1
        nlh = <const nlmsghdr *>r.rbuf
        left = <int>got
        while mnl_nlmsg_ok(nlh, left):
            seq = nlh.nlmsg_seq
            if seq - b.first <= last - b.first:       # an answer to this batch (unsigned: wraps)
                if nlh.nlmsg_type == NLMSG_ERROR:
                    err = -(<const nlmsgerr *>mnl_nlmsg_get_payload(nlh)).error
                    cb(data, seq - b.first, err, NULL)
                    if seq == last:
                        done = True
                    # nfnetlink refuses a whole sendmsg without CAP_NET_ADMIN with one EPERM, the
                    # first request's, and drops the others unanswered (nfnetlink_rcv)
                    elif seq == b.first and err == EPERM:
                        refused = True
                elif nlh.nlmsg_type >= 16:        # NLMSG_MIN_TYPE: a data answer
                    cb(data, seq - b.first, 0, nlh)
            nlh = mnl_nlmsg_next(nlh, &left)
    b.len = 0
    b.n = 0
    return 0


# --- requests built from an entry or a command --------------------------------------------------------

cdef int put_lookup_tcpudp(nlmsghdr *nlh, const nf_conntrack *ct) noexcept nogil:
    """put_lookup()'s tuple and zone for plain TCP/UDP entries, written directly: the same bytes as
    the library builds (see lookup_requests), without an object copy per entry. -1: not such an entry."""
    cdef uint8_t l3 = nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO)
    cdef uint8_t l4 = nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO)
    cdef nlattr *tuple_nest
    cdef nlattr *nest
    if (l4 != 6 and l4 != 17) or (l3 != AF_INET and l3 != AF_INET6):
        return -1
    if not (nfct_attr_is_set(ct, ATTR_ORIG_PORT_SRC) and nfct_attr_is_set(ct, ATTR_ORIG_PORT_DST)):
        return -1
    tuple_nest = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG)
    nest = mnl_attr_nest_start(nlh, CTA_TUPLE_IP)
    if l3 == AF_INET:
        mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, nfct_get_attr(ct, ATTR_ORIG_IPV4_SRC))
        mnl_attr_put(nlh, CTA_IP_V4_DST, 4, nfct_get_attr(ct, ATTR_ORIG_IPV4_DST))
    else:
        mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, nfct_get_attr(ct, ATTR_ORIG_IPV6_SRC))
        mnl_attr_put(nlh, CTA_IP_V6_DST, 16, nfct_get_attr(ct, ATTR_ORIG_IPV6_DST))
    mnl_attr_nest_end(nlh, nest)
    nest = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO)
    mnl_attr_put_u8(nlh, CTA_PROTO_NUM, l4)
    mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, nfct_get_attr_u16(ct, ATTR_ORIG_PORT_SRC))
    mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST))
    mnl_attr_nest_end(nlh, nest)
    if nfct_attr_is_set(ct, ATTR_ORIG_ZONE):
        mnl_attr_put_u16(nlh, CTA_TUPLE_ZONE, htons(nfct_get_attr_u16(ct, ATTR_ORIG_ZONE)))
    mnl_attr_nest_end(nlh, tuple_nest)
    if nfct_attr_is_set(ct, ATTR_ZONE):
        mnl_attr_put_u16(nlh, CTA_ZONE, htons(nfct_get_attr_u16(ct, ATTR_ZONE)))
    return 0


def lookup_requests(Flow flow not None):
    """(direct, library) bytes of the delete request put_lookup() builds for a flow (for tests)."""
    cdef char a[4096]
    cdef char b[4096]
    cdef nlmsghdr *na
    cdef nlmsghdr *nb
    cdef nf_conntrack *t
    memset(a, 0, sizeof(a))
    memset(b, 0, sizeof(b))
    na = mnl_nlmsg_put_header(a)
    nb = mnl_nlmsg_put_header(b)
    if put_lookup_tcpudp(na, flow.ct) < 0:
        return None
    t = nfct_new()
    nfct_copy(t, flow.ct, NFCT_CP_ORIG)
    nfct_copy_attr(t, flow.ct, ATTR_ORIG_ZONE)
    nfct_copy_attr(t, flow.ct, ATTR_ZONE)
    nfct_nlmsg_build(nb, t)
    nfct_destroy(t)
    return PyBytes_FromStringAndSize(a, na.nlmsg_len), PyBytes_FromStringAndSize(b, nb.nlmsg_len)


cdef int put_lookup(nlmsghdr *nlh, const nf_conntrack *ct, bint with_id) noexcept nogil:
    """The attributes the kernel finds one entry by: original tuple, zone, and (to delete) its id.

    conntrack sends the whole entry back; the kernel reads only these, so the short form is the
    same request for it, cheaper to build and to parse. The id makes sure a delete never hits a new
    entry that took the tuple of one that just went away.
    """
    cdef nf_conntrack *t
    if put_lookup_tcpudp(nlh, ct) == 0:
        if with_id and nfct_attr_is_set(ct, ATTR_ID):
            mnl_attr_put_u32(nlh, CTA_ID, htonl(nfct_get_attr_u32(ct, ATTR_ID)))
        return 0
    t = nfct_new()
    if t == NULL:
        return -1
    nfct_copy(t, ct, NFCT_CP_ORIG)
    nfct_copy_attr(t, ct, ATTR_ORIG_ZONE)
    nfct_copy_attr(t, ct, ATTR_ZONE)
    nfct_nlmsg_build(nlh, t)
    nfct_destroy(t)
    if with_id and nfct_attr_is_set(ct, ATTR_ID):
        mnl_attr_put_u32(nlh, CTA_ID, htonl(nfct_get_attr_u32(ct, ATTR_ID)))
    return 0


cdef nf_conntrack *template_ct(command) except NULL:
    """tmpl.ct as conntrack sends it for -I/-A: setup of the missing direction, mark, labels."""
    cdef nf_conntrack *ct = nfct_new()
    if ct == NULL:
        raise MemoryError()
    tmpl = command.tmpl
    try:
        set_attrs(ct, tmpl.ct)
        if tmpl.setup == "reply":
            nfct_setobjopt(ct, NFCT_SOPT_SETUP_REPLY)
        elif tmpl.setup == "original":
            nfct_setobjopt(ct, NFCT_SOPT_SETUP_ORIGINAL)
        if command.options & O_MARK:
            nfct_set_attr_u32(ct, ATTR_MARK, tmpl.mark[0])
        if command.options & O_ADD_LABEL and tmpl.label_modify is not None:
            nfct_set_attr(ct, ATTR_CONNLABELS, bitmask_of(tmpl.label_modify))
    except BaseException:
        nfct_destroy(ct)
        raise
    return ct


cdef nf_conntrack *creatable_clone(const nf_conntrack *src) except NULL:
    """A dumped entry as a create request: its tuples, zones, status bits a user may set, timeout,
    mark, labels and protocol state (not its id, counters, timestamps, helper or security context)."""
    cdef nf_conntrack *ct = nfct_clone(src)
    cdef nf_conntrack_attr a
    if ct == NULL:
        raise MemoryError()
    for a in (ATTR_ID, ATTR_USE, ATTR_ORIG_COUNTER_PACKETS, ATTR_REPL_COUNTER_PACKETS,
              ATTR_ORIG_COUNTER_BYTES, ATTR_REPL_COUNTER_BYTES, ATTR_TIMESTAMP_START,
              ATTR_TIMESTAMP_STOP, ATTR_SECCTX, ATTR_HELPER_NAME):
        nfct_attr_unset(ct, a)
    if nfct_attr_is_set(ct, ATTR_STATUS):
        nfct_set_attr_u32(ct, ATTR_STATUS, nfct_get_attr_u32(ct, ATTR_STATUS) & SETTABLE_STATUS)
    return ct


# --- interruption (see request.pxd) -------------------------------------------------------------------

# (imported here, not at the top: only this part uses them)
import sys
from cpython.exc cimport PyErr_Fetch, PyErr_NormalizeException
from cpython.ref cimport Py_XDECREF
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from "Python.h":
    # without Cython's `except -1`: intr_check() keeps what a handler raised instead of propagating it
    int check_signals "PyErr_CheckSignals" () noexcept
    int PyException_SetTraceback(PyObject *ex, PyObject *tb) noexcept


cdef int intr_init(intr_t *s) except -1:
    """Ready `s` for a loop run by the calling thread (with the GIL)."""
    memset(s, 0, sizeof(intr_t))
    # threading not imported: no thread but the main one runs Python (and it is not imported here
    # for nothing: the CLI does not need it)
    threading = sys.modules.get("threading")
    s.watch = threading is None or threading.current_thread() is threading.main_thread()
    return 0


cdef int intr_check(intr_t *s) noexcept nogil:
    """intr_poll()'s slow path: run the pending signal handlers if INTR_NS passed since the last time."""
    cdef timespec ts
    cdef int64_t now
    clock_gettime(CLOCK_MONOTONIC, &ts)
    now = <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec
    if now < s.next_ns:
        return 0
    s.next_ns = now + INTR_NS
    with gil:
        if check_signals() < 0:
            PyErr_Fetch(&s.type, &s.value, &s.tb)
            s.raised = True
    return -1 if s.raised else 0


cdef int intr_now(intr_t *s) noexcept nogil:
    """intr_poll() at once, whenever it last looked: a system call the loop waits in said EINTR."""
    if s.raised:
        return -1
    if not s.watch:
        return 0
    s.next_ns = 0
    return intr_check(s)


cdef object intr_take(intr_t *s):
    """The exception a signal handler raised (its traceback attached), or None; `s` lets go of it
    (s.raised stays set)."""
    if s.type == NULL:
        return None
    PyErr_NormalizeException(&s.type, &s.value, &s.tb)
    if s.tb != NULL and s.value != NULL:
        PyException_SetTraceback(s.value, s.tb)
    exc = <object>s.value if s.value != NULL else <object>s.type
    intr_clear(s)
    return exc


cdef void intr_clear(intr_t *s) noexcept:
    """Drop a kept exception (with the GIL)."""
    Py_XDECREF(s.type)
    Py_XDECREF(s.value)
    Py_XDECREF(s.tb)
    s.type = s.value = s.tb = NULL
