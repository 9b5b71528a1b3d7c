"""The Conntrack handle: one network namespace's connection tracking table."""
from __future__ import annotations

import os

from _nfct import query
from _nfct.dump import Dump, DUMP_CONNTRACK, DUMP_DYING, DUMP_UNCONFIRMED, DUMP_ZERO
from _nfct.filter import Filter
from _nfct.flow import Flow
from _nfct.format import Format
from _nfct.socket import enter_netns

from .errors import ParameterError
from .template import Command

TYPE_CHECKING = False  # typing is for the type checker only: not imported on every CLI start
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator, List, Mapping, Optional, Tuple, Union

    from .events import AsyncEventStream, EventStream, Mask
    from .flowspec import Expectation, WriteResult

    NetNS = Union[None, str, "os.PathLike[str]", int]

# keyword filter -> conntrack long option (the Python API speaks the CLI's language)
_FILTER_OPTIONS = {
    "family": "--family", "proto": "--protonum",
    "src": "--src", "dst": "--dst", "reply_src": "--reply-src", "reply_dst": "--reply-dst",
    "mask_src": "--mask-src", "mask_dst": "--mask-dst",
    "sport": "--sport", "dport": "--dport", "reply_sport": "--reply-port-src", "reply_dport": "--reply-port-dst",
    "state": "--state", "mark": "--mark", "status": "--status", "zone": "--zone",
    "orig_zone": "--orig-zone", "reply_zone": "--reply-zone", "secmark": "--secmark",
    "snat": "--src-nat", "dnat": "--dst-nat", "any_nat": "--any-nat", "labels": "--label",
    "icmp_type": "--icmp-type", "icmp_code": "--icmp-code", "icmp_id": "--icmp-id",
    "icmpv6_type": "--icmpv6-type", "icmpv6_code": "--icmpv6-code", "icmpv6_id": "--icmpv6-id",
    "orig_vtag": "--orig-vtag", "reply_vtag": "--reply-vtag", "srckey": "--srckey", "dstkey": "--dstkey",
    "role": "--role",
}
_OPTIONAL_ARG = {"snat", "dnat", "any_nat"}
_TABLES = {"conntrack": DUMP_CONNTRACK, "dying": DUMP_DYING, "unconfirmed": DUMP_UNCONFIRMED}


AF_INET, AF_INET6 = 2, 10
# While one family's filtered dump is read, the other's keeps going into up to this many batches
# (at most 64 KiB each, allocated as filled), so the two kernel table walks overlap.
SPLIT_BATCHES = 1024


def iter_flows(nsfd: int, msg: int, family: int, filt: Filter) -> Iterator[Flow]:
    """Flows of one dump, filtered in the kernel as far as it can without changing conntrack's order.

    The kernel filters tuples only within one family. For a filter on both families, one filtered
    dump per family runs at once; when only one family has matches, its dump alone is the answer in
    the kernel's order. When both do, the order of a single dump cannot be rebuilt from the two, so
    one unfiltered dump is read and filtered here instead.
    """
    if not filt.split_families:
        yield from Dump(nsfd, msg, family, filt, True)
        return
    d6 = Dump(nsfd, msg, AF_INET6, filt, True, batches=SPLIT_BATCHES)
    d4 = Dump(nsfd, msg, AF_INET, filt, True, batches=SPLIT_BATCHES)
    first6 = next(d6, None)
    if first6 is None:
        d6.close()
        yield from d4
        return
    first4 = next(d4, None)
    d4.close()
    if first4 is None:
        yield first6
        yield from d6
        return
    d6.close()
    filt.kernel_tuple = False
    yield from Dump(nsfd, msg, family, filt, True)


