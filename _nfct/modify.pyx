# cython: language_level=3
"""-D and -U over a dump: a delete, or an update and a GET of the result, for every entry selected.

The dump's reader thread receives batches of entries (the kernel fills them inside recvmsg), the
calling thread parses and selects entries and builds the requests, and a sender thread sends each
batch of requests (the kernel runs them inside sendmsg; see _nfct.request), reads the answers and
writes out the entries that were changed. Batches go round a ring of NBATCH. The sender thread runs
only with three or more CPUs: on two, the reader and the calling thread already keep both busy, and
the calling thread sends its batches itself.

Ctrl-C (any signal whose Python handler raises) stops it within a few tens of milliseconds: the calling
thread runs the pending handlers now and then (_nfct.request's intr_poll, between entries); once one
raised it asks for nothing more (the dump stops, the batch it was filling is dropped unsent), lets the
batches already handed over be sent and answered, joins the threads, and raises that exception with
`partial`, the ModifyResult of what was done (see modify()).

The entries changed are printed as they are done. To a pipe, a socket or a terminal, whose reader may
stop reading, the calling thread writes them in whole lines (PIPE_BUF at a time, once the output has
room: _nfct.fdio's write_lines), so a signal also ends a wait for a full pipe: from then on the reader
gets 50 ms to take the text, and the lines it did not take are counted (ModifyResult.unprinted) instead
of printed.
"""
import os
import stat

from libc.errno cimport errno, ENOENT, ENOMEM, EINVAL, EPIPE
from libc.stdint cimport uint16_t, uint32_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memset

from _nfct.libnfct cimport *
from _nfct.netlink cimport *
from _nfct.socket cimport NfctSocket
from _nfct.filter cimport Filter, ct_filter, _filter_nat, _filter_network, labels_missing, bitmask_of
from _nfct.format cimport Format, fmt_t, outbuf_entry
from _nfct.flow cimport Flow
from _nfct.dump cimport Dump, entry_cb_t
from _nfct.dump import split_dump
from _nfct.fdio cimport outbuf_t, outbuf_flush, outbuf_stop
from _nfct.request cimport (UNIT, req_t, batch_t, req_init, req_free, batch_init, batch_full, req_put,
                            req_drop, req_done, req_flush, family_of, put_lookup, handoff_t, handoff_init,
                            handoff_give, handoff_take, handoff_sent, handoff_stop, handoff_free)

from _nfct.constants cimport (O_MARK, O_STATUS, O_ADD_LABEL, O_DEL_LABEL, O_ORIG, O_REPL, O_PROTO, O_SRC_NAT,
                              O_DST_NAT, O_ANY_NAT, O_MASK_SRC, O_MASK_DST)

from _nfct.errors import from_errno

cdef enum:
    AF_INET = 2
    AF_INET6 = 10
    NBATCH = 4              # batches in flight between the calling thread and the sender
    OUT_SIZE = 1 << 20


# --- output ---------------------------------------------------------------------------------------------

cdef int out_entry(outbuf_t *o, const nf_conntrack *ct, const fmt_t *fmt, unsigned int msg_type) noexcept nogil:
    if o.fd < 0:
        return 0
    return outbuf_entry(o, ct, fmt, msg_type)


# --- the ring of batches and the sender ---------------------------------------------------------------

from _nfct.request cimport intr_t, intr_init, intr_poll, intr_now, intr_take, intr_clear


cdef struct errlist_t:
    int *v
    long n
    long cap


