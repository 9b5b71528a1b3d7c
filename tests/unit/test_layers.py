"""Imports point one way: C declarations (.pxd) <- Cython (_nfct) <- typed model (pynfct.template, ...)
<- library (pynfct) <- command line (pynfct.cli).

Every import of every module is read from the source, not from a running interpreter: with ast for .py
and .pyi files (imports inside functions and under TYPE_CHECKING too), and line by line for .pyx and
.pxd files (``import x``, ``from x import``, ``from x cimport``, ``cimport x``). A back edge is

* ``_nfct`` -> ``pynfct`` (any of it);
* the library (``pynfct`` outside ``pynfct.cli``; ``pynfct/__main__.py`` is the command line's entry)
  -> ``pynfct.cli``;
* ``_nfct`` or ``pynfct`` -> the test suite or the benchmarks.

Each test lists every back edge it finds, with file and line.
"""
from __future__ import annotations

import ast
import os
import re
from typing import Iterator, List, NamedTuple, Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("_nfct", "pynfct")
# The tests of the real tree read the sources beside tests/; a copy of tests/ run against an installed wheel
# (CI's root-free stage) has none, and the whole suite in the checkout (CI's root stage) runs them.
needs_tree = pytest.mark.skipif(not all(os.path.isdir(os.path.join(ROOT, p)) for p in PACKAGES),
                                reason="reads the source tree beside tests/")
SOURCE_EXTS = (".py", ".pyi", ".pyx", ".pxd")
CLI_ENTRY = "pynfct/__main__.py"

# The lead engineer's files on main, which still import pynfct.cli here; the test for them passes once
# that work is merged (then they join test_library_does_not_import_cli).


class Edge(NamedTuple):
    path: str       # relative to the checkout, with /
    line: int
    importer: str   # dotted module name of the file
    imported: str   # dotted module name as imported (relative imports resolved)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} -> {self.imported}"


def module_name(path: str) -> str:
    """The dotted module of a source file: pynfct/cli/parse.py -> pynfct.cli.parse."""
    stem = os.path.splitext(path)[0].replace(os.sep, "/")
    parts = stem.split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(importer: str, is_package: bool, level: int, module: Optional[str]) -> str:
    """The absolute name of `from <level dots><module> import ...` written in `importer`."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def python_imports(source: str, importer: str, is_package: bool) -> Iterator[tuple]:
    """(line, module) of every import in Python source, wherever it stands in the tree."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(importer, is_package, node.level, node.module)
            yield node.lineno, base
            # `from pynfct import cli` imports the submodule pynfct.cli
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}" if base else alias.name


_CY_FROM = re.compile(r"^\s*from\s+(\.*)([\w.]*)\s+c?import\s+\(?\s*([\w\s,.*]*)")
_CY_IMPORT = re.compile(r"^\s*c?import\s+([\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*)")


def cython_imports(source: str, importer: str, is_package: bool) -> Iterator[tuple]:
    """(line, module) of every import/cimport line of a .pyx or .pxd file."""
    for lineno, line in enumerate(source.splitlines(), 1):
        m = _CY_FROM.match(line)
        if m:
            base = _resolve(importer, is_package, len(m.group(1)), m.group(2) or None)
            yield lineno, base
            for name in re.split(r"[\s,]+", m.group(3)):
                name = name.split(" as ")[0].strip()
                if name and name != "*" and re.fullmatch(r"\w+", name):
                    yield lineno, f"{base}.{name}"
            continue
        m = _CY_IMPORT.match(line)
        if m:
            for part in m.group(1).split(","):
                yield lineno, part.split(" as ")[0].strip()


def imports_of(path: str) -> List[Edge]:
    rel = os.path.relpath(path, ROOT).replace(os.sep, "/")
    importer = module_name(rel)
    is_package = os.path.basename(path).startswith("__init__.")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    walk = python_imports if path.endswith((".py", ".pyi")) else cython_imports
    return [Edge(rel, line, importer, mod) for line, mod in walk(source, importer, is_package)]


def source_files() -> List[str]:
    found = []
    for pkg in PACKAGES:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, pkg)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            found += [os.path.join(dirpath, f) for f in filenames if f.endswith(SOURCE_EXTS)]
    return sorted(found)


