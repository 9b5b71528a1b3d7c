"""How the pynfct program ends on SIGPIPE, SIGINT and SIGTERM: as conntrack 1.4.7 does.

conntrack keeps the default dispositions (it only catches SIGINT/SIGTERM during -E), so when the reader
of its output goes away (`conntrack -L | head -1`) it dies of SIGPIPE without a word, and SIGINT or
SIGTERM kill it at once, wherever it is. The shell and the programs around it read that: bash stops a
script on Ctrl-C only when the child died of SIGINT, `set -o pipefail` and supervisors see the signal.
Python starts with SIGPIPE ignored (a write says EPIPE instead) and SIGINT raising KeyboardInterrupt, so
the program's entry points call :func:`as_program` first: writes from any thread, from C without the GIL,
and the interpreter's final flush all end the process as they end conntrack.

-D, -U and -R change the table, so for them a signal is caught instead (:func:`interruptible`): the C
loops stop within tens of milliseconds with the exact account of what the kernel did, the entries
changed so far are printed, a summary line says it was interrupted, and the process then dies of the
same signal (:func:`die_of`), as conntrack would have. -E keeps conntrack's own handler (events.py).

A standard descriptor the caller closed (`>&-`, `2>&-`) is opened on /dev/null first (:func:`_open_closed`):
Python would leave sys.stdout or sys.stderr None (a traceback, the command not done) and pynfct's own
netlink socket could take the free number. conntrack's text to a closed descriptor is lost and the
command still runs (docs/signals.md); text to /dev/null is lost as well.

Only the command line calls this module: the library never changes a signal disposition.
_signal, not signal: the signal module imports enum, a cost on every call.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal      # the same functions, with types (_signal has no stubs)
    from types import FrameType
    from typing import Any, Dict, Optional
else:
    import _signal

SIGPIPE = _signal.SIGPIPE
#: the signals a drop-in must die of, as conntrack does, when nothing catches them
STOP_SIGNALS = (_signal.SIGINT, _signal.SIGTERM)

#: as_program() ran: this process is the pynfct program (not a caller of main() in its own process)
_program = False


def as_program() -> None:
    """The dispositions conntrack runs with. A signal the caller left ignored stays ignored (a job
    started in the background keeps SIGINT ignored, and so does conntrack)."""
    global _program
    _program = True
    _open_closed()
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
        _signal.signal(_signal.SIGINT, _signal.SIG_DFL)


def _open_closed() -> None:
    """Fill each of fds 0, 1, 2 that is closed, and give Python usable sys.stdout/stderr on 1 and 2 (it
    made them None at start). Done in order, so the lower ones are open and the new descriptor gets the
    very number wanted; dup2 only in case it does not."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            if fd == 0:
                # not /dev/null: `-R -` opens /dev/stdin, which conntrack cannot with fd 0 closed
                # ("Failed to open file", exit 2); a socket cannot be opened through /proc either
                import _socket
                new = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM).detach()
            else:
                new = os.open(os.devnull, os.O_WRONLY)
            if new != fd:
                os.dup2(new, fd)          # inheritable, as a standard descriptor is
                os.close(new)
            else:
                os.set_inheritable(fd, True)
        except OSError:
            continue
        # as Python makes them at start: stderr backslash-escapes, and is line buffered
        if fd == 1 and sys.stdout is None:
            sys.stdout = open(1, "w", closefd=False)
        elif fd == 2 and sys.stderr is None:
            sys.stderr = open(2, "w", errors="backslashreplace", closefd=False, buffering=1)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while a command that changes the table ran (``signum``). The C loops
    hand what they did over as ``partial``, as they do for Ctrl-C's KeyboardInterrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return "SIGINT" if self.signum == _signal.SIGINT else "SIGTERM"


def _raise(signum: int, frame: Optional[FrameType]) -> None:
    raise Interrupted(signum)


class interruptible:
    """Within this block SIGINT and SIGTERM raise :class:`Interrupted` (those the caller did not leave
    ignored); the dispositions come back afterwards."""

    def __enter__(self) -> "interruptible":
        self._old: Dict[int, Any] = {}
        for s in STOP_SIGNALS:
            old = _signal.getsignal(s)
            if old is not _signal.SIG_IGN:
                self._old[s] = _signal.signal(s, _raise)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            _signal.signal(s, old)


def ended_by(signum: int) -> int:
    """The program dies of `signum` (die_of); a caller of main() in its own process gets the exit
    status a shell would show instead, 128 + signum."""
    if _program:
        die_of(signum)
    return 128 + signum


def die_of(signum: int) -> None:
    """End the process by `signum`, with its default action (no handler, not blocked), after what
    stdout and stderr hold. Falls back to exit status 128 + signum if the signal does not kill."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException:
            pass
    _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)