def write_flows(nsfd: int, msg: int, family: int, filt: Filter, fd: int, fmt: "Format") -> int:
    """Write one dump as text to fd (the CLI's -L); returns the number of entries written."""
    from _nfct.query import format_flows
    if not filt.split_families:
        return Dump(nsfd, msg, family, filt, True).to_fd(fd, fmt)
    d6 = Dump(nsfd, msg, AF_INET6, filt, True, batches=SPLIT_BATCHES)
    d4 = Dump(nsfd, msg, AF_INET, filt, True, batches=SPLIT_BATCHES)
    first6 = next(d6, None)
    if first6 is None:
        d6.close()
        return d4.to_fd(fd, fmt)
    first4 = next(d4, None)
    d4.close()
    if first4 is None:
        flows = [first6]
        flows.extend(d6)
        data = fmt.header + format_flows(flows, fmt) + fmt.footer
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return len(flows)
    d6.close()
    filt.kernel_tuple = False
    return Dump(nsfd, msg, family, filt, True).to_fd(fd, fmt)


def filter_argv(command: str, filters: Mapping[str, Any]) -> List[str]:
    """The conntrack command line that asks for `filters` (used to parse them exactly as the CLI does)."""
    argv = [command]
    unknown = set(filters) - set(_FILTER_OPTIONS)
    if unknown:
        raise TypeError(f"unknown filter(s): {', '.join(sorted(unknown))}; known: {', '.join(_FILTER_OPTIONS)}")
    # -p first: protocol options exist only once the protocol is known.
    for key in sorted(filters, key=lambda k: k != "proto"):
        value = filters[key]
        if value is None or value is False:
            continue
        opt = _FILTER_OPTIONS[key]
        if key in _OPTIONAL_ARG:
            # A separate word: conntrack ignores an optional argument given as --opt=value.
            argv += [opt] if value is True else [opt, str(value)]
            continue
        if key == "mark" and isinstance(value, tuple):
            value = f"{value[0]}/{value[1]}"
        elif key in ("status", "labels") and not isinstance(value, str):
            value = ",".join(str(v) for v in value)
        argv += [opt, str(value)]
    return argv


def build_command(command: str, filters: Mapping[str, Any], labelmap: Optional[str] = None) -> Command:
    from .cli.errors import UsageError
    from .cli.parse import parse
    try:
        return parse(filter_argv(command, filters), connlabel_conf=labelmap, warn=_ignore)
    except UsageError as e:
        raise ParameterError(e.message) from None


def _ignore(message: str) -> None:
    """The API has no stderr to talk to: parse warnings are dropped (errors still raise)."""


