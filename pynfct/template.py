"""A parsed request, as plain data: conntrack's ``struct ct_cmd`` and ``struct ct_tmpl``.

The CLI parser (``pynfct.cli.parse``) and the Python API (``Conntrack.dump(**filters)``) both build a
:class:`Command`; the extension turns its :class:`Template` into real ``nf_conntrack`` objects with the same
``nfct_set_attr_*`` calls conntrack makes, so filtering is decided by the same library code (``nfct_cmp``)
and gives the same answer as conntrack on the same table.
"""
from __future__ import annotations

import enum

from .attrs import Attr
from .record import Factory, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Set, Tuple, Union

    AttrValue = Union[int, bytes, str, Set[int]]



class Cmd(enum.IntFlag):
    """enum ct_command of conntrack-tools (one bit per command and table)."""

    NONE = 0
    CT_LIST = 1 << 0
    CT_CREATE = 1 << 1
    CT_UPDATE = 1 << 2
    CT_DELETE = 1 << 3
    CT_GET = 1 << 4
    CT_FLUSH = 1 << 5
    CT_EVENT = 1 << 6
    CT_VERSION = 1 << 7
    CT_HELP = 1 << 8
    EXP_LIST = 1 << 9
    EXP_CREATE = 1 << 10
    EXP_DELETE = 1 << 11
    EXP_GET = 1 << 12
    EXP_FLUSH = 1 << 13
    EXP_EVENT = 1 << 14
    CT_COUNT = 1 << 15
    EXP_COUNT = 1 << 16
    CT_STATS = 1 << 17
    EXP_STATS = 1 << 18
    CT_ADD = 1 << 19


class Opt(enum.IntFlag):
    """enum ct_options of conntrack-tools: which options were given."""

    ORIG_SRC = 1 << 0
    ORIG_DST = 1 << 1
    REPL_SRC = 1 << 2
    REPL_DST = 1 << 3
    PROTO = 1 << 4
    TIMEOUT = 1 << 5
    STATUS = 1 << 6
    ZERO = 1 << 7
    EVENT_MASK = 1 << 8
    EXP_SRC = 1 << 9
    EXP_DST = 1 << 10
    MASK_SRC = 1 << 11
    MASK_DST = 1 << 12
    NATRANGE = 1 << 13
    MARK = 1 << 14
    ID = 1 << 15
    FAMILY = 1 << 16
    SRC_NAT = 1 << 17
    DST_NAT = 1 << 18
    OUTPUT = 1 << 19
    SECMARK = 1 << 20
    BUFFERSIZE = 1 << 21
    ANY_NAT = 1 << 22
    ZONE = 1 << 23
    LABEL = 1 << 24
    ADD_LABEL = 1 << 25
    DEL_LABEL = 1 << 26
    ORIG_ZONE = 1 << 27
    REPL_ZONE = 1 << 28

    ORIG = ORIG_SRC | ORIG_DST
    REPL = REPL_SRC | REPL_DST


# Options that make -L/-D/-U/-E compare each entry with the template (conntrack's CT_COMPARISON).
CT_COMPARISON = (Opt.PROTO | Opt.ORIG | Opt.REPL | Opt.MARK | Opt.SECMARK | Opt.STATUS | Opt.ID
                 | Opt.ZONE | Opt.LABEL | Opt.ORIG_ZONE | Opt.REPL_ZONE)


class Out(enum.IntFlag):
    """-o output flags (conntrack's _O_* bits), plus pynfct's JSON."""

    XML = 1 << 0
    EXT = 1 << 1
    TMS = 1 << 2   # timestamp
    ID = 1 << 3
    KTMS = 1 << 4  # ktimestamp
    CL = 1 << 5    # labels
    SAVE = 1 << 6
    US = 1 << 15   # userspace: conntrack accepts it and sets no bit; kept so -E can print portids
    JSON = 1 << 16


class Table(enum.IntEnum):
    CONNTRACK = 0
    EXPECT = 1
    DYING = 2
    UNCONFIRMED = 3


class Template(Record):
    """conntrack's struct ct_tmpl: attribute sets on each template object, plus the non-attribute filters.

    Each dict maps an :class:`~pynfct.attrs.Attr` to the value conntrack passes to ``nfct_set_attr_*``
    (see ``pynfct.attrs.ATTR_KIND`` for the encoding). Insertion order is the order of the calls.
    """

    ct: Dict[Attr, AttrValue] = Factory(dict)
    mask: Dict[Attr, AttrValue] = Factory(dict)
    exptuple: Dict[Attr, AttrValue] = Factory(dict)
    exp: Dict[int, AttrValue] = Factory(dict)  # ATTR_EXP_* numbers
    mark: Tuple[int, int] = (0, 0)                  # tmpl.mark: (value, mask) of -m
    filter_mark_kernel: Optional[Tuple[int, int]] = None    # (val, mask) for the kernel dump filter
    filter_status_kernel: Optional[Tuple[int, int]] = None  # (val, mask) for the kernel dump filter
    label: Optional[Set[int]] = None                # -l: label bits an entry must all carry
    label_modify: Optional[Set[int]] = None         # --label-add / --label-del bits
    setup: Optional[str] = None                     # "reply"/"original": nfct_setobjopt(SETUP_*) for -I


class Command(Record):
    """conntrack's struct ct_cmd after do_parse()."""

    command: Cmd = Cmd.NONE
    options: Opt = Opt(0)
    family: int = 0           # AF_UNSPEC, AF_INET or AF_INET6
    table: Table = Table.CONNTRACK
    protonum: int = 0
    event_mask: int = 0       # CT_EVENT_F_* bits of -e
    output: Out = Out(0)
    socketbuffersize: int = 0
    labelmap_path: Optional[str] = None
    tmpl: Template = Factory(Template)
