from pynfct.template import Command

class Filter:
    family: int
    command: Command
    def __init__(self, command: Command, kernel_tuple: bool = ...) -> None: ...
