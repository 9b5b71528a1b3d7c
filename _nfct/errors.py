"""Exceptions raised by pynfct. Every error from the kernel carries its errno.

Defined here, below the extension modules that raise them (they import nothing from pynfct);
``pynfct.errors`` re-exports these very classes, which name it as their module.
"""
from __future__ import annotations

import errno as _errno
import os

__all__ = ["NfctError", "NfctPermissionError", "NfctNotFound", "NfctExists", "NfctNotSupported",
           "ParameterError", "from_errno"]


class NfctError(OSError):
    """A netlink request to the conntrack subsystem failed; ``.errno`` says why."""


class NfctPermissionError(NfctError, PermissionError):
    """The caller lacks CAP_NET_ADMIN (run as root, or grant the capability)."""


class NfctNotFound(NfctError, FileNotFoundError):
    """No such conntrack entry (ENOENT)."""


class NfctExists(NfctError, FileExistsError):
    """The conntrack entry exists already (EEXIST)."""


class NfctNotSupported(NfctError):
    """The running kernel does not support this request."""


class ParameterError(ValueError):
    """A request or filter is malformed; the CLI exits 2 on these, as conntrack does."""


# Tracebacks and reprs name the public module, which re-exports the same objects (pickle finds them there).
for _cls in (NfctError, NfctPermissionError, NfctNotFound, NfctExists, NfctNotSupported, ParameterError):
    _cls.__module__ = "pynfct.errors"
del _cls

_HINTS = {
    _errno.EPERM: "you must be root or have the CAP_NET_ADMIN capability to do this",
    _errno.ENOENT: "such conntrack doesn't exist",
    _errno.EEXIST: "such conntrack exists already",
    _errno.EOPNOTSUPP: "not supported by the running kernel",
    _errno.EPROTONOSUPPORT: "the kernel has no ctnetlink (load nf_conntrack_netlink)",
    # ctnetlink's only ENOMEM that is not a failed allocation: the namespace's table holds
    # net.netfilter.nf_conntrack_max entries and none of them may be dropped early (all ASSURED)
    _errno.ENOMEM: "the conntrack table may be full: raise net.netfilter.nf_conntrack_max or delete entries",
    _errno.EBUSY: "the kernel will not change this on an existing entry (status bits EXPECTED, CONFIRMED, "
                  "DYING, or clearing SEEN_REPLY/ASSURED; or its helper)",
}

_CLASSES = {
    _errno.EPERM: NfctPermissionError,
    _errno.EACCES: NfctPermissionError,
    _errno.ENOENT: NfctNotFound,
    _errno.EEXIST: NfctExists,
    _errno.EOPNOTSUPP: NfctNotSupported,
    _errno.EPROTONOSUPPORT: NfctNotSupported,
}


def from_errno(err: int, what: str = "") -> NfctError:
    """Build the right NfctError subclass for an errno value from a netlink call."""
    cls = _CLASSES.get(err, NfctError)
    msg = os.strerror(err)
    hint = _HINTS.get(err)
    if hint and hint.lower() != msg.lower():
        msg = f"{msg} ({hint})"
    if what:
        msg = f"{what}: {msg}"
    return cls(err, msg)
