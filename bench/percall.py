#!/usr/bin/env python3
"""Per-call latency: one small `pynfct` command against one `conntrack` call and `python -c pass`.

Programs call conntrack once per item (kube-proxy `conntrack -D --orig-dst IP -p udp`, Neutron
`conntrack -D -f ipv4 -d IP -w ZONE`, the kernel selftest nft_zones_many.sh inserting 2,000 entries with
2,000 calls), so a drop-in pays its start-up on every call. Run as root from the checkout:

    python bench/percall.py                        # fresh venv, 200 rounds, report to stdout
    python bench/percall.py --save bench/PERCALL.md
    python bench/percall.py --venv /tmp/pc --rounds 50   # reuse (or create) that venv

What it does:

1. Installs this checkout the way a user does, with a regular (non-editable) `pip install` into a fresh
   venv: from a copy of the files git tracks (what a clean clone holds), so a stale build/ directory or
   the checkout's editable install cannot leak in. `--venv DIR` keeps the venv for later runs (created
   and installed when DIR/bin/pynfct is missing).
2. Creates a throwaway namespace `pynfct-bench-<pid>-percall` (deleted at exit) holding `--entries`
   background entries (udp and tcp, loaded with `conntrack -R`), and runs the timing loop inside it
   (this script re-executed through `ip netns exec`, so no timed call pays for `ip netns exec`).
3. Each round runs, interleaved (which tool goes first alternates between rounds), with stdout and
   stderr captured as a calling program would:
     `VENV/bin/python -c pass`                 the interpreter's own start, same interpreter as pynfct
     `-C`                                      count the table
     `-I -p udp -s A -d B --sport S --dport D -t 600`   create one entry
     `-G` (same tuple)                         get it
     `-D` (same tuple)                         delete it, by tuple
     `-D --orig-dst B2 -p udp`                 kube-proxy's delete (an entry conntrack put there first,
                                               untimed)
   for pynfct (the installed script, VENV/bin/pynfct) and for conntrack on the same table state.
   Every pynfct result is compared with conntrack's of the same round (tests/differential.py's compare():
   exit status, stdout line by line, stderr with the program prefix normalised; timeouts not compared:
   each tool's entries are created in its own turn of the round, so they differ by that turn's length);
   after each -I and -D (untimed) the whole table is read with `conntrack -L` and compared with the
   table conntrack's call left (bench/canon.py: sha256 of the lines, timeouts blanked).
4. Measures `-X importtime` of each pynfct command (median over --importtime-runs runs) and what the
   extension modules cost apart: the smallest one (_nfct.progname, its imports preloaded) is the fixed
   price of one more extension module.
5. Prints a Markdown report (or writes it with --save, and its data to the .json twin that
   bench/readme.py reads): the medians, each against `python -c pass` (target: at most 1.5x),
   conntrack's beside it, the output check and the import-time split.

Exit status: 1 when an output differed from conntrack's; else 3 when a target row missed its bound (-C, -I
and -G at most 1.5x `python -c pass`; -D, which cannot avoid the kernel's walk of its whole hash table, at
most 1.5x `python -c pass` + that walk, measured in the same rounds); else 0. .ci/run runs it after the test
suite (`--rounds 100 --importtime-runs 5`, under a minute with the install) and fails on 1 only: a time is
a measurement of a shared machine, reported there and in bench/PERCALL.md, not a test (DEVELOPERS.md).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(REPO, "tests"))
import compare as cmp  # noqa: E402  (machine facts, namespace handling)
from canon import digest  # noqa: E402
from differential import Result, compare as compare_results  # noqa: E402

TARGET = 1.5        # pynfct median / `python -c pass` median
NS_SUFFIX = "-percall"

# The tuples of the timed commands (outside the background entries' ranges).
SRC, DST, SPORT, DPORT = "10.77.0.1", "10.77.0.2", "40000", "53"
KP_SRC, KP_DST = "10.77.1.1", "10.77.1.2"          # kube-proxy row: -D --orig-dst KP_DST -p udp
ONE = ["-p", "udp", "-s", SRC, "-d", DST, "--sport", SPORT, "--dport", DPORT]

# (row id, argv after the program, in the report's table, a 1.5x target row)
ROWS: List[Tuple[str, List[str], bool]] = [
    ("-C", ["-C"], True),
    ("-I", ["-I", *ONE, "-t", "600"], True),
    ("-G", ["-G", *ONE], True),
    ("-D", ["-D", *ONE], True),
    ("-D --orig-dst", ["-D", "--orig-dst", KP_DST, "-p", "udp"], False),
]
TIMEOUT = 600        # the timed entries' timeout: a timeout anywhere in 0..600 is not compared
TABLE_AFTER = ("-I", "-D", "-D --orig-dst")   # rows whose resulting table is compared too
KP_CREATE = ["-I", "-p", "udp", "-s", KP_SRC, "-d", KP_DST, "--sport", "41000", "--dport", "53", "-t", "600"]


def log(msg: str) -> None:
    print(f"[percall] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the installed pynfct

def tracked_copy(dest: str) -> None:
    """The checkout's files that git tracks or would (not ignored), as in the working tree, to dest."""
    names = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, names):
        src = os.path.join(REPO, os.fsdecode(name))
        if not os.path.isfile(src):
            continue   # deleted in the working tree
        dst = os.path.join(dest, os.fsdecode(name))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def install(venv: str, python: str) -> None:
    """A fresh venv at `venv` with this checkout pip-installed into it (regular, not editable)."""
    log(f"creating {venv} and pip-installing the checkout into it (builds the extension, ~1 min)")
    subprocess.run([python, "-m", "venv", venv], check=True)
    with tempfile.TemporaryDirectory(prefix="pynfct-percall-src-") as src:
        tracked_copy(src)
        subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", src],
                       check=True)


