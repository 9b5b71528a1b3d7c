"""The option table of the ``conntrack`` command line (conntrack-tools 1.4.7), as data.

Everything the parser, the getopt emulation, the legality checks and the help text need comes from here:

* :data:`OPTIONS` -- one :class:`OptionSpec` per option letter, in the order of conntrack's
  ``original_opts`` (that order matters: getopt tries long names in table order, and error messages
  name the first long option with a given value).
* :data:`COMMANDS_V_OPTIONS` -- the commands x options legality matrix (0 illegal, 1 compulsory,
  2 optional, 3 "see the address pairs"), one column per option bit (``Opt``).
* :func:`protocol` -- the protocol extensions (proto-*.c), made when named: their long options, which
  are merged into the table only after ``-p PROTO``, their own legality matrices and help text.
* the keyword lists of ``-u``, ``-e`` and ``-o``.

``--labelmap PATH`` (conntrack 1.4.9) is included as column 29 with 1.4.9's legality; it has no short
option here (1.4.9 also added ``-M``) so that every 1.4.7 command line parses the same.
"""
from __future__ import annotations

from ..record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .._ints import Attr, Cmd, Opt, Out
from .getopt import LongOption


class ArgKind:
    """getopt's has_arg (plain ints: an enum class costs start-up time, see pynfct._ints)."""

    NONE = 0
    REQUIRED = 1
    OPTIONAL = 2


class Section:
    """Where an option's line goes in the usage text (conntrack's usage_* strings): each is its heading."""

    COMMANDS = "Commands:\n"
    CONNTRACK = "Conntrack parameters and options:\n"
    EXPECTATION = "Expectation parameters and options:\n"
    UPDATE = "Updating parameters and options:\n"
    COMMON = "Common parameters and options:\n"


class HelpLine:
    """One line of the usage text, equal by value; never changed.

    A class with __slots__ rather than a Record: only -h reads these, and every start makes some 35.
    """

    __slots__ = ("section", "order", "text", "extension")
    section: str      # a Section heading
    order: int        # position inside the section
    text: str         # the exact line, with conntrack's tabs
    extension: bool   # pynfct/1.4.9 addition: left out of the conntrack 1.4.7 usage text

    def __init__(self, section: str, order: int, text: str, extension: bool = False) -> None:
        self.section = section
        self.order = order
        self.text = text
        self.extension = extension

    def _values(self) -> Tuple[str, int, str, bool]:
        return (self.section, self.order, self.text, self.extension)

    def __eq__(self, other: object) -> bool:
        if type(other) is not HelpLine:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return "HelpLine(" + ", ".join(f"{n}={v!r}" for n, v in zip(self.__slots__, self._values())) + ")"


class OptionSpec:
    """One option of the conntrack command line, equal by value; never changed.

    ``val`` is what getopt returns for it (the short letter, or an unused character for long-only
    options).  Commands carry ``command`` = (command on the conntrack table, command on the expectation
    table or NONE).  Options carry the ``Opt`` bit they set; its bit number is the option's column in
    :data:`COMMANDS_V_OPTIONS` and ``optflag`` is the name used in "Illegal option `--%s'" messages.

    A class with __slots__ rather than a Record: every start makes some 45 (as Records, ~0.1 ms more).
    """

    __slots__ = ("key", "names", "short", "arg", "short_arg", "opt", "optflag", "command", "help",
                 "long_only_val")
    key: str
    names: Tuple[str, ...]
    short: Optional[str]
    arg: int                                # ArgKind
    short_arg: Optional[int]                # ArgKind, when -X differs from --long (only -i/--id)
    opt: Optional[Opt]
    optflag: Optional[str]
    command: Optional[Tuple[Cmd, Cmd]]
    help: Optional[HelpLine]
    long_only_val: Optional[str]            # getopt value of a long-only option

    def __init__(self, key: str, names: Tuple[str, ...], short: Optional[str], arg: int,
                 short_arg: Optional[int] = None, opt: Optional[Opt] = None, optflag: Optional[str] = None,
                 command: Optional[Tuple[Cmd, Cmd]] = None, help: Optional[HelpLine] = None,
                 long_only_val: Optional[str] = None) -> None:
        self.key = key
        self.names = names
        self.short = short
        self.arg = arg
        self.short_arg = short_arg
        self.opt = opt
        self.optflag = optflag
        self.command = command
        self.help = help
        self.long_only_val = long_only_val

    def _values(self) -> Tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not OptionSpec:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return "OptionSpec(" + ", ".join(f"{n}={v!r}" for n, v in zip(self.__slots__, self._values())) + ")"

    @property
    def val(self) -> int:
        letter = self.short if self.short is not None else self.long_only_val
        assert letter is not None, f"option {self.key!r} has neither a short letter nor long_only_val"
        return ord(letter)

    @property
    def column(self) -> Optional[int]:
        return None if self.opt is None else self.opt.bit_length() - 1

    @property
    def short_kind(self) -> int:
        return self.short_arg if self.short_arg is not None else self.arg


# conntrack's extra column (1.4.9): --labelmap has no Opt member in pynfct.template
LABELMAP_BIT = 29
NUMBER_OF_OPT = 30