cdef struct mod_ctx:
    req_t req
    outbuf_t out
    bint update
    const fmt_t *fmt
    unsigned int msg_type
    # -U
    const ct_filter *filt
    const nf_conntrack *obj
    uint32_t mark_value
    uint32_t mark_mask
    const nfct_bitmask *label_modify
    unsigned int options
    # the ring: the calling thread fills batches[h.submitted % NBATCH], the sender works through them
    batch_t batches[NBATCH]
    handoff_t h
    # results (the sender's until it is joined)
    bint collect             # keep the entries done (for the Python API)
    nf_conntrack **kept
    long nkept
    long capkept
    long count
    long vanished
    long unchanged
    errlist_t fail            # entries the kernel refused (the sender's)
    errlist_t build_fail      # entries no request could be built for (the calling thread's)
    int err
    intr_t intr               # the calling thread's look at Python's signal handlers


cdef bint out_stop(void *arg) noexcept nogil:
    """The output's stop callback (before a flush, and when a write says EINTR): run the signal
    handlers now (see intr_t); True once one raised."""
    return intr_now(&(<mod_ctx *>arg).intr) < 0


cdef inline batch_t *mod_batch(mod_ctx *c) noexcept nogil:
    return &c.batches[c.h.submitted % NBATCH]


cdef int errlist_add(errlist_t *l, int e) noexcept nogil:
    cdef int *p
    if l.n == l.cap:
        p = <int *>realloc(l.v, (l.cap * 2 + 64) * sizeof(int))
        if p == NULL:
            return -1
        l.v = p
        l.cap = l.cap * 2 + 64
    l.v[l.n] = e
    l.n += 1
    return 0


cdef inline int add_fail(mod_ctx *c, int e) noexcept nogil:
    return errlist_add(&c.fail, e)      # the sender's list


cdef struct answer_ctx:
    mod_ctx *c
    batch_t *b


cdef void mod_answer(void *data, uint32_t index, int err, const nlmsghdr *nlh) noexcept nogil:
    cdef mod_ctx *c = (<answer_ctx *>data).c
    cdef batch_t *b = (<answer_ctx *>data).b
    cdef uint32_t i = index // 2 if c.update else index
    cdef nf_conntrack *ct
    if i >= <uint32_t>b.npend:
        return
    if not c.update:
        b.res[i] = err
    elif index % 2 == 0:
        b.res[i] = err          # the update
    elif nlh != NULL:
        ct = nfct_new()         # the GET's answer: the entry as the kernel now has it
        if ct != NULL:
            nfct_nlmsg_parse(nlh, ct)
            if b.got[i] != NULL:
                nfct_destroy(b.got[i])
            b.got[i] = ct
    elif err:
        b.res2[i] = err


cdef int mod_run(mod_ctx *c, batch_t *b) noexcept nogil:
    """Send a batch, then print and count what it did (the sender's work)."""
    cdef int i, e
    cdef int ret = 0
    cdef answer_ctx a
    a.c = c
    a.b = b
    if c.err:
        ret = -1
    elif req_flush(&c.req, b, mod_answer, &a) < 0:
        c.err = c.req.err
        ret = -1
    for i in range(b.npend):
        if ret == 0:
            e = b.res[i]
            if c.update and e == 0:
                e = b.res2[i]
                if e == 0 and b.got[i] == NULL:
                    e = ENOENT
            if e == 0:
                if out_entry(&c.out, b.got[i] if c.update else b.pend[i], c.fmt, c.msg_type) < 0:
                    c.err = c.out.err
                    ret = -1
                c.count += 1
                if c.collect and keep(c, b, i) < 0:
                    c.err = ENOMEM
                    ret = -1
            elif e == ENOENT:
                c.vanished += 1      # gone between the dump and the request: not an error
            elif add_fail(c, e) < 0:
                c.err = ENOMEM
                ret = -1
        if b.pend[i] != NULL:
            nfct_destroy(b.pend[i])
        if b.got[i] != NULL:
            nfct_destroy(b.got[i])
        b.pend[i] = b.got[i] = NULL
        b.res[i] = b.res2[i] = 0
    b.npend = 0
    b.len = 0
    b.n = 0
    return ret


