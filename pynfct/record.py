"""Value classes for the command line's tables and parse state.

They need what ``@dataclass`` gives (fields with defaults, keyword construction, equality, repr,
frozen instances), but importing ``dataclasses`` also imports ``inspect``, ``ast``, ``dis`` and
``tokenize``: about 8 ms of every ``pynfct`` start, more than parsing the command line takes.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Dict, FrozenSet, Optional, Tuple, TypeVar

    from typing_extensions import dataclass_transform

    _T = TypeVar("_T")
else:
    def dataclass_transform(**_kw):
        """Tells type checkers that Record subclasses behave like dataclasses; nothing at run time."""
        return lambda cls: cls


class _Factory:
    """A default made anew for each instance (``dataclasses.field(default_factory=...)``)."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


if TYPE_CHECKING:
    def Factory(make: Callable[[], _T]) -> _T:
        """To a type checker, ``x: List[int] = Factory(list)`` is a default of the field's type, as
        ``dataclasses.field()`` is typed; at run time it is the _Factory that Record calls."""
        ...
else:
    Factory = _Factory


@dataclass_transform()
class Record:
    """Fields are the class's annotated names, in order, after those of its base classes; a class
    attribute of the same name is the field's default. ``class X(Record, frozen=True)`` makes
    instances read-only (and hashable by value)."""

    _fields: Tuple[str, ...] = ()
    _defaults: Dict[str, object] = {}
    _plain: Dict[str, object] = {}                  # defaults that are values
    _factories: Tuple[Tuple[str, "_Factory"], ...] = ()   # defaults made anew per instance
    _fieldset: FrozenSet[str] = frozenset()
    _required: FrozenSet[str] = frozenset()            # fields without a default
    _frozen = False

    def __init_subclass__(cls, frozen: bool = False, **kw: object) -> None:
        super().__init_subclass__(**kw)
        own = tuple(n for n in cls.__dict__.get("__annotations__", {}) if not n.startswith("_"))
        cls._fields = tuple(f for f in cls._fields if f not in own) + own
        cls._defaults = {f: cls.__dict__[f] for f in own if f in cls.__dict__}
        for base in cls.__mro__[1:]:
            for f, d in getattr(base, "_defaults", {}).items():
                cls._defaults.setdefault(f, d)
        cls._plain = {f: d for f, d in cls._defaults.items() if not isinstance(d, _Factory)}
        cls._factories = tuple((f, d) for f, d in cls._defaults.items() if isinstance(d, _Factory))
        cls._fieldset = frozenset(cls._fields)
        cls._required = frozenset(f for f in cls._fields if f not in cls._defaults)
        cls._frozen = frozen or cls._frozen
        if cls._frozen:
            cls.__hash__ = Record._hash  # type: ignore[assignment]

    def __init__(self, *args: object, **kw: object) -> None:
        given: Optional[Dict[str, object]]
        if args and len(args) <= len(self._fields):
            # positional values first: the command line's option tables are built this way at every start
            given = dict(zip(self._fields, args))
            if kw:
                if given.keys() & kw.keys():
                    given = None      # a value given twice: the slow path below says which
                else:
                    given.update(kw)
        else:
            given = None if args else kw
        if given is not None and given.keys() <= self._fieldset and self._required <= given.keys():
            # the common case (all fields known, every field without a default given), without a loop
            # over the fields in Python: the typed model builds a Command and a Template per call
            own = self.__dict__
            own.update(self._plain)
            for f, factory in self._factories:
                if f not in given:
                    own[f] = factory.make()
            own.update(given)
            return
        name = type(self).__name__
        if len(args) > len(self._fields):
            raise TypeError(f"{name}() takes {len(self._fields)} arguments, {len(args)} given")
        values = dict(zip(self._fields, args))
        for k, v in kw.items():
            if k not in self._fields:
                raise TypeError(f"{name}() got an unexpected keyword argument {k!r}")
            if k in values:
                raise TypeError(f"{name}() got multiple values for argument {k!r}")
            values[k] = v
        for f in self._fields:
            if f not in values:
                try:
                    d = self._defaults[f]
                except KeyError:
                    raise TypeError(f"{name}() missing argument {f!r}") from None
                values[f] = d.make() if isinstance(d, _Factory) else d
            object.__setattr__(self, f, values[f])

    def __setattr__(self, name: str, value: object) -> None:
        if self._frozen:
            raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")
        object.__setattr__(self, name, value)

    def _values(self) -> Tuple[object, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]   # mutable records are not hashable, as with dataclasses

    def _hash(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self._fields)})"
