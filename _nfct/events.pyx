# cython: language_level=3
"""Conntrack and expectation events for Python: EventSocket and Event.

EventSocket owns one multicast event socket and hands it to the loop in evloop.pyx, which receives,
filters and formats without the GIL: either conntrack -E's text written to an fd (the CLI), or
records that fetch() turns into Event objects. A filter goes to the kernel too, as a BPF socket filter
(evfilter.pyx); the sender of a change is named as conntrack does (progname.pyx).
"""
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport errno
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport malloc, calloc
from libc.string cimport memcpy, memset
from posix.unistd cimport write, close

from _nfct.libnfct cimport *
from _nfct.netlink cimport SOL_NETLINK, NETLINK_BROADCAST_ERROR
from _nfct.pthread cimport pthread_mutex_t, pthread_mutex_init, pthread_mutex_destroy, \
    pthread_mutex_lock, pthread_mutex_unlock
from _nfct.sysapi cimport socklen_t, setsockopt, getsockopt, SOL_SOCKET, SO_RCVBUF, SO_RCVBUFFORCE, \
    eventfd, EFD_CLOEXEC, EFD_NONBLOCK
from _nfct.socket cimport NfctSocket
from _nfct.filter cimport Filter
from _nfct.format cimport Format, fmt_t, format_ct
from _nfct.flow cimport Flow
from _nfct.evloop cimport loop_t, bufs_t, rec_t, loop_alloc, loop_free, run_loop, flush_out, stop_by, \
    handle_datagram, OUT_SIZE, LINE_MAX, SLOT_SIZE, R_STOP, R_CLOSED, R_INTR, R_BATCH, R_ERROR
from _nfct.policy cimport batch_bad
from _nfct.evfilter cimport attach_filter

import os
import stat

from _nfct.evloop import ENOBUFS_WARNING     # part of this module's API; the loop writes it
from _nfct.errors import from_errno

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


cdef fmt_t _plain_fmt
memset(&_plain_fmt, 0, sizeof(fmt_t))
_plain_fmt.out_type = NFCT_O_DEFAULT

cdef object _EventType = None
# The event types as -o json names them, and the numbers (NFCT_T_*) names and EventTypes stand for.
cdef dict _TYPE_NAMES = {NFCT_T_NEW: "new", NFCT_T_UPDATE: "update", NFCT_T_DESTROY: "destroy"}
cdef dict _TYPE_NUMBERS = {"new": NFCT_T_NEW, "update": NFCT_T_UPDATE, "destroy": NFCT_T_DESTROY}


cdef unsigned int _event_type(object t) except 0:
    if isinstance(t, str):
        n = _TYPE_NUMBERS.get(t.lower())
        if n is None:
            raise ValueError(f"type: unknown event type {t!r}; new, update or destroy")
        return n
    if isinstance(t, bool) or not isinstance(t, int):
        raise TypeError(f"type: expected an EventType or a name, got {type(t).__name__}")
    if t not in _TYPE_NAMES:
        raise ValueError(f"type: {t!r} is not one event type (NEW, UPDATE or DESTROY)")
    return t


cdef class Event:
    """One conntrack event: what happened (``type``) to which entry (``flow``), and who did it.

    ``portid`` is the netlink port of the program whose request caused the event (``conntrack -I``,
    ``-D``, ``-F``, ...), 0 when the kernel itself did (traffic, timeouts). ``str(event)`` is the line
    ``conntrack -E`` prints for it (without the program name).

    Events are values like Flows: equal when type, portid and flow are (see Flow.__eq__), hashable,
    picklable; as_dict() is the object ``pynfct -E -o json`` prints for the event, and from_dict()
    builds the Event back from it.
    """
    cdef readonly Flow flow
    cdef readonly unsigned int portid
    cdef unsigned int _type

    def __init__(self, type, Flow flow not None, unsigned int portid=0):
        """An event of this type (EventType.NEW, UPDATE or DESTROY, or its name) for this flow."""
        self._type = _event_type(type)
        self.flow = flow
        self.portid = portid

    @property
    def type(self):
        """pynfct.EventType.NEW, UPDATE or DESTROY."""
        global _EventType
        if _EventType is None:
            from _nfct.flags import EventType
            _EventType = EventType
        return _EventType(self._type)

    def __str__(self):
        cdef char buf[LINE_MAX]
        cdef size_t n
        if self.flow is None:        # Event.__new__(Event): no entry to print (the formatter needs one)
            raise ValueError("this Event has no flow")
        n = format_ct(buf, LINE_MAX, self.flow.ct, &_plain_fmt, self._type)
        line = buf[:n].decode("utf-8", "replace")
        return f"{line} [USERSPACE] portid={self.portid}" if self.portid else line

    def __repr__(self):
        return f"<Event {self.type.name} {self.flow!r}>"

    def __eq__(self, other):
        if not isinstance(other, Event):
            return NotImplemented
        cdef Event o = <Event>other
        return self._type == o._type and self.portid == o.portid and self.flow == o.flow

    def __hash__(self):
        return hash((self._type, self.portid, self.flow))

    def __reduce__(self):
        return Event, (self._type, self.flow, self.portid)

    def as_dict(self) -> dict:
        """The object ``pynfct -E -o json`` prints for this event (docs/json.md): ``type`` (``new``,
        ``update`` or ``destroy``), the flow's fields, and ``portid`` when a program caused it. The
        CLI's ``progname`` and ``time`` are not part of an Event."""
        d = {"type": _TYPE_NAMES[self._type]}
        d.update(self.flow.as_dict())
        if self.portid:
            d["portid"] = self.portid
        return d

    @classmethod
    def from_dict(cls, d, labelmap=None):
        """The Event an as_dict() object (or a line of ``pynfct -E -o json``) describes.

        ``type`` is required, ``portid`` optional; the CLI's ``progname`` and ``time`` are accepted and
        dropped; the rest is the flow, read as Flow.from_dict() reads it (errors name the key).
        """
        if not isinstance(d, dict):
            raise TypeError(f"Event.from_dict() takes a dict, not {type(d).__name__}")
        rest = dict(d)
        t = rest.pop("type", None)
        if t is None:
            raise ValueError("type: missing")
        if not isinstance(t, str):
            raise TypeError(f"type: expected a str, got {type(t).__name__}")
        portid = rest.pop("portid", None)
        if portid is None:
            portid = 0
        elif isinstance(portid, bool) or not isinstance(portid, int):
            raise TypeError(f"portid: expected an int, got {type(portid).__name__}")
        elif not 0 <= portid <= 0xffffffff:
            raise ValueError(f"portid: {portid} is out of range 0..4294967295")
        rest.pop("progname", None)
        rest.pop("time", None)
        return cls(t, Flow.from_dict(rest, labelmap), portid)