cdef int keep(mod_ctx *c, batch_t *b, int i) noexcept nogil:
    """Keep the entry (the kernel's answer after -U, the dumped one for -D): ownership moves here."""
    cdef nf_conntrack **p
    if c.nkept == c.capkept:
        p = <nf_conntrack **>realloc(c.kept, (c.capkept * 2 + 64) * sizeof(nf_conntrack *))
        if p == NULL:
            return -1
        c.kept = p
        c.capkept = c.capkept * 2 + 64
    if c.update:
        c.kept[c.nkept] = b.got[i]
        b.got[i] = NULL
    else:
        c.kept[c.nkept] = b.pend[i]
        b.pend[i] = NULL
    c.nkept += 1
    return 0


cdef void *sender_main(void *arg) noexcept nogil:
    cdef mod_ctx *c = <mod_ctx *>arg
    cdef long n
    while True:
        n = handoff_take(&c.h)
        if n < 0:
            return NULL
        mod_run(c, &c.batches[n % NBATCH])
        handoff_sent(&c.h)


cdef int mod_submit(mod_ctx *c) noexcept nogil:
    """Hand the batch being filled to the sender; wait for a free one. -1 once something failed."""
    if not c.h.threaded:
        mod_run(c, mod_batch(c))
    else:
        handoff_give(&c.h, True, NBATCH)
    return -1 if c.err else 0


# --- one entry: its request ---------------------------------------------------------------------------

cdef int delete_entry(nf_conntrack *ct, void *data) noexcept nogil:
    cdef mod_ctx *c = <mod_ctx *>data
    cdef batch_t *b = mod_batch(c)
    cdef nlmsghdr *nlh
    if c.err or intr_poll(&c.intr) < 0:
        nfct_destroy(ct)
        return -1
    nlh = req_put(&c.req, b, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, 0, family_of(ct))
    if put_lookup(nlh, ct, True) < 0:
        nfct_destroy(ct)
        c.err = ENOMEM
        return -1
    req_done(b, nlh)
    b.pend[b.npend] = ct
    b.npend += 1
    if b.npend == UNIT or batch_full(b):
        return mod_submit(c)
    return 0


cdef inline uint16_t zone_id(const nf_conntrack *ct, bint reply) noexcept nogil:
    """The zone the kernel looks an entry up in, per direction (0: the default zone)."""
    cdef nf_conntrack_attr a = ATTR_REPL_ZONE if reply else ATTR_ORIG_ZONE
    if nfct_attr_is_set(ct, a):
        return nfct_get_attr_u16(ct, a)
    if nfct_attr_is_set(ct, ATTR_ZONE):
        return nfct_get_attr_u16(ct, ATTR_ZONE)
    return 0


cdef int update_reject(const mod_ctx *c, const nf_conntrack *ct) noexcept nogil:
    """conntrack's -U selection (mnl_nfct_update_cb): not -L's filter, -m/-u/-t are values to set."""
    cdef const ct_filter *f = c.filt
    cdef const nf_conntrack *obj = c.obj
    if f.options & (O_SRC_NAT | O_DST_NAT | O_ANY_NAT) and _filter_nat(f, ct):
        return 1
    if f.label != NULL and labels_missing(f.label, ct):
        return 1
    if f.options & O_MASK_SRC and _filter_network(f, ct, 0):
        return 1
    if f.options & O_MASK_DST and _filter_network(f, ct, 1):
        return 1
    if (nfct_attr_is_set(obj, ATTR_ID) and nfct_attr_is_set(ct, ATTR_ID)
            and nfct_get_attr_u32(obj, ATTR_ID) != nfct_get_attr_u32(ct, ATTR_ID)):
        return 1
    if f.options & (O_ORIG | O_PROTO) and not nfct_cmp(obj, ct, NFCT_CMP_ORIG):
        return 1
    if f.options & (O_REPL | O_PROTO) and not nfct_cmp(obj, ct, NFCT_CMP_REPL):
        return 1
    # conntrack sends -w/--orig-zone in the update, so the kernel only finds entries of that zone
    # (and says ENOENT for the others); pynfct selects them instead and sends each entry's own zone.
    if nfct_attr_is_set(obj, ATTR_ZONE) and zone_id(ct, False) != nfct_get_attr_u16(obj, ATTR_ZONE):
        return 1
    if nfct_attr_is_set(obj, ATTR_ORIG_ZONE) and zone_id(ct, False) != nfct_get_attr_u16(obj, ATTR_ORIG_ZONE):
        return 1
    if nfct_attr_is_set(obj, ATTR_REPL_ZONE) and zone_id(ct, True) != nfct_get_attr_u16(obj, ATTR_REPL_ZONE):
        return 1
    return 0


