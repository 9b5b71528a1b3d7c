# cython: language_level=3
"""-R: loading a file of commands.

conntrack parses the whole file before it runs any line, then runs the lines one by one and stops at
the first failure. pynfct does the same in two passes over the file: the first parses every line (and
stops at the first bad one, having run nothing), the second parses again and runs. Most lines of a
big file are plain -I/-A lines; those are parsed in C (_nfct.fastparse) and their requests are
pipelined (_nfct.request). Any line the fast parser does not fully understand goes to the Python port
of conntrack's parser (pynfct.cli.parse), which also produces every error message. A failed create
stops the run like conntrack's exit: the creates sent after it in the same batch are deleted again.

Ctrl-C: scan() runs Python's pending signal handlers now and then (_nfct.request's intr_poll); once one
raised, it stops reading, drops the batch it was filling unsent, waits until the batches handed over are
answered and counted, and raises that exception. The API's creates (queue_command/queue_flow) run
Python between items, where the exception comes by itself: close() then leaves the batch being filled
unsent too, and `created`/`failures` say exactly what was done.
"""
import os

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport errno, EINTR, EEXIST, ENOMEM
from libc.stdint cimport uint32_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset, memchr, memmove
from posix.unistd cimport read

from _nfct.libnfct cimport *
from _nfct.netlink cimport *
from _nfct.socket cimport NfctSocket
from _nfct.flow cimport Flow
from _nfct.fdio cimport write_all
from _nfct.request cimport (req_t, batch_t, req_init, req_free, batch_init, batch_full, req_put, req_done,
                            req_flush, family_of, template_ct, creatable_clone, handoff_t, handoff_init,
                            handoff_give, handoff_take, handoff_sent, handoff_stop, handoff_free)
from _nfct.fastparse cimport LINE_MAX, MAX_ARGC, FAST_ADD, fast_t, fast_parse, fast_build
from _nfct.constants cimport CT_ADD
from _nfct.spec cimport spec_ct

from _nfct.errors import from_errno

cdef enum:
    NBATCH_LOAD = 2         # one batch being sent while the next is built
    READ_SIZE = 1 << 20
    BATCH_MAX = 2048        # requests per sendmsg (the buffer fills first for all but tiny ones)


# --- reading the file ---------------------------------------------------------------------------------

from _nfct.request cimport intr_t, intr_init, intr_poll, intr_now, intr_take, intr_clear

cdef struct reader_t:
    int fd
    int copy_fd              # pass 1 of a pipe: what is read is also kept here for pass 2
    char *buf
    size_t start
    size_t end
    bint eof
    int err
    intr_t *intr             # a read that says EINTR runs the signal handlers (a pipe may wait long)


cdef int reader_fill(reader_t *r) noexcept nogil:
    cdef ssize_t n
    if r.start > 0:
        memmove(r.buf, r.buf + r.start, r.end - r.start)
        r.end -= r.start
        r.start = 0
    while True:
        n = read(r.fd, r.buf + r.end, READ_SIZE - r.end)
        if n < 0 and errno == EINTR:
            if r.intr != NULL and intr_now(r.intr) < 0:
                r.err = EINTR
                return -1
            continue
        break
    if n < 0:
        r.err = errno
        return -1
    if n == 0:
        r.eof = True
        return 0
    if r.copy_fd >= 0:
        r.err = write_all(r.copy_fd, r.buf + r.end, n)
        if r.err:
            return -1
    r.end += n
    return 0


cdef int reader_next(reader_t *r, char **line, size_t *len) noexcept nogil:
    """The next fgets(buf, 10240) chunk: up to and with a newline, at most 10239 bytes. 0 at the end."""
    cdef char *nl
    cdef size_t avail
    while True:
        avail = r.end - r.start
        nl = <char *>memchr(r.buf + r.start, b'\n', avail if avail < LINE_MAX - 1 else LINE_MAX - 1)
        if nl != NULL:
            line[0] = r.buf + r.start
            len[0] = <size_t>(nl - (r.buf + r.start)) + 1
            r.start += len[0]
            return 1
        if avail >= LINE_MAX - 1 or (r.eof and avail > 0):
            line[0] = r.buf + r.start
            len[0] = avail if avail < LINE_MAX - 1 else LINE_MAX - 1
            r.start += len[0]
            return 1
        if r.eof:
            return 0
        if reader_fill(r) < 0:
            return -1


# --- the batches of creates and the sender ------------------------------------------------------------

# A batch of creates and what each request came from; the Loader's sender thread sends full batches
# while the calling thread parses and builds the next one (the kernel does its part inside sendmsg).
cdef struct cbatch_t:
    batch_t b
    long lines[BATCH_MAX]
    char is_add[BATCH_MAX]
    int errs[BATCH_MAX]
    size_t offs[BATCH_MAX]


