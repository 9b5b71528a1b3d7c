"""An exact emulation of glibc's getopt_long() (posix/getopt.c, glibc 2.26 and later).

conntrack relies on details of getopt_long that Python's getopt/argparse do differently:

* argument permutation (GNU default): non-options are skipped and moved behind the options as the scan
  goes, ``--`` ends the options; with POSIXLY_CORRECT set (or a '+' optstring) the scan stops at the
  first non-option instead;
* short options clustered (``-zL``), required arguments attached or in the next word, optional arguments
  (``::``) only when attached (``-Lexpect``);
* long options by unique prefix, exact match first, ``--name=value``; an ambiguous prefix or an unknown
  name returns '?', a missing argument ':' (the optstring starts with ':');
* ``optind`` is public and the caller may move it (conntrack's get_optional_arg() does), and the option
  table may change between calls (conntrack merges protocol options after ``-p``).

Everything works on ``bytes`` like the C code, so the error messages conntrack builds from
``argv[optind-1]`` come out the same, even for clusters with non-ASCII characters.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Sequence, Tuple, Union

NO_ARGUMENT = 0
REQUIRED_ARGUMENT = 1
OPTIONAL_ARGUMENT = 2

# ordering
REQUIRE_ORDER = 0
PERMUTE = 1
RETURN_IN_ORDER = 2


class LongOption:
    """One ``struct option`` entry (``flag`` is always NULL in conntrack), equal by value; never changed.

    A class with __slots__ rather than a Record: the command line makes some 60 of them at every
    start, which as Records cost a call ~0.2 ms more.
    """

    __slots__ = ("name", "has_arg", "val")
    name: bytes
    has_arg: int
    val: int

    def __init__(self, name: bytes, has_arg: int, val: int) -> None:
        self.name = name
        self.has_arg = has_arg
        self.val = val

    def _values(self) -> Tuple[bytes, int, int]:
        return (self.name, self.has_arg, self.val)

    def __eq__(self, other: object) -> bool:
        if type(other) is not LongOption:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"LongOption(name={self.name!r}, has_arg={self.has_arg!r}, val={self.val!r})"


def _b(s: Union[str, bytes]) -> bytes:
    return os.fsencode(s) if isinstance(s, str) else bytes(s)


class Getopt:
    """State of one getopt_long() scan over ``argv`` (argv[0] is the program name).

    Call :meth:`getopt_long` repeatedly with the current option table; it returns the option value,
    ``'?'``/``':'`` (as ints) on errors, or -1 at the end.  After each call ``optarg`` is the argument
    (bytes or None) and ``optarg_index`` the argv slot it lives in; ``optind`` may be read and written
    by the caller like the C global.  ``argv`` is permuted in place.
    """

    def __init__(self, argv: Sequence[Union[str, bytes]], optstring: Union[str, bytes], *,
                 posixly_correct: Optional[bool] = None):
        self.argv: List[bytes] = [_b(a) for a in argv]
        self.optstring = _b(optstring)
        if posixly_correct is None:
            posixly_correct = "POSIXLY_CORRECT" in os.environ
        self.posixly_correct = posixly_correct
        self.optind = 0            # conntrack sets optind = 0 before scanning: (re)initialize
        self.optarg: Optional[bytes] = None
        self.optarg_index: Optional[int] = None
        self.optopt = ord("?")
        self._initialized = False
        self._nextchar: Optional[Tuple[bytes, int]] = None   # (argv string, offset): the C pointer
        self._first_nonopt = 0
        self._last_nonopt = 0
        self._ordering = PERMUTE

    # -- helpers ---------------------------------------------------------------------------------

    def _initialize(self, optstring: bytes) -> bytes:
        if self.optind == 0:
            self.optind = 1
        self._first_nonopt = self._last_nonopt = self.optind
        self._nextchar = None
        if optstring[:1] == b"-":
            self._ordering = RETURN_IN_ORDER
            optstring = optstring[1:]
        elif optstring[:1] == b"+":
            self._ordering = REQUIRE_ORDER
            optstring = optstring[1:]
        elif self.posixly_correct:
            self._ordering = REQUIRE_ORDER
        else:
            self._ordering = PERMUTE
        self._initialized = True
        return optstring

    def _nonoption(self, i: int) -> bool:
        a = self.argv[i]
        return a[:1] != b"-" or len(a) == 1

    def _exchange(self) -> None:
        argv = self.argv
        bottom = self._first_nonopt
        middle = self._last_nonopt
        top = self.optind
        while top > middle and middle > bottom:
            if top - middle > middle - bottom:
                length = middle - bottom
                for i in range(length):
                    j = top - (middle - bottom) + i
                    argv[bottom + i], argv[j] = argv[j], argv[bottom + i]
                top -= length
            else:
                length = top - middle
                for i in range(length):
                    argv[bottom + i], argv[middle + i] = argv[middle + i], argv[bottom + i]
                bottom += length
        self._first_nonopt += self.optind - self._last_nonopt
        self._last_nonopt = self.optind

    def _set_optarg(self, value: bytes) -> None:
        # every optarg comes from the argv slot just consumed
        self.optarg = value
        self.optarg_index = self.optind - 1

    # -- the scanner -----------------------------------------------------------------------------

    def getopt_long(self, longopts: Sequence[LongOption]) -> int:
        argv = self.argv
        argc = len(argv)
        if argc < 1:
            return -1
        self.optarg = None
        self.optarg_index = None

        optstring = self.optstring
        if self.optind == 0 or not self._initialized:
            optstring = self._initialize(optstring)
        elif optstring[:1] in (b"-", b"+"):
            optstring = optstring[1:]

        if self._nextchar is None or self._nextchar[1] >= len(self._nextchar[0]):
            # Advance to the next ARGV-element.
            if self._last_nonopt > self.optind:
                self._last_nonopt = self.optind
            if self._first_nonopt > self.optind:
                self._first_nonopt = self.optind

            if self._ordering == PERMUTE:
                if self._first_nonopt != self._last_nonopt and self._last_nonopt != self.optind:
                    self._exchange()
                elif self._last_nonopt != self.optind:
                    self._first_nonopt = self.optind
                while self.optind < argc and self._nonoption(self.optind):
                    self.optind += 1
                self._last_nonopt = self.optind

            if self.optind != argc and argv[self.optind] == b"--":
                self.optind += 1
                if self._first_nonopt != self._last_nonopt and self._last_nonopt != self.optind:
                    self._exchange()
                elif self._first_nonopt == self._last_nonopt:
                    self._first_nonopt = self.optind
                self._last_nonopt = argc
                self.optind = argc

            if self.optind == argc:
                if self._first_nonopt != self._last_nonopt:
                    self.optind = self._first_nonopt
                return -1

            if self._nonoption(self.optind):
                if self._ordering == REQUIRE_ORDER:
                    return -1
                self.optind += 1
                self._set_optarg(argv[self.optind - 1])
                return 1

            if longopts and argv[self.optind][1:2] == b"-":
                self._nextchar = (argv[self.optind], 2)
                return self._process_long_option(optstring, longopts)

            self._nextchar = (argv[self.optind], 1)

        # Look at and handle the next short option-character.
        s, pos = self._nextchar
        c = s[pos]
        pos += 1
        self._nextchar = (s, pos)
        temp = optstring.find(bytes([c]))
        if pos >= len(s):
            self.optind += 1
        if temp < 0 or c == ord(":") or c == ord(";"):
            self.optopt = c
            return ord("?")
        if optstring[temp + 1:temp + 2] == b":":
            if optstring[temp + 2:temp + 3] == b":":
                # optional argument: only if attached
                if pos < len(s):
                    self.optind += 1
                    self._set_optarg(s[pos:])
                else:
                    self.optarg = None
                self._nextchar = None
            else:
                if pos < len(s):
                    self.optind += 1
                    self._set_optarg(s[pos:])
                elif self.optind == argc:
                    self.optopt = c
                    c = ord(":") if optstring[:1] == b":" else ord("?")
                else:
                    self.optind += 1
                    self._set_optarg(argv[self.optind - 1])
                self._nextchar = None
        return c

    def _process_long_option(self, optstring: bytes, longopts: Sequence[LongOption]) -> int:
        argv = self.argv
        argc = len(argv)
        assert self._nextchar is not None    # getopt_long() just pointed it after the "--"
        s, pos = self._nextchar
        rest = s[pos:]
        eq = rest.find(b"=")
        name = rest if eq < 0 else rest[:eq]

        pfound: Optional[LongOption] = None
        for p in longopts:
            if p.name == name:
                pfound = p
                break
        if pfound is None:
            ambiguous = False
            for p in longopts:
                if p.name.startswith(name):
                    if pfound is None:
                        pfound = p
                    elif pfound.has_arg != p.has_arg or pfound.val != p.val:
                        ambiguous = True
            if ambiguous:
                self._nextchar = (s, len(s))
                self.optind += 1
                self.optopt = 0
                return ord("?")
        if pfound is None:
            self._nextchar = None
            self.optind += 1
            self.optopt = 0
            return ord("?")

        self.optind += 1
        self._nextchar = None
        if eq >= 0:
            if pfound.has_arg:
                self._set_optarg(rest[eq + 1:])
            else:
                self.optopt = pfound.val
                return ord("?")
        elif pfound.has_arg == REQUIRED_ARGUMENT:
            if self.optind < argc:
                self.optind += 1
                self._set_optarg(argv[self.optind - 1])
            else:
                self.optopt = pfound.val
                return ord(":") if optstring[:1] == b":" else ord("?")
        return pfound.val