_C, _T, _E, _U, _M = Section.COMMANDS, Section.CONNTRACK, Section.EXPECTATION, Section.UPDATE, \
    Section.COMMON


def _cmd(key: str, short: str, ct: Cmd, exp: Cmd, arg: int = ArgKind.OPTIONAL,
         help: Optional[HelpLine] = None) -> OptionSpec:
    return OptionSpec(key, (key,), short, arg, command=(ct, exp), help=help)


def _opt(names: Union[str, Tuple[str, ...]], short: str, opt: Opt, optflag: str,
         arg: int = ArgKind.REQUIRED, help: Optional[HelpLine] = None,
         short_arg: Optional[int] = None) -> OptionSpec:
    if isinstance(names, str):
        names = (names,)
    return OptionSpec(names[0], tuple(names), short, arg, short_arg=short_arg, opt=opt, optflag=optflag,
                      help=help)


OPTIONS: Tuple[OptionSpec, ...] = (
    # commands
    _cmd("dump", "L", Cmd.CT_LIST, Cmd.EXP_LIST,
         help=HelpLine(_C, 0, "  -L [table] [options]\t\tList conntrack or expectation table\n")),
    _cmd("create", "I", Cmd.CT_CREATE, Cmd.EXP_CREATE,
         help=HelpLine(_C, 3, "  -I [table] parameters\t\tCreate a conntrack or expectation\n")),
    _cmd("add", "A", Cmd.CT_ADD, Cmd.NONE),
    _cmd("delete", "D", Cmd.CT_DELETE, Cmd.EXP_DELETE,
         help=HelpLine(_C, 2, "  -D [table] parameters\t\tDelete conntrack or expectation\n")),
    _cmd("update", "U", Cmd.CT_UPDATE, Cmd.NONE,
         help=HelpLine(_C, 4, "  -U [table] parameters\t\tUpdate a conntrack\n")),
    _cmd("get", "G", Cmd.CT_GET, Cmd.EXP_GET,
         help=HelpLine(_C, 1, "  -G [table] parameters\t\tGet conntrack or expectation\n")),
    _cmd("flush", "F", Cmd.CT_FLUSH, Cmd.EXP_FLUSH,
         help=HelpLine(_C, 6, "  -F [table]\t\t\tFlush table\n")),
    _cmd("event", "E", Cmd.CT_EVENT, Cmd.EXP_EVENT,
         help=HelpLine(_C, 5, "  -E [table] [options]\t\tShow events\n")),
    _cmd("counter", "C", Cmd.CT_COUNT, Cmd.EXP_COUNT,
         help=HelpLine(_C, 7, "  -C [table]\t\t\tShow counter\n")),
    _cmd("stats", "S", Cmd.CT_STATS, Cmd.EXP_STATS, arg=ArgKind.NONE,
         help=HelpLine(_C, 8, "  -S\t\t\t\tShow statistics\n")),
    _cmd("version", "V", Cmd.CT_VERSION, Cmd.CT_VERSION, arg=ArgKind.NONE),
    _cmd("help", "h", Cmd.CT_HELP, Cmd.CT_HELP, arg=ArgKind.NONE),
    # options
    _opt(("orig-src", "src"), "s", Opt.ORIG_SRC, "src",
         help=HelpLine(_M, 0, "  -s, --src, --orig-src ip\t\tSource address from original direction\n")),
    _opt(("orig-dst", "dst"), "d", Opt.ORIG_DST, "dst",
         help=HelpLine(_M, 1, "  -d, --dst, --orig-dst ip\t\tDestination address from original direction\n")),
    _opt("reply-src", "r", Opt.REPL_SRC, "reply-src",
         help=HelpLine(_M, 2, "  -r, --reply-src ip\t\tSource addres from reply direction\n")),
    _opt("reply-dst", "q", Opt.REPL_DST, "reply-dst",
         help=HelpLine(_M, 3, "  -q, --reply-dst ip\t\tDestination address from reply direction\n")),
    _opt("protonum", "p", Opt.PROTO, "protonum",
         help=HelpLine(_M, 4, "  -p, --protonum proto\t\tLayer 4 Protocol, eg. 'tcp'\n")),
    _opt("timeout", "t", Opt.TIMEOUT, "timeout",
         help=HelpLine(_M, 6, "  -t, --timeout timeout\t\tSet timeout\n")),
    _opt("status", "u", Opt.STATUS, "status",
         help=HelpLine(_M, 7, "  -u, --status status\t\tSet status, eg. ASSURED\n")),
    _opt("zero", "z", Opt.ZERO, "zero", arg=ArgKind.NONE,
         help=HelpLine(_T, 6, "  -z, --zero \t\t\t\tZero counters while listing\n")),
    _opt("event-mask", "e", Opt.EVENT_MASK, "event-mask",
         help=HelpLine(_T, 5, "  -e, --event-mask eventmask\t\tEvent mask, eg. NEW,DESTROY\n")),
    _opt("tuple-src", "[", Opt.EXP_SRC, "tuple-src",
         help=HelpLine(_E, 0, "  --tuple-src ip\tSource address in expect tuple\n")),
    _opt("tuple-dst", "]", Opt.EXP_DST, "tuple-dst",
         help=HelpLine(_E, 1, "  --tuple-dst ip\tDestination address in expect tuple\n")),
    _opt("mask-src", "{", Opt.MASK_SRC, "mask-src",
         help=HelpLine(_M, 12, "  --mask-src ip\t\t\tSource mask address\n")),
    _opt("mask-dst", "}", Opt.MASK_DST, "mask-dst",
         help=HelpLine(_M, 13, "  --mask-dst ip\t\t\tDestination mask address\n")),
    _opt("nat-range", "a", Opt.NATRANGE, "nat-range"),       # deprecated: only warns, sets no bit
    _opt("mark", "m", Opt.MARK, "mark",
         help=HelpLine(_T, 3, "  -m, --mark mark\t\t\tSet mark\n")),
    _opt("secmark", "c", Opt.SECMARK, "secmark",
         help=HelpLine(_T, 4, "  -c, --secmark secmark\t\t\tSet selinux secmark\n")),
    _opt("id", "i", Opt.ID, "id", arg=ArgKind.OPTIONAL, short_arg=ArgKind.REQUIRED),  # deprecated
    _opt("family", "f", Opt.FAMILY, "family",
         help=HelpLine(_M, 5, "  -f, --family proto\t\tLayer 3 Protocol, eg. 'ipv6'\n")),
    _opt("src-nat", "n", Opt.SRC_NAT, "src-nat", arg=ArgKind.OPTIONAL,
         help=HelpLine(_T, 0, "  -n, --src-nat ip\t\t\tsource NAT ip\n")),
    _opt("dst-nat", "g", Opt.DST_NAT, "dst-nat", arg=ArgKind.OPTIONAL,
         help=HelpLine(_T, 1, "  -g, --dst-nat ip\t\t\tdestination NAT ip\n")),
    _opt("output", "o", Opt.OUTPUT, "output",
         help=HelpLine(_T, 7, "  -o, --output type[,...]\t\tOutput format, eg. xml\n")),
    _opt("buffer-size", "b", Opt.BUFFERSIZE, "buffer-size",
         help=HelpLine(_M, 11, "  -b, --buffer-size\t\tNetlink socket buffer size\n")),
    _opt("any-nat", "j", Opt.ANY_NAT, "any-nat", arg=ArgKind.OPTIONAL,
         help=HelpLine(_T, 2, "  -j, --any-nat ip\t\t\tsource or destination NAT ip\n")),
    _opt("zone", "w", Opt.ZONE, "zone",
         help=HelpLine(_M, 8, "  -w, --zone value\t\tSet conntrack zone\n")),
    _opt("label", "l", Opt.LABEL, "label",
         help=HelpLine(_T, 8, "  -l, --label label[,...]\t\tconntrack labels\n")),
    # conntrack 1.4.9: --labelmap PATH (long only here, see module doc)
    OptionSpec("labelmap", ("labelmap",), None, ArgKind.REQUIRED, optflag="labelmap",
               long_only_val="M",
               help=HelpLine(_T, 9, "  --labelmap path\t\t\tconnlabel file to use instead of default\n",
                             extension=True)),
    _opt("label-add", "<", Opt.ADD_LABEL, "label-add",
         help=HelpLine(_U, 0, "  --label-add label\tAdd label\n")),
    _opt("label-del", ">", Opt.DEL_LABEL, "label-del", arg=ArgKind.OPTIONAL,
         help=HelpLine(_U, 1, "  --label-del label\tDelete label\n")),
    _opt("orig-zone", "(", Opt.ORIG_ZONE, "orig-zone",
         help=HelpLine(_M, 9, "  --orig-zone value\t\tSet zone for original direction\n")),
    _opt("reply-zone", ")", Opt.REPL_ZONE, "reply-zone",
         help=HelpLine(_M, 10, "  --reply-zone value\t\tSet zone for reply direction\n")),
)