cdef struct load_ctx:
    req_t req
    cbatch_t batches[NBATCH_LOAD]
    handoff_t h               # the one being filled is batches[h.submitted % NBATCH_LOAD]
    bint stopped              # a create failed: later batches are dropped unsent
    long created
    long existed
    bint keep_going
    long *fail_pairs          # keep_going: (line, errno) pairs
    long nfail
    long capfail
    long fail_line
    int fail_errno
    bint fail_add


cdef int load_flush(load_ctx *c, cbatch_t *cb) noexcept nogil:
    """Send one batch. On the first failure (an existing entry is none for -A), delete again what
    the requests after it created, and return -1 with fail_* set."""
    cdef batch_t *b = &cb.b
    cdef int n = b.n, i, k = -1, e
    cdef size_t len = 0
    cdef nlmsghdr *nlh
    cdef long *p
    if n == 0:
        return 0
    if req_flush(&c.req, b, create_answer, <void *>cb.errs) < 0:
        c.fail_errno = c.req.err
        c.fail_line = cb.lines[0]
        b.len = b.n = 0
        return -1
    for i in range(n):
        e = cb.errs[i]
        if e == 0:
            if k < 0:
                c.created += 1
        elif e == EEXIST and cb.is_add[i]:
            if k < 0:
                c.existed += 1
        elif c.keep_going:
            if c.nfail == c.capfail:
                p = <long *>realloc(c.fail_pairs, (c.capfail * 2 + 64) * 2 * sizeof(long))
                if p == NULL:
                    c.fail_errno = ENOMEM
                    return -1
                c.fail_pairs = p
                c.capfail = c.capfail * 2 + 64
            c.fail_pairs[2 * c.nfail] = cb.lines[i]
            c.fail_pairs[2 * c.nfail + 1] = e
            c.nfail += 1
        elif k < 0:
            k = i
    if k < 0:
        return 0
    c.fail_line = cb.lines[k]
    c.fail_errno = cb.errs[k]
    c.fail_add = cb.is_add[k]
    # Undo: the same requests as deletes (the kernel finds the entry by their original tuple); their
    # sequence numbers are answered already, so they are used again.
    for i in range(k + 1, n):
        if cb.errs[i] != 0:
            continue
        nlh = <nlmsghdr *>(b.buf + cb.offs[i])
        memmove(b.buf + len, nlh, nlh.nlmsg_len)
        nlh = <nlmsghdr *>(b.buf + len)
        nlh.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
        nlh.nlmsg_flags = NLM_F_REQUEST
        b.len = len
        req_done(b, nlh)
        len += nlh.nlmsg_len
    req_flush(&c.req, b, ignore_answer, NULL)
    b.len = b.n = 0
    return -1


cdef void *load_sender(void *arg) noexcept nogil:
    cdef load_ctx *c = <load_ctx *>arg
    cdef cbatch_t *cb
    cdef long n
    while True:
        n = handoff_take(&c.h)
        if n < 0:
            return NULL
        cb = &c.batches[n % NBATCH_LOAD]
        if c.stopped:
            cb.b.len = cb.b.n = 0           # after a failure nothing more is sent
        elif load_flush(c, cb) < 0:
            c.stopped = True
        handoff_sent(&c.h)


cdef inline cbatch_t *load_batch(load_ctx *c) noexcept nogil:
    return &c.batches[c.h.submitted % NBATCH_LOAD]


cdef int load_submit(load_ctx *c, bint wait_all) noexcept nogil:
    """Hand the batch being filled over (threaded) or send it; with wait_all, also wait until every
    batch is done. -1 once a create has failed."""
    if not c.h.threaded:
        if not c.stopped and load_flush(c, load_batch(c)) < 0:
            c.stopped = True
    else:
        handoff_give(&c.h, load_batch(c).b.n != 0, 1 if wait_all else NBATCH_LOAD)
    return -1 if c.stopped else 0


cdef void load_abandon(load_ctx *c) noexcept nogil:
    """Stop asking: the batch being filled is dropped unsent; those handed over are sent and counted."""
    cdef cbatch_t *cb = load_batch(c)
    cb.b.len = cb.b.n = 0
    if c.h.threaded:
        handoff_give(&c.h, False, 1)


# --- the Loader ---------------------------------------------------------------------------------------