cdef int copy_label(const mod_ctx *c, nf_conntrack *tmp, const nf_conntrack *ct) noexcept nogil:
    """--label-add/--label-del as conntrack's copy_label(): the kernel takes labels and a mask of
    the same size as it sent, and keeps only bits that are zero in both."""
    cdef nfct_bitmask *ctb
    cdef nfct_bitmask *newmask
    cdef unsigned int i
    if not c.options & (O_ADD_LABEL | O_DEL_LABEL):
        return 0
    nfct_copy_attr(tmp, ct, ATTR_CONNLABELS)
    ctb = <nfct_bitmask *>nfct_get_attr(tmp, ATTR_CONNLABELS)
    if c.options & O_ADD_LABEL:
        if ctb == NULL:
            newmask = nfct_bitmask_clone(c.label_modify)
            if newmask == NULL:
                return -1
            nfct_set_attr(tmp, ATTR_CONNLABELS, newmask)
            return 0
        newmask = nfct_bitmask_new(nfct_bitmask_maxbit(ctb))
        if newmask == NULL:
            return -1
        for i in range(nfct_bitmask_maxbit(ctb) + 1):
            if nfct_bitmask_test_bit(c.label_modify, i):
                nfct_bitmask_set_bit(ctb, i)
                nfct_bitmask_set_bit(newmask, i)
            elif nfct_bitmask_test_bit(ctb, i):
                nfct_bitmask_unset_bit(ctb, i)
        nfct_set_attr(tmp, ATTR_CONNLABELS_MASK, newmask)
    elif ctb != NULL:
        if c.label_modify == NULL:          # --label-del without names: drop them all
            newmask = nfct_bitmask_new(0)
            if newmask != NULL:
                nfct_set_attr(tmp, ATTR_CONNLABELS, newmask)
            return 0
        for i in range(nfct_bitmask_maxbit(ctb) + 1):
            if nfct_bitmask_test_bit(c.label_modify, i):
                nfct_bitmask_unset_bit(ctb, i)
        newmask = nfct_bitmask_clone(c.label_modify)
        if newmask == NULL:
            return -1
        nfct_set_attr(tmp, ATTR_CONNLABELS_MASK, newmask)
    return 0


