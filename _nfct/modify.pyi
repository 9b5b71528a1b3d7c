from typing import List, Optional, Sequence

from _nfct.flow import Flow
from _nfct.format import Format
from pynfct.template import Command

class ModifyResult:
    count: int
    vanished: int
    unchanged: int
    failures: List[int]
    flows: List[Flow]

# An exception raised while modify() runs (Ctrl-C's KeyboardInterrupt, ...) comes out with `partial`:
# the ModifyResult of what was done (see the docstring).
def modify(nsfd: int, command: Command, update: bool, fmt: Optional[Format] = ..., fd: int = ...,
           threaded: Optional[bool] = ..., flows: Optional[Sequence[Flow]] = ...,
           collect: bool = ...) -> ModifyResult: ...
