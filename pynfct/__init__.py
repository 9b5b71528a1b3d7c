"""pynfct: fast Linux connection tracking for Python.

>>> import pynfct
>>> with pynfct.Conntrack() as ct:
...     print(ct.count())
"""
__version__ = "0.1.0"

from _nfct.flow import Flow, Tuple  # noqa: E402
from _nfct.format import LabelMap  # noqa: E402

from .conntrack import Conntrack  # noqa: E402
from .errors import (NfctError, NfctExists, NfctNotFound, NfctNotSupported,  # noqa: E402
                     NfctPermissionError, ParameterError)
from .status import Status  # noqa: E402

__all__ = ["Conntrack", "Flow", "Tuple", "Status", "LabelMap", "NfctError", "NfctPermissionError",
           "NfctNotFound", "NfctExists", "NfctNotSupported", "ParameterError", "__version__"]
