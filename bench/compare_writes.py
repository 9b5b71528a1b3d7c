"""The write rows of bench/compare.py: `-R` of the generated table, `-D -p tcp`, `-U` over ~100,000 entries.

They change the table, so they run after the read rows, each on a table just loaded from the same file:

- `-R FILE` (N `-I` lines) into an empty table: conntrack, then pynfct (time and peak RSS).
- `-D -p tcp` (~85% of the table): conntrack, reload, pynfct, reload. The reloads are pynfct -R
  (untimed); the summary lines must report the same number of deleted entries.
- `-U -f ipv4 -p udp --dport 53 -m K/0xff0000` (~9% of the table; K changes every round so every
  entry changes). conntrack 1.4.7 cannot do this: it stops with ENOBUFS after ~256 updates (see
  tests/integration/test_write.py). Its time is therefore *estimated* from its own measurements:
  the same command matching nothing on the same table (the dump, which it must read whole), plus its
  per-entry cost measured in a small namespace of 200 entries (the difference between updating all of
  them and none), times the number of entries pynfct updated.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

TARGET_DELETE = 0.3
TARGET_UPDATE = 0.3
TARGET_LOAD = 0.5
TARGET_LOAD_RSS_MB = 100.0
UPDATE_ARGS = ["-U", "-f", "ipv4", "-p", "udp", "--dport", "53"]
SAMPLE = 200            # entries of the small namespace (conntrack -U gives up after ~256)


@dataclass
class WriteRow:
    name: str
    target: float
    ct: list = field(default_factory=list)       # Run, or for -U: estimated seconds
    py: list = field(default_factory=list)
    counts: List[str] = field(default_factory=list)
    note: str = ""


def _count(run, what: str) -> Optional[int]:
    m = re.search(r"(\d+) flow entries have been " + what, run.stderr)
    return int(m.group(1)) if m else None


def run_write_rows(ns, table_path: str, entries: int, rounds: int, pynfct: Sequence[str], run_in_ns, log,
                   namespace_cls) -> List[WriteRow]:
    load = WriteRow(f"-R ({entries} -I lines)", TARGET_LOAD)
    delete = WriteRow("-D -p tcp", TARGET_DELETE)
    update = WriteRow(" ".join(UPDATE_ARGS) + " -m K/0xff0000", TARGET_UPDATE)

    def sh(*argv):
        r = run_in_ns(ns.name, list(argv))
        if not r.ok:
            log(f"WARNING: {' '.join(argv)} failed: {r.stderr.strip()[-300:]}")
        return r

    def reload():
        sh("conntrack", "-F")
        sh(*pynfct, "-R", table_path)

    per_entry = conntrack_update_cost(run_in_ns, namespace_cls, log)
    for r in range(rounds):
        log(f"write round {r + 1}/{rounds}")
        sh("conntrack", "-F")
        load.ct.append(run_in_ns(ns.name, ["conntrack", "-R", table_path]))
        n_ct = ns.count()
        sh("conntrack", "-F")
        load.py.append(run_in_ns(ns.name, [*pynfct, "-R", table_path]))
        n_py = ns.count()
        load.counts.append(f"{n_ct} / {n_py} entries")

        delete.ct.append(run_in_ns(ns.name, ["conntrack", "-D", "-p", "tcp"]))
        reload()
        delete.py.append(run_in_ns(ns.name, [*pynfct, "-D", "-p", "tcp"]))
        delete.counts.append(f"{_count(delete.ct[-1], 'deleted')} / {_count(delete.py[-1], 'deleted')} deleted")
        reload()

        mark = [f"0x{(r + 1) << 16:x}/0xff0000"]
        none = run_in_ns(ns.name, ["conntrack", "-U", "-f", "ipv4", "-s", "10.255.0.0/16", "-m", "1"])
        py = run_in_ns(ns.name, [*pynfct, *UPDATE_ARGS, "-m", *mark])
        n = _count(py, "updated")
        update.py.append(py)
        if per_entry is not None and n is not None:
            update.ct.append(none.wall + n * per_entry)
        update.counts.append(f"{n} updated")
    if per_entry is not None:
        update.note = (f"`-U` conntrack time estimated (it stops with ENOBUFS after ~256 updates): its -U "
                       f"matching nothing on this table + {per_entry * 1e6:.1f} µs per updated entry, measured "
                       f"on {SAMPLE} entries in a small namespace.")
    return [load, delete, update]


def conntrack_update_cost(run_in_ns, namespace_cls, log) -> Optional[float]:
    """conntrack -U's cost per updated entry: all of SAMPLE entries minus none, in a small namespace."""
    small = namespace_cls(f"pynfct-bench-{os.getpid()}-u")
    try:
        small.create()
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
            for i in range(SAMPLE):
                f.write(f"-I -p udp -s 10.{i >> 8}.{i & 255}.1 -d 172.16.0.1 --sport 1 --dport 53 -t 500000\n")
            f.flush()
            subprocess.run(["ip", "netns", "exec", small.name, "conntrack", "-R", f.name], capture_output=True)
        diffs = []
        for k in range(7):
            allr = run_in_ns(small.name, ["conntrack", *UPDATE_ARGS, "-m", f"0x{k + 1:x}"])
            none = run_in_ns(small.name, ["conntrack", "-U", "-f", "ipv4", "-s", "10.255.0.0/16", "-m", "1"])
            if allr.ok and f"{SAMPLE} flow entries have been updated" in allr.stderr:
                diffs.append((allr.wall - none.wall) / SAMPLE)
        if not diffs:
            log("WARNING: could not measure conntrack -U's cost per entry")
            return None
        return statistics.median(diffs)
    finally:
        small.close()


