"""What the bulk writes return: :class:`WriteResult`, with a :class:`Failure` record per refusal."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, List, NamedTuple, Optional

if TYPE_CHECKING:
    from _nfct.flow import Flow

__all__ = ["WriteResult", "Failure"]


class Failure(NamedTuple):
    """One entry the kernel refused: ``errno`` and, where the call had items, ``item`` (the position
    in create_many()'s items, the line number of a load())."""

    errno: int
    item: Optional[int] = None

    @property
    def strerror(self) -> str:
        return os.strerror(self.errno)


class WriteResult(int):
    """What create_many(), update(), delete() and load() did; its int value is the number of entries
    created, changed or deleted.

    ``failures``: a :class:`Failure` for every entry the kernel refused; ``vanished``: entries gone
    between the dump and their turn (not failures); ``unchanged``: entries update() had nothing to
    change on; ``flows``: with ``collect=True``, the entries (deleted ones as they were, updated ones
    as the kernel has them now). ``interrupted``: the call stopped early (Ctrl-C).
    """

    failures: List[Failure]
    vanished: int
    unchanged: int
    flows: List["Flow"]
    interrupted: bool

    def __new__(cls, count: int, failures: Iterable[Failure] = (), vanished: int = 0, unchanged: int = 0,
                flows: Optional[List["Flow"]] = None, interrupted: bool = False) -> "WriteResult":
        self = super().__new__(cls, count)
        self.failures = list(failures)
        self.vanished = vanished
        self.unchanged = unchanged
        self.flows = flows if flows is not None else []
        self.interrupted = interrupted
        return self

    @property
    def count(self) -> int:
        return int(self)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __repr__(self) -> str:
        return (f"WriteResult(count={int(self)}, failures={len(self.failures)}, vanished={self.vanished}, "
                f"unchanged={self.unchanged}{', interrupted' if self.interrupted else ''})")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (WriteResult, (int(self), self.failures, self.vanished, self.unchanged, self.flows,
                              self.interrupted))
