"""What the write API takes and gives: FlowSpec (an entry to create), ExpectSpec, WriteResult, Expectation.

A :class:`FlowSpec` names an entry with the CLI's options (``pynfct -I``), so it means exactly what the
same ``conntrack -I`` command line means, and the same checks apply (missing parameters, mixed address
families, unknown names raise :class:`pynfct.ParameterError` with conntrack's message).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:
    from _nfct.flow import Flow

Mark = Union[int, Tuple[int, int]]
Labels = Union[str, Iterable[Union[str, int]]]

# FlowSpec field -> conntrack option for -I (protocol first: its options exist only after -p)
_CREATE_OPTIONS: Dict[str, str] = {
    "proto": "--protonum", "family": "--family",
    "src": "--src", "dst": "--dst", "reply_src": "--reply-src", "reply_dst": "--reply-dst",
    "sport": "--sport", "dport": "--dport", "reply_sport": "--reply-port-src", "reply_dport": "--reply-port-dst",
    "state": "--state", "timeout": "--timeout", "status": "--status", "mark": "--mark", "zone": "--zone",
    "orig_zone": "--orig-zone", "reply_zone": "--reply-zone", "labels": "--label-add",
    "icmp_type": "--icmp-type", "icmp_code": "--icmp-code", "icmp_id": "--icmp-id",
    "icmpv6_type": "--icmpv6-type", "icmpv6_code": "--icmpv6-code", "icmpv6_id": "--icmpv6-id",
    "orig_vtag": "--orig-vtag", "reply_vtag": "--reply-vtag", "srckey": "--srckey", "dstkey": "--dstkey",
    "reply_srckey": "--reply-key-src", "reply_dstkey": "--reply-key-dst", "role": "--role",
    "snat": "--src-nat", "dnat": "--dst-nat",
}


def option_words(key: str, option: str, value: Any) -> List[str]:
    """The argv words of one keyword value (lists and (value, mask) pairs as conntrack writes them)."""
    if value is None or value is False:
        return []
    if key in ("snat", "dnat", "any_nat"):
        return [option] if value is True else [option, str(value)]
    if value is True:
        return [option]
    if isinstance(value, tuple) and key == "mark":
        value = f"{value[0]}/{value[1]}"
    elif isinstance(value, (list, tuple, set, frozenset)):
        value = ",".join(str(v) for v in value)
    return [option, str(value)]


@dataclasses.dataclass
class FlowSpec:
    """A conntrack entry to create: ``pynfct -I`` options as fields (None: not given).

    Addresses are strings, ports numbers, ``proto`` a name or number, ``status`` a list of words
    (``["SEEN_REPLY", "ASSURED"]``), ``mark`` an int, ``labels`` names or bits. As with conntrack,
    ``proto`` and ``timeout`` are needed, and both addresses (and ports) of at least one direction;
    the other direction is the inverse.

    >>> FlowSpec("tcp", src="10.0.0.1", dst="10.0.0.2", sport=1234, dport=80, state="ESTABLISHED",
    ...          timeout=120, status=["SEEN_REPLY", "ASSURED"])
    """

    proto: Union[str, int, None] = None
    src: Optional[str] = None
    dst: Optional[str] = None
    sport: Optional[int] = None
    dport: Optional[int] = None
    reply_src: Optional[str] = None
    reply_dst: Optional[str] = None
    reply_sport: Optional[int] = None
    reply_dport: Optional[int] = None
    timeout: Optional[int] = None
    state: Optional[str] = None
    status: Union[str, Sequence[str], None] = None
    mark: Optional[int] = None
    zone: Optional[int] = None
    orig_zone: Optional[int] = None
    reply_zone: Optional[int] = None
    labels: Optional[Labels] = None
    family: Optional[str] = None
    icmp_type: Optional[int] = None
    icmp_code: Optional[int] = None
    icmp_id: Optional[int] = None
    icmpv6_type: Optional[int] = None
    icmpv6_code: Optional[int] = None
    icmpv6_id: Optional[int] = None
    orig_vtag: Optional[int] = None
    reply_vtag: Optional[int] = None
    srckey: Optional[int] = None
    dstkey: Optional[int] = None
    reply_srckey: Optional[int] = None
    reply_dstkey: Optional[int] = None
    role: Optional[str] = None

    def argv(self, command: str = "-I") -> List[str]:
        """The conntrack command line that creates this entry (``pynfct -I ...``)."""
        fields = dataclasses.asdict(self)
        argv = [command]
        # -p first: the protocol's options exist only after it
        for key in sorted(fields, key=lambda k: k != "proto"):
            argv += option_words(key, _CREATE_OPTIONS[key], fields[key])
        return argv

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> "FlowSpec":
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown field(s): {', '.join(sorted(unknown))}")
        return cls(**fields)


@dataclasses.dataclass
class ExpectSpec:
    """An expectation to create (``pynfct -I expect``): the master entry's tuple, the expected tuple
    (``tuple_*``) and its mask (``mask_*``), a timeout in seconds."""

    proto: Union[str, int]
    src: str
    dst: str
    sport: int
    dport: int
    tuple_src: str
    tuple_dst: str
    tuple_sport: int
    tuple_dport: int
    mask_src: str
    mask_dst: str
    mask_sport: int = 0
    mask_dport: int = 0xFFFF
    timeout: int = 300

    def argv(self) -> List[str]:
        return ["-I", "expect", "-p", str(self.proto), "-s", self.src, "-d", self.dst,
                "--sport", str(self.sport), "--dport", str(self.dport),
                "--tuple-src", self.tuple_src, "--tuple-dst", self.tuple_dst,
                "--tuple-port-src", str(self.tuple_sport), "--tuple-port-dst", str(self.tuple_dport),
                "--mask-src", self.mask_src, "--mask-dst", self.mask_dst,
                "--mask-port-src", str(self.mask_sport), "--mask-port-dst", str(self.mask_dport),
                "-t", str(self.timeout)]


class WriteResult(int):
    """What a bulk write did: its value is the number of entries changed (created, updated, deleted).

    ``failures`` lists the errno of every entry the kernel refused (entries that vanished before their
    turn are not failures: ``vanished`` counts them); ``flows`` holds the entries themselves when asked
    for (deleted ones as they were, updated ones as the kernel has them now).
    """

    failures: List[int]
    vanished: int
    unchanged: int
    flows: List["Flow"]

    def __new__(cls, count: int, failures: Iterable[int] = (), vanished: int = 0, unchanged: int = 0,
                flows: Optional[List["Flow"]] = None) -> "WriteResult":
        self = super().__new__(cls, count)
        self.failures = list(failures)
        self.vanished = vanished
        self.unchanged = unchanged
        self.flows = flows if flows is not None else []
        return self

    @property
    def count(self) -> int:
        return int(self)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __repr__(self) -> str:
        return (f"WriteResult(count={int(self)}, failures={len(self.failures)}, vanished={self.vanished}, "
                f"unchanged={self.unchanged})")


@dataclasses.dataclass
class Expectation:
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
