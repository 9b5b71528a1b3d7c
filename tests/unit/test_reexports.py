"""pynfct re-exports _nfct's constants and exceptions: the very same objects, not copies."""
import pickle

import _nfct.constants
import _nfct.errors
import _nfct.flags
import pynfct
import pynfct.attrs
import pynfct.errors
import pynfct.events
import pynfct.status
import pynfct.template

ERRORS = ("NfctError", "NfctPermissionError", "NfctNotFound", "NfctExists", "NfctNotSupported", "ParameterError")


def test_errors_are_the_same_classes_named_pynfct_errors():
    for name in ERRORS:
        cls = getattr(_nfct.errors, name)
        assert getattr(pynfct.errors, name) is cls
        assert getattr(pynfct, name) is cls
        assert cls.__module__ == "pynfct.errors"
    assert pynfct.errors.from_errno is _nfct.errors.from_errno
    err = pynfct.errors.from_errno(2, "get")
    assert type(err) is pynfct.NfctNotFound and err.errno == 2
    assert type(pickle.loads(pickle.dumps(err))) is pynfct.NfctNotFound


def test_enums_are_the_same_objects():
    assert pynfct.attrs.Attr is pynfct.template.Attr is _nfct.constants.Attr
    assert pynfct.attrs.ATTR_KIND is _nfct.constants.ATTR_KIND
    for name in ("Cmd", "Opt", "Out", "Table", "CT_COMPARISON"):
        assert getattr(pynfct.template, name) is getattr(_nfct.constants, name)
    assert pynfct.status.Status is pynfct.Status is _nfct.flags.Status
    assert pynfct.events.EventType is pynfct.EventType is _nfct.flags.EventType


def test_values_are_the_c_ones():
    from pynfct.template import CT_COMPARISON, Cmd, Opt, Out
    assert (int(pynfct.EventType.NEW), int(pynfct.EventType.UPDATE), int(pynfct.EventType.DESTROY),
            int(pynfct.EventType.ALL)) == (1, 2, 4, 7)
    assert int(pynfct.Status.ASSURED) == 4 and int(pynfct.Status.HW_OFFLOAD) == 1 << 15
    assert int(pynfct.attrs.Attr.SYNPROXY_TSOFF) == 74 and len(pynfct.attrs.Attr) == 75
    assert set(pynfct.attrs.ATTR_KIND) == set(pynfct.attrs.Attr)
    assert int(Cmd.CT_ADD) == 1 << 19 and int(Opt.REPL_ZONE) == 1 << 28 and int(Out.JSON) == 1 << 16
    assert Opt.ORIG == Opt.ORIG_SRC | Opt.ORIG_DST and type(CT_COMPARISON) is Opt
    assert CT_COMPARISON & Opt.MARK and not CT_COMPARISON & Opt.TIMEOUT
