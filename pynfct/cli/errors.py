"""Command-line errors, worded and numbered as conntrack's exit_error() does it."""
from __future__ import annotations

from .. import __version__

# enum exittype of conntrack-tools
OTHER_PROBLEM = 1
PARAMETER_PROBLEM = 2

PYNFCT_PROG = "pynfct"
PYNFCT_PREFIX = f"pynfct v{__version__} (conntrack-tools compatible)"
CONNTRACK_PROG = "conntrack"
CONNTRACK_PREFIX = "conntrack v1.4.7 (conntrack-tools)"


class UsageError(Exception):
    """conntrack would call exit_error(status, message): print the message and exit with ``status``.

    ``message`` is the text conntrack prints after its "conntrack v1.4.7 (conntrack-tools): " prefix;
    ``status`` is 2 (PARAMETER_PROBLEM: a "Try ... --help" line follows) or 1 (OTHER_PROBLEM).
    """

    def __init__(self, message: str, status: int = PARAMETER_PROBLEM):
        super().__init__(message)
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"UsageError({self.message!r}, {self.status})"

    def format(self, prog_prefix: str = PYNFCT_PREFIX, prog: str = PYNFCT_PROG) -> str:
        return format_error(prog_prefix, self.message, self.status, prog)


def tryhelp(prog: str = PYNFCT_PROG) -> str:
    """conntrack's exit_tryhelp() line (PROGNAME, not argv[0])."""
    return f"Try `{prog} -h' or '{prog} --help' for more information.\n"


def format_error(prog_prefix: str, message: str, status: int, prog: str = PYNFCT_PROG) -> str:
    """The whole stderr text of exit_error(): "<prefix>: <message>\\n" (+ the try-help line for status 2)."""
    text = f"{prog_prefix}: {message}\n"
    if status == PARAMETER_PROBLEM:
        text += tryhelp(prog)
    return text
