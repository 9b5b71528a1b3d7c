"""The kind of stress the kernel's own selftest (tools/testing/selftests/net/netfilter/conntrack_resize.sh)
puts conntrack under, with pynfct's command line and API beside the real conntrack (issue 10, point 7).

For a few seconds the hash table is resized over and over (net.netfilter.nf_conntrack_buckets: global,
only writable from the initial namespace; restored afterwards) while, in two namespaces, one a flood of
real UDP flows and one entries inserted over ctnetlink, many processes at once run -I, -L, -L -p udp,
-C, -D, -U and -F through pynfct, through the API and through conntrack. Each of them must end in time,
with its own exit status and message (no traceback), and a listing must print as many entries as its
summary line counts. Then, with the table quiet, the counts agree: -C, -L | wc -l, -L -p udp, the API's
count() and dump(), conntrack -C and -L, /proc/net/nf_conntrack; and no listing holds an entry twice.

What is not asserted, because the kernel does not give it: a dump taken *while* the table is resized
is neither complete nor free of repeats. ctnetlink_dump_table() resumes each batch at a bucket index
and the id of the last entry it could not fit, and after a resize that index names another bucket of
another table, so conntrack -L, pynfct -L and /proc/net/nf_conntrack alike skip entries and repeat
others (measured: 20,000 entries listed as 1,862 to 29,207 lines). See docs/stress.md.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import time


import pynfct
from differential import _pynfct_env, pynfct_argv, run
from netns import NetNS

#: seconds of resizes (the whole test takes about twice that); PYNFCT_STRESS_SECONDS=60 for a longer run
STORM = float(os.environ.get("PYNFCT_STRESS_SECONDS", "5"))
BUCKETS = "/proc/sys/net/netfilter/nf_conntrack_buckets"
CT_RULE = """
table ip stress {
    chain input {
        type filter hook input priority 0; policy accept;
        ct state new counter
    }
}
"""

# One driver per namespace: a thread per loop, each running its command until the storm is over; every run
# is checked and the problems are printed as JSON at the end. argv: a path that exists once the storm
# is over, role ("flood" or "insert"), then pynfct's argv prefix as JSON.
_DRIVER = r'''
import json, os, random, re, socket, subprocess, sys, threading, time
import pynfct
from pynfct import FlowSpec
stop, role, PYNFCT = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
problems, runs = [], {}
lock = threading.Lock()
SUMMARY = re.compile(rb"(\d+) flow entries have been (\w+)\.")

def note(kind, problem=None):
    with lock:
        runs[kind] = runs.get(kind, 0) + 1
        if problem:
            problems.append(f"{kind}: {problem}")

def command(kind, argv, ok=(0,)):
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
    except subprocess.TimeoutExpired:
        return note(kind, "did not end within 30 s")
    err = r.stderr.decode(errors="replace")
    if r.returncode not in ok or "Traceback" in err or "Operation failed" in err:
        return note(kind, f"exit {r.returncode}: {err[-300:]}")
    m = SUMMARY.search(r.stderr)
    if argv[-1] != "-F" and "-C" not in argv and "-I" not in argv:
        if not m:
            return note(kind, f"no summary line: {err[-300:]}")
        if int(m.group(1)) != len(r.stdout.splitlines()):
            return note(kind, f"summary says {int(m.group(1))}, {len(r.stdout.splitlines())} lines printed")
    note(kind)

def addr(rng):
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"

def insert_args(rng):
    return ["-I", "-s", addr(rng), "-d", addr(rng), "--protonum", "17", "--timeout", "3600",
            "--status", "ASSURED,SEEN_REPLY", "--sport", str(rng.randrange(1, 65536)), "--dport", "53"]

def loop(kind, fn, pause=0.0):
    rng = random.Random(kind)
    while not os.path.exists(stop):
        try:
            fn(rng)
        except Exception as e:      # an API call that raised: reported, and the loop goes on
            note(kind, repr(e))
        time.sleep(pause)

def flood(rng):
    # real UDP flows, each a new entry (the nft ct rule tracks them); nothing listens
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(200):
        s.sendto(b"x", (f"127.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                        rng.randrange(1, 65536)))
    s.close()
    note("flood")

def api_insert(rng):
    with pynfct.Conntrack() as ct:
        specs = [FlowSpec("udp", src=addr(rng), dst=addr(rng), sport=rng.randrange(1, 65536), dport=53,
                          timeout=3600, status=["ASSURED", "SEEN_REPLY"]) for _ in range(50)]
        r = ct.create_many(specs, exist_ok=True)
        bad = [f for f in r.failures if f.errno != 17]
        note("api create_many", f"failures {bad}" if bad else None)

def api_dump(rng):
    # (what a dump during a resize holds is the kernel's affair, see above; it must end, and not raise)
    with pynfct.Conntrack() as ct:
        for _ in ct.dump(proto="udp"):
            pass
        ct.count()
    note("api dump+count")

def api_write(rng):
    with pynfct.Conntrack() as ct:
        r = ct.delete(proto="udp", dport=rng.randrange(1, 65536)) if rng.random() < 0.5 else \
            ct.update(proto="udp", dport=53, sport=rng.randrange(1, 65536), mark=rng.randrange(1 << 32))
        note("api delete/update", f"failures {r.failures}" if r.failures else None)

def api_flush(rng):
    time.sleep(rng.uniform(0.5, 1.5))
    with pynfct.Conntrack() as ct:
        ct.flush()
    note("api flush")

loops = [
    ("pynfct -L", lambda rng: command("pynfct -L", [*PYNFCT, "-L"], ok=(0,)), 0.0),
    ("pynfct -L -p udp", lambda rng: command("pynfct -L -p udp", [*PYNFCT, "-L", "-p", "udp"]), 0.0),
    ("conntrack -L", lambda rng: command("conntrack -L", ["conntrack", "-L"]), 0.0),
    ("pynfct -C", lambda rng: command("pynfct -C", [*PYNFCT, "-C"]), 0.05),
    ("conntrack -C", lambda rng: command("conntrack -C", ["conntrack", "-C"]), 0.05),
    ("pynfct -D", lambda rng: command("pynfct -D", [*PYNFCT, "-D", "-p", "udp", "--sport",
                                                      str(rng.randrange(1, 65536))], ok=(0, 1)), 0.1),
    ("pynfct -U", lambda rng: command("pynfct -U", [*PYNFCT, "-U", "-p", "udp", "--dport", "53", "-m",
                                                      str(rng.randrange(1 << 32))], ok=(0, 1)), 0.1),
    ("api dump+count", api_dump, 0.0),
    ("api delete/update", api_write, 0.1),
    ("api flush", api_flush, 0.0),
    ("pynfct -F", lambda rng: (time.sleep(rng.uniform(0.5, 1.5)), command("pynfct -F", [*PYNFCT, "-F"])), 0.0),
]
if role == "flood":
    loops += [("flood", flood, 0.0)]
else:
    loops += [("pynfct -I", lambda rng: command("pynfct -I", [*PYNFCT, *insert_args(rng)], ok=(0, 1)), 0.0),
              ("conntrack -I", lambda rng: command("conntrack -I", ["conntrack", *insert_args(rng)], ok=(0, 1)), 0.0),
              ("api create_many", api_insert, 0.0)]
threads = [threading.Thread(target=loop, args=l) for l in loops]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"problems": problems, "runs": runs}), flush=True)
'''


def _resize(seconds: float, rng: random.Random, size: int) -> int:
    """Resize the (global) conntrack hash table to random sizes for ``seconds``, and at least 5 times
    (one resize rehashes every namespace's entries: on a loaded machine it can take a second); returns
    how many times.

    Never below ``size`` (what it was): the table is every namespace's, and fewer buckets make longer
    chains, past 64 of which the kernel refuses new entries (ENOSPC) and drops packets of other tests.
    """
    n = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or n < 5:
        with open(BUCKETS, "w") as f:
            f.write(str(rng.randrange(size, 2 * size)))
        n += 1
        time.sleep(0.02)
    return n


def _lines(ns: NetNS, argv, env=None):
    r = run(ns, argv, env=env)
    assert r.returncode == 0, (argv, r.err)
    return r.out.splitlines()


def _no_timeout(line: str) -> str:
    f = line.split()
    return " ".join(f[:2] + f[3:])          # "udp 17 TIMEOUT src=...": the timeout ticks


def check_quiet(ns: NetNS) -> int:
    """conntrack_resize.sh's check_dump, with pynfct and the API beside conntrack and /proc."""
    env = _pynfct_env()
    py = _lines(ns, [*pynfct_argv(), "-L"], env)
    counts = {
        "pynfct -C": int(_lines(ns, [*pynfct_argv(), "-C"], env)[0]),
        "pynfct -L": len(py),
        "pynfct -L -p udp": len(_lines(ns, [*pynfct_argv(), "-L", "-p", "udp"], env)),
        "conntrack -C": int(_lines(ns, ["conntrack", "-C"])[0]),
        "conntrack -L": len(_lines(ns, ["conntrack", "-L"])),
        "/proc/net/nf_conntrack": len(_lines(ns, ["cat", "/proc/net/nf_conntrack"])),
    }
    with pynfct.Conntrack(ns.name) as ct:
        flows = list(ct.dump())
        counts["api count()"] = ct.count()
        counts["api dump()"] = len(flows)
    assert len(set(counts.values())) == 1, counts
    assert counts["pynfct -C"] > 0, counts
    # no entry twice: by line (as the selftest's uniq) and by id and tuple (the API)
    assert len(set(_no_timeout(line) for line in py)) == len(py)
    assert len({(f.id, str(f.orig.src), f.orig.sport, str(f.orig.dst), f.orig.dport) for f in flows}) == len(flows)
    return counts["pynfct -C"]


def test_commands_under_resizes_floods_and_flushes(tmp_path):
    with NetNS() as flood, NetNS() as insert:
        for ns in (flood, insert):
            ns.nft(CT_RULE)
            for proto in ("udp", "icmp"):
                ns.sysctl(f"net.netfilter.nf_conntrack_{proto}_timeout", 3600)
        before = open(BUCKETS).read().strip()
        stop = tmp_path / "stop"
        drivers = {ns: ns.python_popen(_DRIVER, str(stop), role, json.dumps(pynfct_argv()),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_pynfct_env())
                   for ns, role in ((flood, "flood"), (insert, "insert"))}
        try:
            _resize(STORM, random.Random(7), int(before))
        finally:
            stop.touch()
            with open(BUCKETS, "w") as f:
                f.write(before)
        assert open(BUCKETS).read().strip() == before
        for ns, p in drivers.items():
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode(errors="replace")[-2000:]
            report = json.loads(out)
            assert report["problems"] == [], report["problems"][:20]
            # every loop ran (a loop stuck in its first command would have been reported above)
            assert all(n > 0 for n in report["runs"].values()) and len(report["runs"]) >= 11, report["runs"]

        # quiet: fill what the storm's flushes left empty, the selftest's way, then compare the counts
        for ns in (flood, insert):
            lines = "".join(f"-I -s 10.9.{i >> 8}.{i & 255} -d 10.8.0.1 --protonum 17 --timeout 3600 "
                            f"--status ASSURED,SEEN_REPLY --sport {i + 1} --dport 53\n" for i in range(500))
            r = ns.conntrack("-R", "-", input=lines)
            assert r.returncode == 0, r.stderr
            check_quiet(ns)
