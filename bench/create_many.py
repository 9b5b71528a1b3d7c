#!/usr/bin/env python3
"""create_many() of N prebuilt FlowSpecs against load() of the same N entries as -I lines.

Run as root from the checkout (after `python setup.py build_ext --inplace`):

    python bench/create_many.py                       # N = 100,000, 3 rounds; writes bench/CREATE_MANY.md
    python bench/create_many.py --entries 20000 --save /tmp/cm.md

In one throwaway namespace `pynfct-bench-<pid>-cm` (deleted at exit, also on SIGTERM/SIGHUP) and one
Conntrack handle, each round: build the N FlowSpecs (timed on its own: the checks of the values,
not part of create_many()), then, in alternating order, empty the table, `load(ct, lines)` (timed) and
read the table with `conntrack -L -o extended`; empty it, `ct.create_many(specs)` (timed) and read it
again. The two tables must be equal in content (every line, timeouts left out as they tick), not just
in size. The entries are what load()'s C parser takes (plain -I lines): TCP ESTABLISHED with status,
UDP, some IPv6, marks, zones, reply tuples. Reported: best of the rounds and the ratio
create_many / load (target ≤ 1.2).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from typing import Any, Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402
from compare import Namespace, install_signal_handlers, load_note, log, machine_facts  # noqa: E402

TARGET = 1.2
TIMEOUT_FIELD = 4      # -o extended: "ipv4 2 tcp 6 TIMEOUT ..."


def entries(n: int) -> List[Tuple[str, Dict[str, Any]]]:
    """(-I line, FlowSpec keywords) of n distinct entries, the same entry both ways."""
    out = []
    for i in range(n):
        a, b, c = i >> 16 & 255, i >> 8 & 255, i & 255
        v6 = i % 10 == 9
        src = f"2001:db8::{a:x}:{b:x}:{c:x}" if v6 else f"10.{a}.{b}.{c}"
        dst = "2001:db8:ffff::1" if v6 else "192.0.2.1"
        sport = 1024 + i % 60000
        line = ["-I"]
        kw: Dict[str, Any] = {}
        if i % 4 != 3:
            line += ["-p", "tcp", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED"]
            kw.update(proto="tcp", state="ESTABLISHED", status=["SEEN_REPLY", "ASSURED"])
            dport = (443, 80, 22)[i % 3]
        else:
            line += ["-p", "udp"]
            kw.update(proto="udp")
            dport = 53
        if i % 16 == 5 and not v6:       # an explicit reply tuple (a DNAT'ed look)
            line += ["-s", src, "-d", dst, "-r", "198.51.100.7", "-q", src, "--sport", str(sport),
                     "--dport", str(dport), "--reply-port-src", str(dport), "--reply-port-dst", str(sport)]
            kw.update(src=src, dst=dst, reply_src="198.51.100.7", reply_dst=src, sport=sport, dport=dport,
                      reply_sport=dport, reply_dport=sport)
        else:
            line += ["-s", src, "-d", dst, "--sport", str(sport), "--dport", str(dport)]
            kw.update(src=src, dst=dst, sport=sport, dport=dport)
        timeout = 3600 + i % 1000
        line += ["-t", str(timeout)]
        kw["timeout"] = timeout
        if i % 10 == 0:
            line += ["-m", str(i % 7 + 1)]
            kw["mark"] = i % 7 + 1
        if i % 20 == 1:
            line += ["-w", "2"]
            kw["zone"] = 2
        out.append((" ".join(line), kw))
    return out


def table(ns: Namespace) -> List[str]:
    """The table as conntrack -L -o extended shows it, without the timeouts, sorted."""
    r = subprocess.run(["ip", "netns", "exec", ns.name, "conntrack", "-L", "-o", "extended"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"conntrack -L failed: {r.stderr.strip()}")
    rows = []
    for line in r.stdout.splitlines():
        f = line.split()
        rows.append(" ".join(f[:TIMEOUT_FIELD] + f[TIMEOUT_FIELD + 1:]))
    return sorted(rows)


def timed(fn):
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    result = fn()
    t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    return result, t1 - t0, (r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=100000, help="N (default 100000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3); best of them is reported")
    ap.add_argument("--save", default=os.path.join(REPO, "bench", "CREATE_MANY.md"),
                    help="the markdown report and its .json twin (default bench/CREATE_MANY.md; '' for none)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces)")
    install_signal_handlers()
    compare.remove_stale_namespaces()

    import pynfct
    from pynfct import FlowSpec
    from pynfct.cli.load import load

    n = args.entries
    data = entries(n)
    lines = [line for line, _ in data]
    facts = machine_facts()
    ns = Namespace(f"{compare.NS_PREFIX}{os.getpid()}-cm")
    rows: Dict[str, List[Tuple[float, Tuple[float, float]]]] = {"specs": [], "load": [], "create_many": []}
    checks: List[str] = []
    load_before = os.getloadavg()[0]
    try:
        ns.create()
        ns.ensure_capacity(n)
        with pynfct.Conntrack(ns.name) as ct:
            for r in range(args.rounds):
                specs, t, cpu = timed(lambda: [FlowSpec(**kw) for _, kw in data])
                rows["specs"].append((t, cpu))
                tables = {}
                order = ["load", "create_many"] if r % 2 == 0 else ["create_many", "load"]
                for what in order:
                    ct.flush()
                    if what == "load":
                        res, t, cpu = timed(lambda: load(ct, lines))
                    else:
                        res, t, cpu = timed(lambda s=specs: ct.create_many(s))
                    if int(res) != n or res.failures:
                        raise RuntimeError(f"{what}: {int(res)} of {n} created, failures {res.failures[:5]}")
                    rows[what].append((t, cpu))
                    tables[what] = table(ns)
                    log(f"round {r + 1}/{args.rounds}: {what} {t:.3f} s")
                same = tables["load"] == tables["create_many"]
                if not same:
                    diff = sorted(set(tables["load"]) ^ set(tables["create_many"]))[:3]
                    raise RuntimeError(f"round {r + 1}: the tables differ, e.g. {diff}")
                checks.append(f"{len(tables['load'])} = {len(tables['create_many'])} lines, equal")
                del specs
            ct.flush()
    finally:
        ns.close()
    load_after = os.getloadavg()[0]

    best = {k: min(v) for k, v in rows.items()}
    ratio = best["create_many"][0] / best["load"][0]
    ok = ratio <= TARGET
    report = [
        f"Machine: nproc {facts['nproc']}, kernel {facts['kernel']}, CPU {facts['cpu']}, Python {facts['python']}; "
        f"pynfct at {facts['commit']}",
        f"N = {n:,} entries (75% TCP ESTABLISHED with status, 25% UDP, 10% IPv6, 1/16 with a reply tuple, "
        f"marks, zones), best of {args.rounds} rounds, in one namespace with one Conntrack handle; "
        "load() and create_many() alternate which goes first.",
        load_note(load_before, load_after),
        "",
        "| step | best s | user s | sys s | per entry µs |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {"load": f"`load(ct, lines)`: {n:,} -I lines (C parser, pipelined)",
             "create_many": f"`ct.create_many(specs)`: {n:,} prebuilt FlowSpecs",
             "specs": f"building the {n:,} FlowSpecs (not in create_many's time)"}
    for k in ("load", "create_many", "specs"):
        t, (u, s) = best[k]
        report.append(f"| {names[k]} | {t:.3f} | {u:.2f} | {s:.2f} | {t / n * 1e6:.2f} |")
    report += [
        "",
        f"Ratio create_many / load: **{ratio:.2f}** (target ≤ {TARGET:g}): {'pass' if ok else '**FAIL**'}",
        "",
        "All rounds (s): " + "; ".join(f"{k} " + ", ".join(f"{t:.3f}" for t, _ in rows[k]) for k in rows),
        "",
        "Tables (`conntrack -L -o extended` without timeouts, load() vs create_many()), per round: "
        + "; ".join(checks) + ".",
        "user/sys: this process's CPU (both threads: the builder and the sender) during the step.",
    ]
    text = "\n".join(report) + "\n"
    print(text)
    if args.save:
        compare.save_report(args.save, "create_many() vs load(): the same entries as FlowSpecs and as -I lines", text,
                            {"facts": facts, "entries": n, "rounds": args.rounds, "load_s": best["load"][0],
                             "create_many_s": best["create_many"][0], "spec_us": best["specs"][0] / n * 1e6,
                             "ratio": ratio, "ok": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