def write_report(rows: List[WriteRow]) -> str:
    out = ["", "", "Write commands (each on a table freshly loaded from the generated file; best of the rounds):", "",
           "| command | conntrack s | pynfct s | ratio | target | result | pynfct RSS MB | counts (conntrack / pynfct) |",
           "|---|---:|---:|---:|---|---|---:|---|"]
    for row in rows:
        pys = [r for r in row.py if r.ok]
        py = min(pys, key=lambda r: r.wall) if pys else None
        if row.ct and isinstance(row.ct[0], float):
            ct_s, ct_label = min(row.ct), f"{min(row.ct):.3f} (estimated)"
        else:
            cts = [r for r in row.ct if r.ok]
            ct_s = min(r.wall for r in cts) if cts else None
            ct_label = f"{ct_s:.3f}" if ct_s is not None else "failed"
        ratio = py.wall / ct_s if py and ct_s else None
        ok = ratio is not None and ratio <= row.target
        target = f"≤ {row.target:g}"
        if row.name.startswith("-R"):
            target += f", RSS ≤ {TARGET_LOAD_RSS_MB:g} MB"
            ok = ok and py is not None and py.rss_kb / 1024 <= TARGET_LOAD_RSS_MB
        out.append(f"| `{row.name}` | {ct_label} | {f'{py.wall:.3f}' if py else 'failed'} | "
                   f"{f'{ratio:.2f}' if ratio is not None else '-'} | {target} | {'pass' if ok else '**FAIL**'} | "
                   f"{f'{py.rss_kb / 1024:.1f}' if py else '-'} | {'; '.join(dict.fromkeys(row.counts))} |")
    cpu = ["", "CPU of the best pynfct runs (user + sys s): " + ", ".join(
        f"{row.name}: {min((r for r in row.py if r.ok), key=lambda r: r.wall).user:.2f} + "
        f"{min((r for r in row.py if r.ok), key=lambda r: r.wall).sys:.2f}" for row in rows if any(r.ok for r in row.py))]
    ct_cpu = [f"{row.name}: {min((r for r in row.ct if r.ok), key=lambda r: r.wall).user:.2f} + "
              f"{min((r for r in row.ct if r.ok), key=lambda r: r.wall).sys:.2f}"
              for row in rows if row.ct and not isinstance(row.ct[0], float) and any(r.ok for r in row.ct)]
    cpu.append("CPU of the best conntrack runs (user + sys s): " + ", ".join(ct_cpu))
    notes = [row.note for row in rows if row.note]
    return "\n".join(out + cpu + ([""] + notes if notes else []))