def check_installed(venv: str) -> str:
    """Where the venv's pynfct package lives; refuses an editable install or the checkout's sources."""
    py = os.path.join(venv, "bin", "python")
    code = "import pynfct, _nfct.flow as f; print(pynfct.__file__); print(f.__file__)"
    where = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True,
                           cwd="/").stdout.split()
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    editable = [n for n in os.listdir(site) if n.startswith("__editable__") and "pynfct" in n]
    if editable or not all(os.path.realpath(w).startswith(os.path.realpath(site) + os.sep) for w in where):
        sys.exit(f"{venv} does not hold a regular install of pynfct ({where}, {editable}); "
                 "use a fresh --venv directory")
    return site


# --------------------------------------------------------------------------- timing (inside the namespace)

def run(argv: Sequence[str]) -> Tuple[float, Result]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd="/")
    dt = time.perf_counter() - t0
    return dt, Result(list(argv), p.returncode, p.stdout, p.stderr)


def kernel_dump() -> float:
    """Seconds of one ctnetlink dump of the IPv4 table from this process: the request every -D makes
    (conntrack's too), timed without any program start. The kernel walks its whole hash table for it,
    all namespaces' buckets, however few entries this namespace holds."""
    import socket
    import struct
    NETLINK_NETFILTER, NLMSG_ERROR, NLMSG_DONE = 12, 2, 3
    IPCTNL_MSG_CT_GET = (1 << 8) | 1       # NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET
    NLM_F_REQUEST_DUMP = 0x1 | 0x300
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as s:
        s.bind((0, 0))
        req = struct.pack("=IHHII", 20, IPCTNL_MSG_CT_GET, NLM_F_REQUEST_DUMP, 1, 0) + \
            struct.pack("=BBH", socket.AF_INET, 0, 0)
        t0 = time.perf_counter()
        s.send(req)
        while True:
            data = s.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    return time.perf_counter() - t0
                off += (length + 3) & ~3


def fill(entries: int) -> None:
    """`entries` background entries (85 % tcp ESTABLISHED, the rest udp), loaded with conntrack -R."""
    lines = []
    for i in range(entries):
        a, b = divmod(i, 250)
        src, dst = f"10.{a // 250}.{a % 250}.{b + 1}", f"192.168.{a % 250}.{b + 1}"
        if i % 7 == 6:
            lines.append(f"-I -p udp -s {src} -d {dst} --sport {1024 + i % 60000} --dport 53 -t 3600\n")
        else:
            lines.append(f"-I -p tcp -s {src} -d {dst} --sport {1024 + i % 60000} --dport 443 "
                         f"--state ESTABLISHED -t 3600\n")
    with tempfile.NamedTemporaryFile("w", prefix="pynfct-percall-", suffix=".txt") as f:
        f.writelines(lines)
        f.flush()
        subprocess.run(["conntrack", "-R", f.name], check=True, capture_output=True)


