from typing import Union
import os

from typing_extensions import disjoint_base

def enter_netns(netns: Union[None, str, "os.PathLike[str]", int]) -> int: ...

@disjoint_base
class NfctSocket:
    @property
    def portid(self) -> int: ...
    def __new__(cls, nsfd: int = ..., groups: int = ...) -> NfctSocket: ...  # __cinit__
    def fileno(self) -> int: ...
    def close(self) -> None: ...