class Conntrack:
    """A handle on the conntrack table of one network namespace.

    ``netns`` is None (the caller's namespace), a name under /run/netns, a path such as
    /proc/PID/ns/net, or an open file descriptor of a namespace. Needs CAP_NET_ADMIN there.
    ``labelmap`` is the connlabel.conf that label names resolve with (default
    /etc/xtables/connlabel.conf, as conntrack).

    >>> with Conntrack("blue") as ct:
    ...     for flow in ct.dump(proto="tcp", dport=443):
    ...         print(flow.orig.src, flow.state)
    """

    def __init__(self, netns: NetNS = None, labelmap: Optional[str] = None) -> None:
        self._nsfd = enter_netns(netns)
        self._labelmap = labelmap
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

    def dump(self, table: str = "conntrack", *, zero: bool = False, kernel_filter: bool = True,
             **filters: Any) -> Iterator[Flow]:
        """Iterate the entries of a table (like ``conntrack -L [table]`` with the same filters).

        Filters are keyword arguments named like conntrack's options: family, proto, src, dst (an
        address or CIDR), reply_src, reply_dst, sport, dport, reply_sport, reply_dport, state, mark
        (int or (value, mask)), status ("ASSURED" or ["ASSURED", "!SEEN_REPLY"]), zone, orig_zone,
        reply_zone, snat/dnat/any_nat (True or "IP[:PORT]"), labels, icmp_type/code/id, orig_vtag, ...
        ``zero=True`` reads and zeroes the counters (``-L -z``). Streams: memory does not grow with the table.
        ``table`` is "conntrack", "dying", "unconfirmed", or "expect" (Expectation objects).
        """
        if table == "expect":
            # Expectations are not Flows: this yields Expectation objects (see expectations()).
            if set(filters) - {"family"}:
                raise ParameterError("the expectation table is filtered by family only")
            return iter(self.expectations(filters.get("family")))
        if table not in _TABLES:
            raise ParameterError(f"unknown table {table!r}; one of conntrack, expect, dying, unconfirmed")
        cmd = build_command("-L", filters, self._labelmap)
        return self.dump_command(cmd, table=table, zero=zero, kernel_filter=kernel_filter)

    def dump_command(self, cmd: Command, table: str = "conntrack", zero: bool = False,
                     kernel_filter: bool = True) -> Iterator[Flow]:
        """A Dump for a parsed Command (the CLI's path)."""
        msg = _TABLES[table]
        if zero and msg == DUMP_CONNTRACK:
            msg = DUMP_ZERO
        filt = Filter(cmd, kernel_filter and msg in (DUMP_CONNTRACK, DUMP_ZERO))
        return iter_flows(self._fd(), msg, cmd.family, filt)

    def get(self, **tuple_fields: Any) -> Optional[Flow]:
        """The entry with this original (or reply) tuple, like ``conntrack -G``; None if there is none.

        Needs proto and both addresses of one direction: ``get(proto="tcp", src=..., dst=..., sport=.., dport=..)``.
        """
        from .errors import NfctNotFound
        cmd = build_command("-G", tuple_fields, self._labelmap)
        try:
            flows = query.get(self._fd(), Filter(cmd, False))
        except NfctNotFound:
            return None
        return flows[0] if flows else None

    def count(self) -> int:
        """Number of entries in the table (``conntrack -C``)."""
        n = query.count(self._fd())
        if n is None:
            raise ParameterError("the kernel did not report a count")
        return n

    def stats(self, expect: bool = False) -> List[Tuple[int, dict]]:
        """Per-cpu counters (``conntrack -S``): [(cpu, {"found": .., "invalid": .., ...}), ...]."""
        return query.stats(self._fd(), expect)

    def expectations_text(self, family: int = 2, xml: bool = False, timestamp: bool = False) -> List[bytes]:
        """The expectation table as conntrack prints it (``-L expect``)."""
        return query.expectations(self._fd(), family, xml, timestamp)

    def events(self, mask: Mask = "ALL", *, timeout: Optional[float] = None, buffer_size: Optional[int] = None,
               reliable: bool = True, kernel_filter: bool = True, on_lost: Optional[Callable[[int], None]] = None,
               **filters: Any) -> "EventStream":
        """Subscribe to events (like ``conntrack -E -e MASK`` with the same filters): ``for ev in ...``.

        ``mask``: "ALL", "NEW,UPDATE,DESTROY" words or EventType flags; only those groups are joined.
        Each event is an Event (``type``, ``flow``, ``portid``). Iteration ends after ``timeout``
        seconds without an event or after ``close()`` (callable from any thread). ``buffer_size``:
        the socket's receive buffer (default pynfct.events.DEFAULT_RCVBUF). See pynfct.events.
        """
        from .events import open_events
        return open_events(self._fd(), mask, timeout=timeout, buffer_size=buffer_size, reliable=reliable,
                           kernel_filter=kernel_filter, on_lost=on_lost, labelmap=self._labelmap, **filters)

    def events_async(self, mask: Mask = "ALL", *, timeout: Optional[float] = None,
                     buffer_size: Optional[int] = None, reliable: bool = True, kernel_filter: bool = True,
                     on_lost: Optional[Callable[[int], None]] = None, **filters: Any) -> "AsyncEventStream":
        """events() for asyncio: ``async for ev in ct.events_async(...)``; the socket joins the running loop."""
        from .events import AsyncEventStream
        sock = self.events(mask, buffer_size=buffer_size, reliable=reliable, kernel_filter=kernel_filter,
                           on_lost=on_lost, **filters)
        return AsyncEventStream(sock, timeout)

    # -- writing (pynfct.writes; the CLI's -I/-A/-U/-D/-F/-R and the expectation table) -------------

    def create(self, spec: Any = None, /, **fields: Any) -> None:
        """Create one entry, like ``conntrack -I``: a FlowSpec, a Flow (from dump(): created as it is,
        without its counters) or keyword fields named like FlowSpec's. Raises NfctExists if it exists."""
        from . import writes
        writes.create(self._fd(), self._labelmap, spec, fields, add=False)

    def add(self, spec: Any = None, /, **fields: Any) -> bool:
        """create() that accepts an existing entry (``conntrack -A``): True when it was created."""
        from . import writes
        return writes.create(self._fd(), self._labelmap, spec, fields, add=True)

    def create_many(self, specs: Any, *, exist_ok: bool = False) -> "WriteResult":
        """Create many entries with pipelined requests; returns how many were created, and in
        ``failures`` the (index, errno) of each one the kernel refused (EEXIST too unless exist_ok)."""
        from . import writes
        return writes.create_many(self._fd(), self._labelmap, specs, exist_ok)

    def update(self, target: Any = None, /, *, mark: Any = None, timeout: Optional[int] = None,
               status: Any = None, add_labels: Any = None, del_labels: Any = None,
               secmark: Optional[int] = None, collect: bool = False, **filters: Any) -> "WriteResult":
        """Change the entries the filters select (``conntrack -U``), or the given Flow(s).

        ``mark`` is a value or (value, mask): the entry keeps its bits outside mask and gets value xor
        the rest (conntrack's MARK/MASK); ``status`` bits are added; ``add_labels``/``del_labels``
        (True: all) change labels. Filters are dump()'s keywords as -U reads them. Returns the number of
        entries changed (an int) with ``failures`` (errnos) and, with ``collect``, the ``flows`` as the
        kernel has them now. Entries that would not change are left alone and not counted.
        """
        from . import writes
        values = {k: v for k, v in (("mark", mark), ("timeout", timeout), ("status", status),
                                    ("add_labels", add_labels), ("del_labels", del_labels),
                                    ("secmark", secmark)) if v is not None}
        return writes.modify(self._fd(), self._labelmap, True, target, values, filters, collect)

    def delete(self, target: Any = None, /, *, collect: bool = False, **filters: Any) -> "WriteResult":
        """Delete the entries the filters select (``conntrack -D``; no filter: all), or the given
        Flow(s). Returns how many were deleted (entries gone before their turn are not failures)."""
        from . import writes
        return writes.modify(self._fd(), self._labelmap, False, target, {}, filters, collect)

    def flush(self, table: str = "conntrack", family: Optional[str] = None) -> None:
        """Empty the table (``conntrack -F`` / ``-F expect``). The kernel empties every family."""
        from . import writes
        writes.flush(self._fd(), table, family)

    def load(self, source: Any) -> Any:
        """Run a ``conntrack -R`` file: a path, or an iterable of its lines. Every line is checked
        first (ParameterError, nothing done); then they run in order and the first failing one raises
        (NfctError; the creates pipelined after it are undone). Returns a pynfct.cli.load.LoadResult."""
        from . import writes
        return writes.load(self._fd(), self._labelmap, source)

    def expectations(self, family: Optional[str] = None) -> List["Expectation"]:
        """The expectation table (``conntrack -L expect``; both families unless one is named)."""
        from . import writes
        return writes.expectations(self._fd(), family)

    def create_expect(self, spec: Any = None, /, **fields: Any) -> None:
        """Create an expectation (``conntrack -I expect``): an ExpectSpec or its fields. The master
        entry must exist and have a helper (the kernel says EOPNOTSUPP otherwise)."""
        from . import writes
        writes.create_expect(self._fd(), self._labelmap, spec, fields)

    def delete_expect(self, expectation: Any) -> None:
        """Delete an expectation (one from expectations(), or a Flow of its expected tuple)."""
        from . import writes
        writes.delete_expect(self._fd(), expectation)
