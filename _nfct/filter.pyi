from _nfct._types import CommandLike

class Filter:
    family: int
    command: CommandLike
    def __init__(self, command: CommandLike, kernel_tuple: bool = ..., prepare_networks: bool = ...) -> None: ...
    kernel_tuple: bool
    split_families: bool
