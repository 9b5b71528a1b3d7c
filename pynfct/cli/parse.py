"""conntrack's command-line parsing (do_parse() of conntrack-tools 1.4.7) in pure Python.

:func:`parse` turns an argument list into a :class:`CliCommand` (a :class:`pynfct.template.Command`)
or raises :class:`~pynfct.cli.errors.UsageError` with conntrack's message and exit status.
:func:`parse_file` reads a ``-R``/``--load-file`` batch file, :func:`parse_args` does what conntrack's
main() does with its argv (batch file or single command).

The port is literal where it matters: the getopt emulation permutes argv like glibc, ``-L``'s table
argument and the NAT/label-del optional arguments are taken by get_optional_arg() (the next word unless
it starts with '-' or '!'; an attached ``--src-nat=ADDR`` is *ignored*, as in conntrack), numbers go
through strtoul/atoi/atol with their C corner cases, protocol options only exist after ``-p``, and the
template attributes are the values conntrack hands to ``nfct_set_attr_*`` (ports already htons()ed).

State that conntrack keeps in globals across the lines of a ``-R`` file (the last protocol handler, the
``-o`` flags, the label map) is kept across the lines of one :func:`parse_file` call the same way.
"""
from __future__ import annotations

import os
from errno import EINVAL, ENODATA
from ..record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Union

    from ..template import AttrValue

    Warn = Callable[[str], None]
    #: a template object: Template.ct, .mask or .exptuple
    AttrDict = Dict[Attr, AttrValue]

from .._ints import ATTR_KIND, CT_COMPARISON, Attr, Cmd, Opt, Out, Table
from ..template import Command
from . import options as O
from ._libc import atoi, atol, htonl, htons, inet_aton, inet_pton6, strncasecmp_prefix, strtol, strtoul, \
    to_int32
from .errors import OTHER_PROBLEM, UsageError
from .getopt import Getopt

__all__ = ["CliCommand", "parse", "parse_file", "parse_args", "load_labelmap", "filter_init",
           "precommand_check", "cmd_index", "DEFAULT_CONNLABEL_CONF", "ATTR_EXP_TIMEOUT"]

# Linux's numbers (linux/socket.h), as _nfct's C code has them
AF_UNSPEC = 0
AF_INET = 2
AF_INET6 = 10

DEFAULT_CONNLABEL_CONF = "/etc/xtables/connlabel.conf"

# enum nf_expect_attr of libnetfilter_conntrack
ATTR_EXP_TIMEOUT = 3

_TABLE_DYING_OR_UNCONFIRMED = (Table.DYING, Table.UNCONFIRMED)



def _stderr_warn(msg: str) -> None:
    from .io import err         # (None-safe: main() may run with fd 2 closed)
    err(msg + "\n")


def _dec(b: bytes) -> str:
    return os.fsdecode(b)


def _required(optarg: Optional[bytes]) -> bytes:
    """The argument of an option that requires one: getopt always hands it over (conntrack reads optarg
    there without a check)."""
    assert optarg is not None
    return optarg


class CliCommand(Command):
    """A :class:`Command` as parsed from a command line, plus what only the CLI needs.

    ``proto_name`` is the protocol extension conntrack selected with ``-p`` ("tcp", ..., "unknown";
    None without -p): ``-h -p X`` prints that extension's help, and it is not always derivable from
    ``protonum`` (``-p ipv6-icmp`` selects "unknown" although 58 is icmpv6's number).
    """

    proto_name: Optional[str] = None
    # conntrack's errno when do_parse() returns: a later failure that sets none (nfct_nlmsg_build() refusing
    # reply ports without a reply address) reports this value
    errno: int = 0


def cmd_index(command: Cmd) -> int:
    """conntrack's bit2cmd(): the bit number of the command, 20 (NUMBER_OF_CMD) for none."""
    v = int(command)
    for i in range(20):
        if v & (1 << i):
            return i
    return 20


def _row_cmd(command: Cmd) -> Cmd:
    i = cmd_index(command)
    return Cmd.NONE if i == 20 else Cmd(1 << i)


