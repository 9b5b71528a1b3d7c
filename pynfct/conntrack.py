"""The Conntrack handle: one network namespace's connection tracking table."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, List, Optional, Tuple, Union

from _nfct import query
from _nfct.dump import DUMP_CONNTRACK, DUMP_DYING, DUMP_UNCONFIRMED, DUMP_ZERO, SPLIT_BATCHES, split_dump
from _nfct.filter import Filter
from _nfct.flow import Flow
from _nfct.socket import enter_netns

from .errors import NfctError, NfctNotFound, ParameterError
from .match import Match
from .template import Cmd, Command, Table

if TYPE_CHECKING:
    from typing_extensions import Literal, Unpack

    from _nfct.format import LabelMap
    from .events import AsyncEventStream, EventStream, Mask
    from .expect import Expectation, ExpectSpec
    from .flowspec import FlowFields, FlowSpec
    from .match import GetFields, MatchFields
    from .result import WriteResult
    from .update import Update, UpdateFields
    from .values import FamilyLike

    class UpdateArgs(MatchFields, UpdateFields, total=False):
        """update()'s keywords: the values to set (UpdateFields) and the filters (MatchFields; mark and
        status are values here, state is refused at run time)."""

NetNS = Union[None, str, "os.PathLike[str]", int]

_TABLES = {"conntrack": (DUMP_CONNTRACK, Table.CONNTRACK), "dying": (DUMP_DYING, Table.DYING),
           "unconfirmed": (DUMP_UNCONFIRMED, Table.UNCONFIRMED)}



def iter_flows(nsfd: int, msg: int, family: int, filt: Filter) -> Iterator[Flow]:
    """Flows of one dump, filtered in the kernel as far as it can without changing conntrack's order
    (see _nfct.dump.split_dump)."""
    head, rest = split_dump(nsfd, msg, family, filt, batches=SPLIT_BATCHES)
    yield from head
    yield from rest


def _match(what: str, match: Optional[Match], filters: "Union[MatchFields, GetFields]") -> Match:
    if match is None:
        return Match(**filters)
    if not isinstance(match, Match):
        raise TypeError(f"{what} takes a pynfct.Match (or keywords), not {type(match).__name__}")
    if filters:
        raise TypeError(f"{what}: give a Match or keywords, not both")
    return match


class Conntrack:
    """A handle on the conntrack table of one network namespace.

    ``netns`` is None (the caller's namespace), a name under /run/netns, a path such as
    /proc/PID/ns/net, or an open file descriptor of a namespace. Needs CAP_NET_ADMIN there.
    ``labelmap`` is the connlabel.conf that label names resolve with (default
    /etc/xtables/connlabel.conf, as conntrack).

    Selections are :class:`pynfct.Match` objects or the same keywords; every value is checked before
    anything is sent (TypeError, ParameterError), and the kernel's refusals raise NfctError.

    >>> with Conntrack("blue") as ct:
    ...     for flow in ct.dump(proto="tcp", dport=443):
    ...         print(flow.orig.src, flow.state)
    """

    def __init__(self, netns: NetNS = None, labelmap: Optional[str] = None) -> None:
        self._nsfd = enter_netns(netns)
        self._labelmap_path = labelmap
        self._labelmap: Optional["LabelMap"] = None
        self._closed = False

    def close(self) -> None:
        if not self._closed and self._nsfd >= 0:
            os.close(self._nsfd)
        self._closed = True

    def __enter__(self) -> "Conntrack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _fd(self) -> int:
        if self._closed:
            raise ValueError("Conntrack handle is closed")
        return self._nsfd

    def labelmap(self) -> Optional["LabelMap"]:
        """The label map names resolve with (None when the file cannot be read)."""
        if self._labelmap is None:
            from _nfct.format import LabelMap
            try:
                self._labelmap = LabelMap(self._labelmap_path)
            except OSError:
                return None
        return self._labelmap

    def _command(self, what: str, command: Cmd, match: Match, table: Table = Table.CONNTRACK) -> Command:
        labels = self.labelmap() if "labels" in match else None
        return match.command(command, labels, table=table, what=what)

    # -- reading ------------------------------------------------------------------------------------

    def dump(self, match: Optional[Match] = None, /, *,
             table: Literal["conntrack", "dying", "unconfirmed"] = "conntrack", zero: bool = False,
             kernel_filter: bool = True, **filters: Unpack[MatchFields]) -> Iterator[Flow]:
        """Iterate the entries of a table that a Match (or its keywords) selects, like
        ``conntrack -L [table]`` with the same filters. ``table`` is "conntrack", "dying" or
        "unconfirmed" (expectations: :meth:`expectations`). ``zero=True`` reads and zeroes the
        counters (``-L -z``). Streams: memory does not grow with the table."""
        m = _match("dump()", match, filters)
        if table not in _TABLES:
            if table == "expect":  # type: ignore[comparison-overlap]   # a caller without a type checker
                raise ParameterError("table='expect': expectations are not Flows; use expectations()")
            raise ParameterError(f"table={table!r}: one of conntrack, dying, unconfirmed")
        msg, tab = _TABLES[table]
        if zero:
            if msg != DUMP_CONNTRACK:
                raise ParameterError(f"zero=True: the {table} list has no counters to zero")
            msg = DUMP_ZERO
        cmd = self._command("dump()", Cmd.CT_LIST, m, tab)
        filt = Filter(cmd, kernel_filter and msg in (DUMP_CONNTRACK, DUMP_ZERO), status_clear=True)
        return iter_flows(self._fd(), msg, cmd.family, filt)

    def get(self, match: Optional[Match] = None, /, **tuple_fields: Unpack[GetFields]) -> Optional[Flow]:
        """The entry with this original (or reply) tuple, like ``conntrack -G``; None if there is none.

        Needs proto and both addresses (and ports) of one direction:
        ``get(proto="tcp", src=..., dst=..., sport=.., dport=..)``; ``zone`` names its zone."""
        m = _match("get()", match, tuple_fields)
        cmd = self._command("get()", Cmd.CT_GET, m)
        try:
            flows = query.get(self._fd(), Filter(cmd, False))
        except NfctNotFound:
            return None
        return flows[0] if flows else None

    def count(self) -> int:
        """Number of entries in the table (``conntrack -C``)."""
        n = query.count(self._fd())
        if n is None:
            raise NfctError(0, "the kernel's statistics have no entry count")
        return n

    def stats(self, expect: bool = False) -> List[Tuple[int, dict]]:  # type: ignore[type-arg]
        """Per-cpu counters (``conntrack -S``): [(cpu, {"found": .., "invalid": .., ...}), ...]."""
        return query.stats(self._fd(), expect)

    def events(self, mask: Mask = "ALL", *, match: Optional[Match] = None, timeout: Optional[float] = None,
               buffer_size: Optional[int] = None, reliable: bool = True, kernel_filter: bool = True,
               on_lost: Optional[Callable[[int], None]] = None, **filters: Unpack[MatchFields]) -> "EventStream":
        """Subscribe to events (like ``conntrack -E -e MASK`` with the same filters): ``for ev in ...``.

        ``mask``: "ALL", "NEW,UPDATE,DESTROY" words or EventType flags; only those groups are joined.
        Each event is an Event (``type``, ``flow``, ``portid``). Iteration ends after ``timeout``
        seconds without an event or after ``close()`` (callable from any thread). ``buffer_size``:
        the socket's receive buffer (default pynfct.events.DEFAULT_RCVBUF). See pynfct.events.
        """
        from .events import open_events
        m = _match("events()", match, filters)
        cmd = self._command("events()", Cmd.CT_EVENT, m) if m.fields else None
        return open_events(self._fd(), mask, cmd, timeout=timeout, buffer_size=buffer_size, reliable=reliable,
                           kernel_filter=kernel_filter, on_lost=on_lost)

    def events_async(self, mask: Mask = "ALL", *, match: Optional[Match] = None, timeout: Optional[float] = None,
                     buffer_size: Optional[int] = None, reliable: bool = True, kernel_filter: bool = True,
                     on_lost: Optional[Callable[[int], None]] = None,
                     **filters: Unpack[MatchFields]) -> "AsyncEventStream":
        """events() for asyncio: ``async for ev in ct.events_async(...)``; the socket joins the running loop."""
        from .events import AsyncEventStream
        sock = self.events(mask, match=match, buffer_size=buffer_size, reliable=reliable,
                           kernel_filter=kernel_filter, on_lost=on_lost, **filters)
        return AsyncEventStream(sock, timeout)

    # -- writing (pynfct.writes) -------------------------------------------------------------------

    def create(self, spec: Union["FlowSpec", Flow, None] = None, /, **fields: Unpack[FlowFields]) -> None:
        """Create one entry, like ``conntrack -I``: a FlowSpec, a Flow (from dump(): created as it is,
        without its counters), or FlowSpec's keywords (``proto=`` included). Raises NfctExists if it
        exists."""
        from . import writes
        writes.create(self._fd(), self, spec, dict(fields), add=False)

    def add(self, spec: Union["FlowSpec", Flow, None] = None, /, **fields: Unpack[FlowFields]) -> bool:
        """create() that accepts an existing entry (``conntrack -A``): True when it was created."""
        from . import writes
        return writes.create(self._fd(), self, spec, dict(fields), add=True)

    def create_many(self, specs: Iterable[Union["FlowSpec", Flow]], *, exist_ok: bool = False) -> "WriteResult":
        """Create many entries (FlowSpecs or Flows) with pipelined requests. Returns how many were
        created; ``failures`` has a Failure(errno, index) for each one the kernel refused (EEXIST too
        unless exist_ok). Raises NfctPermissionError without CAP_NET_ADMIN."""
        from . import writes
        return writes.create_many(self._fd(), self, specs, exist_ok)

    def update(self, target: Union[Match, Flow, Iterable[Flow], None] = None, /, *,
               set: Optional["Update"] = None, collect: bool = False,
               **fields: Unpack[UpdateArgs]) -> "WriteResult":
        """Change the entries a Match (or filter keywords) selects, like ``conntrack -U``, or the given
        Flow(s).

        The values to set are an :class:`pynfct.Update` (``set=``) or its keywords: ``mark`` (an int,
        or Mark(value, mask): keep the bits outside mask, xor in value), ``timeout``, ``status`` (bits
        to add), ``add_labels``, ``del_labels`` (True: all). The other keywords select, as Match's
        (not mark, status, state: conntrack -U does not select by them). Selecting every
        entry takes an explicit ``Match()``. Returns a WriteResult: the number changed, ``failures``,
        ``unchanged`` (nothing to change) and, with ``collect``, the ``flows`` as they are now.
        """
        from . import writes
        from .update import KEYWORDS as UPDATE_KEYS, Update
        given = dict(fields)
        values = {k: given.pop(k) for k in UPDATE_KEYS if k in given}
        if set is not None:
            if not isinstance(set, Update):
                raise TypeError(f"set= takes a pynfct.Update, not {type(set).__name__}")
            if values:
                raise TypeError("update(): give set=Update(...) or value keywords, not both")
            upd = set
        else:
            upd = Update(**values)  # type: ignore[arg-type]
        return writes.modify(self._fd(), self, True, target, upd, given, collect)

    def delete(self, target: Union[Match, Flow, Iterable[Flow], None] = None, /, *, collect: bool = False,
               **filters: Unpack[MatchFields]) -> "WriteResult":
        """Delete the entries a Match (or its keywords) selects, like ``conntrack -D``, or the given
        Flow(s). Deleting every entry takes an explicit ``Match()`` (or use flush()). Returns how many
        were deleted (entries gone before their turn are counted in ``vanished``, not as failures).

        A Flow is deleted by its tuple and id: the kernel reuses ids, so a Flow read long ago can,
        rarely, name a new entry that got the same tuple and the same id."""
        from . import writes
        return writes.modify(self._fd(), self, False, target, None, filters, collect)

    def flush(self, table: Literal["conntrack", "expect"] = "conntrack") -> None:
        """Empty the table (``conntrack -F`` / ``-F expect``), every family (the kernel's flush does
        not take one here; delete(Match(family=...)) deletes one family's entries)."""
        from . import writes
        writes.flush(self._fd(), table)

    # -- the expectation table ---------------------------------------------------------------------

    def expectations(self, family: Optional[FamilyLike] = None) -> List["Expectation"]:
        """The expectation table (``conntrack -L expect``; both families unless one is named)."""
        from . import writes
        return writes.expectations(self._fd(), family)

    def create_expect(self, spec: "ExpectSpec", /) -> None:
        """Create an expectation (``conntrack -I expect``). The master entry must exist and have a
        helper (the kernel says EOPNOTSUPP otherwise)."""
        from . import writes
        writes.create_expect(self._fd(), spec)

    def delete_expect(self, expectation: Union["Expectation", Flow]) -> None:
        """Delete an expectation (one from expectations(), or a Flow of its expected tuple)."""
        from . import writes
        writes.delete_expect(self._fd(), expectation)
