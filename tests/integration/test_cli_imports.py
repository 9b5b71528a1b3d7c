"""What a pynfct call imports.

Programs call conntrack once per item (kube-proxy deletes per endpoint, the kernel selftest inserts
2,000 entries with 2,000 calls), so every module a command imports is paid on every call. These tests
run bin/pynfct (the file pip installs as the `pynfct` script) under ``-X importtime``, which lists every
module the process imports, and fail on a heavy one the command imported beyond what the interpreter
itself loads (``python -c pass`` with the same interpreter and flags, in the same environment):

* ``re``, ``enum`` (the option tables and constants are plain ints: pynfct._ints), ``typing`` (imported
  only for type checkers), ``dataclasses`` and ``inspect`` (pynfct.record stands in), ``ipaddress``,
  ``socket`` (the C ``_socket`` at most), ``json``, ``asyncio``; for the per-call commands (-C, -I, -G,
  -D) also ``collections`` and ``threading``;
* the library's typed model (pynfct.values, match, builder, ... every module of pynfct outside
  pynfct.cli but the few a command needs: see CLI_CORE), which imports those.

Each command runs twice: as installed (site on; an editable install's import hook may bring re and
enum with it, which the baseline then holds too) and with ``-S`` (no site: nothing but the interpreter
in the baseline, so the check is strict whatever the environment).
"""
import os
import sys
from typing import Dict, List, Optional, Sequence, Set, Tuple

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "bin", "pynfct")
HEAVY = ("re", "enum", "typing", "dataclasses", "inspect", "ipaddress", "socket", "json", "asyncio")
PER_CALL_HEAVY = HEAVY + ("collections", "threading")
# pynfct's own modules outside pynfct.cli that a command may import; any other (the typed model) fails.
CLI_CORE = {"pynfct", "pynfct.record", "pynfct.template", "pynfct._ints", "pynfct.errors"}
MODES = {"site": (), "no site (-S)": ("-S",)}

ONE = ["-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "40000", "--dport", "53"]
#: the per-call commands, in this order on one table: count, create, get, delete
PER_CALL = [
    (["-C"], 0),
    (["-I", *ONE, "-t", "600"], 0),
    (["-G", *ONE], 0),
    (["-D", *ONE], 0),
]
OTHER = [
    (["-L"], 0),
    (["-L", "-p", "udp", "-o", "extended"], 0),
    (["-L", "-w", "2", "-o", "json"], 0),
    (["-S"], 0),
    (["-D", "--orig-dst", "10.0.0.9", "-p", "udp"], 1),     # kube-proxy's call; nothing to delete
    (["-D", "-f", "ipv4", "-d", "10.0.0.9", "-w", "7"], 1),  # Neutron's
    (["-U", "-p", "tcp", "-m", "1"], 1),
    (["-I", "-p", "tcp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1", "--dport", "2",
      "--state", "ESTABLISHED", "-t", "60"], 0),
    (["-R", "FILE"], 0),       # a file of -I lines (tmp_path)
]

_baselines: Dict[str, Set[str]] = {}


class Imports:
    """The modules one process imported, from its -X importtime lines, with who imported each."""

    def __init__(self, stderr: str):
        self.rest: List[str] = []                # stderr without the importtime lines
        self.order: List[Tuple[int, str]] = []   # (depth, module), in the order printed
        for line in stderr.splitlines():
            if not line.startswith("import time:"):
                self.rest.append(line)
                continue
            name = line.rsplit("|", 1)[1]
            if name.strip() == "imported package":
                continue
            stripped = name.lstrip(" ")
            self.order.append(((len(name) - len(stripped) - 1) // 2, stripped.strip()))
        self.modules = {m for _, m in self.order}

    def importer(self, module: str) -> str:
        """Who imported `module` first: a child's line comes before its parent's."""
        for i, (depth, name) in enumerate(self.order):
            if name == module:
                for d, parent in self.order[i + 1:]:
                    if d < depth:
                        return parent
                return "the script itself"
        return "?"


def run(ns, flags: Sequence[str], argv: Sequence[str], input: Optional[bytes] = None):
    return ns.run([sys.executable, *flags, "-X", "importtime", *argv], cwd="/", input=input,
                  env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def baseline(ns, mode: str) -> Set[str]:
    """What `python -c pass` imports with the same interpreter and flags."""
    if mode not in _baselines:
        r = run(ns, MODES[mode], ["-c", "pass"])
        assert r.returncode == 0, r.stderr
        _baselines[mode] = Imports(r.stderr.decode()).modules
    return _baselines[mode]


def heavy_imports(ns, mode: str, argv: Sequence[str], status: int, heavy: Sequence[str] = HEAVY,
                  input: bytes = b"") -> List[str]:
    """Run pynfct ARGV; the problems with what it imported (or with its exit status)."""
    r = run(ns, MODES[mode], [SCRIPT, *argv], input=input)
    imports = Imports(r.stderr.decode(errors="replace"))
    what = f"pynfct {' '.join(argv)} ({mode})"
    if r.returncode != status:
        return [f"{what} exited {r.returncode}, not {status}: " + "\n".join(imports.rest)]
    assert "pynfct.cli.main" in imports.modules, f"{what}: no importtime lines?\n{r.stderr.decode()}"
    extra = imports.modules - baseline(ns, mode)
    problems = [f"{what} imported {m} (from {imports.importer(m)})" for m in heavy if m in extra]
    problems += [f"{what} imported the library's {m} (from {imports.importer(m)})"
                 for m in sorted(extra) if m.startswith("pynfct.") and not m.startswith("pynfct.cli")
                 and m not in CLI_CORE]
    return problems


@pytest.mark.parametrize("mode", list(MODES))
def test_per_call_commands_import_nothing_heavy(netns, mode):
    """-C, -I (one entry), -G and -D (one entry), run one after the other on one table."""
    problems: List[str] = []
    for argv, status in PER_CALL:
        problems += heavy_imports(netns, mode, argv, status, PER_CALL_HEAVY)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("argv, status", OTHER, ids=[" ".join(a) for a, _ in OTHER])
def test_other_commands_import_nothing_heavy(netns, tmp_path, argv, status):
    if "FILE" in argv:
        path = tmp_path / "load.txt"
        path.write_text("-I -p udp -s 10.0.0.1 -d 10.0.0.2 --sport 1 --dport 2 -t 60\n")
        argv = [str(path) if a == "FILE" else a for a in argv]
    problems = heavy_imports(netns, "no site (-S)", argv, status)
    assert not problems, "\n".join(problems)


def test_check_sees_a_heavy_import(netns):
    """The check itself: a module imported by the process shows up with its importer."""
    r = run(netns, ("-S",), ["-c", "import json"])
    imports = Imports(r.stderr.decode())
    assert "json" in imports.modules - baseline(netns, "no site (-S)")
    assert imports.importer("json.decoder") == "json"
    assert imports.importer("json") == "the script itself"
