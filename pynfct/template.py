"""The typed template: a request as plain data, conntrack's ``struct ct_cmd`` and ``struct ct_tmpl``.

The CLI's port of conntrack's parser (``pynfct.cli.parse``) builds a :class:`Command` from command-line
words; the library builds the same type from checked typed values (``pynfct.builder``, behind Match,
Update and FlowSpec). The extension turns its :class:`Template` into real ``nf_conntrack`` objects with
the ``nfct_set_attr_*`` calls conntrack makes, so filtering is decided by the same library code
(``nfct_cmp``) and gives the same answer as conntrack on the same table.
"""
from __future__ import annotations

from . import _ints
from .record import Factory, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Set, Tuple, Union

    from _nfct.constants import CT_COMPARISON as CT_COMPARISON, Attr as Attr, Cmd as Cmd, Opt as Opt, \
        Out as Out, Table as Table

    AttrValue = Union[int, bytes, str, Set[int]]

__all__ = ["Cmd", "Opt", "Out", "Table", "CT_COMPARISON", "Template", "Command"]

# Cmd, Opt, Out, Table and CT_COMPARISON (conntrack-tools' struct ct_cmd bits) are defined in
# _nfct.constants, which the C layer reads them from; these are the same objects, made on first use
# (see __getattr__ below). A Command's fields hold plain ints when the command line made it (pynfct._ints)
# and the enums' members when the library did: they compare and hash the same.


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

    command: Cmd = _ints.Cmd.NONE
    options: Opt = _ints.Opt(0)
    family: int = 0           # AF_UNSPEC, AF_INET or AF_INET6
    table: Table = _ints.Table.CONNTRACK
    protonum: int = 0
    event_mask: int = 0       # CT_EVENT_F_* bits of -e
    output: Out = _ints.Out(0)
    socketbuffersize: int = 0
    labelmap_path: Optional[str] = None
    tmpl: Template = Factory(Template)


_ENUMS = ("Cmd", "Opt", "Out", "Table", "CT_COMPARISON", "Attr")

if not TYPE_CHECKING:
    def __getattr__(name):
        """The enums, from _nfct.constants on first use: the command line's start does without them."""
        if name not in _ENUMS:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import _nfct.constants
        value = getattr(_nfct.constants, name)
        globals()[name] = value
        return value

    def __dir__():
        return sorted(set(globals()) | set(_ENUMS))
