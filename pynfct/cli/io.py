"""What every command's handler shares: writing stdout/stderr, and ending with conntrack's words."""
from __future__ import annotations

import os
import sys

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


def err(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()
