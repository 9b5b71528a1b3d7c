"""Python-visible entry points of the extension cannot crash or hang the process: every class of _nfct
that Python can make with cls.__new__(cls) (skipping __init__, so its C state is empty) answers every
method that takes no argument with a Python exception or a value. Each call runs in its own process,
so a crash (a signal) or a hang (the timeout) is seen as such."""
import importlib
import os
import subprocess
import sys

import pytest

import _nfct

# the extension modules of the _nfct that is imported (a checkout's build or an installed wheel)
MODULES = sorted({m.split(".", 1)[0] for m in os.listdir(os.path.dirname(os.path.abspath(_nfct.__file__)))
                  if m.endswith(".so")})
DUNDERS = ("__iter__", "__next__", "__str__", "__repr__", "__len__", "__hash__", "__enter__", "__exit__",
           "__reduce__", "__eq__", "__bool__")

CHILD = r"""
import importlib, sys
mod = importlib.import_module("_nfct." + sys.argv[1])
cls = getattr(mod, sys.argv[2])
obj = cls.__new__(cls)
for attr in sys.argv[3:]:
    try:
        v = getattr(obj, attr)
        if callable(v):
            v(obj) if attr == "__eq__" else v()
    except BaseException:
        pass
print("survived")
"""


def _classes():
    out = []
    for name in MODULES:
        mod = importlib.import_module("_nfct." + name)
        for cname, cls in sorted(vars(mod).items()):
            if isinstance(cls, type) and cls.__module__ == mod.__name__ and not issubclass(cls, BaseException):
                out.append((name, cname, cls))
    return out


@pytest.mark.parametrize("module,name,cls", _classes(), ids=lambda v: v if isinstance(v, str) else "")
def test_an_empty_object_raises_instead_of_crashing(module, name, cls):
    try:
        cls.__new__(cls)
    except (TypeError, OSError):
        return      # only _nfct may make it (Flow, Tuple), or it needs what it reads (LabelMap): nothing to call
    attrs = [a for a in dir(cls) if not a.startswith("__") or a in DUNDERS]
    r = subprocess.run([sys.executable, "-c", CHILD, module, name, *attrs], capture_output=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == b"survived", (r.returncode, r.stderr.decode()[-2000:])
