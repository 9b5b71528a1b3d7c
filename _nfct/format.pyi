from typing import Optional, Union
import os

from typing_extensions import disjoint_base

from _nfct.flow import Flow

@disjoint_base
class LabelMap:
    def __new__(cls, path: Union[None, str, "os.PathLike[str]"] = ...) -> LabelMap: ...  # __cinit__
    def name(self, bit: int) -> Optional[str]: ...
    def bit(self, name: str) -> int: ...

@disjoint_base
class Format:
    @property
    def header(self) -> bytes: ...
    @property
    def footer(self) -> bytes: ...
    def __init__(self, output: int = ..., labelmap: Optional[LabelMap] = ..., show_labels: bool = ...,
                 root: bytes = ..., footer: bool = ...) -> None: ...
    def format(self, flow: Flow, msg_type: int = ...) -> str: ...
