"""The expectation table: :class:`Expectation` (what ``expectations()`` yields) and :class:`ExpectSpec`
(what ``create_expect()`` takes; ``conntrack -I expect``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping, NamedTuple, Optional

from .builder import PORT_PROTOS, Builder
from .errors import ParameterError
from .template import Cmd, Command, Table
from .values import Family, check_address, check_port, check_proto, check_timeout

if TYPE_CHECKING:
    from _nfct.flow import Flow
    from .values import Address, ProtoLike, TimeoutLike

__all__ = ["Expectation", "ExpectSpec"]


class Expectation(NamedTuple):
    """One expectation of the kernel's table: ``master`` (the entry that expects), ``tuple`` (the
    connection expected) and ``mask`` as Flows (read their ``orig`` tuple), and its meta data."""

    master: Optional["Flow"]
    tuple: Optional["Flow"]
    mask: Optional["Flow"]
    timeout: Optional[int] = None
    helper: Optional[str] = None
    zone: Optional[int] = None
    flags: Optional[int] = None
    klass: Optional[int] = None
    fn: Optional[str] = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> "Expectation":
        return cls(rec["master"], rec["tuple"], rec["mask"], rec["timeout"], rec["helper"], rec["zone"],
                   rec["flags"], rec["class"], rec["fn"])

    @property
    def family(self) -> Optional[str]:
        return self.tuple.family if self.tuple is not None else None

    @property
    def proto(self) -> Optional[str]:
        return self.tuple.proto if self.tuple is not None else None


class ExpectSpec:
    """An expectation to create: the master entry's tuple (``proto``, ``src``, ``dst``, ``sport``,
    ``dport``), the expected tuple (``tuple_*``) and its mask (``mask_*``; ports default to "any
    source port, exact destination port"), and a timeout (seconds or a timedelta). Checked when built."""

    __slots__ = ("_v",)
    _v: Dict[str, Any]

    def __init__(self, proto: ProtoLike, src: Address, dst: Address, sport: int, dport: int,
                 tuple_src: Address, tuple_dst: Address, tuple_sport: int, tuple_dport: int,
                 mask_src: Address, mask_dst: Address, mask_sport: int = 0, mask_dport: int = 0xFFFF,
                 timeout: TimeoutLike = 300) -> None:
        given = dict(proto=proto, src=src, dst=dst, sport=sport, dport=dport, tuple_src=tuple_src,
                     tuple_dst=tuple_dst, tuple_sport=tuple_sport, tuple_dport=tuple_dport,
                     mask_src=mask_src, mask_dst=mask_dst, mask_sport=mask_sport, mask_dport=mask_dport,
                     timeout=timeout)
        v: Dict[str, Any] = {}
        for key, value in given.items():
            if value is None:
                raise TypeError(f"{key}=None: an ExpectSpec needs a value")
            if key == "proto":
                v[key] = check_proto(key, value)
            elif key.endswith(("src", "dst")):
                v[key] = check_address(key, value)
            elif key == "timeout":
                v[key] = check_timeout(key, value)
            else:
                v[key] = check_port(key, value)
        if v["proto"] not in PORT_PROTOS:
            raise ParameterError(f"proto={proto!r}: expectations with ports need tcp, udp, udplite, sctp or dccp")
        if len({v[k][0] for k in ("src", "dst", "tuple_src", "tuple_dst", "mask_src", "mask_dst")}) != 1:
            raise ParameterError("ExpectSpec: its addresses are of different families")
        object.__setattr__(self, "_v", v)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("an ExpectSpec is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExpectSpec) and self._v == other._v

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._v.items())))

    def __repr__(self) -> str:
        return f"ExpectSpec({', '.join(f'{k}={v!r}' for k, v in self._v.items())})"

    def command(self) -> Command:
        """The typed template of ``conntrack -I expect`` for this expectation (with the protocol of the
        expected tuple set to ``proto``, where conntrack writes a byte of the port)."""
        v = self._v
        b = Builder(Cmd.EXP_CREATE, Table.EXPECT)
        for key in ("src", "dst"):
            b.address(key, *v[key])
        b.proto(v["proto"])
        b.port("sport", v["sport"])
        b.port("dport", v["dport"])
        for key in ("src", "dst"):
            family, addr, _ = v["tuple_" + key]
            b.expect_address(key, family, addr, v["mask_" + key][1])
        for key in ("sport", "dport"):
            b.expect_port("tuple", key, v["tuple_" + key])
            b.expect_port("mask", key, v["mask_" + key])
        b.timeout(v["timeout"])
        return b.finish()

    @property
    def family(self) -> Family:
        return Family(self._v["src"][0])