cdef int update_entry(nf_conntrack *ct, void *data) noexcept nogil:
    cdef mod_ctx *c = <mod_ctx *>data
    cdef batch_t *b
    cdef nf_conntrack *tmp
    cdef nlmsghdr *nlh
    cdef uint32_t v
    cdef nf_conntrack_attr za
    cdef int k
    cdef nf_conntrack_attr zones[3]
    zones[0] = ATTR_ZONE
    zones[1] = ATTR_ORIG_ZONE
    zones[2] = ATTR_REPL_ZONE
    cdef int e = 0
    if c.err or intr_poll(&c.intr) < 0:
        nfct_destroy(ct)
        return -1
    if update_reject(c, ct):
        nfct_destroy(ct)
        return 0
    tmp = nfct_new()
    if tmp == NULL:
        nfct_destroy(ct)
        c.err = ENOMEM
        return -1
    # conntrack's object: the entry's original tuple, the template's other attributes, then the
    # mark (MARK/MASK: keep the bits outside MASK, xor in MARK), status bits added, labels.
    nfct_copy(tmp, ct, NFCT_CP_ORIG)
    nfct_copy(tmp, c.obj, NFCT_CP_META)
    # The zones the kernel finds the entry by (the original direction's; a reply zone alone would
    # make the library drop the rest of the request, as it has no reply tuple to put it in).
    for k in range(3):
        nfct_attr_unset(tmp, zones[k])
    nfct_copy_attr(tmp, ct, ATTR_ZONE)
    nfct_copy_attr(tmp, ct, ATTR_ORIG_ZONE)
    if c.options & O_MARK:
        v = nfct_get_attr_u32(ct, ATTR_MARK)
        nfct_set_attr_u32(tmp, ATTR_MARK, (v & ~c.mark_mask) ^ c.mark_value)
    if c.options & O_STATUS:
        nfct_set_attr_u32(tmp, ATTR_STATUS, nfct_get_attr_u32(ct, ATTR_STATUS) | nfct_get_attr_u32(tmp, ATTR_STATUS))
    if copy_label(c, tmp, ct) < 0:
        nfct_destroy(tmp)
        nfct_destroy(ct)
        c.err = ENOMEM
        return -1
    if nfct_cmp(tmp, ct, NFCT_CMP_ALL | NFCT_CMP_MASK):
        c.unchanged += 1        # nothing would change: no request, not counted (as conntrack)
        nfct_destroy(tmp)
        nfct_destroy(ct)
        return 0
    # The entry's own family: conntrack 1.4.7 sends the command's, which is AF_UNSPEC without -f or an
    # address, and the kernel refuses that (EOPNOTSUPP).
    b = mod_batch(c)
    nlh = req_put(&c.req, b, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW, 0, family_of(ct))
    if nfct_nlmsg_build(nlh, tmp) < 0:
        # the library could not encode it (the kernel would say the same): a failure of this entry
        req_drop(&c.req)
        nfct_destroy(tmp)
        nfct_destroy(ct)
        e = errno if errno else EINVAL
        if errlist_add(&c.build_fail, e) < 0:
            c.err = ENOMEM
            return -1
        return 0
    req_done(b, nlh)
    nlh = req_put(&c.req, b, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, 0, family_of(ct))
    put_lookup(nlh, tmp, False)
    req_done(b, nlh)
    nfct_destroy(tmp)
    b.pend[b.npend] = ct
    b.npend += 1
    if b.npend == UNIT or batch_full(b):
        return mod_submit(c)
    return 0


# --- the entry points ---------------------------------------------------------------------------------

cdef class ModifyResult:
    """What -D/-U did: `count` entries changed, `vanished` gone before their turn, `unchanged` left
    alone (-U had nothing to change), `failures` the errnos of the others; `flows` (with collect) the
    entries deleted, or updated as the kernel has them now; `unprinted`, of the `count`, those whose
    line was not written: a signal stopped the run and the reader of a pipe did not take it in time."""
    cdef readonly long count
    cdef readonly long unprinted
    cdef readonly long vanished
    cdef readonly long unchanged
    cdef readonly list failures
    cdef readonly list flows

    def __repr__(self):
        return (f"ModifyResult(count={self.count}, vanished={self.vanished}, unchanged={self.unchanged}, "
                f"failures={len(self.failures)})")


