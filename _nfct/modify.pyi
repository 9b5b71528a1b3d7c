from typing import List, Optional, Sequence

from _nfct.flow import Flow
from _nfct.format import Format
from _nfct._types import CommandLike

class ModifyResult:
    count: int
    vanished: int
    unchanged: int
    failures: List[int]
    flows: List[Flow]

def modify(nsfd: int, command: CommandLike, update: bool, fmt: Optional[Format] = ..., fd: int = ...,
           threaded: Optional[bool] = ..., flows: Optional[Sequence[Flow]] = ...,
           collect: bool = ...) -> ModifyResult: ...