OPTION_BY_VAL: Dict[int, OptionSpec] = {o.val: o for o in OPTIONS}
OPTION_BY_KEY: Dict[str, OptionSpec] = {o.key: o for o in OPTIONS}
#: getopt value -> the Opt bit the option sets (options only, not commands)
OPT_BY_VAL: Dict[int, Opt] = {o.val: o.opt for o in OPTIONS if o.opt is not None}


def _build_optstring() -> str:
    s = ":"   # leading ':' -> missing arguments return ':'; conntrack also sets opterr = 0
    for o in OPTIONS:
        if o.short is None:
            continue
        s += o.short + {ArgKind.NONE: "", ArgKind.REQUIRED: ":", ArgKind.OPTIONAL: "::"}[o.short_kind]
    return s


#: the getopt optstring (equivalent to conntrack's getopt_str)
GETOPT_STR: str = _build_optstring()

#: the long options before any ``-p`` (conntrack's original_opts)
BASE_LONGOPTS: Tuple[LongOption, ...] = tuple(
    LongOption(name.encode(), o.arg, o.val) for o in OPTIONS for name in o.names)


def _optflags() -> Tuple[Optional[str], ...]:
    flags: List[Optional[str]] = [None] * NUMBER_OF_OPT
    for o in OPTIONS:
        column = o.column
        if column is not None:
            flags[column] = o.optflag
    flags[LABELMAP_BIT] = OPTION_BY_KEY["labelmap"].optflag
    return tuple(flags)