cdef long _feed(int nsfd, int family, Filter filt, bint userspace, mod_ctx *c, entry_cb_t cb) except -1:
    """Run cb on every entry the dump keeps, filtered by the kernel as far as it can (see iter_flows).
    The dumps are of the conntrack table (IPCTNL_MSG_CT_GET: dump.DUMP_CONNTRACK)."""
    cdef Flow f
    cdef Dump d
    cdef nf_conntrack *ct
    if filt.split_families and ((filt.tuple_flags(AF_INET, False) | filt.tuple_flags(AF_INET, True)) & ~8) == 0:
        # Only the protocol (CTA_FILTER_F_CTA_PROTO_NUM): it rarely drops most of a table, and filtering
        # both families takes a second walk of the whole table. One dump, as conntrack does.
        filt.kernel_tuple = False
    head, rest = split_dump(nsfd, IPCTNL_MSG_CT_GET, family, filt, userspace)
    for f in head:                # (an entry split_dump read to choose the dump): handed over as is
        ct = f.ct
        f.ct = NULL
        with nogil:
            cb(ct, c)
    d = rest
    return len(head) + d.feed(cb, c)


cdef int _feed_flows(flows, mod_ctx *c, entry_cb_t cb) except -1:
    cdef Flow f
    cdef nf_conntrack *ct
    cdef int ret
    for f in flows:
        ct = nfct_clone(f.ct)
        if ct == NULL:
            raise MemoryError()
        with nogil:
            ret = cb(ct, c)
        if ret < 0:
            break
    return 0


