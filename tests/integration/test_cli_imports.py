"""What a pynfct start imports.

The command line's start is part of every kernel-filtered listing's time (a filtered -L of a million
entries takes under half a second), so the modules on its path keep typing, dataclasses (with inspect,
ast, ...) and socket.py out: typing is imported only for type checkers, the option table uses
pynfct.record, and the argument parser the C _socket module.
"""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ("typing", "dataclasses", "inspect", "socket")

# Run the CLI's main() in the test namespace, then report which of HEAVY it imported.
CHILD = (
    "import sys\n"
    "from pynfct.cli.main import main\n"
    "rc = main(sys.argv[1:])\n"
    f"sys.stderr.write('\\nIMPORTED:' + ' '.join(m for m in {HEAVY!r} if m in sys.modules) + '\\n')\n"
    "sys.exit(rc)\n"
)


@pytest.mark.parametrize("argv, status", [
    (["-L"], 0),
    (["-L", "-p", "udp", "-o", "extended"], 0),
    (["-L", "-w", "2", "-o", "json"], 0),
    (["-C"], 0),
    (["-S"], 0),
    (["-D", "-p", "tcp"], 1),          # nothing to delete: conntrack's exit status 1
    (["-I", "-p", "tcp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1", "--dport", "2",
      "--state", "ESTABLISHED", "-t", "60"], 0),
    (["-R", "-"], 0),
])
def test_cli_start_leaves_heavy_modules_out(netns, argv, status):
    r = netns.run([sys.executable, "-c", CHILD, *argv], cwd=REPO, env={**os.environ, "PYTHONPATH": REPO},
                  input=b"")
    assert r.returncode == status, r.stderr
    imported = r.stderr.decode().rsplit("IMPORTED:", 1)[1].split()
    assert imported == [], f"pynfct {' '.join(argv)} imported {imported}"