#: column -> option name, for "Illegal option `--%s' with this command" (conntrack's optflags)
OPTFLAGS: Tuple[Optional[str], ...] = _optflags()

# Legality of options per command.  0 illegal, 1 compulsory, 2 optional, 3 special (address pairs).
# Columns are Opt bit numbers; column 29 is --labelmap (conntrack 1.4.9).
COMMANDS_V_OPTIONS: Dict[Cmd, str] = {
    #                 s d r q p t u z e [ ] { } a m i f n g o c b j w l < > ( )  labelmap
    Cmd.CT_LIST:     "22222022000220202222202220022" "2",
    Cmd.CT_CREATE:   "33331120000002200220000202022" "0",
    Cmd.CT_UPDATE:   "22222220000220222222000022200" "2",
    Cmd.CT_DELETE:   "22222220000220222222000220022" "2",
    Cmd.CT_GET:      "33331000000000020002000020000" "0",
    Cmd.CT_FLUSH:    "00000000000000002000000000000" "0",
    Cmd.CT_EVENT:    "22222000200220202222222220022" "2",
    Cmd.CT_VERSION:  "00000000000000000000000000000" "0",
    Cmd.CT_HELP:     "00002000000000000000000000000" "0",
    Cmd.EXP_LIST:    "00000000000000002002000000000" "0",
    Cmd.EXP_CREATE:  "11221120011110000000000000000" "0",
    Cmd.EXP_DELETE:  "11221000000000000000000000000" "0",
    Cmd.EXP_GET:     "11221000000000000000000000000" "0",
    Cmd.EXP_FLUSH:   "00000000000000000000000000000" "0",
    Cmd.EXP_EVENT:   "00000000000000000002000000000" "0",
    Cmd.CT_COUNT:    "00000000000000000000000000000" "0",
    Cmd.EXP_COUNT:   "00000000000000000000000000000" "0",
    Cmd.CT_STATS:    "00000000000000000000000000000" "0",
    Cmd.EXP_STATS:   "00000000000000000000000000000" "0",
    Cmd.CT_ADD:      "33331120000002200220000202022" "0",
    # No command: conntrack reads one row past the end of its array (index NUMBER_OF_CMD).  With the
    # Debian 1.4.7 build every byte there is 0 except the --reply-zone column, so only
    # `conntrack --reply-zone N` gets through (and prints the usage).
    Cmd.NONE:        "00000000000000000000000000002" "0",
}

#: coupled address options of -I/-A/-G (conntrack's addr_valid_flags) and the message for each
ADDR_VALID_FLAGS: Tuple[int, int] = (int(Opt.ORIG_SRC | Opt.ORIG_DST), int(Opt.REPL_SRC | Opt.REPL_DST))
ADDR_PARTIAL_MSGS: Tuple[str, str] = ("you have to specify `--src' and `--dst'",
                                      "you have to specify `--reply-src' and `--reply-dst'")

def legality(command: Cmd, column: int) -> int:
    return int(COMMANDS_V_OPTIONS[command][column])


# -- keyword lists of -u, -e and -o (conntrack's parse_array) ----------------------------------------

IPS_EXPECTED = 1 << 0
IPS_SEEN_REPLY = 1 << 1
IPS_ASSURED = 1 << 2
IPS_FIXED_TIMEOUT = 1 << 10
IPS_OFFLOAD = 1 << 14
IPS_HW_OFFLOAD = 1 << 15

CT_EVENT_F_NEW = 1 << 0
CT_EVENT_F_UPD = 1 << 1
CT_EVENT_F_DEL = 1 << 2
CT_EVENT_F_ALL = CT_EVENT_F_NEW | CT_EVENT_F_UPD | CT_EVENT_F_DEL

STATUS_WORDS: Tuple[Tuple[bytes, int], ...] = (
    (b"ASSURED", IPS_ASSURED), (b"SEEN_REPLY", IPS_SEEN_REPLY), (b"UNSET", 0),
    (b"FIXED_TIMEOUT", IPS_FIXED_TIMEOUT), (b"EXPECTED", IPS_EXPECTED), (b"OFFLOAD", IPS_OFFLOAD),
    (b"HW_OFFLOAD", IPS_HW_OFFLOAD))
EVENT_WORDS: Tuple[Tuple[bytes, int], ...] = (
    (b"ALL", CT_EVENT_F_ALL), (b"NEW", CT_EVENT_F_NEW), (b"UPDATES", CT_EVENT_F_UPD),
    (b"DESTROY", CT_EVENT_F_DEL))
# conntrack sets no bit for "userspace"; pynfct records it as Out.US.  "json" is pynfct's own and comes
# last so that every abbreviation conntrack accepts still means the same word.
OUTPUT_WORDS: Tuple[Tuple[bytes, int], ...] = (
    (b"xml", Out.XML), (b"extended", Out.EXT), (b"timestamp", Out.TMS), (b"id", Out.ID),
    (b"ktimestamp", Out.KTMS), (b"labels", Out.CL), (b"userspace", Out.US), (b"save", Out.SAVE),
    (b"json", Out.JSON))
#: output types that cannot be combined with "save"
SAVE_CONFLICTS = Out.EXT | Out.TMS | Out.ID | Out.KTMS | Out.CL | Out.XML