def modify(int nsfd, command, bint update, Format fmt=None, int fd=1, threaded=None, flows=None,
           bint collect=False, bint status_clear=False, bint lossy=False):
    """-D (update False) or -U over the entries the command selects; entries done are written to fd
    as `fmt` says (fd -1: not written). With `flows` (Flow objects, e.g. from a dump), those entries
    are the ones acted on instead of a dump's. Returns a ModifyResult.

    An exception raised while entries are fed (by a signal handler, such as Ctrl-C's KeyboardInterrupt,
    which runs within ~20 ms; or by the dump) stops the run: nothing more is asked of the kernel, what
    was asked is answered and counted (and written to fd), and the exception is raised again with
    `partial`, the ModifyResult of what was done (count: exactly the entries the kernel changed). It
    has no `partial` when a request or the output failed as well, as the count is not exact then.
    To a pipe, a socket or a terminal (whose reader may stop reading) a wait for a full pipe ends at
    such a signal too, also one that came during the last write: from then on the reader gets 50 ms to take the text, the rest is dropped in whole lines
    and counted in `unprinted` (then the run writes in the calling thread: `threaded` is ignored).
    With `lossy`, text a write fails for (other than EPIPE) is dropped and the run goes on, as
    conntrack's stdio drops it."""
    cdef mod_ctx *c = <mod_ctx *>malloc(sizeof(mod_ctx))
    cdef NfctSocket sock
    cdef Filter filt
    cdef nfct_bitmask *label_modify = NULL
    cdef ModifyResult r = ModifyResult.__new__(ModifyResult)
    cdef long i
    cdef int k
    cdef bint started = False
    cdef bint stopping
    cdef batch_t *b
    if c == NULL:
        raise MemoryError()
    memset(c, 0, sizeof(mod_ctx))
    c.out.fd = fd
    c.out.lossy = lossy
    try:
        intr_init(&c.intr)
        if fd >= 0 and fmt is not None and c.intr.watch:
            mode = os.fstat(fd).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd)):
                c.out.lines = True
                c.out.stop = out_stop
                c.out.stop_arg = c
        for k in range(NBATCH):
            if batch_init(&c.batches[k]) < 0:
                raise MemoryError()
        if update:
            # The kernel may drop entries by tuple, family and zone; -m and -u are values to set here.
            import copy
            kcmd = copy.copy(command)
            kcmd.tmpl = copy.copy(command.tmpl)
            kcmd.tmpl.filter_mark_kernel = None
            kcmd.tmpl.filter_status_kernel = None
            filt = Filter(kcmd, True)
            c.filt = &filt.f
            c.obj = filt.ct
            c.mark_value, c.mark_mask = command.tmpl.mark
            c.options = int(command.options)
            if command.tmpl.label_modify is not None:
                label_modify = bitmask_of(command.tmpl.label_modify)
            c.label_modify = label_modify
            c.msg_type = NFCT_T_NEW if fmt is not None and fmt.f.save else NFCT_T_UNKNOWN
        else:
            filt = Filter(command, True, status_clear=status_clear)    # (the library's "!NAME" checked here too)
            c.msg_type = NFCT_T_DESTROY if fmt is not None and fmt.f.save else NFCT_T_UNKNOWN
        c.update = update
        c.collect = collect
        if fmt is None:
            fmt = Format(0)
            c.out.fd = -1
        c.fmt = &fmt.f
        if c.out.fd >= 0:
            c.out.buf = <char *>malloc(OUT_SIZE)
            c.out.cap = OUT_SIZE
            if c.out.buf == NULL:
                raise MemoryError()
        sock = NfctSocket(nsfd)
        req_init(&c.req, sock)
        if threaded is None:
            # The dump's reader and the calling thread keep two CPUs busy; a third thread only pays
            # off when there is a third CPU (measured: slower on two).
            threaded = len(os.sched_getaffinity(0)) >= 3
        if c.out.lines:
            threaded = False    # the signal handlers run in this thread: it must be the one that writes
        handoff_init(&c.h, sender_main, c, threaded)
        started = True
        exc = None
        try:
            if flows is None:
                _feed(nsfd, command.family, filt, not update, c, update_entry if update else delete_entry)
            else:
                _feed_flows(flows, c, update_entry if update else delete_entry)
        except BaseException as e:
            exc = e             # raised again below, once what was sent is answered and counted
        finally:
            # the handlers' exception wins: the feed stopped for it (and may have raised its own then)
            pending = intr_take(&c.intr)
            if pending is not None:
                exc = pending
            stopping = exc is not None
            with nogil:
                b = mod_batch(c)
                if b.npend and not stopping:
                    mod_submit(c)       # (after an exception the batch being filled is not sent)
                handoff_stop(&c.h)
                if stopping:
                    outbuf_stop(&c.out)     # a reader that stopped reading must not hold us
                if c.out.len and c.out.fd >= 0 and c.err == 0:
                    if outbuf_flush(&c.out) < 0:
                        c.err = c.out.err
            sock.close()
        if exc is None:
            # a signal handled during the last flush (its stop callback ran the handlers) stops the
            # run as one during the feed does (a -R would otherwise go on to its next line)
            exc = intr_take(&c.intr)
        if exc is None:
            if c.err == EPIPE:
                raise BrokenPipeError(EPIPE, "write")      # the CLI ends quietly, as on -L
            if c.err:
                raise from_errno(c.err)
        r.count = c.count
        r.unprinted = c.out.dropped
        r.vanished = c.vanished
        r.unchanged = c.unchanged
        r.failures = [c.fail.v[i] for i in range(c.fail.n)] + [c.build_fail.v[i] for i in range(c.build_fail.n)]
        r.flows = []
        for i in range(c.nkept):
            r.flows.append(Flow.adopt(c.kept[i]))
            c.kept[i] = NULL
        if exc is not None:
            if c.err == 0:
                try:
                    exc.partial = r
                except (AttributeError, TypeError):
                    pass
            raise exc
        return r
    finally:
        intr_clear(&c.intr)
        for i in range(c.nkept):
            if c.kept[i] != NULL:
                nfct_destroy(c.kept[i])
        free(c.kept)
        for k in range(NBATCH):
            b = &c.batches[k]
            for i in range(b.npend):
                if b.pend[i] != NULL:
                    nfct_destroy(b.pend[i])
                if b.got[i] != NULL:
                    nfct_destroy(b.got[i])
            free(b.buf)
        if started:
            handoff_free(&c.h)
        req_free(&c.req)
        free(c.out.buf)
        free(c.fail.v)
        free(c.build_fail.v)
        if label_modify != NULL:
            nfct_bitmask_destroy(label_modify)
        free(c)
