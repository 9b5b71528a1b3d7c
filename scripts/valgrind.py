#!/usr/bin/env python3
"""valgrind memcheck on a dump and an event loop: no definite leak from pynfct's code (issue 10 point 2).

Run as root from a checkout with the extension built (`scripts/setup.sh`), with valgrind installed
(`apt-get install valgrind`):

    .venv/bin/python scripts/valgrind.py                        # prints the summary, exit 1 on a leak
    .venv/bin/python scripts/valgrind.py --save bench/VALGRIND.md

In a throwaway namespace holding a few hundred entries (IPv4 and IPv6, TCP and UDP), three programs
run under `valgrind --leak-check=full` with PYTHONMALLOC=malloc (so every Python object is a malloc
block valgrind follows):

* api: the API's dump in every style (for loop with str(), list(), a Match, a split per-family
  dump, a dump left after one entry), get(), count(), create_many(), delete(), and an event loop
  (events() iterated while entries are created and flushed, then an overrun on a tiny buffer);
* `pynfct -L` and `pynfct -L -o extended,id -p tcp` (the C text path of a dump);
* `pynfct -E` for a fixed time while entries are created and deleted (the C text path of events).

Each "definitely lost" record is then sorted by its allocation stack: a record with a frame in
pynfct's extension modules (`_nfct/*.so`) or in libnetfilter_conntrack, libnfnetlink or libmnl is
pynfct's; the others are the interpreter's own (CPython does not free everything at exit). The
suppressions in scripts/valgrind-python.supp remove interpreter noise that has no such frame by
construction; the sort does not rely on them. The result counts pynfct's records (must be 0) and
lists the interpreter's by their top frames.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import signal
import subprocess
import sys
import time
from typing import Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUPP = os.path.join(REPO, "scripts", "valgrind-python.supp")
sys.path.insert(0, os.path.join(REPO, "tests"))

from memwatch import event_rmem  # noqa: E402
OURS = re.compile(r"/_nfct/|_5_nfct_|libnetfilter_conntrack|libnfnetlink|libmnl")   # _5_nfct_: Cython names

API = r'''
import time
from pynfct import Conntrack, FlowSpec, Match
ct = Conntrack()
n = 0
for f in ct.dump():
    n += len(str(f)) + f.orig.sport + len(f.orig.src)
flows = list(ct.dump(family="ipv4", proto="udp"))
flows[0].as_dict()
sum(1 for _ in ct.dump(Match(proto="tcp", dport=80)))     # one kernel dump per family
it = ct.dump()
next(it)
del it
ct.get(proto="udp", src=flows[0].orig.src, dst=flows[0].orig.dst, sport=flows[0].orig.sport,
       dport=flows[0].orig.dport)
ct.count()
ct.stats()
specs = [FlowSpec(proto="tcp", src="10.99.0.%d" % i, dst="192.0.2.9", sport=1000 + i, dport=80,
                  state="ESTABLISHED", timeout=600) for i in range(100)]
with ct.events("NEW,DESTROY", timeout=2) as stream:
    ct.create_many(specs)
    ct.delete(Match(family="ipv4", proto="tcp", dport=80, dst="192.0.2.9"))
    got = 0
    for ev in stream:
        got += len(str(ev)) and 1
        if got == 200:
            break
    assert got == 200, got
with ct.events("NEW", buffer_size=4096, reliable=False, timeout=0.5) as stream:
    ct.create_many(specs)
    list(stream)
    lost = stream.lost
    assert lost > 0
ct.delete(flows[:10])
import sys
sys.stderr.write("api: %d events read, %d lost on the tiny buffer\n" % (got, lost))
'''


def sh(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], **kw)


def valgrind_argv(log: str) -> List[str]:
    return ["valgrind", "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite",
            "--errors-for-leak-kinds=definite",
            "--num-callers=40", f"--suppressions={SUPP}", f"--log-file={log}"]


def env() -> Dict[str, str]:
    e = dict(os.environ, PYTHONMALLOC="malloc", LC_ALL="C")
    e["PYTHONPATH"] = REPO + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def fill(ns: str) -> None:
    lines = []
    for i in range(300):
        if i % 3 == 2:
            lines.append(f"-I -p udp -s 2001:db8::{i:x} -d 2001:db8::ffff --sport {1000 + i} --dport 53 -t 600")
        elif i % 2:
            lines.append(f"-I -p udp -s 10.1.{i >> 8}.{i & 255} -d 192.0.2.1 --sport {1000 + i} --dport 53 -t 600")
        else:
            lines.append(f"-I -p tcp -s 10.2.{i >> 8}.{i & 255} -d 192.0.2.2 --sport {1000 + i} --dport 80 "
                         f"--state ESTABLISHED -u SEEN_REPLY,ASSURED -m {i % 5} -t 600")
    sh(ns, "conntrack", "-R", "-", input="\n".join(lines).encode(), check=True, capture_output=True)


def run(ns: str, name: str, argv: List[str], logdir: str, during=None) -> Tuple[str, str]:
    """Run argv under valgrind: (its log, the last line it wrote to stderr)."""
    log = os.path.join(logdir, f"{name}.log")
    p = subprocess.Popen(["ip", "netns", "exec", ns, *valgrind_argv(log), *argv], env=env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if during is not None:
        during(p)
    err = p.communicate(timeout=1800)[1]
    if p.returncode not in (0, -signal.SIGINT, 130):
        raise RuntimeError(f"{name} exited {p.returncode}: {err.decode(errors='replace')[-2000:]}")
    lines = err.decode(errors="replace").strip().splitlines()
    return log, lines[-1] if lines else ""


def events_during(ns: str):
    def go(p: subprocess.Popen) -> None:
        deadline = time.monotonic() + 600       # the interpreter starts slowly under valgrind
        while not event_rmem(p.pid):
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pynfct -E did not subscribe")
            time.sleep(0.5)
        for i in range(50):
            sh(ns, "conntrack", "-I", "-p", "tcp", "-s", "10.77.0.1", "-d", "10.77.0.2", "--sport", str(2000 + i),
               "--dport", "22", "--state", "ESTABLISHED", "-t", "60", capture_output=True)
        sh(ns, "conntrack", "-D", "-s", "10.77.0.1", capture_output=True)
        time.sleep(10)
        p.send_signal(signal.SIGINT)
    return go


def blocks(log: str) -> List[Tuple[str, int, List[str]]]:
    """(kind, bytes, stack frames) of each error a valgrind log reports: kind "leak" for a definitely
    lost record, else the error's first line ("Syscall param ...", "Invalid read of size 4", ...)."""
    out: List[Tuple[str, int, List[str]]] = []
    cur = None
    for line in open(log, errors="replace"):
        body = re.sub(r"^==\d+== ?", "", line.rstrip("\n"))
        if cur is not None and re.match(r"\s+(at|by) 0x", body):
            cur[2].append(body.strip())
            continue
        cur = None
        m = re.match(r"([\d,]+) (?:\([\d,]+ direct, [\d,]+ indirect\) )?bytes in [\d,]+ blocks are definitely", body)
        if m:
            cur = ("leak", int(m.group(1).replace(",", "")), [])
        elif re.match(r"(Invalid|Syscall param|Use of uninitialised|Conditional jump|Mismatched|Source and dest"
                      r"|Argument|Jump to)", body):
            cur = (body, 0, [])
        if cur is not None:
            out.append(cur)
    return out