#: -L/-G/... table names, in the order conntrack tries them (a prefix selects the first match)
TABLE_NAMES: Tuple[bytes, ...] = (b"expect", b"conntrack", b"dying", b"unconfirmed")


# -- protocol extensions (proto-*.c) ------------------------------------------------------------------

class ProtoAction(Record, frozen=True):
    """What one protocol option does (the ``case`` of the extension's parse_opts()).

    kind: "port" (htons(atoi())), "key" (htons(strtoul(, 0)), GRE), "vtag" (htonl(atoi())),
    "tcp_state"/"sctp_state"/"dccp_state", "dccp_role", "icmp_u8" ((u8)atoi()), "icmp_id" (htons(atoi())).
    ``l4attr`` gets the protocol number (``l4value`` "proto"), or the low byte of the htons()ed port
    (``l4value`` "port": the tuple-port options of tcp/sctp/dccp pass the port, a conntrack bug).
    ICMP options also set REPL_L4PROTO when REPL_L3PROTO is set.
    """

    flag: int
    kind: str
    target: str                              # "ct", "mask" or "exptuple"
    attr: Attr
    l4attr: Optional[Attr] = None
    l4value: str = "proto"


class ProtoHandler(Record, frozen=True):
    name: str
    protonum: int
    longopts: Tuple[Tuple[str, int], ...]    # (long name, val) in the extension's table order
    actions: Mapping[int, ProtoAction]       # val -> action
    num_opts: int                            # the extension's *_NUMBER_OF_OPT / *_OPT_MAX
    optflags: Tuple[str, ...]                # flag bit -> name in messages
    matrix: Mapping[Cmd, str]                # legality, rows not listed are all 0
    valid_flags: Optional[Tuple[int, int]]   # coupled flags (sport+dport, reply sport+dport)
    partial_msgs: Optional[Tuple[str, str]]
    help: str
    states: Tuple[str, ...] = ()
    final: str = "generic"                   # "generic", "tcp" (also sets the TCP flags), "unknown"

    def row(self, command: Cmd) -> str:
        return self.matrix.get(command, "")


IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_GRE = 47
IPPROTO_DCCP = 33
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132
IPPROTO_UDPLITE = 136
IPPROTO_RAW = 255

_PORT_HELP = ("  --orig-port-src\t\toriginal source port\n"
              "  --orig-port-dst\t\toriginal destination port\n"
              "  --reply-port-src\t\treply source port\n"
              "  --reply-port-dst\t\treply destination port\n"
              "  --mask-port-src\t\tmask source port\n"
              "  --mask-port-dst\t\tmask destination port\n"
              "  --tuple-port-src\t\texpectation tuple src port\n"
              "  --tuple-port-src\t\texpectation tuple dst port\n")

_PORT_MSGS = ("you have to specify `--sport' and `--dport'",
              "you have to specify `--reply-src-port' and `--reply-dst-port'")


def _port_actions(v: Sequence[int], tuple_l4: str) -> Dict[int, ProtoAction]:
    """The six port options every port-based extension has, plus its two tuple-port options."""
    A = Attr
    return {
        v[0]: ProtoAction(1 << 0, "port", "ct", A.ORIG_PORT_SRC, A.ORIG_L4PROTO),
        v[1]: ProtoAction(1 << 1, "port", "ct", A.ORIG_PORT_DST, A.ORIG_L4PROTO),
        v[2]: ProtoAction(1 << 2, "port", "ct", A.REPL_PORT_SRC, A.REPL_L4PROTO),
        v[3]: ProtoAction(1 << 3, "port", "ct", A.REPL_PORT_DST, A.REPL_L4PROTO),
        v[4]: ProtoAction(1 << 4, "port", "mask", A.ORIG_PORT_SRC, A.ORIG_L4PROTO),
        v[5]: ProtoAction(1 << 5, "port", "mask", A.ORIG_PORT_DST, A.ORIG_L4PROTO),
        v[6]: ProtoAction(1 << v[8], "port", "exptuple", A.ORIG_PORT_SRC, A.ORIG_L4PROTO, tuple_l4),
        v[7]: ProtoAction(1 << (v[8] + 1), "port", "exptuple", A.ORIG_PORT_DST, A.ORIG_L4PROTO, tuple_l4),
    }


_TCP_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
               "TIME_WAIT", "CLOSE", "SYN_SENT2")
TCP_CONNTRACK_TIME_WAIT = 7
TCP_CONNTRACK_LISTEN = 9
IP_CT_TCP_FLAG_SACK_PERM = 0x02
IP_CT_TCP_FLAG_CLOSE_INIT = 0x04
IP_CT_TCP_FLAG_BE_LIBERAL = 0x08

_o = ord


