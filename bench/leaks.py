#!/usr/bin/env python3
"""Leaks and bounded memory at full size (issue 10 points 2 and 8); tests/integration/test_leaks.py and
test_bounded.py are the same checks at a size the suite can afford.

Run as root from the checkout (after `python setup.py build_ext --inplace`):

    python bench/leaks.py --save bench/LEAKS.md                 # everything, ~5 minutes
    python bench/leaks.py --only dump,events --events 1000000   # a part, smaller

Each part runs in its own throwaway namespace `pynfct-bench-<pid>-<part>` (deleted at exit, also on
SIGTERM/SIGHUP), and the work in a child process that samples its own RSS (/proc/self/statm), the
interpreter's live blocks (sys.getallocatedblocks()), descriptors and threads (tests/memwatch.py):

* dump: a table of 100,000 entries read 100 times through the API, in the README's styles in turn (a
  for loop reading fields and str(flow), a count over a Match, list() of a kernel-filtered dump, a
  dump left after its first entry); RSS after read 10 and after read 100.
* create: create_many() of 100,000 FlowSpecs and delete(Match()) of them, 10 times: 1,000,000 entries
  created and deleted.
* events: 10,000,000 events read by the Python iterator while `pynfct -E > /dev/null` reads the same
  ones; another process makes them, create_many() of 100,000 entries then flush(), again and again
  (100,000 NEW + 100,000 DESTROY events a round). Reported: events read, rate, loss, RSS of both
  readers after 1,000,000 events and at the end.
* big: a 2,000,000-entry table listed by `pynfct -L` and `conntrack -L` to /dev/null and to a pipe,
  and iterated with the API; peak RSS of each (ru_maxrss measured by GNU time, or else by
  tests/memwatch.py PEAK_OF; VmHWM for the API). The host's nf_conntrack_max is raised only while
  the table is filled (entries above the limit stay; only new ones are refused) and restored at once.
"""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare import CONNTRACK_MAX, HAVE_TIME, TIME, Namespace, child_env, install_signal_handlers, log, machine_facts  # noqa: E402, E501
from memwatch import CHILD, PEAK_OF, event_rmem, last_json, rss_of  # noqa: E402

MB = 1e6

DUMP = CHILD + r'''
import time
from pynfct import Conntrack, FlowSpec, Match
n, rounds = map(int, sys.argv[1:3])
ct = Conntrack()
for k in range(0, n, 100000):
    assert int(ct.create_many([FlowSpec(**spec(i)) for i in range(k, min(n, k + 100000))])) == min(n, k + 100000) - k
web = Match(family="ipv4", proto="tcp", dport=80)
t0 = time.monotonic()
flows = 0
for r in range(1, rounds + 1):
    style = r % 4
    if style == 1:
        for f in ct.dump():
            flows += 1 + 0 * (f.orig.sport + f.mark + len(f.orig.src) + len(str(f)))
    elif style == 2:
        flows += sum(1 for _ in ct.dump(web))
    elif style == 3:
        got = list(ct.dump(family="ipv4", proto="udp"))
        flows += len(got)
        del got
    else:
        it = ct.dump()
        next(it)
        del it
        flows += 1
    if r in (1, 10) or r % 25 == 0:
        sample("r%d" % r)
report(seconds=time.monotonic() - t0, flows=flows)
'''

CREATE = CHILD + r'''
import time
from pynfct import Conntrack, FlowSpec, Match
n, rounds = map(int, sys.argv[1:3])
ct = Conntrack()
specs = [FlowSpec(**spec(i)) for i in range(n)]
t0 = time.monotonic()
for r in range(1, rounds + 1):
    made = ct.create_many(specs)
    assert int(made) == n and not made.failures, made.failures[:3]
    assert int(ct.delete(Match())) == n
    sample("r%d" % r)
report(seconds=time.monotonic() - t0)
'''

