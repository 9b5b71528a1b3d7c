"""What the extension modules read of a command, as typing.Protocol classes for the stubs.

The C layer takes a command by duck typing: it reads the attributes below and nothing else. The
typed model that builds commands (``pynfct.template.Command`` and ``Template``, for the CLI and the
library alike) satisfies these protocols; this module names it only in words, since ``_nfct`` imports
nothing from ``pynfct``. No extension module imports this one at run time: it is for type checkers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, AbstractSet, Any, Mapping, Optional, Protocol, Tuple

if TYPE_CHECKING:
    from _nfct.constants import Attr

__all__ = ["CommandLike", "TemplateLike"]


class TemplateLike(Protocol):
    """conntrack's struct ct_tmpl: the attribute sets replayed as nfct_set_attr_*() calls, and the filters."""

    @property
    def ct(self) -> Mapping[Attr, Any]: ...          # the entry template (values as ATTR_KIND says)
    @property
    def mask(self) -> Mapping[Attr, Any]: ...        # the expectation mask
    @property
    def exptuple(self) -> Mapping[Attr, Any]: ...    # the expected tuple
    @property
    def exp(self) -> Mapping[int, Any]: ...          # ATTR_EXP_* numbers
    @property
    def mark(self) -> Tuple[int, int]: ...           # (value, mask) of -m
    @property
    def filter_mark_kernel(self) -> Optional[Tuple[int, int]]: ...
    @property
    def filter_status_kernel(self) -> Optional[Tuple[int, int]]: ...
    @property
    def label(self) -> Optional[AbstractSet[int]]: ...         # -l
    @property
    def label_modify(self) -> Optional[AbstractSet[int]]: ...  # --label-add / --label-del
    @property
    def setup(self) -> Optional[str]: ...            # "reply", "original" or None


class CommandLike(Protocol):
    """conntrack's struct ct_cmd after parsing: the Cmd/Opt/Out/Table bits of _nfct.constants."""

    @property
    def command(self) -> int: ...          # Cmd
    @property
    def options(self) -> int: ...          # Opt
    @property
    def family(self) -> int: ...           # AF_UNSPEC, AF_INET or AF_INET6
    @property
    def table(self) -> int: ...            # Table
    @property
    def protonum(self) -> int: ...
    @property
    def event_mask(self) -> int: ...
    @property
    def output(self) -> int: ...           # Out
    @property
    def socketbuffersize(self) -> int: ...
    @property
    def labelmap_path(self) -> Optional[str]: ...
    @property
    def tmpl(self) -> TemplateLike: ...
