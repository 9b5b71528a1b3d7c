#!/usr/bin/env python3
"""Event bursts: how many events pynfct -E, the Python iterator and conntrack -E receive.

Run as root from the checkout (after `python setup.py build_ext --inplace`):

    python bench/events_burst.py                          # 200,000 entries
    python bench/events_burst.py --entries 20000          # a quick check
    python bench/events_burst.py --save bench/EVENTS.md   # also write the report

For each listener, in a throwaway namespace `pynfct-bench-events-<pid>` (deleted at exit, also on
Ctrl-C/SIGTERM): start the listener (stdout to a file), create N entries with one `conntrack -R`, empty
the table with `conntrack -F`, create one more entry (not counted), then wait until the listener has read
everything (its socket stayed empty and its output unchanged for 2 s), stop it with SIGINT and
count its [NEW] and [DESTROY] lines and its ENOBUFS warnings. The burst produces N NEW and N DESTROY
events. Listeners, one at a time so they do not compete for the CPU:

  - `conntrack -E` (1.4.7; its -b sets the buffer of a socket that receives nothing, so it is not tried)
  - `pynfct -E`, default options (its own large buffer)
  - `pynfct -E -b 212992` (the system's default buffer: shows what draining alone achieves; DESTROY
    events come through anyway because pynfct asks the kernel to re-send them)
  - the Python API: a child python iterating `Conntrack().events()` and writing each event's line
    (`str(ev)`, the line `-E` prints), then the stream's counters as a JSON line

The content check of the pynfct rows, the Python API's included: every entry of the burst has exactly one
[NEW] and one [DESTROY] line (found by its source address, which is unique), and each line conntrack -E
printed (it loses most of them, not the same ones every run) is the line pynfct printed for the same
event, byte for byte with the timeouts blanked (bench/canon.py), the [USERSPACE] portid/progname (the
`conntrack -R` of each burst differs, and its name is there only while it runs) and a DESTROY line's
`mark=0` (the kernel leaves it out of a DESTROY event it re-sends after an overrun) left out.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "bench"))
import compare  # noqa: E402  (machine facts, saving the report)
from canon import blank_timeouts  # noqa: E402
NS_PREFIX = "pynfct-bench-events-"
CONNTRACK_MAX = "/proc/sys/net/netfilter/nf_conntrack_max"
SENTINEL_SRC = "192.0.2.254"
SENTINEL = ["-I", "-p", "udp", "-s", SENTINEL_SRC, "-d", "192.0.2.253", "--sport", "9", "--dport", "9", "-t", "1000"]
ENOBUFS = "WARNING: We have hit ENOBUFS!"
QUIET = 2.0

API_CHILD = r"""
import json, signal, sys
sys.path.insert(0, sys.argv[1])
import pynfct
stream = pynfct.Conntrack().events()
signal.signal(signal.SIGINT, lambda *a: stream.close())
write = sys.stdout.write
for ev in stream:
    write(f"{ev}\n")
write(json.dumps(dict(lost=stream.lost, overruns=stream.overruns, rcvbuf=stream.rcvbuf)) + "\n")
"""


def log(msg: str) -> None:
    print(f"[events_burst] {msg}", file=sys.stderr, flush=True)


class Namespace:
    def __init__(self) -> None:
        self.name = f"{NS_PREFIX}{os.getpid()}"
        self.saved_max: Optional[str] = None
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    def argv(self, *cmd: str) -> List[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*cmd), capture_output=True, text=True, **kw)

    def ensure_capacity(self, entries: int) -> None:
        # nf_conntrack_max is read-only inside a namespace and follows the host's value.
        with open(CONNTRACK_MAX) as f:
            current = f.read().strip()
        need = entries + 1000
        if int(current) < need:
            self.saved_max = current
            with open(CONNTRACK_MAX, "w") as f:
                f.write(str(need))
            log(f"raised the host-wide nf_conntrack_max {current} -> {need} (restored at exit)")

    def close(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        if self.saved_max is not None:
            with open(CONNTRACK_MAX, "w") as f:
                f.write(self.saved_max)
            self.saved_max = None


def socket_state(pid: int) -> Optional[int]:
    """Bytes queued on the process's event sockets, or None if it has none."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
            if m:
                inodes.add(m.group(1))
        with open(f"/proc/{pid}/net/netlink") as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
    except OSError:
        return None
    rows = [r for r in rows if r[9] in inodes and r[1] == "12" and int(r[3], 16)]
    return sum(int(r[4]) for r in rows) if rows else None


def proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


