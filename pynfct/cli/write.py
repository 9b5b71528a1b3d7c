"""Handlers of the write commands: -I, -A, -U, -D, -F and -I/-D/-G/-F expect; -R files (load_file).

Each handler takes the parsed Command and returns the counter conntrack's summary line reports. -U and
-D return a :class:`Counted`, which also says whether some entry failed (the command then exits 1).
"""
from __future__ import annotations

import sys
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, List, Optional

from _nfct.errors import NfctError, NfctExists
from .._ints import Cmd, Out
from ..template import Command
from .errors import OTHER_PROBLEM, PYNFCT_PREFIX as PREFIX, UsageError
from .io import Failure, err, out, out_stdio
from .listing import _labelmap_for
from .summary import FLUSH_MSG, err2str

#: -o flags that -U and -D honour (conntrack prints their entries without -o ktimestamp/timestamp)
_MODIFY_OUTPUT = Out.XML | Out.EXT | Out.ID | Out.SAVE | Out.JSON


class Counted(int):
    """A summary counter that also carries the errnos of the entries that failed."""

    failures: List[int]

    def __new__(cls, value: int, failures: Optional[List[int]] = None) -> "Counted":
        self = super().__new__(cls, value)
        self.failures = list(failures or ())
        return self


def create(cmd: Command) -> int:
    """-I and -A: one create request; -A counts 0 (and succeeds) when the entry exists already."""
    from _nfct import write
    try:
        write.create(-1, cmd)
    except NfctExists:
        if cmd.command == Cmd.CT_ADD:
            return 0
        raise
    return 1


def _modify(cmd: Command, update: bool, fd: int = 1, nsfd: int = -1, report: bool = True) -> Counted:
    from _nfct.format import Format
    from _nfct.modify import modify
    from .parse import precommand_check
    precommand_check(cmd)
    # -D prints with nfct_snprintf() (no label names), -U with the label map when it has one.
    labelmap = _labelmap_for(cmd) if update and fd >= 0 else None
    fmt = Format(cmd.output & _MODIFY_OUTPUT, labelmap)
    if fd == 1 and sys.stdout is not None:
        sys.stdout.flush()
    result = modify(nsfd, cmd, update, fmt, fd, lossy=True)
    for e in result.failures if report else ():
        if update:
            # conntrack -U reports a failed update and goes on
            err(f"Operation failed: {err2str(e, Cmd.CT_UPDATE)}\n")
        else:
            err(f"{PREFIX}: Operation failed: {err2str(e, Cmd.CT_DELETE)}\n")
    return Counted(result.count, result.failures)


def update(cmd: Command) -> int:
    return _modify(cmd, True)


def delete(cmd: Command) -> int:
    return _modify(cmd, False)


def flush(cmd: Command) -> int:
    from _nfct import write
    if cmd.command == Cmd.EXP_FLUSH:
        _after_flush(lambda: write.expect_flush(-1, cmd.family), FLUSH_MSG[Cmd.EXP_FLUSH])
    else:
        _after_flush(lambda: write.flush(-1, cmd.family), FLUSH_MSG[Cmd.CT_FLUSH])
    return 0


def _after_flush(request: Callable[[], None], message: Optional[str]) -> None:
    # conntrack says the table was emptied whatever the kernel answered, then reports a failure.
    try:
        request()
    finally:
        if message is not None:
            err(f"{PREFIX}: {message}\n")


def expect_create(cmd: Command) -> int:
    from _nfct import write
    write.expect_create(-1, cmd)
    return 0


def expect_delete(cmd: Command) -> int:
    """-D expect. conntrack counts nothing here, so it always ends with "0 expectations have been
    shown." and exit status 1, also when the expectation was deleted."""
    from _nfct import write
    write.expect_delete(-1, cmd)
    return 0


def expect_get(cmd: Command) -> int:
    from _nfct import query, write
    family, request = write.expect_get_request(cmd)
    xml = bool(cmd.output & Out.XML)
    lines = query.expectations(-1, family, xml, bool(cmd.output & Out.TMS), get=request)
    head = b'<?xml version="1.0" encoding="utf-8"?>\n<expect>\n' if lines and xml else b""
    # conntrack opens the <expect> element for -G but never closes it (nor flushes stdout)
    out_stdio(head + b"".join(lines))
    return len(lines)


# -- -R / --load-file -----------------------------------------------------------------------------------

def load_file(path: str, prog: str = "pynfct") -> int:
    """conntrack -R FILE ("-" = standard input): the exit status.

    Every line is parsed before any runs (a bad line: its message, exit 2, nothing done); then the lines
    run in order and the first failure ends the run with exit 1. See pynfct.cli.load.
    """
    from .load import LoadAborted, LoadFailed, run_file
    try:
        run_file(path, prog, out_fd=1)
    except LoadFailed as e:
        err(f"{PREFIX}: Operation failed: {err2str(e.errno, e.command)}\n")
        return OTHER_PROBLEM
    except LoadAborted:
        return OTHER_PROBLEM
    return 0
