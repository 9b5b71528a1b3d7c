from typing import Iterator, List, Optional, Tuple

from typing_extensions import disjoint_base

from _nfct.filter import Filter
from _nfct.flow import Flow
from _nfct.format import Format

DUMP_CONNTRACK: int
DUMP_ZERO: int
SPLIT_BATCHES: int
DUMP_DYING: int
DUMP_UNCONFIRMED: int

def split_dump(nsfd: int, msg_type: int, family: int, filt: Filter, userspace_filter: bool = ...,
               batches: int = ...) -> Tuple[List[Flow], "Dump"]: ...
def parse_batch(data: bytes, filt: Optional[Filter] = ...) -> List[Flow]: ...

@disjoint_base
class Dump(Iterator[Flow]):
    count: int
    def __init__(self, nsfd: int, msg_type: int = ..., family: int = ..., filt: Optional[Filter] = ...,
                 kernel_filter: bool = ..., userspace_filter: bool = ..., batches: int = ...,
                 rcvbuf: int = ...) -> None: ...
    def to_fd(self, fd: int, fmt: Format, lossy: bool = ...) -> int: ...
    def __iter__(self) -> "Dump": ...
    def __next__(self) -> Flow: ...
    def close(self) -> None: ...
