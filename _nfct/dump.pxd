from libc.stdint cimport uint32_t

from _nfct.libmnl cimport mnl_cb_t
from _nfct.libnfct cimport nf_conntrack
from _nfct.pthread cimport pthread_t, pthread_mutex_t, pthread_cond_t
from _nfct.socket cimport NfctSocket
from _nfct.filter cimport Filter, ct_filter

# What Dump.feed() calls for every kept entry (the callee owns `ct`); a negative return stops the dump.
ctypedef int (*entry_cb_t)(nf_conntrack *ct, void *data) noexcept nogil


cdef enum:
    REQ_SIZE = 8192
    PRE_SIZE = 32


cdef struct slot_t:
    char *buf
    ssize_t len
    int err


cdef struct pipe_t:
    pthread_mutex_t lock
    pthread_cond_t cond
    const char *req         # the dump request: the reader thread sends it, since the kernel
    size_t req_len          # fills the first batch inside that send (a whole filtered walk, if
                            # nothing matches), and two dumps should walk the table at once
    const char *pre         # with `defer`: a request whose answer stays queued (see start_deferred)
    uint32_t pre_seq
    uint32_t seq
    bint defer
    bint skipping           # the pre answer and the deferred start's error are still to come
    slot_t *slots           # a ring of nslots batches; buffers are allocated when first filled
    int nslots
    int head, tail, count
    bint done, stop
    int fd


cdef struct flow_ctx:
    const ct_filter *filt
    nf_conntrack **items
    int n
    int cap


cdef class Dump:
    cdef NfctSocket sock
    cdef Filter filt
    cdef pipe_t pipe
    cdef pthread_t thread
    cdef bint started, joined
    cdef char req[REQ_SIZE]
    cdef char pre[PRE_SIZE]
    cdef unsigned int seq
    cdef flow_ctx fc
    cdef int fi
    cdef bint finished
    cdef public long count

    cdef slot_t *take(self) noexcept nogil
    cdef void release(self) noexcept nogil
    cdef int run_batch(self, slot_t *s, mnl_cb_t cb, void *data, int *err) noexcept nogil
    # The write path's entry point (-D/-U act on each entry in C); not callable from Python.
    cdef long feed(self, entry_cb_t cb, void *data) except -1
