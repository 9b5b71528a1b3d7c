# The request pipeline of the bulk writes (-D/-U in _nfct.modify, -R in _nfct.load) and the requests
# built from an entry or a command (shared with the single requests of _nfct.write); see request.pyx.
from cpython.ref cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int64_t
from libc.string cimport memset

from _nfct.libmnl cimport mnl_socket
from _nfct.libnfct cimport nf_conntrack, nfct_get_attr_u8, ATTR_ORIG_L3PROTO
from _nfct.netlink cimport nlmsghdr
from _nfct.socket cimport NfctSocket, put_nfnl_header
from _nfct.pthread cimport pthread_t, pthread_mutex_t, pthread_cond_t


cdef enum:
    UNIT = 64               # entries per sendmsg for -D/-U
    SEND_SIZE = 1 << 17     # the batch buffer; below the socket's send buffer
    MSG_ROOM = 4096         # more than any single request needs


# Called for every answer of a batch: `index` counts the batch's requests from 0; `err` is the errno of
# an NLMSG_ERROR (0 for an acknowledgement) and nlh is NULL, or nlh is a data answer (a GET's entry).
ctypedef void (*answer_cb)(void *data, uint32_t index, int err, const nlmsghdr *nlh) noexcept nogil


# the sending socket
cdef struct req_t:
    mnl_socket *nl
    unsigned int portid
    uint32_t seq             # the last sequence number used
    char *rbuf
    int err                  # errno of a failed send/recv


# requests sent with one sendmsg, and the entries they are about (-D/-U)
cdef struct batch_t:
    char *buf
    size_t len
    size_t dirty             # bytes from here on are zero (requests leave some padding unwritten)
    size_t last              # offset of the last request
    int n                    # requests
    uint32_t first           # sequence number of the first request
    nf_conntrack *pend[UNIT]
    int res[UNIT]
    int res2[UNIT]
    nf_conntrack *got[UNIT]
    int npend


# Batches of requests go from the thread that builds them to a sender thread, round a ring of a few:
# the builder fills batch number `submitted` (modulo the ring's size) while the sender sends the older
# ones. Without a sender thread (`threaded` false) the builder sends each batch itself.
cdef struct handoff_t:
    pthread_mutex_t lock
    pthread_cond_t cond
    long submitted            # batches handed over
    long processed            # batches the sender is done with
    bint done                 # the builder hands over nothing more
    bint threaded
    pthread_t thread

ctypedef void *(*sender_main_t)(void *) noexcept nogil

cdef void handoff_init(handoff_t *h, sender_main_t sender, void *arg, bint threaded) noexcept nogil
cdef void handoff_give(handoff_t *h, bint batch, long in_flight) noexcept nogil
cdef long handoff_take(handoff_t *h) noexcept nogil
cdef void handoff_sent(handoff_t *h) noexcept nogil
cdef void handoff_stop(handoff_t *h) noexcept nogil
cdef void handoff_free(handoff_t *h) noexcept nogil

# --- interruption -------------------------------------------------------------------------------------

# The bulk loops run without the GIL, so Python runs no signal handler (Ctrl-C's KeyboardInterrupt)
# until they return. They call intr_poll() for every entry or line; now and then (INTR_NS apart, the
# clock read every INTR_EVERY calls) it takes the GIL and runs the pending handlers. Once one raised,
# intr_poll() says -1 from then on and the exception waits in the intr_t for intr_take(). Only Python's
# main thread runs signal handlers: in other threads intr_poll() never takes the GIL.
cdef enum:
    INTR_EVERY = 16
    INTR_NS = 20000000        # 20 ms

cdef struct intr_t:
    bint watch               # the loop runs in Python's main thread
    bint raised              # a handler raised: the loop stops asking the kernel for more
    int tick
    int64_t next_ns
    PyObject *type           # the exception (owned references until intr_take/intr_clear)
    PyObject *value
    PyObject *tb

cdef int intr_init(intr_t *s) except -1
cdef int intr_check(intr_t *s) noexcept nogil
cdef int intr_now(intr_t *s) noexcept nogil
cdef object intr_take(intr_t *s)
cdef void intr_clear(intr_t *s) noexcept


cdef inline int intr_poll(intr_t *s) noexcept nogil:
    """0, or -1 once a signal handler raised (see intr_t)."""
    if s.raised:
        return -1
    if not s.watch:
        return 0
    s.tick += 1
    if s.tick < INTR_EVERY:
        return 0
    s.tick = 0
    return intr_check(s)


cdef int req_init(req_t *r, NfctSocket sock) except -1
cdef void req_free(req_t *r) noexcept nogil
cdef int batch_init(batch_t *b) noexcept nogil
cdef int req_flush(req_t *r, batch_t *b, answer_cb cb, void *data) noexcept nogil


cdef inline bint batch_full(const batch_t *b) noexcept nogil:
    return b.len + MSG_ROOM > SEND_SIZE


# Inline, as they run for every request of a batch.
cdef inline nlmsghdr *req_put(req_t *r, batch_t *b, uint16_t subsys, uint16_t type, uint16_t flags,
                              uint8_t family) noexcept nogil:
    """Start a request at the end of the batch (finish it with req_done)."""
    if b.len == 0 and b.dirty:
        # A new batch in a used buffer: clear what the earlier ones wrote (once a batch, only the
        # bytes used), so no stale byte goes out in this one's padding.
        memset(b.buf, 0, b.dirty)
        b.dirty = 0
    if b.len + MSG_ROOM > b.dirty:      # as far as this request's builder may write
        b.dirty = b.len + MSG_ROOM if b.len + MSG_ROOM < SEND_SIZE else SEND_SIZE
    r.seq += 1
    if r.seq == 0:
        r.seq = 1
    return put_nfnl_header(b.buf + b.len, subsys, type, flags, family, r.seq)


cdef inline void req_drop(req_t *r) noexcept nogil:
    """Forget the request req_put() started (it could not be built)."""
    r.seq -= 1


cdef inline void req_done(batch_t *b, nlmsghdr *nlh) noexcept nogil:
    if b.n == 0:
        b.first = nlh.nlmsg_seq
    b.last = b.len
    b.len += nlh.nlmsg_len
    b.n += 1


# --- requests built from an entry or a command --------------------------------------------------------

cdef inline uint8_t family_of(const nf_conntrack *ct) noexcept nogil:
    return nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO)


cdef int put_lookup(nlmsghdr *nlh, const nf_conntrack *ct, bint with_id) noexcept nogil
cdef nf_conntrack *template_ct(command) except NULL
cdef nf_conntrack *creatable_clone(const nf_conntrack *src) except NULL