READER = CHILD + r'''
import time
from pynfct import Conntrack
target = int(sys.argv[1])
ct = Conntrack()
stream = ct.events("NEW,DESTROY", timeout=20)
print("ready", flush=True)
got = 0
t0 = None
for ev in stream:
    if t0 is None:
        t0 = time.monotonic()
    got += 1
    if ev.flow.orig.sport == 0 or ev.type == 0:
        raise SystemExit("bad event %r" % ev)
    if got % 1000000 == 0:
        sample("e%d" % got)
        print("at %d" % got, flush=True)
    if got == target:
        break
seconds = time.monotonic() - t0
sample("end")
report(events=got, seconds=seconds, lost=stream.lost, overruns=stream.overruns)
'''

MAKER = CHILD + r'''
from pynfct import Conntrack, FlowSpec
n, rounds = map(int, sys.argv[1:3])
ct = Conntrack()
specs = [FlowSpec(**spec(i)) for i in range(n)]
for r in range(rounds):
    assert int(ct.create_many(specs)) == n
    ct.flush()
'''

ITERATE = CHILD + r'''
import time
from pynfct import Conntrack
t0 = time.monotonic()
seen = 0
for f in Conntrack().dump():
    seen += 1 + 0 * (f.orig.sport + len(f.orig.src))
sample("end")
report(seen=seen, seconds=time.monotonic() - t0)
'''


def ns_python(ns: Namespace, code: str, *args: object, **kw: Any) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", code, *map(str, args)],
                            env=child_env(), **kw)


