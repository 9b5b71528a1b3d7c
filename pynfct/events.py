"""Conntrack events as Python objects: a blocking iterator and an asyncio one.

>>> with pynfct.Conntrack("blue") as ct:
...     for ev in ct.events("NEW,DESTROY", proto="tcp", timeout=10):
...         print(ev.type.name, ev.flow.orig.src, ev.flow.orig.dport)

The socket is drained in C, without the GIL, a batch of events per system call; Python code sees
ready-made :class:`Event` objects. A thread waiting for events does not hold the GIL, so other threads
keep running; ``close()`` from any thread ends a waiting iteration at once.

Loss: when the socket buffer is full the kernel drops the event for this socket, counts the drop
(SO_MEMINFO) and reports ENOBUFS once, until the reader has emptied the socket. ``lost`` is that
count, read at each report and again when the socket is next found empty, so it is exact once the
reader has caught up: with ``reliable=False`` every drop is an event lost for good (events received +
``lost`` = events sent). The kernel keeps no record of which events it dropped. With
``reliable=True`` (the default) it re-sends DESTROY events until they are delivered, and a NEW or
UPDATE it could not deliver is folded into the entry's next event; each failed attempt is still a
drop, so ``lost`` is then at most the events lost (only NEW and UPDATE can be). ``overruns`` counts
the ENOBUFS reports; ``on_lost(n)`` is called from the iterating thread whenever ``lost`` grew by n.
Memory stays bounded: the kernel holds at most ``rcvbuf`` bytes of events, and a fetch() hands over
at most a few thousand.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Tuple, Union

from _nfct.events import DEFAULT_RCVBUF, Event, EventSocket
from _nfct.events import GROUPS_DESTROY, GROUPS_NEW, GROUPS_UPDATE
from _nfct.filter import Filter

from .errors import ParameterError
from .values import check_int

if TYPE_CHECKING:
    from .template import Command

__all__ = ["EventType", "Event", "EventStream", "AsyncEventStream", "DEFAULT_RCVBUF", "Mask", "parse_mask",
           "open_events"]


from _nfct.flags import EventType  # noqa: E402  (NFCT_T_* values; defined below pynfct)


Mask = Union[str, int, EventType, Iterable[Union[str, EventType]]]

_WORDS = {"NEW": EventType.NEW, "UPDATE": EventType.UPDATE, "UPDATES": EventType.UPDATE,
          "DESTROY": EventType.DESTROY, "ALL": EventType.ALL}
_GROUPS = ((EventType.NEW, GROUPS_NEW), (EventType.UPDATE, GROUPS_UPDATE), (EventType.DESTROY, GROUPS_DESTROY))


def parse_mask(mask: Mask) -> EventType:
    """``"ALL"``, ``"NEW,DESTROY"`` (conntrack's -e words; UPDATE or UPDATES), EventType flags, or a list."""
    if isinstance(mask, bool) or mask is None:
        raise TypeError(f"mask={mask!r}: an event mask is EventType flags, a str of NEW/UPDATE/DESTROY/ALL "
                        f"or a list of them, not {type(mask).__name__}")
    if isinstance(mask, int):
        if mask & ~EventType.ALL:
            raise ParameterError(f"mask={mask!r}: only EventType.NEW, UPDATE and DESTROY bits")
        value = EventType(mask)
    else:
        if isinstance(mask, (bytes, bytearray, dict)):
            raise TypeError(f"mask={mask!r}: an event mask is EventType flags, a str or a list of them, "
                            f"not {type(mask).__name__}")
        words = mask.split(",") if isinstance(mask, str) else list(mask)
        value = EventType(0)
        for w in words:
            if isinstance(w, EventType):
                value |= w
                continue
            if not isinstance(w, str):
                raise TypeError(f"mask={mask!r}: {w!r} is not an EventType or a name")
            key = w.strip().upper()
            if key not in _WORDS:
                raise ParameterError(f"mask={mask!r}: unknown event type {w!r}; use NEW, UPDATE, DESTROY or ALL")
            value |= _WORDS[key]
    if not value:
        raise ParameterError(f"mask={mask!r}: selects no event")
    return value


class EventStream(EventSocket):
    """Events of one namespace, as :class:`Event` objects; iterate it (``for ev in stream``).

    Iteration waits ``timeout`` seconds at most for each event (None: forever); when that passes, or
    after ``close()`` (from any thread), iteration stops and the socket is freed. Leaving a ``with``
    block or dropping the stream frees it as well.

    * ``fileno()`` -- the socket, readable when events wait (for select/poll);
    * ``fetch(timeout)`` -- the next batch as a list ([] on timeout, None once closed);
    * ``lost`` -- events the kernel dropped because the buffer was full (see the module doc for what
      is exact); ``overruns`` -- ENOBUFS reports; ``on_lost(n)`` is called from the iterating thread
      whenever ``lost`` grew by n;
    * ``rcvbuf`` -- the buffer the kernel granted; ``kernel_filter`` -- a BPF filter is attached.
    """


class AsyncEventStream:
    """``async for ev in stream``: the socket is registered with the running loop (no thread).

    ``timeout`` ends the iteration when no event came for that many seconds. Call ``close()`` (or leave
    an ``async with`` block) to free the socket; from another thread, close() hands itself to the loop.
    """

    def __init__(self, sock: EventSocket, timeout: Optional[float] = None) -> None:
        self._sock = sock
        self.timeout = timeout
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._waiting: Optional[Tuple["asyncio.Future[bool]", int]] = None

    @property
    def socket(self) -> EventSocket:
        return self._sock

    def __getattr__(self, name: str) -> Any:
        # lost, overruns, received, rcvbuf, kernel_filter, fileno ...: those of the socket
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._sock, name)

    def __aiter__(self) -> "AsyncEventStream":
        return self

    async def __anext__(self) -> Event:
        while True:
            ev = self._sock.next_nowait()
            if ev is not None:
                return ev
            if self._sock.closed:
                raise StopAsyncIteration
            if not await self._readable():
                self.close()
                raise StopAsyncIteration

    async def _readable(self) -> bool:
        """Wait until the socket is readable; False on timeout or once closed."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        fut: "asyncio.Future[bool]" = loop.create_future()
        fd = self._sock.fileno()

        def ready() -> None:
            if not fut.done():
                fut.set_result(True)

        loop.add_reader(fd, ready)
        self._waiting = (fut, fd)
        try:
            if self.timeout is None:
                return bool(await fut)
            try:
                return await asyncio.wait_for(fut, self.timeout)
            except asyncio.TimeoutError:
                return False
        finally:
            self._waiting = None
            if not self._sock.closed:
                loop.remove_reader(fd)

    def _close_here(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            fut, fd = waiting
            # Unregister before the fd is closed, then let the waiter see the end.
            if self._loop is not None:
                self._loop.remove_reader(fd)
            if not fut.done():
                fut.set_result(False)
        self._sock.close()

    def close(self) -> None:
        """Free the socket and end the iteration; from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and not _in_loop_thread(loop) and loop.is_running():
            loop.call_soon_threadsafe(self._close_here)
            return
        self._close_here()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "AsyncEventStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def open_events(nsfd: int, mask: Mask = "ALL", command: Optional["Command"] = None, *,
                timeout: Optional[float] = None, buffer_size: Optional[int] = None, reliable: bool = True,
                kernel_filter: bool = True, on_lost: Optional[Callable[[int], None]] = None,
                stream_class: type = EventStream) -> EventStream:
    """An event socket in the namespace `nsfd` (-1: the caller's), subscribed to the groups of `mask`,
    keeping the events the typed template `command` (a CT_EVENT Command, or None: all) selects."""
    types = parse_mask(mask)
    groups = 0
    for t, g in _GROUPS:
        if types & t:
            groups |= g
    if buffer_size is not None:
        check_int("buffer_size", buffer_size, 2**31 - 1, "a buffer size in bytes", lo=1)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout={timeout!r}: seconds as an int or float, not {type(timeout).__name__}")
        if not timeout >= 0 or timeout == float("inf"):
            raise ParameterError(f"timeout={timeout!r}: seconds from 0 up (None: wait forever)")
    filt = Filter(command, False) if command is not None else None
    stream: EventStream = stream_class(nsfd, groups, filt, DEFAULT_RCVBUF if buffer_size is None else buffer_size,
                                       kernel_filter, reliable, False)
    stream.timeout = timeout
    stream.on_lost = on_lost
    return stream