def _make_tcp() -> ProtoHandler:
    return ProtoHandler(
        name="tcp", protonum=IPPROTO_TCP,
        longopts=(("orig-port-src", _o("1")), ("sport", _o("1")), ("orig-port-dst", _o("2")),
                  ("dport", _o("2")), ("reply-port-src", _o("3")), ("reply-port-dst", _o("4")),
                  ("mask-port-src", _o("5")), ("mask-port-dst", _o("6")), ("state", _o("7")),
                  ("tuple-port-src", _o("8")), ("tuple-port-dst", _o("9"))),
        actions={**_port_actions((_o("1"), _o("2"), _o("3"), _o("4"), _o("5"), _o("6"), _o("8"), _o("9"), 7),
                                 "port"),
                 _o("7"): ProtoAction(1 << 6, "tcp_state", "ct", Attr.TCP_STATE)},
        num_opts=10,
        optflags=("sport", "dport", "reply-port-src", "reply-port-dst", "mask-port-src", "mask-port-dst",
                  "state", "tuple-port-src", "tuple-port-dst"),
        matrix={Cmd.CT_LIST: "222200200", Cmd.CT_CREATE: "333300100", Cmd.CT_UPDATE: "222200200",
                Cmd.CT_DELETE: "222200200", Cmd.CT_GET: "333300200", Cmd.CT_EVENT: "222200200",
                Cmd.EXP_CREATE: "110011011", Cmd.EXP_DELETE: "111100000", Cmd.EXP_GET: "111100000",
                Cmd.CT_ADD: "333300100"},
        valid_flags=(0b11, 0b1100), partial_msgs=_PORT_MSGS,
        help=_PORT_HELP + "  --state\t\t\tTCP state, fe. ESTABLISHED\n",
        states=_TCP_STATES, final="tcp")

_UDP_LONGOPTS = (("orig-port-src", _o("1")), ("sport", _o("1")), ("orig-port-dst", _o("2")),
                 ("dport", _o("2")), ("reply-port-src", _o("3")), ("reply-port-dst", _o("4")),
                 ("mask-port-src", _o("5")), ("mask-port-dst", _o("6")), ("tuple-port-src", _o("7")),
                 ("tuple-port-dst", _o("8")))
_UDP_MATRIX = {Cmd.CT_LIST: "22220000", Cmd.CT_CREATE: "33330000", Cmd.CT_UPDATE: "22220000",
               Cmd.CT_DELETE: "22220000", Cmd.CT_GET: "33330000", Cmd.CT_EVENT: "22220000",
               Cmd.EXP_CREATE: "11001111", Cmd.EXP_DELETE: "11110000", Cmd.EXP_GET: "11110000",
               Cmd.CT_ADD: "33330000"}
_UDP_FLAGS = ("sport", "dport", "reply-port-src", "reply-port-dst", "mask-port-src", "mask-port-dst",
              "tuple-port-src", "tuple-port-dst")


def _make_udp() -> ProtoHandler:
    return ProtoHandler(
        name="udp", protonum=IPPROTO_UDP, longopts=_UDP_LONGOPTS,
        actions=_port_actions(tuple(_o(c) for c in "12345678") + (6,), "proto"),
        num_opts=9, optflags=_UDP_FLAGS, matrix=_UDP_MATRIX, valid_flags=(0b11, 0b1100),
        partial_msgs=_PORT_MSGS, help=_PORT_HELP)


def _make_udplite() -> ProtoHandler:
    return ProtoHandler(
        name="udplite", protonum=IPPROTO_UDPLITE,
        longopts=(("orig-port-src", _o("1")), ("orig-port-dst", _o("2")), ("reply-port-src", _o("3")),
                  ("reply-port-dst", _o("4")), ("mask-port-src", _o("5")), ("mask-port-dst", _o("6")),
                  ("tuple-port-src", _o("7")), ("tuple-port-dst", _o("8")), ("sport", _o("1")),
                  ("dport", _o("2"))),
        actions=_port_actions(tuple(_o(c) for c in "12345678") + (6,), "proto"),
        num_opts=11, optflags=_UDP_FLAGS, matrix=_UDP_MATRIX, valid_flags=(0b11, 0b1100),
        partial_msgs=_PORT_MSGS, help=_PORT_HELP)


def _make_sctp() -> ProtoHandler:
    return ProtoHandler(
        name="sctp", protonum=IPPROTO_SCTP,
        longopts=(("orig-port-src", 1), ("orig-port-dst", 2), ("reply-port-src", 3), ("reply-port-dst", 4),
                  ("mask-port-src", 5), ("mask-port-dst", 6), ("state", 7), ("tuple-port-src", 8),
                  ("tuple-port-dst", 9), ("orig-vtag", 10), ("reply-vtag", 11), ("sport", 1),
                  ("dport", 2)),
        actions={**_port_actions((1, 2, 3, 4, 5, 6, 8, 9, 7), "port"),
                 7: ProtoAction(1 << 6, "sctp_state", "ct", Attr.SCTP_STATE),
                 10: ProtoAction(1 << 9, "vtag", "ct", Attr.SCTP_VTAG_ORIG),
                 11: ProtoAction(1 << 10, "vtag", "ct", Attr.SCTP_VTAG_REPL)},
        num_opts=14,
        optflags=("sport", "dport", "reply-port-src", "reply-port-dst", "mask-port-src", "mask-port-dst",
                  "state", "tuple-port-src", "tuple-port-dst", "orig-vtag", "reply-vtag"),
        matrix={Cmd.CT_LIST: "22220020000", Cmd.CT_CREATE: "33330010011", Cmd.CT_UPDATE: "22220020022",
                Cmd.CT_DELETE: "22220020000", Cmd.CT_GET: "33330020022", Cmd.CT_EVENT: "22220020000",
                Cmd.EXP_CREATE: "11001101111", Cmd.EXP_DELETE: "11110000000",
                Cmd.EXP_GET: "11110000000", Cmd.CT_ADD: "33330010011"},
        valid_flags=(0b11, 0b1100), partial_msgs=_PORT_MSGS,
        help=_PORT_HELP + "  --state\t\t\tSCTP state, fe. ESTABLISHED\n"
                          "  --orig-vtag\t\toriginal verification tag\n"
                          "  --reply-vtag\t\treply verification tag\n",
        # SCTP_CONNTRACK_MAX is 10 but conntrack names only 8 states: an unknown name makes conntrack
        # strcmp() against NULL and crash; pynfct reports "unknown SCTP state" instead.
        states=("NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_SENT",
                "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT"))


