"""Memory and resource readings of a process, for the leak and bounded-memory tests and bench/leaks.py.

The measuring code runs inside the process that does the work (a child started in a namespace):
``CHILD`` is a prelude of Python source such a child starts with. It defines

* ``rss()`` -- resident set size in bytes now (/proc/self/statm);
* ``peak()`` -- the most it ever was since its exec (VmHWM, bytes);
* ``fds()``, ``threads()`` -- open file descriptors and threads now;
* ``sys.getallocatedblocks()`` -- the interpreter's live memory blocks (after a collection): one object
  kept per call shows here even when it is too small to move the RSS;
* ``sample(label)`` -- all five, kept in ``SAMPLES`` and printed as one JSON line by ``report()``;
* ``rounds(body, count, warm)`` -- ``body(r)`` in rounds, sampled after warm-up and at the end;
* ``spec(i)`` -- keywords of a FlowSpec for entry ``i`` (distinct tuples: TCP ESTABLISHED or UDP).

A leak shows as growth between two samples taken after warm-up (the first rounds fill the
allocator's free lists and the interpreter's caches), never as an absolute size.
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List

CHILD = r'''
import gc, json, os, sys
_PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLES = {}

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE

def peak():
    # VmHWM: this program's own peak. ru_maxrss would also hold what the process had before its exec
    # (a fork of the test runner).
    with open("/proc/self/status") as f:
        return [int(x.split()[1]) * 1024 for x in f if x.startswith("VmHWM:")][0]

def fds():
    return len(os.listdir("/proc/self/fd"))

def threads():
    return len(os.listdir("/proc/self/task"))

def sample(label):
    gc.collect()
    SAMPLES[label] = dict(rss=rss(), peak=peak(), fds=fds(), threads=threads(), blocks=sys.getallocatedblocks())

def report(**extra):
    print(json.dumps(dict(SAMPLES, **extra)), flush=True)

def rounds(body, count, warm):
    """body(r) for r = 1..count, sampled as "warm" after round `warm` and as "end" after the last."""
    for r in range(1, count + 1):
        body(r)
        if r == warm:
            sample("warm")
    sample("end")

def spec(i):
    src = "10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255)
    kw = dict(src=src, dst="192.0.2.%d" % (1 + i % 4), sport=1024 + i % 60000, dport=(22, 53, 80, 443)[i % 4],
              timeout=3600)
    if i % 2:
        kw.update(proto="udp")
    else:
        kw.update(proto="tcp", state="ESTABLISHED", status=["SEEN_REPLY", "ASSURED"])
    return kw
'''


# Runs a command as its child and prints its peak RSS (ru_maxrss, KiB) to stderr as the last line
# ("maxrss N"), passing its exit status on. The command is forked from this small interpreter, not
# from the test runner, so its ru_maxrss is its own peak (a fork's copy of a big parent would count).
PEAK_OF = ["-S", "-c", "import os, sys\n"
           "pid = os.fork()\n"
           "if pid == 0:\n"
           "    os.execvp(sys.argv[1], sys.argv[1:])\n"
           "_, status, usage = os.wait4(pid, 0)\n"
           "sys.stderr.write('maxrss %d\\n' % usage.ru_maxrss)\n"
           "sys.exit(os.waitstatus_to_exitcode(status))\n"]


_CHILD_SCOPE: Dict[str, Any] = {}
exec(CHILD, _CHILD_SCOPE)
#: CHILD's spec(i), in this process
spec: Callable[[int], Dict[str, Any]] = _CHILD_SCOPE["spec"]


def rss_of(pid: int) -> int:
    """Resident set size of another process, in bytes."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def event_rmem(pid: int) -> List[int]:
    """Bytes queued on each of a process's netlink sockets bound to multicast groups (its event
    sockets), from /proc/PID/net/netlink; [] before it has subscribed."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    with open(f"/proc/{pid}/net/netlink") as f:
        rows = [line.split() for line in f.read().splitlines()[1:]]
    return [int(r[4]) for r in rows if r[9] in inodes and int(r[3], 16)]


def last_json(out: bytes) -> Dict[str, Dict[str, int]]:
    """The report() line of a child's output."""
    lines: List[bytes] = [x for x in out.splitlines() if x.startswith(b"{")]
    if not lines:
        raise AssertionError(f"no report in the child's output: {out[-2000:]!r}")
    return json.loads(lines[-1])


def growth(samples: Dict[str, Dict[str, int]], a: str, b: str, key: str = "rss") -> int:
    return samples[b][key] - samples[a][key]
