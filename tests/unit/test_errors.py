"""The kernel's refusals as API exceptions: the right NfctError subclass, the errno, and a message that
says what to do (tests/integration/test_faults.py provokes each of these on a real kernel)."""
import errno

import pytest

from pynfct.errors import NfctError, NfctPermissionError, from_errno


@pytest.mark.parametrize("err, cls, words", [
    (errno.EPERM, NfctPermissionError, ["Operation not permitted", "CAP_NET_ADMIN"]),
    (errno.ENOMEM, NfctError, ["Cannot allocate memory", "table may be full", "nf_conntrack_max"]),
    (errno.EBUSY, NfctError, ["Device or resource busy", "EXPECTED"]),
])
def test_refusals(err, cls, words):
    e = from_errno(err, "create")
    assert type(e) is cls and e.errno == err and isinstance(e, OSError)
    assert str(e).startswith(f"[Errno {err}] create: ")
    for word in words:
        assert word in str(e)