def _make_dccp() -> ProtoHandler:
    return ProtoHandler(
        name="dccp", protonum=IPPROTO_DCCP,
        longopts=(("orig-port-src", 1), ("orig-port-dst", 2), ("reply-port-src", 3), ("reply-port-dst", 4),
                  ("mask-port-src", 5), ("mask-port-dst", 6), ("state", 7), ("tuple-port-src", 8),
                  ("tuple-port-dst", 9), ("sport", 1), ("dport", 2), ("role", 10)),
        actions={**_port_actions((1, 2, 3, 4, 5, 6, 8, 9, 7), "port"),
                 7: ProtoAction(1 << 6, "dccp_state", "ct", Attr.DCCP_STATE),
                 10: ProtoAction(1 << 9, "dccp_role", "ct", Attr.DCCP_ROLE)},
        num_opts=13,
        optflags=("sport", "dport", "reply-port-src", "reply-port-dst", "mask-port-src", "mask-port-dst",
                  "state", "tuple-port-src", "tuple-port-dst", "role"),
        matrix={Cmd.CT_LIST: "2222002000", Cmd.CT_CREATE: "3333001001", Cmd.CT_UPDATE: "2222002000",
                Cmd.CT_DELETE: "2222002000", Cmd.CT_GET: "3333002000", Cmd.CT_EVENT: "2222002000",
                Cmd.EXP_CREATE: "1100110111", Cmd.EXP_DELETE: "1111000000", Cmd.EXP_GET: "1111000000",
                Cmd.CT_ADD: "3333001001"},
        valid_flags=(0b11, 0b1100),
        partial_msgs=("you have to specify `--sport' and `--dport'",
                      "you have to specify `--reply-port-src' and `--report-port-dst'"),
        help=_PORT_HELP + "  --state\t\t\tDCCP state, fe. RESPOND\n",
        states=("NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING", "TIMEWAIT",
                "IGNORE", "INVALID"))
DCCP_ROLES = ((b"client", 0), (b"server", 1))

_ICMP_MATRIX = {Cmd.CT_LIST: "222", Cmd.CT_CREATE: "112", Cmd.CT_UPDATE: "222", Cmd.CT_DELETE: "222",
                Cmd.CT_GET: "112", Cmd.CT_EVENT: "222", Cmd.CT_ADD: "112"}


def _icmp(name: str, num: int, prefix: str) -> ProtoHandler:
    return ProtoHandler(
        name=name, protonum=num,
        longopts=((f"{prefix}-type", _o("1")), (f"{prefix}-code", _o("2")), (f"{prefix}-id", _o("3"))),
        actions={_o("1"): ProtoAction(1 << 0, "icmp_u8", "ct", Attr.ICMP_TYPE, Attr.ORIG_L4PROTO),
                 _o("2"): ProtoAction(1 << 1, "icmp_u8", "ct", Attr.ICMP_CODE, Attr.ORIG_L4PROTO),
                 _o("3"): ProtoAction(1 << 2, "icmp_id", "ct", Attr.ICMP_ID, Attr.ORIG_L4PROTO)},
        num_opts=4, optflags=(f"{prefix}-type", f"{prefix}-code", f"{prefix}-id"),
        matrix=_ICMP_MATRIX, valid_flags=None, partial_msgs=None,
        help=(f"  --{prefix}-type\t\t\t{prefix} type\n"
              f"  --{prefix}-code\t\t\t{prefix} code\n"
              f"  --{prefix}-id\t\t\t{prefix} id\n"))


def _make_icmp() -> ProtoHandler:
    return _icmp("icmp", IPPROTO_ICMP, "icmp")


def _make_icmpv6() -> ProtoHandler:
    return _icmp("icmpv6", IPPROTO_ICMPV6, "icmpv6")


def _gre_actions() -> Dict[int, ProtoAction]:
    A = Attr
    return {
        _o("1"): ProtoAction(1 << 0, "key", "ct", A.ORIG_PORT_SRC, A.ORIG_L4PROTO),
        _o("2"): ProtoAction(1 << 1, "key", "ct", A.ORIG_PORT_DST, A.ORIG_L4PROTO),
        _o("3"): ProtoAction(1 << 2, "key", "ct", A.REPL_PORT_SRC, A.REPL_L4PROTO),
        _o("4"): ProtoAction(1 << 3, "key", "ct", A.REPL_PORT_DST, A.REPL_L4PROTO),
        _o("5"): ProtoAction(1 << 4, "key", "mask", A.ORIG_PORT_SRC, A.ORIG_L4PROTO),
        _o("6"): ProtoAction(1 << 5, "key", "mask", A.ORIG_PORT_DST, A.ORIG_L4PROTO),
        _o("7"): ProtoAction(1 << 6, "key", "exptuple", A.ORIG_PORT_SRC, A.ORIG_L4PROTO),
        _o("8"): ProtoAction(1 << 7, "key", "exptuple", A.ORIG_PORT_DST, A.ORIG_L4PROTO),
    }