def ours(kind: str, stack: List[str]) -> bool:
    """pynfct's: a leak allocated under one of its frames, an error within three frames of one."""
    frames = stack if kind == "leak" else stack[:3]
    return any(OURS.search(fr) for fr in frames)


def summary_line(log: str) -> str:
    text = open(log, errors="replace").read()
    lost = re.search(r"definitely lost: ([\d,]+ bytes in [\d,]+ blocks)", text)
    errors = re.search(r"ERROR SUMMARY: .*", text)
    return f"definitely lost {lost.group(1) if lost else '0 bytes in 0 blocks'}; {errors.group(0) if errors else ''}"


def top(stack: List[str], k: int = 4) -> str:
    names = []
    for fr in stack:
        m = re.search(r": (\S+) \((?:in )?(.*)\)$", fr)
        names.append(m.group(1) if m else fr)
    return " < ".join(names[:k])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--save", help="write the summary (markdown) here")
    ap.add_argument("--logs", default=f"/tmp/pynfct-valgrind-{os.getpid()}", help="where the valgrind logs go")
    args = ap.parse_args()
    os.makedirs(args.logs, exist_ok=True)
    ns = f"pynfct-valgrind-{os.getpid()}"
    py = sys.executable
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        sh(ns, "ip", "link", "set", "lo", "up", check=True)
        fill(ns)
        logs = {
            "api: dumps, writes, events": run(ns, "api", [py, "-c", API], args.logs),
            "pynfct -L": run(ns, "list", [py, "-m", "pynfct", "-L"], args.logs),
            "pynfct -L -o extended,id -p tcp": run(ns, "list-filter",
                                                   [py, "-m", "pynfct", "-L", "-o", "extended,id", "-p", "tcp"],
                                                   args.logs),
            "pynfct -E (50 entries created and deleted)": run(ns, "events", [py, "-m", "pynfct", "-E"], args.logs,
                                                               during=events_during(ns)),
        }
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    version = subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()
    out = ["# valgrind memcheck: a dump and an event loop", "",
           f"Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
           f"Command: `{os.path.basename(py)} scripts/valgrind.py {' '.join(sys.argv[1:])}`  ",
           f"Commit: {head}; {version}; Python {sys.version.split()[0]} with PYTHONMALLOC=malloc", "",
           "| program | pynfct's definite leaks | pynfct's other errors | valgrind's summary (after the "
           "interpreter's suppressions) |",
           "|---|---:|---:|---|"]
    ours_total = 0
    theirs: Dict[str, int] = {}
    for name, (log, said) in logs.items():
        found = blocks(log)
        mine = [b for b in found if ours(b[0], b[2])]
        leaks = [b for b in mine if b[0] == "leak"]
        ours_total += len(mine)
        for kind, size, stack in found:
            if kind == "leak" and not ours(kind, stack):
                key = top(stack)
                theirs[key] = theirs.get(key, 0) + size
        out.append(f"| `{name}`: {said} | {len(leaks)} | {len(mine) - len(leaks)} | {summary_line(log)} |")
        for kind, size, stack in mine:
            out.append(f"|  | {'%d bytes lost' % size if kind == 'leak' else kind} | | {top(stack, 6)} |")
    out += ["", f"pynfct's definite leaks and errors: **{ours_total}** (a leak allocated under a frame of "
            "`_nfct/*.so`, libnetfilter_conntrack, libnfnetlink or libmnl; an error within three frames of one)."]
    if theirs:
        out += ["", "Definite leaks left that are the interpreter's (no such frame), by top frames:", ""]
        out += [f"- {size} bytes: `{key}`" for key, size in sorted(theirs.items(), key=lambda kv: -kv[1])]
    text = "\n".join(out) + "\n"
    print(text)
    if args.save:
        with open(args.save, "w") as f:
            f.write(text)
    return 1 if ours_total else 0


if __name__ == "__main__":
    sys.exit(main())
