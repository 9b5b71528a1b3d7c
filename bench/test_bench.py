"""pytest-benchmark timings of pynfct against conntrack on a small table (root only).

    sudo /work/venv/bin/python -m pytest bench/test_bench.py            # 5,000 entries
    sudo PYNFCT_BENCH_ENTRIES=50000 /work/venv/bin/python -m pytest bench/test_bench.py
    sudo PYNFCT_BENCH_PYNFCT="/work/main/bin/pynfct" ... (the CLI command; default as in compare.py)

Not part of `pytest tests` (pyproject's testpaths is tests/). The table is built the same way as
by compare.py, in a throwaway `pynfct-bench-<pid>-test` namespace deleted at the end of the module.
Each CLI benchmark is grouped by command so conntrack and pynfct appear side by side; the Python API
is timed in-process (iterating Conntrack(netns).dump()). Peak RSS of the CLI runs is kept in
extra_info. For the full-size comparison and the targets, use bench/compare.py.
"""
import os
import shlex
import sys
import tempfile

import pytest

pytest.importorskip("pytest_benchmark")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, conntrack -I)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

ENTRIES = int(os.environ.get("PYNFCT_BENCH_ENTRIES", "5000"))


def pynfct_command():
    cmd = os.environ.get("PYNFCT_BENCH_PYNFCT")
    return shlex.split(cmd) if cmd else compare.default_pynfct()


@pytest.fixture(scope="module")
def table():
    """(namespace name, TableInfo) of a filled table; the namespace is deleted afterwards."""
    ns = compare.Namespace(f"{compare.NS_PREFIX}{os.getpid()}-test")
    try:
        ns.create()
        ns.ensure_capacity(ENTRIES)
        with tempfile.TemporaryDirectory(prefix="pynfct-bench-") as work:
            info, _, _ = compare.fill_table(ns, ENTRIES, work)
        assert ns.count() == ENTRIES
        yield ns.name, info
    finally:
        ns.close()


CLI_IDS = ["-L", "-L -o xml", "-L -o extended", "-L -s IP", "-L -p udp", "-L -w ZONE", "-L --dport"]


def _args(info, cli_id):
    rows = [row for row in compare.make_rows(info) if row.kind == "cli"]
    return rows[CLI_IDS.index(cli_id)].args


@pytest.mark.parametrize("tool", ["conntrack", "pynfct"])
@pytest.mark.parametrize("cli_id", CLI_IDS)
def test_cli(benchmark, table, tool, cli_id):
    ns, info = table
    args = _args(info, cli_id)
    argv = ["conntrack", *args] if tool == "conntrack" else [*pynfct_command(), *args]
    benchmark.group = f"{cli_id} ({ENTRIES} entries)"
    benchmark.extra_info["command"] = shlex.join(argv)
    runs = []
    benchmark.pedantic(lambda: runs.append(compare.run_in_ns(ns, argv)), rounds=5, iterations=1,
                       warmup_rounds=1)
    bad = [r for r in runs if not r.ok]
    assert not bad, f"{shlex.join(argv)} failed: {compare.first_error(bad)}"
    benchmark.extra_info["peak_rss_kb"] = max(r.rss_kb for r in runs)


@pytest.mark.parametrize("cli_id", CLI_IDS)
def test_same_output(table, cli_id):
    """pynfct prints what conntrack prints for each benchmarked command (sha256 of the lines with the
    timeouts blanked, bench/canon.py)."""
    ns, info = table
    args = _args(info, cli_id)
    ct = compare.run_in_ns(ns, ["conntrack", *args])
    py = compare.run_in_ns(ns, [*pynfct_command(), *args])
    assert ct.ok, ct.stderr
    assert py.ok, compare.first_error([py])
    assert (py.digest, py.lines) == (ct.digest, ct.lines)


def _all_flows(ct):
    """ct.dump(); until the CLI parser exists, the bare -L Command path (as compare.py's API child)."""
    try:
        return ct.dump(), "dump()"
    except ImportError:
        from pynfct.template import Cmd, Command
        return ct.dump_command(Command(command=Cmd.CT_LIST)), "dump_command()"


def _iterate_all(ct, via):
    flows, via[0] = _all_flows(ct)
    n = 0
    for f in flows:
        f.orig.src, f.orig.dport, f.mark
        n += 1
    return n


def test_api_dump(benchmark, table):
    """In-process: iterate the whole table touching three fields per flow."""
    import pynfct
    ns, info = table
    benchmark.group = f"Python API ({ENTRIES} entries)"
    via = [None]
    with pynfct.Conntrack(ns) as ct:
        n = benchmark.pedantic(_iterate_all, args=(ct, via), rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info["via"] = via[0]
    assert n == info.entries


@pytest.mark.parametrize("filters,key", [({"proto": "udp"}, "udp"), ({"zone": compare.FILTER_ZONE}, "zone"),
                                         ({"proto": "tcp", "dport": compare.FILTER_DPORT}, "dport")])
def test_api_dump_filtered(benchmark, table, filters, key):
    import pynfct
    ns, info = table
    benchmark.group = f"Python API ({ENTRIES} entries)"
    with pynfct.Conntrack(ns) as ct:
        n = benchmark.pedantic(lambda: sum(1 for _ in ct.dump(**filters)), rounds=10, iterations=1,
                               warmup_rounds=1)
    assert n == info.expected[key]


def test_api_child(table):
    """compare.py's API child (a fresh python iterating the table) writes the fields of what conntrack -L
    lists (the same digest), within 40 MB."""
    ns, info = table
    api = compare.run_in_ns(ns, [sys.executable, "-c", compare.API_CHILD])
    want = compare.api_expected(ns, sys.executable)
    assert api.ok, api.stderr
    assert want.ok, want.stderr
    assert (api.digest, api.lines) == (want.digest, want.lines)
    assert api.lines == info.entries
    assert api.rss_kb / 1024 <= compare.TARGET_API_RSS_MB


def test_kernel_floor(benchmark, table):
    """The raw netlink dump (parses nothing), as a subprocess: the reference for the rows above."""
    ns, info = table
    benchmark.group = f"Python API ({ENTRIES} entries)"
    runs = []
    benchmark.pedantic(lambda: runs.append(compare.run_in_ns(ns, [sys.executable, "-c", compare.FLOOR_CHILD])),
                       rounds=5, iterations=1, warmup_rounds=1)
    assert all(r.ok for r in runs), compare.first_error(runs)
    benchmark.extra_info["floor"] = runs[-1].stderr.strip()
    benchmark.extra_info["peak_rss_kb"] = max(r.rss_kb for r in runs)
