"""Handlers of -E (conntrack events) and -E expect (expectation events).

conntrack 1.4.7 prints every event as it reads it and flushes stdout each time, and ends on SIGINT or
SIGTERM with "N flow events have been shown." and exit status 0. pynfct prints the same lines, but
reads the socket in batches and writes its output whenever the socket is empty (so a terminal or a
pipe sees each event at once when they come one by one, and a burst is written in large blocks). On
SIGINT/SIGTERM it first writes what the socket already holds, then the XML footer and the summary.

Differences, on purpose: -b sets the buffer of the socket that receives the events (conntrack 1.4.7
sets it on another socket, so it changes nothing), and without -b the buffer is DEFAULT_RCVBUF
instead of the system default; the socket asks the kernel to re-send DESTROY events it could not
deliver (NETLINK_BROADCAST_ERROR), and what the kernel can filter is attached as a BPF filter.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal      # the same functions, with types (_signal has no stubs)
    from types import FrameType
    from typing import Optional
else:
    import _signal

from _nfct.errors import NfctError
from .._ints import Cmd, Opt, Out
from ..template import Command
from .errors import PYNFCT_PREFIX as PREFIX
from .io import Failure, err


def ct_events(cmd: Command) -> int:
    return _events(cmd, expect=False)


def exp_events(cmd: Command) -> int:
    return _events(cmd, expect=True)


def _groups(cmd: Command, expect: bool) -> int:
    from _nfct import events as E
    from .options import CT_EVENT_F_ALL, CT_EVENT_F_DEL, CT_EVENT_F_NEW, CT_EVENT_F_UPD
    mask = cmd.event_mask if cmd.options & Opt.EVENT_MASK else CT_EVENT_F_ALL
    bits = ((CT_EVENT_F_NEW, E.GROUPS_EXP_NEW if expect else E.GROUPS_NEW),
            (CT_EVENT_F_UPD, E.GROUPS_EXP_UPDATE if expect else E.GROUPS_UPDATE),
            (CT_EVENT_F_DEL, E.GROUPS_EXP_DESTROY if expect else E.GROUPS_DESTROY))
    return sum(group for flag, group in bits if mask & flag)


def _events(cmd: Command, expect: bool) -> int:
    from _nfct.events import DEFAULT_RCVBUF, EventSocket
    from _nfct.filter import Filter
    from _nfct.format import Format
    from .listing import _labelmap_for
    from .parse import _filter_init_checks
    from .summary import EVENT_SIGNAL_MSG

    # The labels map is read while parsing in conntrack, before the socket is opened.
    labelmap = None if expect else _labelmap_for(cmd)
    buffersize = not expect and bool(cmd.options & Opt.BUFFERSIZE)
    try:
        sock = EventSocket(-1, _groups(cmd, expect), None,
                           cmd.socketbuffersize if buffersize else DEFAULT_RCVBUF, True, True, expect)
    except NfctError as e:
        call = getattr(e, "call", None)
        if call is not None and not expect:
            # conntrack's perror() in nfct_mnl_socket_open(); -E expect opens with nfct_open(), silently
            err(f"{call}: {os.strerror(e.errno or 0)}\n")
        raise Failure("Can't open handler" if expect else "Can't open netlink socket")

    if buffersize:
        # conntrack prints the size_t it handed to getsockopt(), which wrote only its low 32 bits.
        shown = (cmd.socketbuffersize & ~0xFFFFFFFF) | (sock.rcvbuf & 0xFFFFFFFF)
        err(f"NOTICE: Netlink socket buffer size has been set to {shown} bytes.\n")

    timestamp = bool(cmd.output & Out.TMS)
    if expect:
        # event_exp_cb: only xml and timestamp change an expectation line.
        fmt = Format(cmd.output & Out.XML, None, root=b"expect")
        sock.set_output(1, fmt, timestamp, False, fmt.header, True)
    else:
        _filter_init_checks(cmd)          # nfct_filter_init(), after the socket and the NOTICE
        sock.set_filter(Filter(cmd, False), True)
        fmt = Format(cmd.output, labelmap)
        header = b"" if cmd.output & Out.SAVE else fmt.header
        sock.set_output(1, fmt, timestamp, True, header, True)

    stop = _StopOnSignal()
    try:
        while not stop.requested:
            try:
                sock.run(stop.fd)
            except NfctError as e:
                raise Failure(f"failed to received netlink event: {os.strerror(e.errno or 0)}")
            stop.clear()
        # what the socket holds, and the XML footer: read for DRAIN_SECONDS at most, written as far as the
        # output takes it (conntrack's handler exits at once and loses it), so that the program ends
        # within 0.2 s of the signal
        sock.drain(fmt.footer)
    finally:
        stop.restore()
    err(f"{PREFIX}: {EVENT_SIGNAL_MSG[Cmd.EXP_EVENT if expect else Cmd.CT_EVENT] % sock.shown}\n")
    sock.close()
    # conntrack exits 0 from its signal handler, with no other summary.
    raise SystemExit(0)


class _StopOnSignal:
    """SIGINT/SIGTERM set a flag and wake the event loop through a pipe (set_wakeup_fd); _signal, not
    signal: that imports enum."""

    def __init__(self) -> None:
        self.requested = False
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.fd = self._r
        self._old = {s: _signal.signal(s, self._handler) for s in (_signal.SIGINT, _signal.SIGTERM)}
        self._old_wakeup = _signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)

    def _handler(self, signum: int, frame: Optional[FrameType]) -> None:
        self.requested = True

    def clear(self) -> None:
        """Empty the wakeup pipe (another handled signal woke the loop)."""
        try:
            while os.read(self._r, 512):
                pass
        except BlockingIOError:
            pass

    def restore(self) -> None:
        _signal.set_wakeup_fd(self._old_wakeup)
        for s, h in self._old.items():
            _signal.signal(s, h)
        os.close(self._r)
        os.close(self._w)
