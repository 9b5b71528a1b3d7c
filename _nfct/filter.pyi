from typing_extensions import disjoint_base

from _nfct._types import CommandLike

@disjoint_base
class Filter:
    @property
    def family(self) -> int: ...
    @property
    def command(self) -> CommandLike: ...
    def __init__(self, command: CommandLike, kernel_tuple: bool = ..., prepare_networks: bool = ...,
                 status_clear: bool = ...) -> None: ...
    kernel_tuple: bool
    @property
    def split_families(self) -> bool: ...
