"""Per-call overhead of the typed API before its first system call (issue: under 20 us for dump()/get()).

Times, in a throwaway namespace with a small table, what dump() and get() do in Python before the C
layer talks to the kernel: checking the keywords (Match), building the typed template and compiling
the filter. dump() is a generator, so calling it does all of that and sends nothing; get()'s share is
timed as its three steps. The content check: the dump and the get that were timed return what
`conntrack -L` / `conntrack -G` print for the same selection.

    python bench/api_overhead.py [--report bench/API_OVERHEAD.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import pynfct  # noqa: E402
from pynfct import Match  # noqa: E402
from pynfct.template import Cmd  # noqa: E402
from _nfct.filter import Filter  # noqa: E402
from netns import NetNS  # noqa: E402
sys.path.insert(0, HERE)
import compare  # noqa: E402  (machine facts, saving the report)
from canon import digest  # noqa: E402

GET = dict(proto="tcp", src="10.0.0.1", dst="10.0.0.2", sport=1234, dport=443)


def best(stmt, n=20000, repeat=7):
    # CPU time of this process: on a shared machine, wall time would count other processes too
    return min(timeit.Timer(stmt, timer=time.process_time).repeat(number=n, repeat=repeat)) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report")
    args = ap.parse_args()
    rows = []
    with NetNS() as ns:
        ns.run(["conntrack", "-I", "-p", "tcp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1234",
                "--dport", "443", "--state", "ESTABLISHED", "-t", "600"])
        ns.run(["conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.3", "--sport", "5",
                "--dport", "53", "-t", "600"])
        with pynfct.Conntrack(ns.name) as ct:
            m = Match(proto="tcp", dport=443)
            rows.append(("dump(proto=, dport=): keywords checked, template built, filter compiled",
                         best(lambda: ct.dump(proto="tcp", dport=443))))
            rows.append(("dump(Match): template built, filter compiled", best(lambda: ct.dump(m))))
            rows.append(("get(**tuple) before its request: Match, template, filter",
                         best(lambda: Filter(ct._command("get()", Cmd.CT_GET, Match(**GET)), False))))
            # content: what was timed selects what conntrack selects, each flow's line (str(flow)) the one
            # conntrack prints but for the timeout (bench/canon.py's digest)
            def lines(flows):
                return digest(["".join(f"{f}\n" for f in flows).encode()])
            got = lines(ct.dump(proto="tcp", dport=443))
            want = digest([ns.run(["conntrack", "-L", "-p", "tcp", "--dport", "443"]).stdout])
            assert got == want and got[1] == 1, (got, want)
            g = ct.get(**GET)
            gw = digest([ns.run(["conntrack", "-G", "-p", "tcp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport",
                                 "1234", "--dport", "443"]).stdout])
            assert g is not None and lines([g]) == gw, (g, gw)
    facts = compare.machine_facts()
    lines = [f"pynfct at {facts['commit']}; {facts['nproc']} CPUs, best of 7 x 20,000 calls, process CPU time. "
             "Content check: the timed dump()/get() return what conntrack -L/-G print: passed.", "",
             "| what | us per call | target |", "|---|---:|---|"]
    lines += [f"| {name} | {us:.1f} | < 20 |" for name, us in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.report:
        compare.save_report(args.report, "Per-call overhead of the typed API", text,
                            {"facts": facts, "rows": [{"what": name.split(":")[0], "us": us} for name, us in rows]})


if __name__ == "__main__":
    main()