def inner(args: argparse.Namespace) -> None:
    """The rounds; prints one JSON object on stdout."""
    fill(args.entries)
    pynfct = [args.pynfct]
    conntrack = [shutil.which("conntrack") or "conntrack"]
    passing = [args.python, "-c", "pass"]
    times: Dict[str, Dict[str, List[float]]] = {r: {"pynfct": [], "conntrack": []} for r, _, _ in ROWS}
    times["pass"] = {"python": []}
    times["kernel"] = {"dump": []}
    mismatches: List[str] = []
    checked = 0
    # warm the page cache and check that things run at all
    for tool in (pynfct, conntrack):
        run([*tool, "-C"])
    run(passing)
    load_before = os.getloadavg()
    started = time.time()
    for rnd in range(args.rounds):
        order = [("pynfct", pynfct), ("conntrack", conntrack)]
        if rnd % 2:
            order.reverse()
        results: Dict[str, Dict[str, Result]] = {r: {} for r, _, _ in ROWS}
        tables: Dict[str, Dict[str, str]] = {r: {} for r in TABLE_AFTER}
        dt, res = run(passing)
        if res.returncode != 0:
            mismatches.append(f"round {rnd}: python -c pass exited {res.returncode}")
        times["pass"]["python"].append(dt)
        times["kernel"]["dump"].append(kernel_dump())
        for name, tool in order:
            run([*conntrack, *KP_CREATE])        # untimed: the kube-proxy row's entry
            for row, argv, _ in ROWS:
                dt, res = run([*tool, *argv])
                times[row][name].append(dt)
                results[row][name] = res
                if row in TABLE_AFTER:    # untimed: the table the write left (timeouts blanked)
                    tables[row][name] = digest([run([*conntrack, "-L"])[1].stdout])[0]
        for row, argv, _ in ROWS:
            ct, py = results[row]["conntrack"], results[row]["pynfct"]
            problems = compare_results(ct, py, timeout_slack=TIMEOUT)
            if row in TABLE_AFTER and tables[row]["conntrack"] != tables[row]["pynfct"]:
                problems.append("the table left differs from the one conntrack's call left")
            checked += 1
            if problems and len(mismatches) < 20:
                mismatches.append(f"round {rnd}, {row}: " + "; ".join(problems))
    elapsed = time.time() - started
    load_after = os.getloadavg()
    # conntrack's results of the last round, shown in the report
    samples = {row: {"argv": argv, "status": results[row]["conntrack"].returncode,
                     "stdout": results[row]["conntrack"].out, "stderr": results[row]["conntrack"].err}
               for row, argv, _ in ROWS}
    try:
        with open("/proc/sys/net/netfilter/nf_conntrack_buckets") as f:
            buckets = f"{int(f.read()):,}"
    except (OSError, ValueError):
        buckets = None
    json.dump({"times": times, "mismatches": mismatches, "buckets": buckets, "checked": checked,
               "elapsed": elapsed, "load_before": load_before, "load_after": load_after, "samples": samples,
               "importtime": importtime(args), "count": int(run([*conntrack, "-C"])[1].out.strip() or 0)},
              sys.stdout)


# --------------------------------------------------------------------------- -X importtime