def _make_gre() -> ProtoHandler:
    return ProtoHandler(
        name="gre", protonum=IPPROTO_GRE,
        longopts=(("orig-key-src", _o("1")), ("srckey", _o("1")), ("orig-key-dst", _o("2")),
                  ("dstkey", _o("2")), ("reply-key-src", _o("3")), ("reply-key-dst", _o("4")),
                  ("mask-key-src", _o("5")), ("mask-key-dst", _o("6")), ("tuple-key-src", _o("7")),
                  ("tuple-key-dst", _o("8"))),
        actions=_gre_actions(),
        num_opts=11,
        optflags=("srckey", "dstkey", "reply-key-src", "reply-key-dst", "mask-key-src", "mask-key-dst",
                  "tuple-key-src", "tuple-key-dst"),
        matrix={Cmd.CT_LIST: "22220000", Cmd.CT_CREATE: "33330000", Cmd.CT_UPDATE: "22220000",
                Cmd.CT_DELETE: "22220000", Cmd.CT_GET: "33330000", Cmd.CT_EVENT: "22220000",
                Cmd.EXP_CREATE: "11111111", Cmd.EXP_DELETE: "11110000", Cmd.EXP_GET: "11110000",
                Cmd.CT_ADD: "33330000"},
        valid_flags=(0b11, 0b1100),
        partial_msgs=("you have to specify `--srckey' and `--dstkey'",
                      "you have to specify `--reply-src-key' and `--reply-dst-key'"),
        help=("  --orig-key-src\t\toriginal source key\n"
              "  --orig-key-dst\t\toriginal destination key\n"
              "  --reply-key-src\t\treply source key\n"
              "  --reply-key-dst\t\treply destination key\n"
              "  --mask-key-src\t\tmask source key\n"
              "  --mask-key-dst\t\tmask destination key\n"
              "  --tuple-key-src\t\texpectation tuple src key\n"
              "  --tuple-key-src\t\texpectation tuple dst key\n"))

#: any other protocol (by /etc/protocols name or number): no options
UNKNOWN = ProtoHandler(
    name="unknown", protonum=0, longopts=(), actions={}, num_opts=0, optflags=(), matrix={},
    valid_flags=None, partial_msgs=None, help="  no options (unsupported)\n", final="unknown")

#: the registered extensions' names in conntrack's list order (register_proto() adds at the head)
PROTOCOL_NAMES: Tuple[str, ...] = ("gre", "icmpv6", "icmp", "dccp", "sctp", "udplite", "udp", "tcp")
#: their protocol numbers (ProtoHandler.protonum), to find one by number without making them all
PROTOCOL_NUMBERS: Dict[str, int] = {"gre": IPPROTO_GRE, "icmpv6": IPPROTO_ICMPV6, "icmp": IPPROTO_ICMP,
                                    "dccp": IPPROTO_DCCP, "sctp": IPPROTO_SCTP, "udplite": IPPROTO_UDPLITE,
                                    "udp": IPPROTO_UDP, "tcp": IPPROTO_TCP}

# An extension's handler is made when a command line names it: making all eight at every start
# costs ~0.3 ms of every call, and a call names one at most.
_MAKERS: Dict[str, Callable[[], ProtoHandler]] = {
    "gre": _make_gre, "icmpv6": _make_icmpv6, "icmp": _make_icmp, "dccp": _make_dccp, "sctp": _make_sctp,
    "udplite": _make_udplite, "udp": _make_udp, "tcp": _make_tcp}
_HANDLERS: Dict[str, ProtoHandler] = {"unknown": UNKNOWN}


def protocol(name: str) -> ProtoHandler:
    """The extension called ``name`` (one of PROTOCOL_NAMES, or "unknown")."""
    h = _HANDLERS.get(name)
    if h is None:
        h = _HANDLERS.setdefault(name, _MAKERS[name]())
    return h


def protocols() -> Tuple[ProtoHandler, ...]:
    """All registered extensions, in conntrack's list order (without UNKNOWN)."""
    return tuple(protocol(name) for name in PROTOCOL_NAMES)


if not TYPE_CHECKING:
    def __getattr__(name):
        """TCP, UDP, ..., PROTOCOLS and PROTOCOL_BY_NAME, made on first use."""
        if name == "PROTOCOLS":
            return protocols()
        if name == "PROTOCOL_BY_NAME":
            return {h.name: h for h in protocols() + (UNKNOWN,)}
        if name.lower() in _MAKERS and name.isupper():
            return protocol(name.lower())
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def proto_longopts(h: ProtoHandler, offset: int) -> Sequence[LongOption]:
    """The extension's options as merge_options() adds them: val + offset, all with a required arg."""
    return tuple(LongOption(name.encode(), ArgKind.REQUIRED, val + offset) for name, val in h.longopts)
