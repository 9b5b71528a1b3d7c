"""The bench's own checks, without root: its output normalisation and the README's generated figures.

- bench/canon.py blanks the timeouts of conntrack's formats and nothing else, so a bench run whose output
  differs anywhere else from conntrack's is reported as different;
- the README's speed figures are what bench/readme.py writes from the saved reports (bench/*.json), not
  figures edited by hand.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
# A copy of tests/ run against an installed wheel (CI's root-free stage) has no bench/ beside it; the whole
# suite in the checkout (CI's root stage) runs these.
needs_tree = pytest.mark.skipif(not os.path.isfile(os.path.join(BENCH, "readme.py")),
                                reason="reads bench/ and README.md beside tests/")


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module     # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


LINE = ("tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=172.16.0.2 sport=40000 dport=443 src=172.16.0.2 "
        "dst=10.0.0.1 sport=443 dport=40000 [ASSURED] mark=7 zone=2 use=1\n")


@needs_tree
@pytest.mark.parametrize("a, b", [
    (LINE, LINE.replace("431999", "5")),                                             # default
    ("ipv4     2 " + LINE, "ipv4     2 " + LINE.replace("431999", "431998")),     # extended
    ("    [NEW] " + LINE, "    [NEW] " + LINE.replace("431999", "120")),         # -E
    ("<flow><meta direction=\"independent\"><timeout>599</timeout><mark>0</mark></meta></flow>\n",
     "<flow><meta direction=\"independent\"><timeout>1</timeout><mark>0</mark></meta></flow>\n"),
    (LINE + "udp      17 30 src=10.0.0.3\n", "udp      17 29 src=10.0.0.3\n" + LINE),  # order: sorted
])
def test_digest_ignores_timeouts_and_order(a, b):
    canon = _module("canon")
    assert canon.digest([a.encode()])[0] == canon.digest([b.encode()])[0]
    # the same output cut into chunks anywhere
    data = a.encode()
    assert canon.digest([data[:7], data[7:30], data[30:]]) == canon.digest([data])


@needs_tree
@pytest.mark.parametrize("b", [
    LINE.replace("mark=7", "mark=6"),
    LINE.replace("use=1", "use=2"),
    LINE.replace("sport=40000", "sport=40001", 1),
    LINE.replace("ESTABLISHED", "TIME_WAIT"),
    LINE.replace("6 431999", "6 431999 "),       # a space more
    LINE + LINE,                                  # a line twice
    LINE.rstrip("\n"),                            # no final newline
])
def test_digest_sees_everything_else(b):
    canon = _module("canon")
    assert canon.digest([LINE.encode()])[0] != canon.digest([b.encode()])[0]


@needs_tree
def test_readme_figures_come_from_the_reports():
    """The block between the README's bench markers is exactly what bench/readme.py writes from bench/*.json
    (after `bench/run-all`, commit README.md with the reports)."""
    readme = _module("readme")
    with open(readme.README) as f:
        text = f.read()
    assert readme.BEGIN in text and readme.END in text
    assert readme.rewritten(text) == text, "README.md's bench block differs from bench/*.json: run bench/readme.py"


def _api_lines(flows):
    """What compare.py's API child writes for these flows (pynfct replaced by a stand-in dumping them)."""
    import contextlib
    import io
    import types
    fake = types.ModuleType("pynfct")
    fake.Conntrack = lambda: types.SimpleNamespace(dump=lambda: iter(flows))
    out = io.StringIO()
    saved = sys.modules.get("pynfct")
    sys.modules["pynfct"] = fake
    try:
        with contextlib.redirect_stdout(out):
            exec(_module("compare").API_CHILD, {"__name__": "api_child"})
    finally:
        if saved is None:
            del sys.modules["pynfct"]
        else:
            sys.modules["pynfct"] = saved
    return out.getvalue()


def _flow(i, mark):
    import types
    return types.SimpleNamespace(orig=types.SimpleNamespace(src=f"10.0.{i >> 8}.{i & 255}", dport=443), mark=mark)


@needs_tree
@pytest.mark.parametrize("change", [None, "mark", "one fewer"])
def test_api_row_digest_is_conntrack_lines_fields(change):
    """The Python API row's output (the fields its loop reads, one line per flow, written in blocks) has the
    digest API_REFERENCE gives conntrack -L's lines of the same flows, and not when one value differs."""
    import subprocess
    compare, canon = _module("compare"), _module("canon")
    n = 5000          # more than one block of lines
    listing = "".join(LINE.replace("src=10.0.0.1", f"src=10.0.{i >> 8}.{i & 255}", 1).replace("mark=7", f"mark={i % 3}")
                      for i in range(n))
    ref = subprocess.run([sys.executable, "-c", compare.API_REFERENCE], input=listing.encode(),
                         capture_output=True, check=True).stdout
    flows = [_flow(i, i % 3) for i in range(n)]
    if change == "mark":
        flows[4321] = _flow(4321, 5)
    elif change == "one fewer":
        flows.pop()
    got = canon.digest([_api_lines(flows).encode()])
    want = canon.digest([ref])
    assert (got == want) == (change is None), (got, want)
    assert want[1] == n


@needs_tree
def test_api_row_check_fails_when_one_run_differs():
    compare = _module("compare")

    def run(sha):
        return compare.Run(True, 1.0, 0.5, 0.5, 1000, 0, "", sha, 10, 100)
    row = compare.Row("Python API", [], 1.0, kind="api")
    row.warm_py, row.py = run("a" * 64), [run("a" * 64), run("a" * 64)]
    ok, text = compare.output_check(row, run("a" * 64))
    assert ok and text.startswith("3 of 3 runs equal")
    row.py.append(run("b" * 64))
    ok, text = compare.output_check(row, run("a" * 64))
    assert not ok and "1 of 4 runs DIFFER" in text
