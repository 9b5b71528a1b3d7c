"""The write rows of bench/compare.py: `-R` of the generated table, `-D -p tcp`, `-U` over ~9 % of it, `-F`.

They change the table, so they run after the read rows, each on a table just loaded from the same file
(reloads use `pynfct -R`, untimed, after its own row has shown it builds the table conntrack -R builds).
Every timed run is checked after it has exited, pynfct's against conntrack's:

- its stdout (the entries it printed), as sha256 with only the timeouts blanked (bench/canon.py);
- its exit status and stderr (the summary line, with the program's name and version normalised);
- the table it leaves behind: a `conntrack -L` of it (untimed, same normalisation), which must equal the
  table conntrack's run leaves. Both runs start from the same table in the same namespace, loaded from the
  same file in the same order, so the kernel's dump order is the same and the comparison is in order.

Rows:

- `-R FILE` (N `-I` lines) into an empty table: conntrack, then pynfct (time and peak RSS).
- `-D -p tcp` (~85 % of the table): conntrack, reload, pynfct, reload.
- `-U -f ipv4 -p udp --dport 53 -m K/0xff0000` (~9 % of the table; K changes every round so every entry
  changes): conntrack 1.4.7 cannot do this (it stops with ENOBUFS after ~256 updates, see
  tests/integration/test_write.py, and the report shows its answer on this table), so the row has no
  ratio. The reference is built without pynfct: the generated file with the new marks written into the
  matching lines, loaded by `conntrack -R` into the emptied table; pynfct's table must equal it, and what
  pynfct printed must equal `conntrack -L -f ipv4 -p udp --dport 53` of it, with `use=1` read as `use=2`:
  -U prints each entry as a get of it returns it after the update, and the get holds a reference of its
  own (conntrack 1.4.7's -U prints use=2 too, for the entries it prints).
- `-F`: conntrack, reload, pynfct; both tables must be empty.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from canon import digest
from compare import Run, best, first_error, run_in_ns

TARGET_DELETE = 0.3
TARGET_UPDATE = 0.3
TARGET_LOAD = 0.5
TARGET_LOAD_RSS_MB = 100.0
UPDATE_ARGS = ["-U", "-f", "ipv4", "-p", "udp", "--dport", "53"]
UPDATE_MASK = 0xff0000
_PROG = re.compile(r"^(conntrack v\S+ \(conntrack-tools\)|pynfct v\S+ \(conntrack-tools compatible\))", re.M)


@dataclass
class WriteRow:
    name: str
    target: Optional[float]
    ct: List[Run] = field(default_factory=list)
    py: List[Run] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)   # output checks that failed, per round
    checked: List[str] = field(default_factory=list)    # what was compared, per round
    conntrack_cannot: str = ""                          # why the row has no conntrack time


def _stderr(run: Run) -> str:
    return _PROG.sub("<PROG>", run.stderr.strip())


def _count(run: Run, what: str) -> Optional[int]:
    m = re.search(r"(\d+) flow entries have been " + what, run.stderr)
    return int(m.group(1)) if m else None


def updated_line(line: str, mark: int) -> str:
    """A generated `-I` line with the mark `-U ... -m MARK/UPDATE_MASK` gives a matching entry."""
    m = re.search(r" -m (\d+)", line)
    old = int(m.group(1)) if m else 0
    new = (old & ~UPDATE_MASK) ^ mark
    return line[:m.start()] + f" -m {new}" + line[m.end():] if m else f"{line} -m {new}"


def matches_update(line: str) -> bool:
    return " -p udp " in line and " --dport 53 " in line   # every generated entry is IPv4


def run_write_rows(ns, table_path: str, entries: int, rounds: int, pynfct: Sequence[str],
                   log: Callable[[str], None]) -> List[Dict[str, object]]:
    load = WriteRow(f"-R ({entries} -I lines)", TARGET_LOAD)
    delete = WriteRow("-D -p tcp", TARGET_DELETE)
    update = WriteRow(" ".join(UPDATE_ARGS) + " -m K/0xff0000", TARGET_UPDATE)
    flush = WriteRow("-F", None)          # no issue sets a target for -F: its time is for reference

    def sh(*argv: str) -> Run:
        r = run_in_ns(ns.name, list(argv))
        if not r.ok:
            log(f"WARNING: {' '.join(argv)} failed: {r.stderr.strip()[-300:]}")
        return r

    def table() -> Run:
        return sh("conntrack", "-L")

    def reload() -> None:
        sh("conntrack", "-F")
        sh(*pynfct, "-R", table_path)

    def same(row: WriteRow, rnd: int, ct: Run, py: Run, ct_table: Run, py_table: Run) -> None:
        """conntrack's run and table against pynfct's."""
        problems = []
        if ct.rc != py.rc:
            problems.append(f"exit status {ct.rc} vs {py.rc}")
        if ct.digest != py.digest:
            problems.append(f"printed entries differ ({ct.lines} vs {py.lines} lines)")
        if _stderr(ct) != _stderr(py):
            problems.append(f"stderr differs: {_stderr(ct)[-120:]!r} vs {_stderr(py)[-120:]!r}")
        if not (ct_table.ok and py_table.ok) or ct_table.digest != py_table.digest:
            problems.append(f"the tables left differ ({ct_table.lines} vs {py_table.lines} entries)")
        row.problems += [f"round {rnd}: {p}" for p in problems]
        row.checked.append(f"{ct.lines} printed, table of {py_table.lines}")

    with open(table_path) as f:
        lines = f.read().splitlines()
    for rnd in range(1, rounds + 1):
        log(f"write round {rnd}/{rounds}")
        sh("conntrack", "-F")
        ct = run_in_ns(ns.name, ["conntrack", "-R", table_path])
        ct_table = table()
        sh("conntrack", "-F")
        py = run_in_ns(ns.name, [*pynfct, "-R", table_path])
        py_table = table()
        load.ct.append(ct)
        load.py.append(py)
        same(load, rnd, ct, py, ct_table, py_table)

        ct = run_in_ns(ns.name, ["conntrack", "-D", "-p", "tcp"])
        ct_table = table()
        reload()
        py = run_in_ns(ns.name, [*pynfct, "-D", "-p", "tcp"])
        py_table = table()
        delete.ct.append(ct)
        delete.py.append(py)
        same(delete, rnd, ct, py, ct_table, py_table)
        reload()

        mark = rnd << 16
        py = run_in_ns(ns.name, [*pynfct, *UPDATE_ARGS, "-m", f"0x{mark:x}/0x{UPDATE_MASK:x}"])
        py_table = table()
        update.py.append(py)
        with tempfile.NamedTemporaryFile("w", prefix="pynfct-bench-want-", suffix=".txt") as want:
            want.write("\n".join(updated_line(l, mark) if matches_update(l) else l for l in lines) + "\n")
            want.flush()
            sh("conntrack", "-F")
            sh("conntrack", "-R", want.name)
        want_table = table()
        listed = run_in_ns(ns.name, ["conntrack", "-L", "-f", "ipv4", "-p", "udp", "--dport", "53"], keep=True)
        want_printed, want_lines, _ = digest([listed.text.replace(" use=1\n", " use=2\n").encode()])
        problems = []
        if py.rc != 0 or _count(py, "updated") != listed.lines:
            problems.append(f"exit {py.rc}, summary {_stderr(py)[-80:]!r}, {listed.lines} entries match")
        if py.digest != want_printed:
            problems.append(f"printed entries differ from the reference ({py.lines} vs {want_lines} lines)")
        if py_table.digest != want_table.digest:
            problems.append(f"the table left differs from the reference ({py_table.lines} vs {want_table.lines})")
        update.problems += [f"round {rnd}: {p}" for p in problems]
        update.checked.append(f"{py.lines} printed, table of {py_table.lines}")
        reload()

        ct = run_in_ns(ns.name, ["conntrack", "-F"])
        ct_table = table()
        reload()
        py = run_in_ns(ns.name, [*pynfct, "-F"])
        py_table = table()
        flush.ct.append(ct)
        flush.py.append(py)
        same(flush, rnd, ct, py, ct_table, py_table)
        if ct_table.lines or py_table.lines:
            flush.problems.append(f"round {rnd}: tables not empty ({ct_table.lines}, {py_table.lines})")

    # conntrack 1.4.7's own -U on this table, once, for the row's note.
    reload()
    ct = run_in_ns(ns.name, ["conntrack", *UPDATE_ARGS, "-m", f"0x{(rounds + 1) << 16:x}/0x{UPDATE_MASK:x}"])
    last = (ct.stderr.strip().splitlines() or ["nothing"])[-1]
    update.conntrack_cannot = (f"conntrack cannot do this: on this table `conntrack {' '.join(UPDATE_ARGS)} -m ...` "
                               f"exited {ct.rc} after printing {ct.lines} of the entries, with `{last}`")
    sh("conntrack", "-F")
    return [row_data(row) for row in (load, delete, update, flush)]


def row_data(row: WriteRow) -> Dict[str, object]:
    def run(r: Optional[Run]) -> Optional[Dict[str, float]]:
        return None if r is None else {"wall": r.wall, "user": r.user, "sys": r.sys, "rss_mb": r.rss_kb / 1024}
    py, ct = best(row.py), best(row.ct)
    ratio = py.wall / ct.wall if (py and ct) else None
    ok = not row.problems and bool(row.py) and all(r.ok for r in row.py)
    met = ratio is not None and row.target is not None and ratio <= row.target and ok
    target = f"≤ {row.target:g}" if row.target is not None else "-"
    if row.name.startswith("-R"):
        target += f", RSS ≤ {TARGET_LOAD_RSS_MB:g} MB"
        met = met and py is not None and py.rss_kb / 1024 <= TARGET_LOAD_RSS_MB
    if row.conntrack_cannot or row.target is None:
        met = None
    check = ("same output, summary, exit status and resulting table as "
             + ("conntrack's" if not row.conntrack_cannot else "the reference")
             + " in every round (" + "; ".join(dict.fromkeys(row.checked)) + ")") if ok else \
        "**DIFFERENT**: " + "; ".join(row.problems[:5] or [first_error(row.py)])
    return {"name": row.name, "kind": "write", "conntrack": run(ct), "pynfct": run(py), "ratio": ratio,
            "target": row.target, "target_text": target, "met": met, "output_ok": ok, "check": check,
            "conntrack_cannot": row.conntrack_cannot, "error": first_error(row.py) if py is None else ""}


def write_report(rows: List[Dict[str, object]]) -> str:
    out = ["", "", "Write commands (each on a table freshly loaded from the generated file; best of the rounds):", "",
           "| command | conntrack s | pynfct s | ratio | target | result | pynfct RSS MB |",
           "|---|---:|---:|---:|---|---|---:|"]
    for row in rows:
        ct, py = row["conntrack"], row["pynfct"]
        ratio = "conntrack cannot do this" if row["conntrack_cannot"] else \
            f"{row['ratio']:.2f}" if row["ratio"] is not None else "-"
        result = "-" if row["met"] is None else "pass" if row["met"] else "**FAIL**"
        out.append(f"| `{row['name']}` | {_s(ct)} | {_s(py) if py else 'failed (' + row['error'] + ')'} | {ratio} | "
                   f"{row['target_text']} | {result} | {_mb(py)} |")
    out += ["", "CPU of the best runs (user + sys s):", ""]
    for row in rows:
        ct, py = row["conntrack"], row["pynfct"]
        c = f"conntrack {ct['user']:.2f} + {ct['sys']:.2f}" if ct else "conntrack -"
        p = f"pynfct {py['user']:.2f} + {py['sys']:.2f}" if py else "pynfct -"
        out.append(f"- `{row['name']}`: {c}; {p}")
    out += ["", "Output checks, every round (printed entries: sha256 with the timeouts blanked; the table left: "
            "`conntrack -L` of it, the same way; the summary line and the exit status):", ""]
    for row in rows:
        out.append(f"- `{row['name']}`: {row['check']}")
        if row["conntrack_cannot"]:
            out.append(f"  {row['conntrack_cannot']}.")
    return "\n".join(out)


def _s(run: Optional[Dict[str, float]]) -> str:
    return f"{run['wall']:.3f}" if run else "-"


def _mb(run: Optional[Dict[str, float]]) -> str:
    return f"{run['rss_mb']:.1f}" if run else "-"


if __name__ == "__main__":
    raise SystemExit("run bench/compare.py (its write rows are this module's)")