def parse_importtime(text: str) -> List[Tuple[str, int, int]]:
    """(module, self us, cumulative us) in import order, from -X importtime's stderr."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cum, name = line[len("import time:"):].split("|")
        rows.append((name.strip(), int(self_us), int(cum)))
    return rows


def importtime(args: argparse.Namespace) -> Dict[str, object]:
    """Median self time (us) of each module a command imports, and what the interpreter imports anyway."""
    def once(argv: Sequence[str]) -> List[Tuple[str, int, int]]:
        p = subprocess.run([args.python, "-X", "importtime", *argv], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")
        return parse_importtime(p.stderr.decode(errors="replace"))

    def medians(argv: Sequence[str], setup: Sequence[Sequence[str]] = ()) -> Dict[str, int]:
        runs: Dict[str, List[int]] = {}
        for _ in range(args.importtime_runs):
            for s in setup:
                subprocess.run(s, capture_output=True)
            for name, self_us, _ in once(argv):
                runs.setdefault(name, []).append(self_us)
        return {name: int(statistics.median(v)) for name, v in runs.items()}

    out: Dict[str, object] = {"baseline": medians(["-c", "pass"])}
    conntrack = shutil.which("conntrack") or "conntrack"
    commands = {}
    for row, argv, _ in ROWS:
        setup: List[List[str]] = []
        if row in ("-G", "-D"):
            setup = [[conntrack, "-I", *ONE, "-t", "600"]]
        elif row == "-I":
            setup = [[conntrack, "-D", *ONE]]
        elif row == "-D --orig-dst":
            setup = [[conntrack, *KP_CREATE]]
        commands[row] = medians([args.pynfct, *argv], setup)
    out["commands"] = commands
    # The fixed price of one extension module: the smallest _nfct module, its own imports loaded first.
    smallest = medians(["-c", "import _nfct.errors; import _nfct.progname"])
    out["one_extension"] = smallest.get("_nfct.progname", 0)
    return out


# --------------------------------------------------------------------------- report

def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def loads(avg: Sequence[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in avg)


def report(data: dict, facts: Dict[str, str], args: argparse.Namespace,
           venv_note: str) -> Tuple[str, bool, dict]:
    times = data["times"]
    med = {row: {tool: statistics.median(v) for tool, v in tools.items()} for row, tools in times.items()}
    base = med["pass"]["python"]
    walk = med["kernel"]["dump"]
    floor = base + walk
    ok = not data["mismatches"]
    lines = [
        "# Per-call latency: one `pynfct` call against `conntrack` and `python -c pass`",
        "",
        f"Generated by `python bench/percall.py{' ' + ' '.join(args.argv) if args.argv else ''}` on "
        f"{datetime.date.today().isoformat()}, commit {facts['commit']}.",
        "",
        f"Machine: {facts['cpu']}, {facts['nproc']} CPUs, {facts['memory']}; Linux {facts['kernel']}; "
        f"Python {facts['python']}; {facts['conntrack']}.",
        f"pynfct: {venv_note}.",
        f"Table: {data['count']} entries in a throwaway namespace; {args.rounds} rounds "
        f"({data['elapsed']:.0f} s), every command once per round for each tool, interleaved (the first "
        "tool alternates between rounds), stdout and stderr captured.",
        f"Load average (1/5/15 min) before the rounds: {loads(data['load_before'])}; "
        f"after: {loads(data['load_after'])} (the machine is shared with other "
        "work: medians, not means).",
        "",
        f"Target: the median of a pynfct call is at most {TARGET}x the median of `python -c pass` "
        f"with the same interpreter ({ms(base)} ms here).",
        "",
        "| command | pynfct ms (median) | / `python -c pass` | target | conntrack ms (median) "
        "| pynfct - conntrack ms | pynfct p90 ms |",
        "|---|---:|---:|---|---:|---:|---:|",
        f"| `python -c pass` | {ms(base)} | 1.00 | | | | "
        f"{ms(statistics.quantiles(times['pass']['python'], n=10)[-1])} |",
    ]
    json_rows = []
    for row, argv, target in ROWS:
        py, ct = med[row]["pynfct"], med[row]["conntrack"]
        ratio = py / base
        met = ratio <= TARGET
        dump = row.startswith("-D")
        if target:
            # a -D cannot beat the kernel's walk of its table (see below): counted against that floor
            ok = ok and (py <= TARGET * base + walk if dump else met)
        json_rows.append({"row": row, "argv": " ".join(argv), "target": target, "pynfct_ms": py * 1000,
                          "conntrack_ms": ct * 1000, "ratio": ratio, "met": met,
                          "floor": floor / base if dump else None,
                          "bound": (TARGET * base + walk) / base if dump else TARGET,
                          "bound_met": py <= TARGET * base + walk if dump else met})
        goal = "(reference)"
        if target:
            goal = f"≤ {TARGET}" + ("" if met else ", **not met**")
            if dump and not met:
                goal += " (kernel floor, below)"
        lines.append(f"| `{' '.join(argv)}` | {ms(py)} | {ratio:.2f} | {goal} | {ms(ct)} | {ms(py - ct)} | "
                     f"{ms(statistics.quantiles(times[row]['pynfct'], n=10)[-1])} |")
    buckets = data.get("buckets") or "?"
    lines += [
        f"| kernel: one IPv4 dump of the table, in-process (no program start) | | | | {ms(walk)} | | |",
        "",
        f"`-D` dumps the table and deletes what matches, as conntrack does: the kernel walks its whole "
        f"conntrack hash table ({buckets} buckets here, shared by all namespaces) for every dump, however "
        f"few entries the namespace holds. That walk alone takes {ms(walk)} ms (last row); conntrack pays "
        f"it too ({ms(med['-D']['conntrack'])} ms for its `-D` against {ms(med['-G']['conntrack'])} ms for "
        f"its `-G`, whose get by tuple costs the kernel next to nothing). No program that starts this "
        f"interpreter can delete in less than `python -c pass` + the walk = {ms(floor)} ms = "
        f"{floor / base:.2f}x `python -c pass`, so {TARGET}x is out of reach for `-D` on this host. A get and "
        f"a delete by tuple instead of the dump would come near `-G`'s {med['-G']['pynfct'] / base:.2f}x, "
        f"but would not do what conntrack does: a full tuple matches that tuple in every zone "
        f"(`conntrack -D -p udp -s A -d B --sport 1 --dport 2` deletes the entry of zone 0 and the one of "
        f"zone 5), and a get needs the zone; the get's answer also counts its own reference (`use=2` where "
        f"the dump says `use=1`). What pynfct adds to conntrack's `-D` "
        f"({ms(med['-D']['pynfct'] - med['-D']['conntrack'])} ms) is what it adds to conntrack's `-G` "
        f"({ms(med['-G']['pynfct'] - med['-G']['conntrack'])} ms), its start, give or take the noise. "
        f"The exit status counts `-D` against "
        f"{TARGET}x `python -c pass` + the walk ({ms(TARGET * base + walk)} ms).",
        "",
        f"Output check: {data['checked']} pynfct results compared with conntrack's of the same round "
        "(exit status, stdout line by line, stderr; the program prefix normalised, timeouts not compared, "
        "as in tests/differential.py), and after each `-I` and `-D` the whole table as `conntrack -L` shows it "
        "(sha256 of the lines, timeouts blanked) against the table conntrack's call left: "
        + ("**all matched**." if not data["mismatches"] else f"**{len(data['mismatches'])} mismatches**:"),
    ]
    for m in data["mismatches"]:
        lines.append(f"- {m}")
    lines += ["", "What conntrack printed (last round):", ""]
    for row, sample in data["samples"].items():
        out = sample["stdout"].rstrip("\n")
        err = sample["stderr"].rstrip("\n")
        lines.append(f"- `conntrack {' '.join(sample['argv'])}`: exit {sample['status']}; stdout "
                     f"`{out}`; stderr `{err}`" if out else
                     f"- `conntrack {' '.join(sample['argv'])}`: exit {sample['status']}; stderr `{err}`")
    starts_met = all(med[row]["pynfct"] <= TARGET * base for row, _, target in ROWS
                     if target and not row.startswith("-D"))
    lines += importtime_section(data["importtime"], base * 1000, starts_met)
    dump_note = (f"`-D` dumps the table and deletes what matches, as conntrack does (a full tuple still "
                 f"matches that tuple in every zone, so a get and a delete by tuple would not do): the kernel "
                 f"walks its whole hash table ({buckets} buckets here, shared by all namespaces) for every "
                 f"dump, {ms(walk)} ms in-process, which conntrack's `-D` pays too ({ms(med['-D']['conntrack'])} ms "
                 f"against {ms(med['-G']['conntrack'])} ms for its `-G`). `python -c pass` + that walk = "
                 f"{floor / base:.2f}x `python -c pass` is the floor of any `-D` started with this interpreter.")
    out = {"facts": facts, "rounds": args.rounds, "count": data["count"], "pass_ms": base * 1000,
           "walk_ms": walk * 1000, "mismatches": data["mismatches"], "checked": data["checked"], "rows": json_rows,
           "dump_note": dump_note, "load_before": data["load_before"], "load_after": data["load_after"],
           "importtime": data["importtime"], "ok": ok}
    return "\n".join(lines) + "\n", ok, out


def importtime_section(it: dict, base_ms: float, starts_met: bool) -> List[str]:
    """The -X importtime split; base_ms is the median of `python -c pass` in ms, starts_met whether
    -C, -I and -G met the target."""
    baseline = it["baseline"]
    lines = [
        "",
        "## What one command imports (`-X importtime`, median self time in ms)",
        "",
        "Modules `python -c pass` imports as well are left out. Extension modules are the _nfct ones "
        "(`_nfct` itself and `_nfct.errors` are Python).",
        "",
        "| command | Python modules of pynfct | _nfct extension modules | standard library | total |",
        "|---|---|---|---|---:|",
    ]
    py_ext = {"_nfct", "_nfct.errors", "_nfct._types"}
    for row, mods in it["commands"].items():
        extra = {m: t for m, t in mods.items() if m not in baseline}
        own = {m: t for m, t in extra.items() if m.startswith("pynfct") or m in py_ext}
        ext = {m: t for m, t in extra.items() if m.startswith("_nfct.") and m not in py_ext}
        std = {m: t for m, t in extra.items() if m not in own and m not in ext}

        def cell(d: Dict[str, int]) -> str:
            if not d:
                return "none"
            return f"{len(d)}: {sum(d.values()) / 1000:.2f} (" + ", ".join(
                f"{m} {t / 1000:.2f}" for m, t in sorted(d.items(), key=lambda kv: -kv[1])) + ")"

        lines.append(f"| `{row}` | {cell(own)} | {cell(ext)} | {cell(std)} | "
                     f"{sum(extra.values()) / 1000:.2f} |")
    one = it["one_extension"] / 1000
    counts = [len([m for m in mods if m.startswith("_nfct.") and m not in py_ext and m not in baseline])
              for mods in it["commands"].values()]
    most = max(counts) if counts else 0
    saving = max(most - 1, 0) * one
    lines += [
        "",
        f"Extension modules: the smallest one, `_nfct.progname` (its imports loaded before it), takes "
        f"{one:.2f} ms to import: about what each further extension module costs besides its own work "
        f"(the dlopen with its symbol lookups, and the module's init). A command here loads up to {most} of "
        f"them, so building them all as one module could save at most {saving:.2f} ms of a call "
        f"({saving / base_ms:.0%} of `python -c pass`). Decision: "
        + ("they stay apart, as the per-call rows meet the target without it: merging would make the "
           "extension modules, split along their cimport interfaces, one compilation unit, for what is "
           "then the largest item left on the start path." if starts_met else
           "the per-call rows miss the target: merging them is the next step (setup.py's module list)."),
    ]
    return lines


# --------------------------------------------------------------------------- main

def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--entries", type=int, default=1000, help="background entries in the table")
    ap.add_argument("--venv", help="venv holding a regular pip install of pynfct (made when missing)")
    ap.add_argument("--python", default=sys.executable, help="interpreter to make the venv with")
    ap.add_argument("--importtime-runs", type=int, default=21)
    ap.add_argument("--save", help="write the Markdown report here (else stdout)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pynfct", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    if args.inner:
        inner(args)
        return 0
    if os.geteuid() != 0:
        sys.exit("percall.py needs root (a network namespace and conntrack -I)")

    cmp.remove_stale_namespaces()
    tmp = None
    venv = args.venv
    if venv is None:
        tmp = tempfile.mkdtemp(prefix="pynfct-percall-venv-")
        venv = os.path.join(tmp, "venv")
    ns = cmp.Namespace(f"{cmp.NS_PREFIX}{os.getpid()}{NS_SUFFIX}")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        venv = os.path.abspath(venv)
        if not os.path.exists(os.path.join(venv, "bin", "pynfct")):
            install(venv, args.python)
        site = check_installed(venv)
        python = os.path.join(venv, "bin", "python")
        script = os.path.join(venv, "bin", "pynfct")
        with open(script, "rb") as f:
            text = f.read().decode(errors="replace")
        with open(os.path.join(REPO, "bin", "pynfct"), "rb") as f:
            plain = text.split("\n", 1)[1:] == f.read().decode(errors="replace").split("\n", 1)[1:]
        venv_note = (f"`{script}` ({'bin/pynfct as pip installs it' if plain else 'NOT bin/pynfct'}: "
                     f"first line `{text.splitlines()[0]}`), from a regular pip install into a fresh venv "
                     f"(package in {site}); interpreter `{python}`")
        facts = cmp.machine_facts()
        ns.create()
        ns.ensure_capacity(args.entries + 16)
        log(f"{args.rounds} rounds in {ns.name}")
        inner_argv = ["ip", "netns", "exec", ns.name, sys.executable, os.path.abspath(__file__), "--inner",
                      "--rounds", str(args.rounds), "--entries", str(args.entries), "--python", python,
                      "--pynfct", script, "--importtime-runs", str(args.importtime_runs)]
        p = subprocess.run(inner_argv, stdout=subprocess.PIPE, check=True)
        data = json.loads(p.stdout)
        text, ok, out = report(data, facts, args, venv_note)
    finally:
        ns.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.save:
        cmp.save_report(args.save, "Per-call latency", text.split("\n", 1)[1].lstrip("\n"), out)
    else:
        sys.stdout.write(text)
    if data["mismatches"]:
        log("outputs differed from conntrack's (see the report)")
        return 1
    if not ok:
        log("a per-call target was not met (see the report)")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
