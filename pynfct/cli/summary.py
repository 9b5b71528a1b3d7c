"""What conntrack prints and returns after running a command (print_stats(), err2str() and friends).

All lines here go to stderr after the program prefix, as ``f"{prefix}: {line}\\n"`` (conntrack's
"conntrack v1.4.7 (conntrack-tools): ").
"""
from __future__ import annotations

import errno as _errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

from .._ints import Cmd
from ..template import Command
from .parse import cmd_index

# exit_msg[] of conntrack.c, by command
EXIT_MSG = {
    Cmd.CT_LIST: "%d flow entries have been shown.",
    Cmd.CT_CREATE: "%d flow entries have been created.",
    Cmd.CT_UPDATE: "%d flow entries have been updated.",
    Cmd.CT_DELETE: "%d flow entries have been deleted.",
    Cmd.CT_GET: "%d flow entries have been shown.",
    Cmd.CT_EVENT: "%d flow events have been shown.",
    Cmd.EXP_LIST: "%d expectations have been shown.",
    Cmd.EXP_DELETE: "%d expectations have been shown.",   # sic
    Cmd.CT_ADD: "%d flow entries have been added.",
}

#: commands for which a count of 0 is not a failure
ZERO_OK = Cmd.CT_LIST | Cmd.EXP_LIST | Cmd.CT_ADD

#: printed by -F after the flush request (whatever its result)
FLUSH_MSG = {
    Cmd.CT_FLUSH: "connection tracking table has been emptied.",
    Cmd.EXP_FLUSH: "expectation table has been emptied.",
}

#: printed by -E on SIGINT/SIGTERM, then exit 0 (no other summary)
EVENT_SIGNAL_MSG = {
    Cmd.CT_EVENT: "%d flow events have been shown.",
    Cmd.EXP_EVENT: "%d expectation events have been shown.",
}


def summary_line(cmd: Command, counter: int) -> Optional[str]:
    """print_stats(): the summary conntrack prints after a single (non ``-R``) command, or None.

    Print it as ``f"{prefix}: {line}\\n"`` on stderr.  Nothing is printed after a ``-R`` batch.
    """
    if not cmd.command:
        return None
    i = cmd_index(cmd.command)
    fmt = EXIT_MSG.get(Cmd(1 << i)) if i < 20 else None
    return None if fmt is None else fmt % counter


def summary_failed(cmd: Command, counter: int) -> bool:
    """True when print_stats() makes conntrack exit 1: a summary was printed, the counter is 0 and
    the command is not -L (conntrack or expect) or -A."""
    return summary_line(cmd, counter) is not None and counter == 0 and not cmd.command & ZERO_OK


def exit_status(cmd: Command, counter: int) -> int:
    """conntrack's exit status after a successful single command: 1 if summary_failed(), else 0."""
    return 1 if summary_failed(cmd, counter) else 0


ENOTSUPP = 524   # linux/errno.h, kernel-internal

_ERR2STR = (
    (Cmd.CT_LIST, ENOTSUPP, "function not implemented"),
    (0xFFFF, _errno.EINVAL, "invalid parameters"),
    (Cmd.CT_CREATE, _errno.EEXIST, "Such conntrack exists, try -U to update"),
    (Cmd.CT_CREATE | Cmd.CT_GET | Cmd.CT_DELETE | Cmd.CT_ADD, _errno.ENOENT, "such conntrack doesn't exist"),
    (Cmd.CT_CREATE | Cmd.CT_GET | Cmd.CT_ADD, _errno.ENOMEM, "not enough memory"),
    (Cmd.CT_GET, _errno.EAFNOSUPPORT, "protocol not supported"),
    (Cmd.CT_CREATE | Cmd.CT_ADD, _errno.ETIME, "conntrack has expired"),
    (Cmd.EXP_CREATE, _errno.ENOENT, "master conntrack not found"),
    (Cmd.EXP_CREATE, _errno.EINVAL, "invalid parameters"),
    (~0, _errno.EPERM, "sorry, you must be root or get CAP_NET_ADMIN capability to do this"),
)


def err2str(err: int, command: int) -> str:
    """conntrack's err2str(): the text after "Operation failed: " (exit status 1)."""
    for act, e, msg in _ERR2STR:
        if int(act) & int(command) and e == err:
            return msg
    return os.strerror(err)


def operation_failed(err: int, command: int) -> str:
    """The message of a failed request: exit_error(OTHER_PROBLEM, "Operation failed: %s")."""
    return f"Operation failed: {err2str(err, command)}"


def interrupted_line(cmd: Optional[Command], e: BaseException) -> str:
    """The summary of a -D, -U or -R that SIGINT/SIGTERM stopped (pynfct.cli.signals.Interrupted),
    from what the kernel did (the exception's ``partial``). conntrack, killed, prints nothing.
    ``partial.unprinted``: entries changed but not printed, as the reader of the output (a pipe) did
    not take their lines in time (see docs/signals.md)."""
    name = getattr(e, "name", "a signal")
    p = getattr(e, "partial", None)
    # entries changed whose line the reader of a pipe did not take before the program had to end
    unprinted = getattr(p, "unprinted", 0)
    if cmd is None:         # -R: a LoadResult
        created, updated, deleted = (p.created, p.updated, p.deleted) if p is not None else (0, 0, 0)
        done = f"{created} flow entries have been created, {updated} updated, {deleted} deleted"
        whose = "of those updated and deleted"
    else:                   # -D/-U: a ModifyResult
        done = (summary_line(cmd, p.count if p is not None else 0) or "").rstrip(".")
        whose = "of them"
    if unprinted:
        done += f", {unprinted} {whose} not printed (the output was not read)"
    return f"interrupted by {name}: {done}."
