"""The content check of the bench: a sha256 of a command's output lines with only the timeouts blanked.

Two programs that read the same table one after the other print the same bytes except the timeouts,
which tick between the reads (the bench's tables hold entries with long timeouts, so none expires and
none is refreshed). This module blanks exactly those values and nothing else:

- the timeout column of the default and `-o extended` formats and of `-E` lines (the number after the
  protocol name and number, e.g. `tcp      6 431999 ESTABLISHED` -> `tcp      6 T ESTABLISHED`);
- `<timeout>N</timeout>` of `-o xml` -> `<timeout>T</timeout>`.

Every other byte (addresses, ports, marks, zones, `use=`, the XML header and footer) goes into the hash
as printed. The lines are hashed in sorted order: the kernel's own dump order moves between two reads of
an unchanged table (Digest says more).

The bench keeps a timed command's stdout in memory as it arrives (the command writes into a pipe that
the bench only reads) and hashes it after the command has exited, so hashing costs no timed run anything.
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterable, List, Tuple

# A line's leading event tag ("    [NEW] "), the extended format's family and number ("ipv4     2 "),
# then the protocol name and number; the timeout is the number that follows. A [DESTROY] event has no
# timeout: "src=" follows the protocol number there and nothing matches.
# (A line is found by the newline before it, which the regex engine scans for quickly; `(?m)^` is several
# times slower. Digest puts a newline before the first line.)
_TEXT_TIMEOUT = re.compile(rb"\n( *(?:\[[A-Z]+\] +)?(?:ipv[46] +\d+ +)?[a-z][a-z0-9-]* +\d+ +)\d+(?= )")
_XML_TIMEOUT = re.compile(rb"<timeout>\d+</timeout>")


def blank_timeouts(data: bytes) -> bytes:
    """`data` (whole lines, each after a newline) with every timeout value replaced by T."""
    data = _TEXT_TIMEOUT.sub(rb"\n\1T", data)
    if b"<timeout>" in data:
        data = _XML_TIMEOUT.sub(b"<timeout>T</timeout>", data)
    return data


class Digest:
    """sha256 of the blanked output's lines in sorted order, with the output's line and byte counts.

    Sorted, because the kernel's dump order is not stable: two `conntrack -L` of an unchanged table of
    20,000 entries print a few entries a position or two apart (where a dump batch ends). The lines
    themselves, and how many times each appears, are compared exactly.
    """

    def __init__(self) -> None:
        self._pieces: List[bytes] = []
        self._carry = b"\n"     # the newline before the first line (the regex finds lines by it)
        self.lines = 0
        self.nbytes = 0

    def update(self, chunk: bytes) -> None:
        self.nbytes += len(chunk)
        self.lines += chunk.count(b"\n")
        data = self._carry + chunk
        cut = data.rfind(b"\n")      # the lines before it are complete, each after its newline
        self._carry = data[cut:]
        if cut > 0:
            self._pieces.append(blank_timeouts(data[:cut]))

    def hexdigest(self) -> str:
        text = b"".join(self._pieces) + blank_timeouts(self._carry)
        lines = text.split(b"\n")
        lines.sort()
        return hashlib.sha256(b"\n".join(lines)).hexdigest()


def digest(chunks: Iterable[bytes]) -> Tuple[str, int, int]:
    """(sha256 hex, lines, bytes) of the blanked output made of `chunks`."""
    d = Digest()
    for chunk in chunks:
        d.update(chunk)
    return d.hexdigest(), d.lines, d.nbytes


def digest_list(chunks: List[bytes]) -> Tuple[str, int, int]:
    """digest() of a list of chunks, emptying the list as it goes (the output may be hundreds of MB)."""
    d = Digest()
    chunks.reverse()
    while chunks:
        d.update(chunks.pop())
    return d.hexdigest(), d.lines, d.nbytes