def run_listener(ns: Namespace, label: str, argv: List[str], lines_file: str, n: int, workdir: str,
                 api: bool = False, env: Optional[dict] = None) -> Dict[str, object]:
    out_path = os.path.join(workdir, "out")
    err_path = os.path.join(workdir, "err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(ns.argv(*argv), stdout=out, stderr=err, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while socket_state(proc.pid) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{label}: did not subscribe: {open(err_path).read()}")
            time.sleep(0.02)
        t0 = time.monotonic()
        r = ns.run("conntrack", "-R", lines_file, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"conntrack -R failed: {r.stderr}")
        t_created = time.monotonic()
        r = ns.run("conntrack", "-F")
        t_flushed = time.monotonic()
        ns.run("conntrack", *SENTINEL)
        # Done when nothing moved for QUIET seconds: the socket is empty, the listener sleeps and its
        # output stopped growing. (Not at the sentinel: DESTROY events the kernel re-sends after an
        # overrun come later than it.)
        last_sig = None
        last_busy = last_growth = time.monotonic()
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            size = os.path.getsize(out_path)
            queued = socket_state(proc.pid)
            idle = queued == 0 and proc_state(proc.pid) == "S"
            sig = (size, queued)
            now = time.monotonic()
            if last_sig is not None and size != last_sig[0]:
                last_growth = now
            if sig != last_sig or not idle:
                last_busy = now
            elif now - last_busy > QUIET:
                break
            last_sig = sig
            time.sleep(0.05)
        t_done = last_busy if api else last_growth
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(out_path, encoding="utf-8", errors="replace") as f:
        out_text = f.read()
    with open(err_path, encoding="utf-8", errors="replace") as f:
        err_text = f.read()
    row: Dict[str, object] = dict(label=label, rc=rc, create_s=t_created - t0, flush_s=t_flushed - t_created,
                                  done_s=t_done - t0, enobufs=err_text.count(ENOBUFS))
    lines = out_text.splitlines()
    if api:     # the event lines, then the stream's counters
        stats = json.loads(lines.pop())
        row.update(lost=stats["lost"], overruns=stats["overruns"])
    row["new"] = sum(1 for x in lines if x.startswith("    [NEW] ") and SENTINEL_SRC not in x)
    row["destroy"] = sum(1 for x in lines if x.startswith("[DESTROY] "))
    row["events"] = events_by_source(lines)
    if not api:
        notice = re.search(r"buffer size has been set to (\d+) bytes", err_text)
        row["notice"] = notice.group(1) if notice else ""
        row["summary"] = err_text.strip().splitlines()[-1] if err_text.strip() else ""
    log(f"{label}: NEW {row['new']}/{n}, DESTROY {row['destroy']}/{n}, ENOBUFS warnings {row['enobufs']}, "
        f"done after {row['done_s']:.1f}s (rc {rc})")
    return row


def events_by_source(lines: List[str]) -> Dict[tuple, List[str]]:
    """(event tag, source address) -> the lines (timeouts blanked) of the [NEW] and [DESTROY] events."""
    out: Dict[tuple, List[str]] = {}
    for line in lines:
        tag = line.split("]", 1)[0].strip() + "]"
        if tag not in ("[NEW]", "[DESTROY]") or SENTINEL_SRC in line:
            continue
        m = re.search(r" src=(\S+) ", line)
        # Who made the change: the portid of the `conntrack -R` of that burst, and its name only if it still
        # runs when the line is printed; neither is the listener's to choose.
        line = re.sub(r" \[USERSPACE\] portid=\d+( progname=\S*)?$", " [USERSPACE]", line)
        # A DESTROY event the kernel re-sends after an overrun carries a zero mark only if the first
        # attempt's event bits asked for it: `mark=0` is there or not depending on the delivery.
        if tag == "[DESTROY]":
            line = line.replace(" mark=0 ", " ")
        out.setdefault((tag, m.group(1) if m else ""), []).append(
            blank_timeouts(b"\n" + line.encode()).decode()[1:])
    return out


