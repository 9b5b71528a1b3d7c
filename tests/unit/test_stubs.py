"""The .pyi stubs of _nfct match the compiled modules (mypy's stubtest), and the typed model satisfies the
protocol the stubs describe commands with.

mypy is in the `test` extra (pip install -e '.[test]'); without it these tests fail rather than skip.
"""
import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
ALLOWLIST = os.path.join(HERE, "stubtest-allowlist.txt")


def _mypy(*args):
    assert importlib.util.find_spec("mypy") is not None, \
        "mypy is not installed: pip install -e '.[test]' (it is in the test extra)"
    env = dict(os.environ)
    spec = importlib.util.find_spec("_nfct")
    assert spec is not None and spec.origin is not None, "_nfct is not importable"
    if os.path.samefile(os.path.dirname(os.path.dirname(spec.origin)), ROOT):
        # _nfct is this checkout's (built in place or installed editable): mypy must resolve _nfct and
        # pynfct here (an editable install's finder is invisible to it), and stubtest imports the compiled
        # modules built in place.
        cwd = ROOT
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    else:
        # An installed wheel or sdist (these tests run from a copy outside the source tree): both come from
        # site-packages, where the stubs and py.typed were installed with the modules.
        cwd = HERE
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_stubtest_nfct(tmp_path):
    # No cache (stubtest has no --cache-dir): the tests also run as an unprivileged user, from a read-only copy.
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\ncache_dir = {os.devnull}\n")
    r = _mypy("mypy.stubtest", "_nfct", "--allowlist", ALLOWLIST, "--mypy-config-file", str(config))
    assert r.returncode == 0, f"stubtest exited {r.returncode}:\n{r.stdout}\n{r.stderr}"


PROTOCOL_CHECK = """\
from _nfct._types import CommandLike, TemplateLike
from _nfct.filter import Filter
from _nfct.modify import modify
from pynfct.template import Command, Template

command: CommandLike = Command()
template: TemplateLike = Template()
Filter(Command())
modify(-1, Command(), False)
"""

NOT_A_COMMAND = """\
from _nfct._types import CommandLike

class Half:
    command = 0
    options = 0

command: CommandLike = Half()
"""


def _check(program):
    # follow-imports=silent: pynfct's own modules are read for their types, their errors are not reported.
    return _mypy("mypy", "--cache-dir", os.devnull, "--config-file", os.devnull, "--follow-imports=silent",
                 "--no-error-summary", "-c", program)


def test_template_command_satisfies_the_stub_protocol():
    r = _check(PROTOCOL_CHECK)
    assert r.returncode == 0, f"mypy exited {r.returncode}:\n{r.stdout}\n{r.stderr}"


def test_the_protocol_rejects_what_lacks_its_attributes():
    r = _check(NOT_A_COMMAND)
    assert r.returncode == 1 and '"Half"' in r.stdout and "CommandLike" in r.stdout, r.stdout + r.stderr