def _errno_after_perror(err: int) -> int:
    """errno after glibc's perror() reported ``err``: perror fdopen()s a dup of fd 2 with mode "w+", which
    fails with EINVAL unless fd 2 is open for reading and writing (a terminal usually is, a pipe is not)."""
    import fcntl
    try:
        mode = fcntl.fcntl(2, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError as e:
        return e.errno or 0
    return err if mode == os.O_RDWR else EINVAL


# -- label map (libnetfilter_conntrack's nfct_labelmap_new) --------------------------------------------

_POSIX_SPACE = b" \f\r\t\v"


def _fgets(data: bytes, size: int) -> Iterator[bytes]:
    """Split like repeated fgets(buf, size, fp) calls (lines longer than size-1 come in pieces)."""
    i, n = 0, len(data)
    while i < n:
        j = data.find(b"\n", i, i + size - 1)
        end = j + 1 if j >= 0 else min(i + size - 1, n)
        yield data[i:end]
        i = end


def _trim_label(s: bytes) -> Optional[bytes]:
    i = 0
    while i < len(s) and s[i] in _POSIX_SPACE:
        i += 1
    s = s[i:]
    nl = s.find(b"\n")
    if nl >= 0:
        s = s[:nl]
    e = len(s) - 1
    while e > 0 and s[e] in _POSIX_SPACE:
        e -= 1
    s = s[:e + 1]
    return s or None


def _label_is_sane(s: bytes) -> bool:
    return all(0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A or 0x30 <= c <= 0x39 or c in b" -" for c in s)


def load_labelmap(path: Union[str, bytes]) -> Tuple[Optional[Dict[bytes, int]], int]:
    """Read a connlabel.conf like nfct_labelmap_new(): ({name: bit}, 0) or (None, errno).

    Lines are "BIT NAME" (BIT as strtoul base 0, below 1024); '#' in column 0 starts a comment; names are
    [A-Za-z0-9 -] with blanks trimmed; the first line for a bit and the first for a name win.  A file
    without any valid label gives (None, 0), like the library (perror then says "Success").
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        data = b""   # fopen() of a directory succeeds, reading it yields nothing
    except OSError as e:
        return None, e.errno or 0
    names: Dict[bytes, int] = {}
    seen: Set[int] = set()
    for line in _fgets(data, 1024):
        line = line.split(b"\0", 1)[0]
        if line[:1] == b"#":
            continue
        val, end, _ = strtoul(line, 0)
        if (val == 0 and end == 0) or val >= 1024:
            continue
        if val in seen:
            continue
        name = _trim_label(line[end:])
        if name is None:
            continue
        if _label_is_sane(name) and name not in names:
            names[name] = val
            seen.add(val)
    if not names:
        return None, 0
    return names, 0


# -- parse state ---------------------------------------------------------------------------------------

class _State(Record):
    """conntrack.c globals that outlive one do_parse() call."""

    h: Optional[O.ProtoHandler] = None           # static struct ctproto_handler *h
    output_mask: int = 0                          # static unsigned int output_mask
    labelmap: Optional[Dict[bytes, int]] = None   # static struct nfct_labelmap *labelmap
    labelmap_path: Optional[bytes] = None         # 1.4.9: static char *labelmap_path
    deferred_labels: bool = False                 # 1.4.9 label handling (after --labelmap was seen)
    u8_called: bool = False                       # nfct_set_attr_u8() has been called (see -j)
    connlabel_conf: str = DEFAULT_CONNLABEL_CONF
    posixly_correct: Optional[bool] = None


def _findproto(name: bytes) -> Tuple[Optional[O.ProtoHandler], int]:
    lower = name.lower()
    for proto in O.PROTOCOL_NAMES:
        if proto.encode() == lower:
            h = O.protocol(proto)
            return h, h.protonum
    # _socket, not socket (socket.py costs ~3 ms), and only here: loading it costs a start ~0.4 ms
    import _socket
    try:
        return O.UNKNOWN, _socket.getprotobyname(name.decode("utf-8"))
    except (OSError, UnicodeError, ValueError):
        pass
    val, end, _ = strtoul(name, 0)
    if end != 0 and end == len(name) and val <= O.IPPROTO_RAW:
        for proto in O.PROTOCOL_NAMES:
            if O.PROTOCOL_NUMBERS[proto] == val:
                return O.protocol(proto), val
        return O.UNKNOWN, val
    return None, 0


def _parse_addr(cp: bytes) -> Tuple[int, bytes, int]:
    """parse_addr(): (family, address bytes, netmask) where netmask is -1 (none) or -2 (invalid)."""
    buf = cp[:45]   # strncpy into char[INET6_ADDRSTRLEN], NUL-terminated
    slash = buf.find(b"/")
    if slash >= 0:
        tail = buf[slash + 1:]
        val, end, _ = strtol(tail, 10)
        mask = to_int32(val)
        if mask < 0 or end != len(tail):
            mask = -2
        buf = buf[:slash]
    else:
        mask = -1
    a4 = inet_aton(buf)
    if a4 is not None:
        if mask > 32:
            mask = -2
        return AF_INET, a4, mask
    a6 = inet_pton6(buf)
    if a6 is not None:
        if mask > 128:
            mask = -2
        return AF_INET6, a6, mask
    return AF_UNSPEC, b"", mask


def _build_netmask(bits: int, nbytes: int) -> bytes:
    bits = max(bits, 0)
    v = ((1 << (nbytes * 8)) - 1) ^ ((1 << max(nbytes * 8 - bits, 0)) - 1)
    return v.to_bytes(nbytes, "big")


def _valid_port(s: bytes) -> bool:
    if not s or not all(0x30 <= c <= 0x39 for c in s):
        return False
    val, _, erange = strtol(s, 10)
    return not erange and val <= 0xFFFF


def _split_address_and_port(arg: bytes) -> Tuple[bytes, Optional[bytes]]:
    lb = arg.find(b"[")
    cursor = -1
    address = b""   # set below wherever cursor ends up >= 0
    if lb >= 0:
        start = lb + 1
        rb = arg.find(b"]", start)
        if rb == start:
            raise UsageError("No IPv6 address specified")
        if rb < 0:
            raise UsageError("No closing ']' around IPv6 address")
        cursor = arg.find(b":", rb)
        if cursor >= 0:
            address = arg[start:rb]
    else:
        cursor = arg.find(b":")
        if cursor >= 0 and arg.find(b":", cursor + 1) < 0:
            address = arg[:cursor]
        else:
            cursor = -1
    if cursor >= 0:
        port = arg[cursor + 1:]
        if not port:
            raise UsageError("No port specified after `:'")
        if not _valid_port(port):
            raise UsageError(f"Invalid port `{_dec(port)}'")
        return address, port
    return arg, None


# which template object, family attributes and option bits each address option uses
_OPT2FAMILY_ATTR = {
    "s": (Attr.ORIG_IPV4_SRC, Attr.ORIG_IPV6_SRC), "d": (Attr.ORIG_IPV4_DST, Attr.ORIG_IPV6_DST),
    "g": (Attr.DNAT_IPV4, Attr.DNAT_IPV6), "n": (Attr.SNAT_IPV4, Attr.SNAT_IPV6),
    "r": (Attr.REPL_IPV4_SRC, Attr.REPL_IPV6_SRC), "q": (Attr.REPL_IPV4_DST, Attr.REPL_IPV6_DST),
    "{": (Attr.ORIG_IPV4_SRC, Attr.ORIG_IPV6_SRC), "}": (Attr.ORIG_IPV4_DST, Attr.ORIG_IPV6_DST),
    "[": (Attr.ORIG_IPV4_SRC, Attr.ORIG_IPV6_SRC), "]": (Attr.ORIG_IPV4_DST, Attr.ORIG_IPV6_DST),
    # conntrack has no entry for 'j': both read as attribute 0, ATTR_ORIG_IPV4_SRC
    "j": (Attr.ORIG_IPV4_SRC, Attr.ORIG_IPV4_SRC),
}
_OPT2L3ATTR = {c: Attr.ORIG_L3PROTO for c in "sdgn{}[]"}
_OPT2L3ATTR.update({"r": Attr.REPL_L3PROTO, "q": Attr.REPL_L3PROTO, "j": Attr.ORIG_IPV4_SRC})
_OPT2MASKOPT = {"s": "{", "d": "}", "[": "{", "]": "}"}
_INT_MASK = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF}
_OPT2ATTR = {"m": Attr.MARK, "c": Attr.SECMARK, "i": Attr.ID, "w": Attr.ZONE, "(": Attr.ORIG_ZONE,
             ")": Attr.REPL_ZONE}


def _set_attr(obj: AttrDict, attr: Attr, value: Union[int, bytes]) -> None:
    """nfct_set_attr_*(): store what the library would store for this attribute."""
    kind = ATTR_KIND[attr]
    if isinstance(value, int):
        mask = _INT_MASK.get(kind)     # u8/u16/u32: the C argument type cuts the value
        if mask is not None:
            value &= mask
    elif kind == "ip4":
        value = bytes(value[:4])
    obj[attr] = value


class _Parser:
    """One do_parse() run over argv (argv[0] is the program name)."""

    def __init__(self, argv: Sequence[Union[str, bytes]], state: _State, warn: Warn):
        self.state = state
        self.warn = warn
        self.g = Getopt(argv, O.GETOPT_STR, posixly_correct=state.posixly_correct)
        self.argv = self.g.argv
        self.opts = list(O.BASE_LONGOPTS)
        self.option_offset = 0           # global_option_offset
        self.h_offset = 0                # h->option_offset
        self.cmd = CliCommand()
        self.tmpl = self.cmd.tmpl
        self.command = 0
        self.options = 0
        self.type = 0
        self.family = AF_UNSPEC
        self.protonum = 0
        self.event_mask = 0
        self.l4flags = 0
        self.status = 0
        self.status_mask = 0             # tmpl->filter_status_kernel.mask
        self.socketbuffersize = 0
        self.pending_labels: List[Tuple[bytes, bool]] = []
        self._optional_index: Optional[int] = None

    # -- small helpers mirroring conntrack's -----------------------------------------------------

    def _set(self, obj: AttrDict, attr: Attr, value: Union[int, bytes]) -> None:
        """nfct_set_attr_u8/u16/u32/nfct_set_attr on a template object."""
        _set_attr(obj, attr, value)
        if ATTR_KIND[attr] == "u8":
            self.state.u8_called = True

    def get_long_opt(self, val: int) -> str:
        for o in self.opts:
            if o.val == val:
                return _dec(o.name)
        return "unknown"

    def get_optional_arg(self) -> Optional[bytes]:
        g = self.g
        if g.optarg is not None:
            return None
        if g.optind < len(self.argv) and self.argv[g.optind][:1] not in (b"-", b"!"):
            arg = self.argv[g.optind]
            self._optional_index = g.optind
            g.optind += 1
            return arg
        return None

    def check_type(self) -> int:
        table = self.get_optional_arg()
        if table is None:
            return Table.CONNTRACK
        for i, name in enumerate(O.TABLE_NAMES):
            if name.startswith(table):
                return (Table.EXPECT, Table.CONNTRACK, Table.DYING, Table.UNCONFIRMED)[i]
        raise UsageError(f"unknown type `{_dec(table)}'")

    def add_command(self, newcmd: int) -> None:
        if self.command:
            raise UsageError("Invalid commands combination")
        self.command |= newcmd

    def set_family(self, new: int) -> None:
        if self.family == AF_UNSPEC:
            self.family = new
        elif self.family != new:
            raise UsageError("mismatched address family")

    def labelmap_init(self) -> None:
        st = self.state
        if st.labelmap is not None:
            return
        path = st.labelmap_path if st.labelmap_path is not None else st.connlabel_conf
        st.labelmap, err = load_labelmap(path)
        if st.labelmap is None:
            self.warn(f"nfct_labelmap_new: {os.strerror(err)}")
            self.cmd.errno = _errno_after_perror(err)

    def get_label(self, name: bytes) -> int:
        m = self.state.labelmap
        bit = m.get(name, -1) if m is not None else -1
        if bit < 0:
            raise UsageError(f"unknown label '{_dec(name)}'")
        return bit

    def parse_labels(self, arg: bytes) -> Set[int]:
        names = arg.split(b",")
        for n in names:          # parse_label_get_max(): fails on the first unknown name
            self.get_label(n)
        return {self.get_label(n) for n in names}

    # -- the -u/-e/-o keyword lists ----------------------------------------------------------------

    def _do_parse_parameter(self, s: bytes, n: int, words: Sequence[Tuple[bytes, int]]) -> Optional[int]:
        if strncasecmp_prefix(s, b"SRC_NAT", n):
            self.warn("WARNING: ignoring SRC_NAT, use --src-nat instead")
            return 0
        if strncasecmp_prefix(s, b"DST_NAT", n):
            self.warn("WARNING: ignoring DST_NAT, use --dst-nat instead")
            return 0
        for word, value in words:
            if strncasecmp_prefix(s, word, n):
                return int(value)
        return None

    def parse_parameter(self, arg: bytes, words: Sequence[Tuple[bytes, int]]) -> int:
        value = 0
        pos = 0
        while True:
            comma = arg.find(b",", pos)
            if comma < 0:
                break
            r = None if comma == pos else self._do_parse_parameter(arg[pos:], comma - pos, words)
            if r is None:
                raise UsageError(f"Bad parameter `{_dec(arg[pos:])}'")
            value |= r
            pos = comma + 1
        rest = arg[pos:]
        r = None if not rest else self._do_parse_parameter(rest, len(rest), words)
        if r is None:
            raise UsageError(f"Bad parameter `{_dec(rest)}'")
        return value | r

    def parse_parameter_mask(self, arg: bytes) -> None:
        pos = 0
        while True:
            comma = arg.find(b",", pos)
            if comma < 0:
                break
            if comma == pos:
                raise UsageError(f"Bad parameter `{_dec(arg[pos:])}'")
            negated = arg[pos] == 0x21
            if negated:
                pos += 1
            if comma == pos:
                raise UsageError(f"Bad parameter `{_dec(arg[pos:])}'")
            if not negated and arg[pos:].startswith(b"UNREPLIED"):
                self.status_mask |= O.IPS_SEEN_REPLY
                pos = comma + 1
                continue
            r = self._do_parse_parameter(arg[pos:], comma - pos, O.STATUS_WORDS)
            if r is None:
                raise UsageError(f"Bad parameter `{_dec(arg[pos:])}'")
            if negated:
                self.status_mask |= r
            else:
                self.status |= r
            pos = comma + 1
        negated = arg[pos:pos + 1] == b"!"
        if negated:
            pos += 1
        if not negated and arg[pos:].startswith(b"UNREPLIED"):
            self.status_mask |= O.IPS_SEEN_REPLY
            return
        rest = arg[pos:]
        r = None if not rest else self._do_parse_parameter(rest, len(rest), O.STATUS_WORDS)
        if r is None:
            raise UsageError(f"Bad parameter `{_dec(rest)}'")
        if negated:
            self.status_mask |= r
        else:
            self.status |= r

    # -- addresses -----------------------------------------------------------------------------------

    def _obj(self, name: str) -> AttrDict:
        return {"ct": self.tmpl.ct, "mask": self.tmpl.mask, "exptuple": self.tmpl.exptuple}[name]

    def set_addr_only(self, opt: str, obj: AttrDict, addr: bytes, family: int) -> None:
        if family == AF_INET:
            self._set(obj, _OPT2FAMILY_ATTR[opt][0], addr)
        elif family == AF_INET6:
            attr = _OPT2FAMILY_ATTR[opt][1]
            self._set(obj, attr, addr if ATTR_KIND[attr] == "ip6" else addr[:4])

    def set_addr_opt(self, opt: str, obj: AttrDict, addr: bytes, family: int) -> None:
        self.options |= int(O.OPT_BY_VAL[ord(opt)])
        self.set_addr_only(opt, obj, addr, family)
        attr = _OPT2L3ATTR[opt]
        if ATTR_KIND[attr] == "ip4":
            # -j: conntrack's tables have no entry for 'j', so the "L3 protocol" goes to attribute 0
            # (ORIG_IPV4_SRC) through nfct_set_attr_u8(), and the library copies 4 bytes from the u8's
            # stack slot: the family, then what the slot held (measured on the Debian 1.4.7 build): the
            # address just stored by nfct_set_attr_u32() if nfct_set_attr_u8() had been called before in
            # the process, else bytes of a pointer left by the dynamic linker (7f 00 00); for IPv6
            # always the latter.
            if family == AF_INET and self.state.u8_called:
                value = bytes([family]) + addr[1:4]
            else:
                value = bytes([family, 0x7F, 0, 0])
            self._set(obj, attr, value)
            self.state.u8_called = True
        else:
            self._set(obj, attr, family)

    def parse_addr_from_opt(self, opt: str, arg: bytes, obj: AttrDict, maskobj: Optional[AttrDict]) -> bytes:
        family, addr, mask = _parse_addr(arg)
        if family == AF_UNSPEC:
            raise UsageError(f"Invalid IP address `{_dec(arg)}'")
        self.set_family(family)
        maskopt = _OPT2MASKOPT.get(opt)
        if mask != -1 and not maskopt:
            raise UsageError(f"CIDR notation unavailable for `--{self.get_long_opt(ord(opt))}'")
        elif mask == -2:
            raise UsageError("Invalid netmask")
        self.set_addr_opt(opt, obj, addr, family)
        if mask == -1 or not maskopt or maskobj is None:
            return addr
        if family == AF_INET:
            if mask == 32:
                return addr
            netmask = _build_netmask(mask, 4)
        else:
            if mask == 128:
                return addr
            netmask = _build_netmask(mask, 16)
        self.set_addr_opt(maskopt, maskobj, netmask, family)
        return netmask    # conntrack's `ad` now holds the netmask

    def set_nat_details(self, opt: str, addr: bytes, port: Optional[bytes]) -> None:
        ct = self.tmpl.ct
        self.set_addr_only(opt, ct, addr, self.family)
        if port is not None:
            self._set(ct, Attr.SNAT_PORT if opt == "n" else Attr.DNAT_PORT, htons(atoi(port)))

    # -- protocol extension --------------------------------------------------------------------------

    def proto_parse(self, c: int, optarg: bytes) -> None:
        h = self.state.h
        if h is None or not h.actions:
            return
        v = (c - self.h_offset) & 0xFF
        if v >= 0x80:
            v -= 0x100       # (char)(c - h->option_offset)
        act = h.actions.get(v)
        if act is None:
            return
        obj = self._obj(act.target)
        kind = act.kind
        if kind in ("port", "key"):
            port = htons(atoi(optarg) if kind == "port" else strtoul(optarg, 0)[0])
            self._set(obj, act.attr, port)
            assert act.l4attr is not None, "every port and key action names its l4attr"
            self._set(obj, act.l4attr, port if act.l4value == "port" else h.protonum)
        elif kind == "vtag":
            self._set(obj, act.attr, htonl(atoi(optarg)))
        elif kind == "tcp_state":
            for i, name in enumerate(h.states):
                if optarg == name.encode():
                    self._set(obj, act.attr, i)
                    break
            else:
                i = len(h.states)
            if optarg == b"LISTEN":
                self._set(obj, act.attr, O.TCP_CONNTRACK_LISTEN)
            elif i == len(h.states):
                raise UsageError(f"unknown TCP state `{_dec(optarg)}'")
        elif kind in ("sctp_state", "dccp_state"):
            for i, name in enumerate(h.states):
                if optarg == name.encode():
                    self._set(obj, act.attr, i)
                    break
            else:
                if kind == "sctp_state":
                    raise UsageError(f"unknown SCTP state `{_dec(optarg)}'")
                raise UsageError(f"Unknown DCCP state `{_dec(optarg)}'")
        elif kind == "dccp_role":
            for word, value in O.DCCP_ROLES:
                if strncasecmp_prefix(optarg, word, len(optarg)):
                    self._set(obj, act.attr, value)
                    break
            else:
                raise UsageError(f"Unknown DCCP role `{_dec(optarg)}'")
        elif kind in ("icmp_u8", "icmp_id"):
            v = atoi(optarg)
            self._set(obj, act.attr, v if kind == "icmp_u8" else htons(v))
            self._set(obj, Attr.ORIG_L4PROTO, h.protonum)
            if Attr.REPL_L3PROTO in obj:
                self._set(obj, Attr.REPL_L4PROTO, h.protonum)
        self.l4flags |= act.flag

    def generic_opt_check(self, local: int, num_opts: int, row: str, optflags: Sequence[Optional[str]],
                          coupled: Optional[Tuple[int, int]]) -> Tuple[bool, int]:
        special = False
        for i in range(num_opts):
            v = int(row[i]) if i < len(row) else 0
            if not local & (1 << i):
                if v == 1:
                    raise UsageError(f"You need to supply the `--{optflags[i]}' option for this command")
            elif v == 0:
                raise UsageError(f"Illegal option `--{optflags[i]}' with this command")
            if v == 3:
                special = True
        if not special or coupled is None:
            return True, -1
        partial = -1
        for i, f in enumerate(coupled):
            if local & f == f:
                return True, -1
            if local & f and partial < 0:
                partial = i
        return False, partial

    def final_check(self, h: O.ProtoHandler, row_cmd: Cmd) -> None:
        ct = self.tmpl.ct
        if h.final == "unknown":
            if Attr.REPL_L3PROTO in ct and Attr.ORIG_L4PROTO in ct and Attr.REPL_L4PROTO not in ct:
                ct[Attr.REPL_L4PROTO] = ct[Attr.ORIG_L4PROTO]
            return
        ok, partial = self.generic_opt_check(self.l4flags, h.num_opts, h.row(row_cmd), h.optflags,
                                             h.valid_flags)
        if not ok:
            # only a handler with coupled flags (valid_flags) fails the check, and it has the messages
            assert h.partial_msgs is not None
            raise UsageError(h.partial_msgs[0 if partial in (-1, 0) else 1])
        if h.final == "tcp":
            if Attr.TCP_STATE not in ct:
                self.cmd.errno = ENODATA   # nfct_get_attr_u8() of the unset state
            flags = O.IP_CT_TCP_FLAG_BE_LIBERAL | O.IP_CT_TCP_FLAG_SACK_PERM
            state = ct.get(Attr.TCP_STATE, 0)
            assert isinstance(state, int)
            if state >= O.TCP_CONNTRACK_TIME_WAIT:
                flags |= O.IP_CT_TCP_FLAG_CLOSE_INIT
            for a in (Attr.TCP_FLAGS_ORIG, Attr.TCP_MASK_ORIG, Attr.TCP_FLAGS_REPL, Attr.TCP_MASK_REPL):
                self._set(ct, a, flags)

    # -- the main loop -------------------------------------------------------------------------------

    def _label_option(self, c: str, optarg: Optional[bytes]) -> None:
        st = self.state
        self.options |= int(O.OPT_BY_VAL[ord(c)])
        if not st.deferred_labels:
            self.labelmap_init()
        if self.options & (Opt.DEL_LABEL | Opt.ADD_LABEL) == (Opt.DEL_LABEL | Opt.ADD_LABEL):
            raise UsageError("cannot use --label-add and --label-del at the same time", OTHER_PROBLEM)
        index = self.g.optarg_index
        if c == ">":
            tmp = self.get_optional_arg()
            if tmp is None:        # delete all labels
                return
            optarg, index = tmp, self._optional_index
        assert optarg is not None    # -l and --label-add have a required argument
        if st.deferred_labels:
            self.pending_labels.append((optarg, c != "l"))
            return
        bits = self.parse_labels(optarg)
        comma = optarg.find(b",")
        if comma >= 0 and index is not None:
            # parse_label_get_max() NUL-terminates every name inside argv: the argv word now ends at
            # the first comma (visible in later "unknown option `%s'" messages)
            word = self.argv[index]
            start = len(word) - len(optarg)
            self.argv[index] = word[:start + comma]
        self._merge_labels(bits, c != "l")

    def _merge_labels(self, bits: Set[int], modify: bool) -> None:
        t = self.tmpl
        if modify:
            t.label_modify = bits if t.label_modify is None else t.label_modify | bits
        else:
            t.label = bits if t.label is None else t.label | bits

    def run(self) -> CliCommand:
        g = self.g
        st = self.state
        tmpl = self.tmpl
        while True:
            c = g.getopt_long(self.opts)
            if c == -1:
                break
            optarg = g.optarg
            ch = chr(c) if c < 256 else ""
            spec = O.OPTION_BY_VAL.get(c) if c < 256 else None

            if spec is not None and spec.command is not None:
                self.type = self.check_type()
                if ch == "L":
                    if self.type in _TABLE_DYING_OR_UNCONFIRMED:
                        self.add_command(Cmd.CT_LIST)
                    else:
                        self.add_command(spec.command[min(self.type, 1)])
                else:
                    if self.type in _TABLE_DYING_OR_UNCONFIRMED:
                        raise UsageError("Can't do that command with tables `dying' and `unconfirmed'")
                    newcmd = spec.command[self.type]
                    if newcmd:
                        self.add_command(newcmd)
                    else:
                        raise UsageError(f"Can't do --{self.get_long_opt(c)} on "
                                         f"{'conntrack' if self.type == Table.CONNTRACK else 'expectations'}")
            elif ch in ("s", "d", "r", "q"):
                self.parse_addr_from_opt(ch, _required(optarg), tmpl.ct, tmpl.mask)
            elif ch in ("[", "]"):
                self.parse_addr_from_opt(ch, _required(optarg), tmpl.exptuple, tmpl.mask)
            elif ch in ("{", "}"):
                self.parse_addr_from_opt(ch, _required(optarg), tmpl.mask, None)
            elif ch == "p":
                self.options |= Opt.PROTO
                name = _required(optarg)
                h, self.protonum = _findproto(name)
                st.h = h
                if h is None:
                    raise UsageError(f"`{_dec(name)}' unsupported protocol")
                self.option_offset += 256
                self.h_offset = self.option_offset
                self.opts.extend(O.proto_longopts(h, self.option_offset))
                self._set(tmpl.ct, Attr.ORIG_L4PROTO, self.protonum)
            elif ch == "t":
                self.options |= Opt.TIMEOUT
                v = atol(_required(optarg)) & 0xFFFFFFFF
                self._set(tmpl.ct, Attr.TIMEOUT, v)
                tmpl.exp[ATTR_EXP_TIMEOUT] = v
            elif ch == "u":
                self.options |= Opt.STATUS
                self.parse_parameter_mask(_required(optarg))
                self._set(tmpl.ct, Attr.STATUS, self.status)
                if self.status_mask == 0:
                    self.status_mask = self.status
                tmpl.mark = (self.status, tmpl.mark[1])
                tmpl.filter_status_kernel = (self.status, self.status_mask)
            elif ch == "e":
                self.options |= Opt.EVENT_MASK
                self.event_mask |= self.parse_parameter(_required(optarg), O.EVENT_WORDS)
            elif ch == "o":
                self.options |= Opt.OUTPUT
                st.output_mask |= self.parse_parameter(_required(optarg), O.OUTPUT_WORDS)
                if st.output_mask & Out.CL and not st.deferred_labels:
                    self.labelmap_init()
                if st.output_mask & Out.SAVE and st.output_mask & O.SAVE_CONFLICTS:
                    raise UsageError("cannot combine save output with any other output type, "
                                     "use -o save only", OTHER_PROBLEM)
                if st.output_mask & Out.JSON and st.output_mask & (Out.SAVE | Out.XML):
                    raise UsageError("cannot combine json output with save or xml output", OTHER_PROBLEM)
            elif ch == "z":
                self.options |= Opt.ZERO
            elif ch in ("n", "g", "j"):
                self.options |= int(O.OPT_BY_VAL[c])
                arg = self.get_optional_arg()
                if arg is not None:
                    nat_address, port = _split_address_and_port(arg)
                    addr = self.parse_addr_from_opt(ch, nat_address, tmpl.ct, None)
                    if ch == "j":
                        self.set_nat_details("g", addr, port)
                        self.set_nat_details("n", addr, port)
                    else:
                        self.set_nat_details(ch, addr, port)
            elif ch in ("w", "(", ")", "i", "c"):
                if optarg is None:
                    # `--id' without '=': conntrack passes NULL to strtoul() and crashes
                    raise UsageError(f"option `{_dec(self.argv[g.optind - 1])}' requires an argument")
                self.options |= int(O.OPT_BY_VAL[c])
                self._set(tmpl.ct, _OPT2ATTR[ch], strtoul(optarg, 0)[0])
            elif ch == "m":
                self.options |= Opt.MARK
                mark = _required(optarg)
                value, end, _ = strtoul(mark, 0)
                value &= 0xFFFFFFFF
                if mark[end:end + 1] == b"/":
                    mask = strtoul(mark[end + 1:], 0)[0] & 0xFFFFFFFF
                else:
                    mask = 0xFFFFFFFF
                tmpl.mark = (value, mask)
                tmpl.filter_mark_kernel = (value, mask)
            elif ch in ("l", "<", ">"):
                self._label_option(ch, optarg)
            elif ch == "a":
                self.warn(f"WARNING: ignoring -{ch}, deprecated option.")
            elif ch == "f":
                self.options |= Opt.FAMILY
                name = _required(optarg)
                if name.startswith(b"ipv4"):
                    self.set_family(AF_INET)
                elif name.startswith(b"ipv6"):
                    self.set_family(AF_INET6)
                else:
                    raise UsageError(f"`{_dec(name)}' unsupported protocol")
            elif ch == "b":
                self.socketbuffersize = atol(_required(optarg)) & ((1 << 64) - 1)
                self.options |= Opt.BUFFERSIZE
            elif ch == "M":
                st.deferred_labels = True
                if st.labelmap_path is not None:
                    raise UsageError("option `--labelmap' can only be specified once")
                st.labelmap_path = path = _required(optarg)
                self.cmd.labelmap_path = _dec(path)
                self.options |= 1 << O.LABELMAP_BIT
            elif ch == ":":
                raise UsageError(f"option `{_dec(self.argv[g.optind - 1])}' requires an argument")
            elif ch == "?":
                raise UsageError(f"unknown option `{_dec(self.argv[g.optind - 1])}'")
            else:
                self.proto_parse(c, _required(optarg))   # protocol options all require an argument

        return self._finish()

    def _finish(self) -> CliCommand:
        st = self.state
        tmpl = self.tmpl
        if st.deferred_labels and (
                self.options & (Opt.LABEL | Opt.ADD_LABEL | Opt.DEL_LABEL)
                or (self.options & Opt.OUTPUT and st.output_mask & Out.CL)):
            self.labelmap_init()
            for arg, modify in self.pending_labels:
                self._merge_labels(self.parse_labels(arg), modify)

        command = self.command
        if self.family == AF_UNSPEC and command not in (Cmd.CT_LIST, Cmd.CT_UPDATE, Cmd.CT_DELETE,
                                                        Cmd.CT_GET, Cmd.CT_FLUSH, Cmd.CT_EVENT):
            self.family = AF_INET

        if self.options & Opt.ANY_NAT and self.options & (Opt.SRC_NAT | Opt.DST_NAT):
            raise UsageError("cannot specify `--src-nat' or `--dst-nat' with `--any-nat'")

        row_cmd = _row_cmd(Cmd(command))
        ok, partial = self.generic_opt_check(self.options, O.NUMBER_OF_OPT, O.COMMANDS_V_OPTIONS[row_cmd],
                                             O.OPTFLAGS, O.ADDR_VALID_FLAGS)
        if not ok:
            raise UsageError(O.ADDR_PARTIAL_MSGS[0 if partial in (-1, 0) else 1])
        if not command & Cmd.CT_HELP and st.h is not None:
            self.final_check(st.h, row_cmd)

        cmd = self.cmd
        cmd.command = Cmd(command)
        options = self.options & ~(1 << O.LABELMAP_BIT)
        cmd.options = Opt(options)
        cmd.family = self.family
        cmd.table = Table(self.type)
        cmd.protonum = self.protonum
        cmd.event_mask = self.event_mask
        cmd.output = Out(st.output_mask)
        cmd.socketbuffersize = self.socketbuffersize
        cmd.proto_name = st.h.name if (options & Opt.PROTO and st.h is not None) else None
        if cmd.command in (Cmd.CT_CREATE, Cmd.CT_ADD):
            # what do_command_ct() does before sending -I/-A
            if options & Opt.ORIG and not options & Opt.REPL:
                tmpl.setup = "reply"
            elif not options & Opt.ORIG and options & Opt.REPL:
                tmpl.setup = "original"
        return cmd


def _mentions_labelmap(argv: Sequence[bytes]) -> bool:
    """Whether a word looks like conntrack 1.4.9's --labelmap option (or a unique abbreviation of it)."""
    for word in argv[1:]:
        if word == b"--":
            break
        if word.startswith(b"--"):
            name = word[2:].split(b"=", 1)[0]
            if len(name) >= 6 and b"labelmap".startswith(name):
                return True
    return False


def _parse_one(argv: Sequence[Union[str, bytes]], state: _State, warn: Warn) -> CliCommand:
    """do_parse(): 1.4.7 semantics, or 1.4.9's when the command line uses --labelmap.

    conntrack 1.4.7 resolves label names as it meets them (so "unknown label" comes before any later
    error); 1.4.9 collects them and resolves them after the option loop with the map --labelmap names.
    Warnings are handed to ``warn`` in order, before the command is returned or the error raised.
    """
    words = [os.fsencode(a) if isinstance(a, str) else bytes(a) for a in argv]
    if _mentions_labelmap(words):
        state.deferred_labels = True
    return _Parser(words, state, warn).run()


def _new_state(connlabel_conf: Optional[str], posixly_correct: Optional[bool]) -> _State:
    return _State(connlabel_conf=connlabel_conf or DEFAULT_CONNLABEL_CONF, posixly_correct=posixly_correct)


def parse(args: Sequence[Union[str, bytes]], prog: str = "pynfct", *, warn: Optional[Warn] = None,
          connlabel_conf: Optional[str] = None, posixly_correct: Optional[bool] = None) -> CliCommand:
    """Parse one conntrack command line (``args`` without the program name, like ``sys.argv[1:]``).

    ``prog`` plays argv[0] (conntrack names it in a few messages, e.g. ``unknown option `conntrack'``
    for a bad cluster as first word).  Warnings conntrack prints while parsing ("WARNING: ignoring ...",
    "nfct_labelmap_new: ...") go to ``warn`` (default: stderr), each without its newline.
    ``posixly_correct`` defaults to whether POSIXLY_CORRECT is set in the environment, as in glibc.
    Raises :class:`UsageError`.  ``-R`` is not handled here (see :func:`parse_args`).
    """
    state = _new_state(connlabel_conf, posixly_correct)
    return _parse_one([prog, *args], state, warn or _stderr_warn)


# -- -R / --load-file -----------------------------------------------------------------------------------

_MAX_ARGC = 255
_PARAM_BUF = 1024
_LINE_BUF = 10240


def split_line(line: bytes, prog: bytes = b"conntrack") -> List[bytes]:
    """add_param_to_argv(): split one batch-file line into argv words, argv[0] = prog.

    Double quotes group (a closing quote ends the word, even an empty one), backslash escapes only
    inside quotes, blanks are space/tab/newline.
    """
    argv: List[bytes] = []

    def add_argv(what: bytes) -> None:
        if len(argv) + 1 >= _MAX_ARGC:
            raise UsageError("too many arguments")
        argv.append(what)

    add_argv(prog)
    param = bytearray()
    quote_open = escaped = False
    for ch in line:
        if quote_open:
            if escaped:
                param.append(ch)
                escaped = False
                if len(param) >= _PARAM_BUF:
                    raise UsageError("Parameter too long!")
                continue
            elif ch == 0x5C:       # backslash
                escaped = True
                continue
            elif ch == 0x22:       # closing quote
                quote_open = False
            else:
                param.append(ch)
                if len(param) >= _PARAM_BUF:
                    raise UsageError("Parameter too long!")
                continue
        elif ch == 0x22:
            quote_open = True
            continue
        if ch == 0x22:
            pass
        elif ch in b" \t\n":
            if not param:
                continue
        else:
            param.append(ch)
            if len(param) >= _PARAM_BUF:
                raise UsageError("Parameter too long!")
            continue
        add_argv(bytes(param))
        param.clear()
    if param:
        add_argv(bytes(param))
    return argv


_FILE_CMD_TEXT = (
    (Cmd.CT_LIST, "-L"), (Cmd.CT_GET, "-G"), (Cmd.CT_EVENT, "-E"), (Cmd.CT_VERSION, "-V"),
    (Cmd.CT_HELP, "-h"), (Cmd.EXP_LIST, "-L expect"), (Cmd.EXP_CREATE, "-C expect"),
    (Cmd.EXP_DELETE, "-D expect"), (Cmd.EXP_GET, "-G expect"), (Cmd.EXP_FLUSH, "-F expect"),
    (Cmd.EXP_EVENT, "-E expect"), (Cmd.CT_COUNT, "-C"), (Cmd.EXP_COUNT, "-C expect"),
    (Cmd.CT_STATS, "-S"), (Cmd.EXP_STATS, "-S expect"))
FILE_COMMANDS = Cmd.CT_CREATE | Cmd.CT_ADD | Cmd.CT_UPDATE | Cmd.CT_DELETE | Cmd.CT_FLUSH


def parse_file(path_or_dash: Union[str, bytes], prog: str = "pynfct", *, stdin: Optional[BinaryIO] = None,
               warn: Optional[Warn] = None, connlabel_conf: Optional[str] = None,
               posixly_correct: Optional[bool] = None) -> List[CliCommand]:
    """Parse a ``-R`` batch file ("-" = standard input) into one command per line, like ct_parse_file().

    Lines starting (after blanks) with '#' and empty lines are skipped; every other line is a command
    line of its own.  Only -I, -A, -U, -D and -F are allowed (checked after all lines parsed, as
    conntrack does).  conntrack keeps the -o flags and the last -p handler across lines: every command
    gets the -o flags of the whole file, and a line without -p still gets the previous line's protocol
    final check (e.g. the TCP flags attributes).  ``stdin``: binary stream to read for "-" (default
    /dev/stdin, as conntrack opens it).
    """
    warn = warn or _stderr_warn
    name = os.fsencode(path_or_dash)
    try:
        if name == b"-":
            if stdin is not None:
                data = stdin.read()
            else:
                with open("/dev/stdin", "rb") as f:
                    data = f.read()
        else:
            with open(name, "rb") as f:
                data = f.read()
    except OSError:
        shown = "/dev/stdin" if name == b"-" else _dec(name)
        raise UsageError(f"Failed to open file {shown} for reading")
    state = _new_state(connlabel_conf, posixly_correct)
    progb = os.fsencode(prog)
    cmds: List[CliCommand] = []
    for line in _fgets(data, _LINE_BUF):
        line = line.split(b"\0", 1)[0]
        i = 0
        while i < len(line) and line[i] in b" \t":
            i += 1
        line = line[i:]
        if line[:1] in (b"\n", b"#"):
            continue
        cmds.append(_parse_one(split_line(line, progb), state, warn))
    for cmd in cmds:
        # conntrack's output_mask and label map are globals: every command runs with the final ones
        cmd.output = Out(state.output_mask)
        if state.labelmap_path is not None:
            cmd.labelmap_path = _dec(state.labelmap_path)
    for cmd in cmds:
        if not cmd.command & FILE_COMMANDS:
            text = next((t for c, t in _FILE_CMD_TEXT if cmd.command == c), "unknown")
            raise UsageError(f"Cannot use command `{text}' with --load-file")
    return cmds


def parse_args(args: Sequence[Union[str, bytes]], prog: str = "pynfct", *, stdin: Optional[BinaryIO] = None,
               warn: Optional[Warn] = None, connlabel_conf: Optional[str] = None,
               posixly_correct: Optional[bool] = None) -> List[CliCommand]:
    """What conntrack's main() does with its arguments: ``-R FILE``/``--load-file FILE`` as the very
    first argument (followed by at least the file name) reads a batch file -- anything after the file
    name is ignored -- otherwise the arguments are one command.  Returns the commands to run.
    The keywords are those of :func:`parse_file` (``stdin`` only matters there)."""
    if len(args) > 1 and args[0] in ("-R", "--load-file", b"-R", b"--load-file"):
        return parse_file(args[1], prog, stdin=stdin, warn=warn, connlabel_conf=connlabel_conf,
                          posixly_correct=posixly_correct)
    return [parse(args, prog, warn=warn, connlabel_conf=connlabel_conf, posixly_correct=posixly_correct)]


# -- checks conntrack makes when it runs the command ----------------------------------------------------

def precommand_check(cmd: Command) -> None:
    """The argument errors do_command_ct() raises before talking to the kernel (not in do_parse()).

    -L on the conntrack table: "Can't use -z with filtering parameters" (-z with any filter option),
    then the nfct_filter_init() checks (see :func:`filter_init`).  -U, -D: the nfct_filter_init() checks.
    -E makes the same checks but only after opening its socket and printing the -b NOTICE; call
    :func:`filter_init` there.  Raises UsageError (status 2).
    """
    if cmd.command == Cmd.CT_LIST and cmd.table not in _TABLE_DYING_OR_UNCONFIRMED:
        if cmd.options & CT_COMPARISON and cmd.options & Opt.ZERO:
            raise UsageError("Can't use -z with filtering parameters")
        _filter_init_checks(cmd)
    elif cmd.command in (Cmd.CT_UPDATE, Cmd.CT_DELETE):
        _filter_init_checks(cmd)


def _filter_init_checks(cmd: Command) -> None:
    if cmd.options & Opt.MASK_SRC and not cmd.options & Opt.ORIG_SRC:
        raise UsageError("Can't use --mask-src without --src")
    if cmd.options & Opt.MASK_DST and not cmd.options & Opt.ORIG_DST:
        raise UsageError("Can't use --mask-dst without --dst")


def filter_init(cmd: Command) -> Dict[str, Tuple[bytes, bytes]]:
    """nfct_filter_init(): check --mask-src/--mask-dst and prepare the network filters.

    Returns {"src"|"dst": (network, netmask)} (bytes in network order, 4 or 16 long) for each of
    --mask-src/--mask-dst given, and -- as conntrack does -- removes the exact address from
    ``cmd.tmpl.ct`` so that nfct_cmp() no longer compares it.  Entries then match a direction when
    their ORIG_L3PROTO equals cmd.family and (address & netmask) == network.
    """
    nets: Dict[str, Tuple[bytes, bytes]] = {}
    for bit, need, direction, name in ((Opt.MASK_SRC, Opt.ORIG_SRC, 0, "src"),
                                       (Opt.MASK_DST, Opt.ORIG_DST, 1, "dst")):
        if not cmd.options & bit:
            continue
        assert cmd.family != AF_UNSPEC
        if not cmd.options & need:
            raise UsageError(f"Can't use --mask-{name} without --{name}")
        v6 = cmd.family == AF_INET6
        attr = ((Attr.ORIG_IPV4_SRC, Attr.ORIG_IPV4_DST), (Attr.ORIG_IPV6_SRC, Attr.ORIG_IPV6_DST))[v6][direction]
        address = cmd.tmpl.ct.get(attr, bytes(16 if v6 else 4))
        netmask = cmd.tmpl.mask.get(attr, bytes(16 if v6 else 4))
        assert isinstance(address, bytes) and isinstance(netmask, bytes)   # address attributes
        nets[name] = (bytes(a & m for a, m in zip(address, netmask)), netmask)
        cmd.tmpl.ct.pop(attr, None)
    return nets
