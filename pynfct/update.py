"""What ``update()`` sets: :class:`Update` (conntrack -U's ``-m``, ``-t``, ``-u``, ``--label-add``,
``--label-del``).

>>> Update(mark=Mark(0x100, 0x100), timeout=timedelta(minutes=5))

``mark``: an int sets the whole mark; ``Mark(value, mask)`` keeps the entry's bits outside ``mask`` and
xors in ``value`` (conntrack's MARK/MASK). ``timeout``: seconds (1 to 2**32-1) or a timedelta.
``status``: Status bits to add (the kernel refuses to clear bits, or to set some of them).
``add_labels`` / ``del_labels``: label names or bits; ``del_labels=True`` removes every label.
A keyword given as None is a TypeError; at least one value is needed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from .errors import ParameterError
from .values import Checked, check_labels, check_mark, check_status, check_timeout

if TYPE_CHECKING:
    from typing_extensions import TypedDict, Unpack

    from _nfct.format import LabelMap
    from .builder import Builder
    from .values import LabelsLike, MarkLike, StatusLike, TimeoutLike

    class UpdateFields(TypedDict, total=False):
        mark: MarkLike
        timeout: TimeoutLike
        status: StatusLike
        add_labels: LabelsLike
        del_labels: LabelsLike | bool

__all__ = ["Update"]

KEYWORDS = ("status", "mark", "timeout", "add_labels", "del_labels")


class Update(Checked):
    """Checked values to set on the entries an update selects; immutable, compared by value."""

    __slots__ = ()

    def __init__(self, **values: Unpack[UpdateFields]) -> None:
        given = self._keywords(dict(values), KEYWORDS, "leave the keyword out to leave the {key} alone")
        v: Dict[str, Any] = {}
        for key, value in given.items():
            if key == "mark":
                v[key] = check_mark(key, value)
            elif key == "timeout":
                v[key] = check_timeout(key, value)
            elif key == "status":
                on, _ = check_status(key, value, negation=False)
                if not on:
                    raise ParameterError(f"status={value!r}: no status bit to set")
                v[key] = on
            elif key == "del_labels" and value is True:
                v[key] = True
            elif value is False:
                raise ParameterError(f"{key}=False: leave the keyword out to leave the labels alone")
            else:
                v[key] = check_labels(key, value)
        if "add_labels" in v and "del_labels" in v:
            raise ParameterError("add_labels and del_labels: one at a time (as conntrack)")
        if not v:
            raise TypeError("Update() needs a value to set: mark, timeout, status, add_labels or del_labels")
        self._set(given, v)

    def fill(self, b: "Builder", labelmap: Optional["LabelMap"]) -> None:
        """Add the values to a CT_UPDATE builder (after the filters, in conntrack's order: -u before -m)."""
        v = self._v
        if "status" in v:
            b.status(v["status"], 0)
        if "mark" in v:
            b.mark(*v["mark"])
        if "timeout" in v:
            b.timeout(v["timeout"])
        if v.get("del_labels") is True:
            b.del_all_labels()
        elif "del_labels" in v:
            b.labels("del_labels", v["del_labels"], labelmap, modify=True)
        if "add_labels" in v:
            b.labels("add_labels", v["add_labels"], labelmap, modify=True)
