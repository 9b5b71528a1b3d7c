"""C-level entry points stay C-only: nothing Python can call takes a raw address.

A callback or a buffer handed over as a Python int (``Dump.feed(1, 0)`` once did) lets any Python code
jump to an arbitrary address and crash the process. Such functions are ``cdef``, declared in the
module's .pxd for the other extension modules.
"""
import importlib
import inspect
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NFCT = os.path.join(ROOT, "_nfct")
if not os.path.isdir(NFCT):
    # A copy of tests/ run against an installed wheel (CI's root-free stage) has no .pyx beside it; the
    # whole suite in the checkout (CI's root stage) runs these.
    pytest.skip("reads _nfct/*.pyx of a source tree beside tests/", allow_module_level=True)
PYX = sorted(f for f in os.listdir(NFCT) if f.endswith(".pyx"))

# C types that carry an address, or a word wide enough to hold one, when given to a def/cpdef function.
# A pointer parameter is `type *name`; `*args` after a comma is not one.
ADDRESS_TYPES = re.compile(r"\b(size_t|uintptr_t|intptr_t|ptrdiff_t|Py_intptr_t|Py_uintptr_t)\b|\w[ \t]*\*+[ \t]*\w")


def python_visible_signatures(source):
    """(name, parameter text) of every def/cpdef function or method in a .pyx source."""
    for m in re.finditer(r"^[ \t]*(?:async[ \t]+)?(?:c?p?def)[ \t]+(?:[\w.]+[ \t]+)*?(\w+)[ \t]*\(", source, re.M):
        head = m.group(0).split()
        if head[0] == "cdef" and "cpdef" not in head:
            continue
        if head[0] not in ("def", "cpdef"):
            continue
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        yield m.group(1), source[m.end():i - 1]


def test_the_scanner_sees_what_it_must():
    src = ("def ok(int fd, bytes data):\n    pass\n"
           "    def feed(self, size_t callback,\n             size_t data):\n"
           "cdef long feed2(self, entry_cb_t cb, void *data) except -1:\n"
           "cpdef int f3(self, char *buf):\n"
           "    def __exit__(self, *exc, **kw):\n")
    found = dict(python_visible_signatures(src))
    assert set(found) == {"ok", "feed", "f3", "__exit__"}
    assert not ADDRESS_TYPES.search(found["ok"]) and not ADDRESS_TYPES.search(found["__exit__"])
    assert ADDRESS_TYPES.search(found["feed"]) and ADDRESS_TYPES.search(found["f3"])


@pytest.mark.parametrize("name", PYX)
def test_no_def_takes_an_address(name):
    with open(os.path.join(NFCT, name)) as f:
        source = f.read()
    bad = [f"{fn}({params.strip()})" for fn, params in python_visible_signatures(source)
           if ADDRESS_TYPES.search(params)]
    assert not bad, f"{name}: Python-callable functions taking C addresses: {bad}; make them cdef"


def test_dump_has_no_python_feed():
    from _nfct.dump import Dump
    assert not hasattr(Dump, "feed")


@pytest.mark.parametrize("name", [p[:-4] for p in PYX])
def test_no_public_callable_takes_a_callback_address(name):
    """Of the compiled objects themselves: no parameter named like a C callback or its data."""
    mod = importlib.import_module(f"_nfct.{name}")
    suspicious = {"callback", "cb", "data_ptr", "address", "addr", "ptr", "pointer"}
    found = []
    for oname, obj in vars(mod).items():
        members = [(oname, obj)]
        if inspect.isclass(obj) and obj.__module__ == mod.__name__:
            members += [(f"{oname}.{k}", v) for k, v in vars(obj).items()]
        for qual, fn in members:
            if not callable(fn) or inspect.isclass(fn):
                continue
            try:
                params = inspect.signature(fn).parameters
            except (TypeError, ValueError):
                continue
            if suspicious & set(params):
                found.append(qual)
    assert not found, f"_nfct.{name}: {found}"
