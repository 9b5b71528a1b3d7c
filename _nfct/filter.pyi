from pynfct.template import Command

class Filter:
    family: int
    command: Command
    def __init__(self, command: Command, kernel_tuple: bool = ..., prepare_networks: bool = ...) -> None: ...
    kernel_tuple: bool
    split_families: bool
