"""Differential testing: run ``conntrack`` and pynfct with the same arguments on the same kernel table.

::

    ct, py = run_both(ns, ["-L", "-o", "extended"])
    assert_same(ct, py)

:func:`assert_same` compares the exit status, stdout and stderr.  It normalises only what really differs
between two programs reading the same table one after the other:

* the program prefix on stderr/stdout: ``conntrack v1.4.7 (conntrack-tools)`` and
  ``pynfct v<version> (conntrack-tools compatible)`` both become ``<PROG>``, and conntrack's
  "Try `conntrack -h' or 'conntrack --help'" and pynfct's equivalent become the same text;
* timeouts, which tick between the two reads: the timeout column of the default (3rd field) and extended
  (5th field) formats, expectation lines, ``<timeout>N</timeout>`` in XML, ``-t N`` in ``-o save`` lines --
  they may differ by at most ``timeout_slack`` seconds (2), they are not blanked;
* ``delta-time=N`` / ``<deltatime>N</deltatime>`` (timestamps on): same slack;
* ``packets=``/``bytes=`` counters only with ``counters_may_grow=True`` (for tables with live traffic; the
  fills of :mod:`fill` leave no traffic running, so the default is exact).

Lines are compared in order: conntrack -L prints in the kernel's dump order and pynfct issues the same dump.
"""
from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

try:
    from .netns import NetNS
except ImportError:
    from netns import NetNS  # type: ignore

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYNFCT_ENV = "PYNFCT"


def pynfct_argv() -> List[str]:
    """argv prefix that runs the pynfct CLI.

    ``$PYNFCT`` if set (a path; if it is not an existing file it is split like a shell command line, so
    ``PYNFCT="python3 -m pynfct"`` works too), else ``pynfct`` on PATH, else ``[sys.executable, "-m", "pynfct"]``
    (run with this checkout on PYTHONPATH).
    """
    env = os.environ.get(PYNFCT_ENV)
    if env:
        return [os.path.abspath(env)] if os.path.exists(env) else shlex.split(env)
    found = shutil.which("pynfct")
    if found:
        return [found]
    return [sys.executable, "-m", "pynfct"]


def _pynfct_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@dataclass
class Result:
    argv: List[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="surrogateescape")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="surrogateescape")


def run(ns: NetNS, argv: Sequence[str], input=None, timeout: float = 120, env=None) -> Result:
    r = ns.run(list(argv), input=input, timeout=timeout, env=env)
    return Result(list(argv), r.returncode, r.stdout, r.stderr)


def run_both(ns: NetNS, args: Sequence[str], input=None, pynfct: Optional[Sequence[str]] = None,
             conntrack: Sequence[str] = ("conntrack",), timeout: float = 120,
             pynfct_first: bool = False) -> Tuple[Result, Result]:
    """Run ``conntrack *args`` then pynfct ``*args`` in ``ns`` (back to back); returns ``(ct, py)``.

    ``pynfct`` is the argv prefix (default :func:`pynfct_argv`); ``input`` goes to both stdins.
    """
    args = [os.fsdecode(a) for a in args]
    py_prefix = list(pynfct) if pynfct is not None else pynfct_argv()
    ct_call = lambda: run(ns, [*conntrack, *args], input=input, timeout=timeout)  # noqa: E731
    py_call = lambda: run(ns, [*py_prefix, *args], input=input, timeout=timeout, env=_pynfct_env())  # noqa: E731
    if pynfct_first:
        py = py_call()
        return ct_call(), py
    ct = ct_call()
    return ct, py_call()


# --------------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------------

_PROG_RES = [
    (re.compile(r"conntrack v\d+(?:\.\d+)+ \(conntrack-tools\)"), "<PROG>"),
    (re.compile(r"pynfct v[0-9A-Za-z.+_-]+ \(conntrack-tools compatible\)"), "<PROG>"),
    (re.compile(r"Try `(?:conntrack|pynfct) -h' or '(?:conntrack|pynfct) --help'"), "Try `<PROG> -h' or '<PROG> --help'"),
]


def normalize_prog(text: str) -> str:
    """Replace conntrack's / pynfct's program prefix and help hint with ``<PROG>``."""
    for rx, rep in _PROG_RES:
        text = rx.sub(rep, text)
    return text


_EV = r"\s*(?:\[\w+\]\s+)?"  # optional event tag: "    [NEW] "
# (kind, regex with group 1 = text before the number, group 2 = the number)
_TOLERANT = [
    ("timeout", re.compile(r"^(" + _EV + r"ipv[46]\s+\d+\s+\S+\s+\d+\s+)(\d+)(?=\s)")),   # extended, 5th
    ("timeout", re.compile(r"^(" + _EV + r"[a-z][a-z0-9-]*\s+\d+\s+)(\d+)(?=\s)")),       # default, 3rd
    ("timeout", re.compile(r"^(" + _EV + r")(\d+)(?=\s+proto=)")),                       # expectations
    ("timeout", re.compile(r"(<timeout>)(\d+)(?=</timeout>)")),                           # xml
    ("timeout", re.compile(r"^(-[AIU] -t )(\d+)(?=\s|$)")),                              # -o save
    ("delta", re.compile(r"((?<![\w-])delta-time=)(\d+)")),
    ("delta", re.compile(r"(<deltatime>)(\d+)(?=</deltatime>)")),
    ("counter", re.compile(r"((?<![\w-])(?:packets|bytes)=)(\d+)")),
    ("counter", re.compile(r"(<(?:packets|bytes)>)(\d+)(?=</(?:packets|bytes)>)")),
]