def content_check(row: Dict[str, object], reference: Optional[Dict[tuple, List[str]]], n: int,
                  complete: Sequence[str]) -> str:
    """The check of a pynfct -E row against the burst and conntrack -E's lines; sets row["content_ok"].
    Events of the kinds in `complete` must all be there; any event there must be there once."""
    events = row.pop("events")
    sources = [f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(n)]
    every = {(tag, src) for src in sources for tag in ("[NEW]", "[DESTROY]")}
    want = {(tag, src) for src in sources for tag in complete}
    problems = []
    twice = {k for k, v in events.items() if len(v) != 1}
    if not want <= set(events) <= every or twice:
        problems.append(f"{len(want - set(events))} events missing, {len(set(events) - every)} unexpected, "
                        f"{len(twice)} more than once")
    compared = 0
    if reference is not None:
        for key, ct_lines in reference.items():
            if key not in events:
                continue
            compared += len(ct_lines)
            if events[key] != ct_lines:
                problems.append(f"{key}: conntrack {ct_lines[:1]} vs pynfct {events.get(key, [])[:1]}")
                break
    row["content_ok"] = not problems
    return (f"every burst entry once as {' and '.join(complete)}; " +
            (f"the {compared} lines conntrack -E printed are pynfct's lines for the same events" if reference
             else "no conntrack -E lines to compare")) if not problems else "**" + "; ".join(problems[:3]) + "**"


def report(args, rows: List[Dict[str, object]], facts: Dict[str, str]) -> str:
    n = args.entries
    out = ["Machine: " + ", ".join(f"{k} {v}" for k, v in facts.items() if k != "head") + "; load average at the "
           "end " + " ".join(f"{x:.2f}" for x in os.getloadavg()), "",
           f"Burst: {n:,} entries created with one `conntrack -R` (TCP ESTABLISHED, distinct tuples), then "
           f"`conntrack -F`: {n:,} NEW and {n:,} DESTROY events. Each listener ran alone on a fresh burst. "
           "Losses vary from run to run with the load of the machine.", "",
           "| listener | NEW received | DESTROY received | of expected | ENOBUFS warnings | lost (counted) | "
           "create s | flush s | all read after s | content check |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        got = int(r["new"]) + int(r["destroy"])
        lost = r.get("lost", "-")
        out.append(f"| {r['label']} | {r['new']:,} | {r['destroy']:,} | {100.0 * got / (2 * n):.1f}% | "
                   f"{r['enobufs']} | {lost} | {r['create_s']:.2f} | {r['flush_s']:.2f} | {r['done_s']:.2f} | "
                   f"{r.get('check', 'counts only')} |")
    out += ["", "`lost (counted)`: the Python API's `stream.lost`, the kernel's count of events dropped for a full "
            "socket buffer (SO_MEMINFO). `all read after`: seconds from the start of `conntrack -R` until the "
            "listener had printed its last event.", ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=200000)
    ap.add_argument("--pynfct", default=f"{sys.executable} -m pynfct", help="the pynfct command (default: %(default)s)")
    ap.add_argument("--skip", action="append", default=[], help="skip listeners whose label contains this")
    ap.add_argument("--save", help="write the Markdown report to this file too")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("events_burst.py: needs root (network namespaces)")

    ns = Namespace()

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    rows = []
    try:
        ns.ensure_capacity(args.entries)
        with tempfile.TemporaryDirectory(prefix="pynfct-events-") as tmp:
            lines_file = os.path.join(tmp, "burst.txt")
            with open(lines_file, "w") as f:
                for i in range(args.entries):
                    f.write(f"-I -p tcp -s 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255} -d 198.18.0.1 "
                            f"--sport {1024 + i % 60000} --dport 80 --state ESTABLISHED -u SEEN_REPLY,ASSURED "
                            f"-t 100000\n")
            env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
            py = shlex.split(args.pynfct)
            listeners = [
                ("conntrack -E", ["conntrack", "-E"], False),
                ("pynfct -E", [*py, "-E"], False),
                ("pynfct -E -b 212992", [*py, "-E", "-b", "212992"], False),
                ("Python API: for ev in ct.events()", [sys.executable, "-c", API_CHILD, REPO], True),
            ]
            reference = None
            for label, argv, api in listeners:
                if any(s in label for s in args.skip):
                    continue
                row = run_listener(ns, label, argv, lines_file, args.entries, tmp, api=api, env=env)
                if label == "conntrack -E":
                    reference = row.pop("events")
                    row["check"] = "the reference (it loses events)"
                else:
                    # -b 212992: NEW events are lost by design (the kernel re-sends only DESTROY events)
                    complete = ("[DESTROY]",) if "-b" in argv else ("[NEW]", "[DESTROY]")
                    row["check"] = content_check(row, reference, args.entries, complete)
                rows.append(row)
                ns.run("conntrack", "-F")
    finally:
        ns.close()
    facts = compare.machine_facts()
    text = report(args, rows, facts)
    print(text)
    if args.save:
        compare.save_report(args.save, "Event bursts: pynfct vs conntrack -E", text,
                            {"facts": facts, "entries": args.entries, "rows": rows})
    return 0 if all(r.get("content_ok", True) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