def run_child(ns: Namespace, code: str, *args: object) -> Dict[str, Any]:
    p = ns_python(ns, code, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(err.decode(errors="replace")[-3000:])
    return last_json(out)


def mb(x: float) -> str:
    return f"{x / MB:.1f}"


def growth(s: Dict[str, Dict[str, int]], a: str, b: str) -> str:
    d = {k: s[b][k] - s[a][k] for k in ("rss", "blocks", "fds", "threads")}
    return f"{d['rss'] / MB:+.2f} MB RSS, {d['blocks']:+d} blocks, {d['fds']:+d} fds, {d['threads']:+d} threads"


def row(what: str, s: Dict[str, Dict[str, int]], first: str, warm: str, end: str) -> str:
    """A table row: RSS at the first sample, after warm-up and at the end, and the growth in between."""
    return f"| {what} | {mb(s[first]['rss'])} | {mb(s[warm]['rss'])} | {mb(s[end]['rss'])} | {growth(s, warm, end)} |"


def part_dump(ns: Namespace, args) -> List[str]:
    n, rounds = args.dump_entries, args.dump_rounds
    log(f"dump: {n} entries, {rounds} reads")
    s = run_child(ns, DUMP, n, rounds)
    return [row(f"dump: {n:,} entries read {rounds} times ({s['flows']:,} Flows, {s['seconds']:.1f} s)",
                s, "r1", "r10", f"r{rounds}")]


def part_create(ns: Namespace, args) -> List[str]:
    n, rounds = args.create_batch, args.create_total // args.create_batch
    log(f"create: {rounds} x {n}")
    s = run_child(ns, CREATE, n, rounds)
    return [row(f"create_many + delete: {n:,} x {rounds} = {n * rounds:,} entries ({s['seconds']:.1f} s)",
                s, "r1", "r2", f"r{rounds}")]


def part_events(ns: Namespace, args) -> List[str]:
    target, batch = args.events, args.event_batch
    rounds = -(-target // (2 * batch))
    log(f"events: {target} events, {rounds} rounds of {batch} entries")
    err_path = f"/tmp/pynfct-bench-{os.getpid()}-events.err"
    with open(err_path, "wb") as err:
        cli = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-m", "pynfct", "-E"],
                               stdout=subprocess.DEVNULL, stderr=err, env=child_env())
        reader = ns_python(ns, READER, target, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert reader.stdout is not None
        assert reader.stdout.readline() == b"ready\n"
        while not event_rmem(cli.pid) and cli.poll() is None:
            time.sleep(0.05)
        cli_rss: Dict[str, int] = {}
        t0 = time.monotonic()
        maker = ns_python(ns, MAKER, batch, rounds, stderr=subprocess.PIPE)
        out = b""
        for line in reader.stdout:
            if line.startswith(b"at "):
                got = int(line.split()[1])
                cli_rss.setdefault("first", rss_of(cli.pid))
                log(f"events: {got:,} read, {time.monotonic() - t0:.0f} s")
            else:
                out += line
        reader.wait()
        if reader.returncode != 0:
            raise RuntimeError(reader.stderr.read().decode(errors="replace")[-3000:] if reader.stderr else "")
        maker.wait()
        deadline = time.monotonic() + 60
        while any(event_rmem(cli.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        cli_rss["end"] = rss_of(cli.pid)
        cli.send_signal(2)
        cli.wait(60)
    with open(err_path, "rb") as f:
        cli_err = f.read().decode(errors="replace")
    os.unlink(err_path)
    s = last_json(out)
    enobufs = cli_err.count("We have hit ENOBUFS")
    shown = cli_err.strip().splitlines()[-1] if cli_err.strip() else "?"
    first = "e1000000"
    rows = [row(f"events, Python iterator: {s['events']:,} read in {s['seconds']:.1f} s "
                f"({s['events'] / s['seconds']:,.0f}/s), lost {s['lost']}, overruns {s['overruns']}",
                s, first, first, "end"),
            f"| events, `pynfct -E > /dev/null` beside it: `{shown}`, ENOBUFS warnings {enobufs} | "
            f"{mb(cli_rss['first'])} | {mb(cli_rss['first'])} | {mb(cli_rss['end'])} | "
            f"{(cli_rss['end'] - cli_rss['first']) / MB:+.2f} MB RSS |"]
    return rows


def cli_peak(ns: Namespace, argv: List[str], pipe: bool) -> Dict[str, Any]:
    """Peak RSS, seconds and output size of a listing command, to /dev/null or through a pipe."""
    t0 = time.monotonic()
    # GNU time forks the command from a small C process; PEAK_OF from a small interpreter (~7 MB floor).
    peak_of = [TIME, "-f", "maxrss %M"] if HAVE_TIME else [sys.executable, *PEAK_OF]
    p = subprocess.Popen(["ip", "netns", "exec", ns.name, *peak_of, *argv], env=child_env(),
                         stdout=subprocess.PIPE if pipe else subprocess.DEVNULL, stderr=subprocess.PIPE)
    size = 0
    if pipe:
        assert p.stdout is not None
        for block in iter(lambda: p.stdout.read(1 << 16), b""):
            size += len(block)
    err = p.communicate()[1]
    if p.returncode != 0:
        raise RuntimeError(err.decode(errors="replace")[-2000:])
    lines = err.decode().splitlines()
    return dict(peak=int(lines[-1].split()[1]) * 1024, seconds=time.monotonic() - t0, size=size,
                summary=lines[-2] if len(lines) > 1 else "")


def restore_max(ns: Namespace) -> None:
    """Put the host's nf_conntrack_max back now that the table is filled (existing entries stay)."""
    if ns.saved_max is None:
        return
    with open(CONNTRACK_MAX) as f:
        current = int(f.read())
    if current == ns.raised_max:
        with open(CONNTRACK_MAX, "w") as f:
            f.write(str(ns.saved_max))
        log(f"restored host nf_conntrack_max={ns.saved_max}")
    else:
        log(f"nf_conntrack_max is {current} now (someone else changed it): left alone")
    ns.saved_max = None


def part_big(ns: Namespace, args) -> List[str]:
    n = args.big
    log(f"big: filling {n} entries")
    fill = CHILD + r'''
from pynfct import Conntrack, FlowSpec
n = int(sys.argv[1])
ct = Conntrack()
made = 0
for k in range(0, n, 100000):
    r = ct.create_many([FlowSpec(**spec(i)) for i in range(k, min(n, k + 100000))], exist_ok=True)
    made += int(r)
report(made=made, count=ct.count())
'''
    t0 = time.monotonic()
    try:
        ns.ensure_capacity(n)
        f = run_child(ns, fill, n)
    finally:
        restore_max(ns)
    log(f"big: {f['count']} entries in {time.monotonic() - t0:.1f} s")
    if f["count"] != n:
        raise RuntimeError(f"the table holds {f['count']} entries, not {n}")
    rows = []
    pynfct = [sys.executable, "-m", "pynfct", "-L"]
    for name, argv in (("conntrack -L", ["conntrack", "-L"]), ("pynfct -L", pynfct)):
        for pipe in (False, True):
            r = cli_peak(ns, argv, pipe)
            where = "a pipe" if pipe else "/dev/null"
            rows.append(f"| `{name}` to {where} | {mb(r['peak'])} | {r['seconds']:.1f} | `{r['summary']}` |")
            log(rows[-1])
    s = run_child(ns, ITERATE)
    rows.append(f"| API: `for f in Conntrack().dump(): f.orig.sport, f.orig.src` | {mb(s['end']['peak'])} | "
                f"{s['seconds']:.1f} | {s['seen']:,} Flows |")
    log(rows[-1])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="dump,create,events,big")
    ap.add_argument("--dump-entries", type=int, default=100_000)
    ap.add_argument("--dump-rounds", type=int, default=100)
    ap.add_argument("--create-total", type=int, default=1_000_000)
    ap.add_argument("--create-batch", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--event-batch", type=int, default=100_000)
    ap.add_argument("--big", type=int, default=2_000_000)
    ap.add_argument("--save", help="write the report (markdown) here")
    args = ap.parse_args()
    install_signal_handlers()
    facts = machine_facts()
    parts = args.only.split(",")
    flat: List[str] = []
    big: List[str] = []
    started = datetime.datetime.now(datetime.timezone.utc)
    for part in parts:
        ns = Namespace(f"pynfct-bench-{os.getpid()}-{part}")
        try:
            ns.create()
            if part == "big":
                big = part_big(ns, args)
            else:
                flat += {"dump": part_dump, "create": part_create, "events": part_events}[part](ns, args)
        finally:
            ns.close()
    load = os.getloadavg()
    out = ["# Leaks and bounded memory (issue 10 points 2 and 8)", "",
           f"Date: {started:%Y-%m-%d %H:%M} UTC  ",
           f"Command: `python bench/leaks.py {' '.join(sys.argv[1:])}`  ",
           f"Commit: {facts['commit']}", "",
           f"Machine: nproc {facts['nproc']}, kernel {facts['kernel']}, {facts['cpu']}, {facts['memory']}, "
           f"Python {facts['python']}, {facts['conntrack']}; load average at the end "
           f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other work shared the machine).", ""]
    if flat:
        out += ["## No leaks: RSS of the process doing the work", "",
                "Samples after a collection; `blocks` is sys.getallocatedblocks() (live interpreter objects).", "",
                "| work | RSS MB, first | RSS MB, after warm-up | RSS MB, end | growth after warm-up |",
                "|---|---:|---:|---:|---|", *flat, ""]
    if big:
        out += [f"## Bounded memory: a {args.big:,}-entry table", "",
                "Peak RSS of the listing process (ru_maxrss, by GNU time; VmHWM for the API) and wall time. "
                "Each command ran once, the table unchanged between them.", "",
                "| reader | peak RSS MB | s | |", "|---|---:|---:|---|", *big, ""]
    text = "\n".join(out)
    print(text)
    if args.save:
        with open(args.save, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
