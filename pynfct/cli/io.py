"""What every command's handler shares: writing stdout/stderr, and ending with conntrack's words."""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List

from .errors import OTHER_PROBLEM


class Failure(Exception):
    """Ends the command with conntrack's "<prefix>: message" on stderr and an exit status."""

    def __init__(self, message: str, status: int = OTHER_PROBLEM):
        super().__init__(message)
        self.message = message
        self.status = status


def out(data: bytes, fd: int = 1) -> None:
    """Write to stdout as conntrack's stdio does: text a write fails for (ENOSPC, EIO, ...) is lost and
    the command goes on. Only EPIPE (BrokenPipeError) ends it: the reader went away."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BrokenPipeError:
            raise
        except OSError:
            return


#: conntrack's stdout is a stdio stream: to a pipe or a file it goes out in blocks of st_blksize (4096)
#: and the last, partial block only at exit, after the summary line on stderr.
BLOCK = 4096
_held: List[bytes] = []


def out_stdio(data: bytes) -> None:
    """Write as conntrack's printf() would: all of it to a terminal; else whole blocks now, and the rest
    after the summary (flush_held()). A reader that is gone then sees the summary first, as with
    conntrack, and `2>&1` gets the same order of bytes."""
    if not os.isatty(1):
        cut = len(data) - len(data) % BLOCK
        _held.append(data[cut:])
        data = data[:cut]
    out(data)


def flush_held() -> None:
    data = b"".join(_held)
    _held.clear()
    out(data)


def err(text: str) -> None:
    if sys.stderr is None:      # main() called in a process whose fd 2 is closed: lost, as conntrack's
        return
    sys.stderr.write(text)
    sys.stderr.flush()
