"""pynfct -R against conntrack -R on the kernel: a generated file of 6,000 varied create lines.

pynfct parses plain TCP/UDP -I/-A lines of a -R file with its own C parser (_nfct.fastparse) and every
other line with the full one (a port of conntrack's). tests/unit/test_write_fast_parse.py holds the C
parser to the full parser's requests; here both are held to conntrack 1.4.7's own parser and the kernel:
conntrack -R loads the file into one namespace, pynfct -R into a twin, and the output, the exit status
and the two tables must be the same. The test also checks that the C parser really takes the TCP/UDP
lines (more than half the file), so that it is what is being compared.

The lines are tests/fill.py big_entry_argv's (every protocol, states, status bits, marks, zones in both
directions, NAT'd reply tuples; no labels: conntrack 1.4.7 cannot load them from a file) written with
the variations a hand-written file has: long option names, -A for -I, --create, tabs and repeated
blanks, quoted words, hex and decimal marks, comments and blank lines.
"""
from __future__ import annotations

from typing import List

from _nfct.fastparse import fast_request
from differential import assert_same
from fill import big_entry_argv
from test_write import assert_same_table, run_ct, run_py, twins

LONG = {"-p": "--protonum", "-s": "--orig-src", "-d": "--orig-dst", "--sport": "--orig-port-src",
        "--dport": "--orig-port-dst", "-t": "--timeout", "-u": "--status", "-m": "--mark", "-w": "--zone",
        "-r": "--reply-src", "-q": "--reply-dst"}
N = 6000


def _line(i: int) -> str:
    argv = big_entry_argv(200000 + i)
    if "--label-add" in argv:
        j = argv.index("--label-add")
        del argv[j:j + 2]
    if i % 3 == 1:
        argv = [LONG.get(a, a) for a in argv]
    if i % 5 == 0:
        argv[0] = "-A"
    elif i % 5 == 1:
        argv[0] = "--create"
    if i % 11 == 0 and "-m" in argv:
        k = argv.index("-m")
        argv[k + 1] = hex(int(argv[k + 1]))
    sep = "\t" if i % 7 == 0 else "  " if i % 7 == 1 else " "
    if i % 13 == 0:
        argv = [f'"{a}"' if a.startswith("-") and len(a) == 2 else a for a in argv]
    return sep.join(argv)


def lines() -> List[str]:
    out = []
    for i in range(N):
        if i % 500 == 0:
            out += ["# a comment", ""]
        out.append(_line(i))
    return out


def test_load_differential(tmp_path):
    text = lines()
    path = tmp_path / "batch"
    path.write_text("\n".join(text) + "\n")
    creates = [l for l in text if l and not l.startswith("#")]
    fast = sum(fast_request(l.encode()) is not None for l in creates)
    assert len(creates) == N and fast > N // 2, fast
    with twins(lambda ns: None) as (a, b):
        ct = run_ct(a, ["-R", str(path)])
        py = run_py(b, ["-R", str(path)])
        assert_same(ct, py)
        assert ct.returncode == 0, ct.err
        assert a.ct_count() == b.ct_count() == N
        assert_same_table(a, b)
