"""Exceptions raised by pynfct. Every error from the kernel carries its errno.

The classes are defined in ``_nfct.errors``, below the extension modules that raise them; these are the
very same objects (``pynfct.errors.NfctError is _nfct.errors.NfctError``).
"""
from _nfct.errors import (NfctError, NfctExists, NfctNotFound, NfctNotSupported, NfctPermissionError,
                          ParameterError, from_errno)

__all__ = ["NfctError", "NfctPermissionError", "NfctNotFound", "NfctExists", "NfctNotSupported",
           "ParameterError", "from_errno"]
