"""pynfct: fast Linux connection tracking for Python.

>>> import pynfct
>>> with pynfct.Conntrack() as ct:
...     print(ct.count())
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

# Names are loaded on first use: the CLI should not pay for what it does not use. Status, EventType and
# the exceptions are _nfct's objects (pynfct.status, pynfct.events and pynfct.errors re-export them);
# EventType comes straight from _nfct.flags, so that it does not import pynfct.events (asyncio).
_EXPORTS = {
    "Conntrack": ("pynfct.conntrack", "Conntrack"),
    "Flow": ("_nfct.flow", "Flow"),
    "Tuple": ("_nfct.flow", "Tuple"),
    "LabelMap": ("_nfct.format", "LabelMap"),
    "Status": ("pynfct.status", "Status"),
    "Event": ("_nfct.events", "Event"),
    "EventType": ("_nfct.flags", "EventType"),
    "NfctError": ("pynfct.errors", "NfctError"),
    "NfctPermissionError": ("pynfct.errors", "NfctPermissionError"),
    "NfctNotFound": ("pynfct.errors", "NfctNotFound"),
    "NfctExists": ("pynfct.errors", "NfctExists"),
    "NfctNotSupported": ("pynfct.errors", "NfctNotSupported"),
    "ParameterError": ("pynfct.errors", "ParameterError"),
    "FlowSpec": ("pynfct.flowspec", "FlowSpec"),
    "ExpectSpec": ("pynfct.flowspec", "ExpectSpec"),
    "Expectation": ("pynfct.flowspec", "Expectation"),
    "WriteResult": ("pynfct.flowspec", "WriteResult"),
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'pynfct' has no attribute {name!r}") from None
    import importlib
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list:
    return __all__
