"""``mypy --strict`` over the command line (pynfct.cli) and pynfct.record; skipped without mypy.

Only errors reported in those files count here: mypy also follows their imports into the rest of
pynfct and the _nfct stubs, which are checked on their own.
"""
import os
import subprocess
import sys

import pytest

pytest.importorskip("mypy")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECKED = ("pynfct/cli", "pynfct/record.py")


def test_cli_and_record_pass_mypy_strict():
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", *CHECKED], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    errors = [line for line in r.stdout.splitlines() if line.startswith(CHECKED) and ": error:" in line]
    assert r.returncode in (0, 1) and ("Success:" in r.stdout or "Found " in r.stdout), r.stdout
    assert errors == [], "\n".join(errors)


def test_record_fields_are_what_a_type_checker_sees():
    # Record is a dataclass_transform base for checkers; at run time Factory still builds the
    # per-instance default and the decorator leaves the class as it is.
    from pynfct.cli.load import LoadResult
    from pynfct.record import Factory, Record, _Factory
    assert isinstance(Factory(list), _Factory)
    a, b = LoadResult(), LoadResult()
    assert a.failures == [] and a.failures is not b.failures
    assert Record.__name__ == "Record" and "__dataclass_fields__" not in vars(LoadResult)
