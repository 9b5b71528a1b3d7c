from typing import List, Optional, Sequence

from typing_extensions import disjoint_base

from _nfct.flow import Flow
from _nfct.format import Format
from _nfct._types import CommandLike

@disjoint_base
class ModifyResult:
    @property
    def count(self) -> int: ...
    @property
    def unprinted(self) -> int: ...
    @property
    def vanished(self) -> int: ...
    @property
    def unchanged(self) -> int: ...
    @property
    def failures(self) -> List[int]: ...
    @property
    def flows(self) -> List[Flow]: ...

# An exception raised while modify() runs (Ctrl-C's KeyboardInterrupt, ...) comes out with `partial`:
# the ModifyResult of what was done (see the docstring).
def modify(nsfd: int, command: CommandLike, update: bool, fmt: Optional[Format] = ..., fd: int = ...,
           threaded: Optional[bool] = ..., flows: Optional[Sequence[Flow]] = ...,
           collect: bool = ..., status_clear: bool = ..., lossy: bool = ...) -> ModifyResult: ...
