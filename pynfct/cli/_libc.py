"""Byte-exact emulations of the few libc routines conntrack's argument parsing relies on.

conntrack parses its arguments with strtoul/strtol/atoi/atol, inet_aton and inet_pton; each has corner
cases (leading blanks, signs, octal/hex prefixes, overflow clamping, trailing garbage) that decide whether
an argument is accepted and which value ends up in the template.  These functions work on ``bytes`` (argv
as the kernel hands it to a C program) and reproduce glibc's behaviour on x86-64 (64-bit ``long``).
"""
from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

ULONG_MAX = (1 << 64) - 1
LONG_MAX = (1 << 63) - 1
LONG_MIN = -(1 << 63)

_SPACE = b" \t\n\v\f\r"  # isspace() in the C locale
_DIGITS = {c: i for i, c in enumerate(b"0123456789abcdefghijklmnopqrstuvwxyz")}
_DIGITS.update({c: i for i, c in enumerate(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")})


def _scan(s: bytes, base: int) -> Tuple[int, bool, int, bool]:
    """The common part of strtol/strtoul: (magnitude, negative, end index, any digits)."""
    i, n = 0, len(s)
    while i < n and s[i] in _SPACE:
        i += 1
    neg = False
    if i < n and s[i] in b"+-":
        neg = s[i] == 0x2D
        i += 1
    if base == 0:
        if i < n and s[i] == 0x30:
            if i + 2 < n and s[i + 1] in b"xX" and _DIGITS.get(s[i + 2], 99) < 16:
                base = 16
                i += 2
            else:
                base = 8
        else:
            base = 10
    elif base == 16 and i + 2 < n and s[i] == 0x30 and s[i + 1] in b"xX" \
            and _DIGITS.get(s[i + 2], 99) < 16:
        i += 2
    start = i
    val = 0
    while i < n:
        d = _DIGITS.get(s[i], 99)
        if d >= base:
            break
        val = val * base + d
        i += 1
    if i == start:
        return 0, False, 0, False
    return val, neg, i, True


def strtoul(s: bytes, base: int = 0) -> Tuple[int, int, bool]:
    """glibc strtoul(): (value, index of *endptr, ERANGE)."""
    val, neg, end, ok = _scan(s, base)
    if not ok:
        return 0, 0, False
    if val > ULONG_MAX:
        return ULONG_MAX, end, True
    if neg:
        val = (-val) & ULONG_MAX
    return val, end, False


def strtol(s: bytes, base: int = 10) -> Tuple[int, int, bool]:
    """glibc strtol(): (value, index of *endptr, ERANGE)."""
    val, neg, end, ok = _scan(s, base)
    if not ok:
        return 0, 0, False
    if neg:
        if val > -LONG_MIN:
            return LONG_MIN, end, True
        return -val, end, False
    if val > LONG_MAX:
        return LONG_MAX, end, True
    return val, end, False


def to_int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def atoi(s: bytes) -> int:
    """atoi(): (int) strtol(s, NULL, 10)."""
    return to_int32(strtol(s, 10)[0])


def atol(s: bytes) -> int:
    """atol(): strtol(s, NULL, 10) as a 64-bit long."""
    return strtol(s, 10)[0]


# htons/htonl without the _socket extension module (loading it costs a start ~0.4 ms)
_SWAP = sys.byteorder == "little"


def htons(v: int) -> int:
    """htons() of the value converted to uint16_t, on this host's byte order."""
    v &= 0xFFFF
    return int.from_bytes(v.to_bytes(2, "big"), "little") if _SWAP else v


def htonl(v: int) -> int:
    """htonl() of the value converted to uint32_t, on this host's byte order."""
    v &= 0xFFFFFFFF
    return int.from_bytes(v.to_bytes(4, "big"), "little") if _SWAP else v


def inet_aton(cp: bytes) -> Optional[bytes]:
    """glibc inet_aton() (trailing characters after a blank are ignored); 4 bytes or None."""
    n = len(cp)
    parts: List[int] = []
    i = 0
    c = cp[0] if n else 0
    val = 0
    while True:
        if not 0x30 <= c <= 0x39:
            return None
        val, end, erange = strtoul(cp[i:], 0)
        if erange or val > 0xFFFFFFFF:
            return None
        i += end
        c = cp[i] if i < n else 0
        if c == 0x2E:  # '.'
            if len(parts) > 2 or val > 0xFF:
                return None
            parts.append(val)
            i += 1
            c = cp[i] if i < n else 0
        else:
            break
    if c != 0 and c not in _SPACE:
        return None
    if val > (0xFFFFFFFF, 0xFFFFFF, 0xFFFF, 0xFF)[len(parts)]:
        return None
    return bytes(parts) + val.to_bytes(4 - len(parts), "big")


def inet_pton6(cp: bytes) -> Optional[bytes]:
    """inet_pton(AF_INET6, ...): 16 bytes or None."""
    try:
        text = cp.decode("ascii")
    except UnicodeDecodeError:
        return None  # glibc only accepts hex digits, ':' and '.'
    # _socket, not socket: the C function is all this needs, and socket.py costs ~3 ms
    import _socket
    try:
        return _socket.inet_pton(_socket.AF_INET6, text)
    except (OSError, ValueError):
        return None


def strncasecmp_prefix(s: bytes, word: bytes, n: int) -> bool:
    """strncasecmp(s, word, n) == 0 (ASCII case folding, stops at the end of either string)."""
    # Both strings are compared up to n bytes; a C string ends with NUL, so a shorter one matches only
    # if the other ends at the same place.
    return s[:n].lower() == word[:n].lower()
