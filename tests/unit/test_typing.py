"""Types a checker can use: ``mypy --strict`` passes on the whole pynfct package (and the _nfct stubs it
reads), and rejects every deliberate mistake of tests/typecheck/mistakes.py. mypy is a test dependency:
without it these tests fail, they do not skip."""
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MISTAKES = os.path.join("tests", "typecheck", "mistakes.py")


def _mypy(*args):
    # From REPO: a checkout's pynfct is found there; a copy of tests/ outside any source tree (as CI runs
    # them against an installed wheel) has no pynfct beside it, and mypy checks the installed one.
    # No cache: the tests also run as an unprivileged user, from a read-only copy.
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
                        *args], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert "No module named mypy" not in r.stdout, "mypy is a test dependency (pip install -e '.[test]')"
    return r


def test_the_package_passes_mypy_strict():
    r = _mypy("-p", "pynfct")
    assert r.returncode == 0 and "Success:" in r.stdout, r.stdout


def test_mypy_rejects_each_mistake_and_nothing_else():
    r = _mypy(MISTAKES)
    reported = {}
    for line in r.stdout.splitlines():
        m = re.match(re.escape(MISTAKES) + r":(\d+): error: (.*)", line)
        if m:
            reported.setdefault(int(m.group(1)), []).append(m.group(2))
    with open(os.path.join(REPO, MISTAKES)) as f:
        marked = {i: line.split("# E:", 1)[1].strip() for i, line in enumerate(f, 1) if "# E:" in line}
    assert len(marked) >= 10
    assert sorted(reported) == sorted(marked), r.stdout
    for lineno, fragment in marked.items():
        assert any(fragment in msg for msg in reported[lineno]), (lineno, fragment, reported[lineno])


def test_record_fields_are_what_a_type_checker_sees():
    # Record is a dataclass_transform base for checkers; at run time Factory still builds the
    # per-instance default and the decorator leaves the class as it is.
    from pynfct.cli.load import LoadResult
    from pynfct.record import Factory, Record, _Factory
    assert isinstance(Factory(list), _Factory)
    a, b = LoadResult(), LoadResult()
    assert a.failures == [] and a.failures is not b.failures
    assert Record.__name__ == "Record" and "__dataclass_fields__" not in vars(LoadResult)