def split_line(line: str, kinds=("timeout", "delta", "counter")) -> Tuple[str, List[Tuple[str, int]]]:
    """``(skeleton, [(kind, value), ...])``: the line with its tolerant numbers replaced by ``{kind}``."""
    spans = []
    for kind, rx in _TOLERANT:
        if kind not in kinds:
            continue
        for m in rx.finditer(line):
            s, e = m.span(2)
            if any(s < e2 and s2 < e for s2, e2, _ in spans):
                continue  # the first (more specific) pattern wins
            spans.append((s, e, kind))
    spans.sort()
    out, vals, pos = [], [], 0
    for s, e, kind in spans:
        out.append(line[pos:s])
        out.append("{" + kind + "}")
        vals.append((kind, int(line[s:e])))
        pos = e
    out.append(line[pos:])
    return "".join(out), vals


def _line_problem(a: str, b: str, timeout_slack: int, counters_may_grow: bool) -> Optional[str]:
    """None when line ``a`` (conntrack) and ``b`` (pynfct) agree, else why not."""
    if a == b:
        return None
    kinds = ("timeout", "delta", "counter") if counters_may_grow else ("timeout", "delta")
    sa, va = split_line(a, kinds)
    sb, vb = split_line(b, kinds)
    if sa != sb or len(va) != len(vb):
        return "lines differ"
    for (kind, x), (_, y) in zip(va, vb):
        if kind in ("timeout", "delta") and abs(x - y) > timeout_slack:
            return f"{kind} {x} vs {y} differs by more than {timeout_slack}"
        if kind == "counter" and y < x:
            return f"counter went down: {x} -> {y}"
    return None


def compare(ct: Result, py: Result, normalize: Optional[Callable[[str], str]] = None, timeout_slack: int = 2,
            counters_may_grow: bool = False, ordered: bool = True, check_stderr: bool = True,
            pynfct_first: bool = False) -> List[str]:
    """Problems found comparing ``ct`` and ``py`` (empty list: they agree).  See :func:`assert_same`."""
    problems = []
    if ct.returncode != py.returncode:
        problems.append(f"exit status: conntrack {ct.returncode}, pynfct {py.returncode}")

    def norm(text: str) -> str:
        text = normalize_prog(text)
        return normalize(text) if normalize else text

    a_out, b_out = norm(ct.out), norm(py.out)
    if a_out != b_out:
        # counters can only grow from the first read to the second
        first, second = (b_out, a_out) if pynfct_first else (a_out, b_out)
        la, lb = first.split("\n"), second.split("\n")
        if not ordered:
            la, lb = _pair_unordered(la, lb, timeout_slack, counters_may_grow)
        if len(la) != len(lb):
            problems.append(f"stdout: {len(la)} vs {len(lb)} lines\n" + _diff(a_out, b_out))
        else:
            for i, (x, y) in enumerate(zip(la, lb)):
                why = _line_problem(x, y, timeout_slack, counters_may_grow)
                if why:
                    if pynfct_first:
                        x, y = y, x
                    problems.append(f"stdout line {i + 1}: {why}\n  conntrack: {x}\n  pynfct:    {y}\n"
                                    + _diff(a_out, b_out))
                    break
    if check_stderr:
        a_err, b_err = norm(ct.err), norm(py.err)
        if a_err != b_err:
            problems.append("stderr differs\n" + _diff(a_err, b_err))
    return problems


def assert_same(ct: Result, py: Result, normalize: Optional[Callable[[str], str]] = None, timeout_slack: int = 2,
                counters_may_grow: bool = False, ordered: bool = True, check_stderr: bool = True,
                pynfct_first: bool = False) -> None:
    """Assert that conntrack's and pynfct's results agree.

    * exit status equal;
    * stdout equal line by line (in order unless ``ordered=False``), except timeouts / delta-time within
      ``timeout_slack`` seconds and, with ``counters_may_grow``, packets/bytes that did not go down from the
      first run to the second (``pynfct_first`` tells which ran first; run_both runs conntrack first);
    * stderr equal after the program prefix is normalised (unless ``check_stderr=False``).

    ``normalize(text) -> text`` is applied to stdout and stderr of both, for test-specific differences.
    """
    problems = compare(ct, py, normalize=normalize, timeout_slack=timeout_slack,
                       counters_may_grow=counters_may_grow, ordered=ordered, check_stderr=check_stderr,
                       pynfct_first=pynfct_first)
    if problems:
        head = f"conntrack {_show(ct.argv)} vs pynfct {_show(py.argv)}"
        raise AssertionError(head + "\n" + "\n".join(problems))


def _pair_unordered(la: List[str], lb: List[str], slack: int, grow: bool) -> Tuple[List[str], List[str]]:
    """Reorder both sides so that matching lines face each other (order-insensitive comparison)."""
    kinds = ("timeout", "delta", "counter") if grow else ("timeout", "delta")
    key = lambda s: split_line(s, kinds)[0]  # noqa: E731
    rest = list(lb)
    pa, pb, left = [], [], []
    for x in la:
        for j, y in enumerate(rest):
            if _line_problem(x, y, slack, grow) is None:
                pa.append(x)
                pb.append(rest.pop(j))
                break
        else:
            left.append(x)
    return pa + sorted(left, key=key), pb + sorted(rest, key=key)


def _diff(a: str, b: str, limit: int = 60) -> str:
    d = list(difflib.unified_diff(a.split("\n"), b.split("\n"), "conntrack", "pynfct", lineterm="", n=1))
    if len(d) > limit:
        d = d[:limit] + [f"... ({len(d) - limit} more diff lines)"]
    return "\n".join(d)


def _show(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(os.fsdecode(a)) for a in argv)