def all_edges() -> List[Edge]:
    return [e for path in source_files() for e in imports_of(path)]


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def support_names() -> List[str]:
    """Top-level names under which the test suite's and the benchmarks' modules import."""
    names = {"tests", "bench"}
    for d in ("tests", "bench"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, d)):
            dirnames[:] = [x for x in dirnames if x != "__pycache__"]
            names.update(os.path.splitext(f)[0] for f in filenames if f.endswith(".py"))
            names.update(dirnames)
    return sorted(names - {"__init__"})



def report(edges: List[Edge], rule: str) -> str:
    """One line per offending import statement (`from a.b import c` also yields a.b.c: report a.b)."""
    first = {}
    for e in edges:
        first.setdefault((e.path, e.line), e)
    return f"{len(first)} back edge(s), {rule}:\n" + "\n".join(f"  {e}" for e in first.values())


# --- the walker itself -----------------------------------------------------------------------------------

def test_walker_sees_every_kind_of_import(tmp_path):
    py = ("import os, pynfct.cli.parse as p\n"
          "from . import cli\n"
          "from ..x import y\n"
          "TYPE_CHECKING = False\n"
          "if TYPE_CHECKING:\n"
          "    from pynfct.template import Command\n"
          "def f():\n"
          "    from .cli.errors import UsageError\n"
          "class C:\n"
          "    def m(self):\n"
          "        import netns\n")
    got = {m for _, m in python_imports(py, "pynfct.conntrack", False)}
    assert {"os", "pynfct.cli.parse", "pynfct", "pynfct.cli", "x.y", "pynfct.template",
            "pynfct.cli.errors", "pynfct.cli.errors.UsageError", "netns"} <= got
    assert {m for _, m in python_imports("from . import a", "pynfct", True)} == {"pynfct", "pynfct.a"}
    pyx = ("# cython: language_level=3\n"
           "from libc.stdint cimport uint8_t\n"
           "from _nfct.constants cimport (O_MARK,\n"
           "                              O_ZONE)\n"
           "cimport _nfct.libnfct as lib\n"
           "import os, json\n"
           "    from pynfct.status import Status\n"
           "from .sibling cimport thing\n"
           '"""a docstring line about the parser (pynfct.cli.parse)"""\n')
    got = [(n, m) for n, m in cython_imports(pyx, "_nfct.flow", False)]
    mods = {m for _, m in got}
    assert {"libc.stdint", "_nfct.constants", "_nfct.constants.O_MARK", "_nfct.libnfct", "os", "json",
            "pynfct.status", "_nfct.sibling"} <= mods
    assert not any("cli" in m for m in mods)
    assert (7, "pynfct.status") in got


@needs_tree
def test_walker_reads_the_real_tree():
    edges = all_edges()
    files = {e.path for e in edges}
    assert {"_nfct/filter.pyx", "_nfct/dump.pxd", "_nfct/events.pyi", "pynfct/cli/main.py",
            "pynfct/template.py"} <= files
    # a known forward edge of each kind is seen, so an empty result below means something
    assert any(e.importer == "pynfct.cli.main" and within(e.imported, "pynfct.template") for e in edges)
    assert any(e.path == "_nfct/modify.pyx" and e.imported == "_nfct.dump" for e in edges)
    assert any(e.path == "pynfct/template.py" and e.imported == "_nfct.constants" for e in edges)


# --- the layers ------------------------------------------------------------------------------------------

@needs_tree
def test_nfct_imports_nothing_from_pynfct():
    bad = [e for e in all_edges() if within(e.importer, "_nfct") and within(e.imported, "pynfct")]
    assert not bad, report(bad, "_nfct -> pynfct")


def library_cli_edges() -> List[Edge]:
    return [e for e in all_edges()
            if within(e.importer, "pynfct") and not within(e.importer, "pynfct.cli")
            and e.path != CLI_ENTRY and within(e.imported, "pynfct.cli")]


@needs_tree
def test_library_does_not_import_cli():
    bad = library_cli_edges()
    assert not bad, report(bad, "library -> pynfct.cli")


@needs_tree
def test_nothing_imports_tests_or_bench():
    names = support_names()
    bad = [e for e in all_edges() if any(within(e.imported, n) for n in names)]
    assert not bad, report(bad, f"_nfct/pynfct -> tests/bench (names: {', '.join(names)})")
