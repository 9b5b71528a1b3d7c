"""pynfct: fast Linux connection tracking for Python.

>>> import pynfct
>>> with pynfct.Conntrack() as ct:
...     print(ct.count())
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    # What type checkers see: the real classes (at run time they are loaded on first use, below).
    from _nfct.events import Event as Event
    from _nfct.flow import Flow as Flow, Tuple as Tuple
    from _nfct.format import LabelMap as LabelMap
    from .conntrack import Conntrack as Conntrack
    from .errors import (NfctError as NfctError, NfctExists as NfctExists, NfctNotFound as NfctNotFound,
                         NfctNotSupported as NfctNotSupported, NfctPermissionError as NfctPermissionError,
                         ParameterError as ParameterError)
    from .events import EventType as EventType
    from .expect import Expectation as Expectation, ExpectSpec as ExpectSpec
    from .flowspec import FlowSpec as FlowSpec
    from .match import Match as Match
    from .result import Failure as Failure, WriteResult as WriteResult
    from .status import Status as Status
    from .update import Update as Update
    from .values import (DCCPRole as DCCPRole, DCCPState as DCCPState, Family as Family, Mark as Mark,
                         Proto as Proto, SCTPState as SCTPState, TCPState as TCPState)

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
    "Match": ("pynfct.match", "Match"),
    "Update": ("pynfct.update", "Update"),
    "ExpectSpec": ("pynfct.expect", "ExpectSpec"),
    "Expectation": ("pynfct.expect", "Expectation"),
    "WriteResult": ("pynfct.result", "WriteResult"),
    "Failure": ("pynfct.result", "Failure"),
    "Family": ("pynfct.values", "Family"),
    "Proto": ("pynfct.values", "Proto"),
    "Mark": ("pynfct.values", "Mark"),
    "TCPState": ("pynfct.values", "TCPState"),
    "SCTPState": ("pynfct.values", "SCTPState"),
    "DCCPState": ("pynfct.values", "DCCPState"),
    "DCCPRole": ("pynfct.values", "DCCPRole"),
}
__all__ = sorted(_EXPORTS) + ["__version__"]

if not TYPE_CHECKING:
    def __getattr__(name):
        try:
            module, attr = _EXPORTS[name]
        except KeyError:
            raise AttributeError(f"module 'pynfct' has no attribute {name!r}") from None
        import importlib
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value

    def __dir__():
        return __all__
