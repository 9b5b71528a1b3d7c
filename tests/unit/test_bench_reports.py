"""The bench's own checks, without root: its output normalisation and the README's generated figures.

- bench/canon.py blanks the timeouts of conntrack's formats and nothing else, so a bench run whose output
  differs anywhere else from conntrack's is reported as different;
- the README's speed figures are what bench/readme.py writes from the saved reports (bench/*.json), not
  figures edited by hand.
"""
from __future__ import annotations

import importlib.util
import os

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
