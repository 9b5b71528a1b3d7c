"""The numbers of _nfct.constants' enums as plain ints, for the command line's start.

``Attr``, ``Cmd``, ``Opt``, ``Out`` and ``Table`` here are namespaces of plain ints with the enums'
member names (``Cmd.CT_LIST == 1``), made by _nfct.constants from the same tables as the enums;
``CT_COMPARISON`` is an int and ``ATTR_KIND`` is _nfct.constants' own dict. Calling a namespace returns
the int, the way calling the enum returns a member: ``Opt(bits)``, ``Cmd(1 << i)``. Importing this module
imports no ``enum``: the enums (pynfct.template.Cmd, ...) cost about 3 ms to make, which a ``pynfct`` call
does not need.

Type checkers see the enums themselves: the values are the same ints (IntEnum and IntFlag members are
ints), so the command line is checked against the library's types. What an enum has beyond its int --
``.name``, iterating over a flag's bits, ``~`` within the members' bits -- is not there at run time:
code that uses this module does not use those (it asks _nfct.constants for the enum when it needs a
name).
"""
TYPE_CHECKING = False
if TYPE_CHECKING:
    from _nfct.constants import ATTR_KIND as ATTR_KIND, CT_COMPARISON as CT_COMPARISON, Attr as Attr, \
        Cmd as Cmd, Opt as Opt, Out as Out, Table as Table
else:
    from _nfct.constants import ATTR_KIND, _ATTR_INTS as Attr, _CMD_INTS as Cmd, \
        _COMPARISON as CT_COMPARISON, _OPT_INTS as Opt, _OUT_INTS as Out, _TABLE_INTS as Table

__all__ = ["ATTR_KIND", "CT_COMPARISON", "Attr", "Cmd", "Opt", "Out", "Table"]
