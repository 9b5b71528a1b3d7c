"""conntrack's -h output, generated from the option table (pynfct.cli.options)."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

from .. import __version__
from ..template import Command
from . import options as O

_TABLES = "Tables: conntrack, expect, dying, unconfirmed\n"


def _section(section: str, extended: bool) -> str:
    """The lines of one O.Section, under its heading."""
    lines = sorted((o.help for o in O.OPTIONS
                    if o.help is not None and o.help.section == section
                    and (extended or not o.help.extension)),
                   key=lambda h: h.order)
    return section + "".join(h.text for h in lines)


def usage(prog: str = "pynfct", version: Optional[str] = None, *, extended: bool = False) -> str:
    """The text of ``-h`` (conntrack's usage()), for stdout.

    Byte-identical to conntrack 1.4.7's output given ``version="1.4.7"`` and ``prog`` = its argv[0].
    ``extended`` adds the options conntrack 1.4.7 does not have (``--labelmap``).
    """
    if version is None:
        version = __version__
    return ("Command line interface for the connection tracking system. Version %s\n" % version
            + "Usage: %s [commands] [options]\n" % prog
            + "\n" + _section(O.Section.COMMANDS, extended)
            + "\n" + _TABLES
            + "\n" + _section(O.Section.CONNTRACK, extended)
            + "\n" + _section(O.Section.EXPECTATION, extended)
            + "\n" + _section(O.Section.UPDATE, extended)
            + "\n" + _section(O.Section.COMMON, extended) + "\n")


def _protocol_name_by_number(num: int) -> Optional[str]:
    """getprotobynumber(num)->p_name, from /etc/protocols."""
    try:
        with open("/etc/protocols", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[1].isdigit() and int(fields[1]) == num:
                    return fields[0]
    except OSError:
        pass
    return None


def proto_help(proto: Union[str, Command], protonum: Optional[int] = None) -> str:
    """extension_help(): "Proto `NAME' help:" and the extension's option lines (after usage() for -h -p).

    ``proto`` is a parsed command (its ``proto_name``/``protonum``) or an extension name ("tcp", ...,
    "unknown" with ``protonum``).  For the "unknown" extension the name is the protocol's
    /etc/protocols name when it has one.
    """
    if isinstance(proto, Command):
        protonum = proto.protonum
        proto = getattr(proto, "proto_name", None) or "unknown"
    h = O.protocol(proto)
    name = h.name
    if h is O.UNKNOWN and protonum is not None:
        name = _protocol_name_by_number(protonum) or h.name
    return f"Proto `{name}' help:\n" + h.help


def help_text(cmd: Command, prog: str = "pynfct", version: Optional[str] = None, *,
              extended: bool = False) -> str:
    """Everything ``conntrack -h [-p PROTO]`` prints on stdout for this parsed command."""
    from .._ints import Opt
    text = usage(prog, version, extended=extended)
    if cmd.options & Opt.PROTO:
        text += proto_help(cmd)
    return text