cdef class Loader:
    """One pass over a -R file. `slow(line: bytes, lineno: int)` is called for every line the C parser
    leaves to the full one (with `proto`, the -p of the last line parsed here: "tcp", "udp" or None);
    with `run`, fast -I/-A lines are sent as they come and slow ones go through queue_create() or,
    after sync(), through the command handlers. A sender thread sends full batches of creates while
    the calling thread reads and builds the next ones."""
    cdef reader_t rd
    cdef load_ctx *c
    cdef NfctSocket sock
    cdef bint run
    cdef bint started
    cdef object slow
    cdef readonly long lineno
    cdef readonly long fast_lines
    cdef readonly int last_proto

    def __cinit__(self):
        memset(&self.rd, 0, sizeof(reader_t))
        self.rd.fd = self.rd.copy_fd = -1
        self.c = <load_ctx *>calloc(1, sizeof(load_ctx))
        if self.c == NULL:
            raise MemoryError()

    cdef intr_t intr
    cdef bint closed

    def __init__(self, int fd, slow, int nsfd=-1, bint run=False, int copy_fd=-1, threaded=None):
        cdef int k
        intr_init(&self.intr)
        self.rd.intr = &self.intr
        self.rd.fd = fd
        self.rd.copy_fd = copy_fd
        if fd >= 0:
            self.rd.buf = <char *>malloc(READ_SIZE)
            if self.rd.buf == NULL:
                raise MemoryError()
        self.slow = slow
        self.run = run
        if run:
            self.sock = NfctSocket(nsfd)
            req_init(&self.c.req, self.sock)
            for k in range(NBATCH_LOAD):
                if batch_init(&self.c.batches[k].b) < 0:
                    raise MemoryError()
            if threaded is None:
                threaded = len(os.sched_getaffinity(0)) >= 2
            handoff_init(&self.c.h, load_sender, self.c, threaded)
            self.started = True

    def __dealloc__(self):
        cdef int k
        self._join()
        intr_clear(&self.intr)
        free(self.rd.buf)
        if self.c != NULL:
            for k in range(NBATCH_LOAD):
                free(self.c.batches[k].b.buf)
            if self.started:
                handoff_free(&self.c.h)
            req_free(&self.c.req)
            free(self.c.fail_pairs)
            free(self.c)
            self.c = NULL

    cdef void _join(self) noexcept:
        if self.c != NULL and self.c.h.threaded:
            with nogil:
                handoff_stop(&self.c.h)

    cdef void _settle(self) noexcept:
        # the results are the sender's until the batches handed over are done
        if self.started and self.c.h.threaded:
            with nogil:
                handoff_give(&self.c.h, False, 1)

    cdef int _open(self) except -1:
        if self.closed:
            raise ValueError("the Loader is closed")
        return 0

    def close(self):
        """Wait for the batches handed over (a batch still being filled is not sent) and let go of the
        socket; the results stay readable. Closing twice is fine."""
        self._join()
        self.closed = True
        if self.sock is not None:
            self.sock.close()

    @property
    def proto(self):
        return {6: "tcp", 17: "udp"}.get(self.last_proto)

    # The results wait for the batches handed over to the sender (not for one still being filled): what
    # they say is exact at any time, final after sync(), scan() or close().

    @property
    def created(self):
        """Requests that created an entry."""
        self._settle()
        return self.c.created

    @property
    def existed(self):
        """-A lines whose entry was there already."""
        self._settle()
        return self.c.existed

    @property
    def fail_line(self):
        self._settle()
        return self.c.fail_line

    @property
    def fail_errno(self):
        self._settle()
        return self.c.fail_errno

    @property
    def fail_add(self):
        self._settle()
        return self.c.fail_add

    property keep_going:
        """API bulk creates: note every failure (in `failures`) and undo nothing."""
        def __get__(self):
            return self.c.keep_going

        def __set__(self, bint value):
            self.c.keep_going = value

    @property
    def failures(self):
        """(line or item number, errno) of the refused creates, with keep_going."""
        self._settle()
        return [(self.c.fail_pairs[2 * i], <int>self.c.fail_pairs[2 * i + 1]) for i in range(self.c.nfail)]

    cdef int queue(self, nf_conntrack *ct, int family, bint add) noexcept nogil:
        """Add a create request to the batch; hands the batch over when full. -1 once one failed."""
        cdef cbatch_t *cb = load_batch(self.c)
        cdef nlmsghdr *nlh
        cdef int i = cb.b.n
        if self.c.stopped:
            return -1
        nlh = req_put(&self.c.req, &cb.b, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW,
                      NLM_F_CREATE | NLM_F_EXCL, family)
        nfct_nlmsg_build(nlh, ct)
        cb.offs[i] = cb.b.len
        req_done(&cb.b, nlh)
        cb.lines[i] = self.lineno
        cb.is_add[i] = add
        cb.errs[i] = 0
        if cb.b.n == BATCH_MAX or batch_full(&cb.b):
            return load_submit(self.c, False)
        return 0

    def queue_create(self, command):
        """A -I/-A line the full parser read: its request joins the batch."""
        cdef nf_conntrack *ct
        cdef int ret
        cdef bint add
        cdef int family = command.family
        self._open()
        add = command.command == CT_ADD
        ct = template_ct(command)
        with nogil:
            ret = self.queue(ct, family, add)
        nfct_destroy(ct)
        if ret < 0:
            raise _Stop()

    def queue_flow(self, Flow flow not None, bint add=False):
        """Create an entry like a dumped one (see create_flow) as part of the batch."""
        cdef nf_conntrack *ct
        cdef int ret
        self._open()
        ct = creatable_clone(flow.ct)
        self.lineno += 1
        with nogil:
            ret = self.queue(ct, family_of(ct), add)
        nfct_destroy(ct)
        if ret < 0:
            raise _Stop()

    def queue_command(self, command):
        """queue_create() for the API: counts items as lines."""
        self.lineno += 1
        self.queue_create(command)

    def sync(self):
        """Send what is queued and wait for it (before a -U/-D/-F line runs, and at the end)."""
        cdef int ret = 0
        self._open()
        if self.run:
            with nogil:
                ret = load_submit(self.c, True)
        if ret < 0:
            raise _Stop()

    def scan(self):
        """Read the whole file; raises _Stop after a failed create (see fail_*)."""
        cdef char *line
        cdef size_t len, j
        cdef fast_t f
        cdef char *argv[MAX_ARGC]
        cdef char work[LINE_MAX]
        cdef int rc
        cdef nf_conntrack *ct
        cdef bint stop = False
        self._open()
        while True:
            with nogil:
                while True:
                    if intr_poll(&self.intr) < 0:
                        rc = 0
                        break
                    rc = reader_next(&self.rd, &line, &len)
                    if rc <= 0:
                        break
                    self.lineno += 1
                    # as ct_parse_file(): the string ends at a NUL; blanks first; empty lines and comments
                    j = 0
                    while j < len and line[j] != 0:
                        j += 1
                    len = j
                    j = 0
                    while j < len and (line[j] == b' ' or line[j] == b'\t'):
                        j += 1
                    if j < len and (line[j] == b'\n' or line[j] == b'#'):
                        continue
                    memcpy(work, line + j, len - j)
                    if fast_parse(&f, work, len - j, argv) == 0:
                        self.fast_lines += 1
                        self.last_proto = f.proto
                        if self.run:
                            ct = fast_build(&f)
                            if ct == NULL:
                                self.c.fail_errno = ENOMEM
                                self.c.fail_line = self.lineno
                                stop = True
                                break
                            if self.queue(ct, f.family, f.command == FAST_ADD) < 0:
                                stop = True
                            nfct_destroy(ct)
                            if stop:
                                break
                        continue
                    break       # the full parser's line
            if self.intr.raised:
                if self.run:
                    with nogil:
                        load_abandon(self.c)
                exc = intr_take(&self.intr)
                raise exc if exc is not None else ValueError("the Loader's scan was interrupted")
            if stop:
                self.sync_quietly()
                raise _Stop()
            if rc < 0:
                raise from_errno(self.rd.err, "read")
            if rc == 0:
                break
            self.slow(PyBytes_FromStringAndSize(line + j, len - j), self.lineno)
            self.last_proto = 0
        self.sync()

    cdef void sync_quietly(self) noexcept:
        # let the sender finish (and drop) what is in flight before fail_* are read
        if self.run:
            with nogil:
                load_submit(self.c, True)

    def queue_spec(self, dict v, bint add, labelmap=None):
        """create_many(): a FlowSpec's checked values (its `_v`) straight to its create request (the one
        its command() template gives, see _nfct.spec), counted as an item like queue_command(). False,
        with nothing queued, where the spec needs the template path (label names without a label map)."""
        cdef nf_conntrack *ct
        cdef int family, ret
        self._open()
        if spec_ct(v, labelmap, &ct, &family) != 0:
            return False
        self.lineno += 1
        with nogil:
            ret = self.queue(ct, family, add)
        nfct_destroy(ct)
        if ret < 0:
            raise _Stop()
        return True


class _Stop(Exception):
    """A create of the file failed: Loader.fail_* say which and why."""


cdef void create_answer(void *data, uint32_t index, int err, const nlmsghdr *nlh) noexcept nogil:
    if nlh == NULL and index < BATCH_MAX:
        (<int *>data)[index] = err


cdef void ignore_answer(void *data, uint32_t index, int err, const nlmsghdr *nlh) noexcept nogil:
    pass