cdef Event make_event(rec_t *r):
    cdef Event ev = Event.__new__(Event)
    ev.flow = Flow.adopt(r.ct)
    ev.portid = r.portid
    ev._type = r.type
    r.ct = NULL
    return ev


def parse_events(bytes data not None, Filter filt=None):
    """The conntrack events of one datagram from bytes (its messages concatenated, as the kernel queues
    them), read by the event loop's own code (type, sender, family and filter as EventSocket.fetch()
    gives them), with no socket: for recorded messages and the fuzzer. ValueError: longer than the
    loop's receive slot (8 KiB; the loop counts such a datagram as truncated), or a message that is not
    an entry as the kernel sends it (_nfct.policy).
    """
    cdef loop_t L
    cdef bufs_t B
    cdef long bad
    cdef int i
    cdef list events = []
    if len(data) > SLOT_SIZE:
        raise ValueError(f"an event datagram holds at most {SLOT_SIZE} bytes, not {len(data)}")
    bad = batch_bad(data, len(data), False)
    if bad >= 0:
        raise ValueError(f"message {bad}: not a conntrack entry as the kernel sends it (attribute lengths or types)")
    memset(&L, 0, sizeof(loop_t))
    memset(&B, 0, sizeof(bufs_t))
    L.fd = L.wake_fd = L.stop_fd = L.out_fd = -1
    L.recs = <rec_t *>calloc(16, sizeof(rec_t))
    L.cap = 16
    try:
        if L.recs == NULL:
            raise MemoryError()
        if filt is not None:
            L.filt = &filt.f
            L.family = filt.family
        handle_datagram(&L, data, len(data))
        for i in range(L.nrec):
            events.append(make_event(&L.recs[i]))
    finally:
        loop_free(&L, &B)      # what make_event did not take
    return events


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
    cdef public object on_lost       # called with n whenever `lost` grew by n
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
        cdef int one = 1, size, got
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
        if loop_alloc(&self.L, &self.B) < 0:
            raise MemoryError()
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
        self._close_fds()
        loop_free(&self.L, &self.B)
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
        """Deliveries the kernel dropped for this socket since it was opened (its SO_MEMINFO drop count,
        read at each overrun and again once the socket is empty). Without `reliable` each one is an
        event lost for good; with it, failed DESTROY deliveries are retried and counted again, and
        missed NEW/UPDATE bits ride on the entry's next event, so this is at most what was lost."""
        return self.L.lost

    @property
    def header_written(self) -> bool:
        return self.L.header_done and self.L.header_len > 0

    # -- text (the CLI)
    def set_output(self, int out_fd, Format fmt not None, bint timestamp=False, bint names=True,
                   bytes header=b"", bint lossy=False):
        """Make run() write conntrack's lines to out_fd: `header` before the first event (xml). With
        `lossy`, text a write fails for (other than EPIPE) is dropped and the events go on, as
        conntrack's stdio drops it."""
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
        # Anything but a regular file may block or take part of a write: there whole lines go out, at
        # most PIPE_BUF bytes at a time (all or nothing to a pipe), so a signal never cuts a line.
        try:
            self.L.out_lines = not stat.S_ISREG(os.fstat(out_fd).st_mode)
        except OSError:
            self.L.out_lines = True
        self.L.lossy = lossy
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

    def drain(self, bytes footer=b""):
        """Stopping (on a signal): write what the socket holds now, without waiting, then `footer` if
        the header was written. Reading gives up after DRAIN_SECONDS (a flood); what is formatted by
        then is still written, but a reader that does not take it soon loses it, whole lines at a
        time (`dropped` counts the bytes, `shown` only the lines written)."""
        cdef int r = R_INTR
        cdef Py_ssize_t n = len(footer)
        cdef long shown
        if not self.L.text:
            return
        if self.L.deadline == 0:        # (the loop may have set it already, when the signal came)
            stop_by(&self.L)
        while r == R_INTR:
            r = self._run(0, True)
        with nogil:
            flush_out(&self.L)
        if n and self.L.header_done and self.L.header_len > 0 and self.L.len == 0:
            memcpy(self.L.out, <const char *>footer, n)
            self.L.len = n
            shown = self.L.shown        # (the footer's lines are no events)
            with nogil:
                flush_out(&self.L)
            self.L.shown = shown

    @property
    def dropped(self) -> int:
        """Bytes of text (whole lines) a reader did not take in time while stopping (drain())."""
        return self.L.dropped

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
        if self.L.overruns != self.reported_overruns or self.L.lost != self.reported_lost:
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
