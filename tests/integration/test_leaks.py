"""No leaks: repeated dumps, creates and deletes, and events keep memory, descriptors and threads flat.

Each test runs the work in a child process inside a fresh namespace, in rounds; the child samples its
own resident set size (/proc/self/statm), open descriptors and threads after a warm-up round and again
at the end (tests/memwatch.py). A leak of one small object per entry or per event, or of one buffer per
call, adds megabytes over the rounds; the bounds below leave room for the allocator's noise and are far
below that. The full counts (100 dumps of 100,000 entries, 1,000,000 creates and deletes, 10,000,000
events) are bench/leaks.py's, reported in bench/LEAKS.md.
"""
from __future__ import annotations

import os
import signal
import subprocess


from differential import _pynfct_env, pynfct_argv
from memwatch import CHILD, growth, last_json, rss_of
from test_events import PREFIX, event_sockets, wait_for

MiB = 1 << 20

# Every child: the table's handle, n (entries), count (rounds) and warm (the round after which the
# first sample is taken) from its arguments.
ROUNDS = CHILD + r'''
from pynfct import Conntrack, FlowSpec, Match
n, count, warm = map(int, sys.argv[1:4])
ct = Conntrack()
'''

# Every round reads the table in the ways the README shows: a for loop reading fields (and the line
# conntrack prints), a count over a Match, list() of a kernel-filtered dump, a filter the kernel runs
# as one dump per family, and a dump left after one entry (the rest is freed unread).
DUMP_ROUNDS = ROUNDS + r'''
assert int(ct.create_many([FlowSpec(**spec(i)) for i in range(n)])) == n
web = Match(family="ipv4", proto="tcp", dport=80)

def read(r):
    seen = 0
    for f in ct.dump():
        seen += f.orig.sport + f.mark + len(f.orig.src) + len(str(f))
    assert seen and sum(1 for _ in ct.dump(web)) == n // 4
    flows = list(ct.dump(family="ipv4", proto="udp"))
    assert len(flows) == n // 2 and flows[0].as_dict()["proto"] == "udp"
    del flows
    assert sum(1 for _ in ct.dump(proto="udp", dport=53)) == n // 4
    it = ct.dump()
    next(it)
    del it

rounds(read, count, warm)
report()
'''


def _child(netns, code: str, *args: object, timeout: float = 120) -> dict:
    r = netns.python(code, *map(str, args), check=False, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    return last_json(r.stdout)


def _assert_flat(s: dict, bound: int, blocks: int) -> None:
    """RSS grew less than `bound` bytes and the interpreter's blocks by fewer than `blocks`; no
    descriptor or thread was left behind."""
    assert growth(s, "warm", "end") < bound, s
    assert growth(s, "warm", "end", "blocks") < blocks, s
    assert s["end"]["fds"] == s["warm"]["fds"] and s["end"]["threads"] == s["warm"]["threads"], s


def test_dumping_does_not_leak(netns):
    """7 rounds of 6 dumps (5 requests, one split in two) over 10,000 entries after the warm-up:
    ~245,000 Flows made and freed, 42 dumps started and ended."""
    s = _child(netns, DUMP_ROUNDS, 10_000, 9, 2)
    _assert_flat(s, 4 * MiB, 42)


# The calls that need no dump of the table (a dump walks the kernel's whole hash table, shared by all
# namespaces: tens of ms each on a busy host), many times: what a call allocates (sockets, the filter,
# an event socket with its buffers and BPF program, a handle on the namespace) must go with it.
CALL_ROUNDS = ROUNDS + r'''
assert int(ct.create_many([FlowSpec(**spec(i)) for i in range(n)])) == n
one = spec(2)

def call(r):
    assert ct.get(proto="tcp", src=one["src"], dst=one["dst"], sport=one["sport"], dport=one["dport"])
    assert ct.get(proto="tcp", src=one["src"], dst=one["dst"], sport=one["sport"], dport=1) is None
    assert ct.count() == n
    with ct.events("NEW,DESTROY", proto="tcp", dport=80, timeout=0) as stream:
        assert list(stream) == []
    with Conntrack() as other:
        other.stats()

rounds(call, count, warm)
report()
'''


def test_repeated_calls_do_not_leak(netns):
    """2,700 rounds of get(), count(), events() and stats() after the warm-up."""
    s = _child(netns, CALL_ROUNDS, 20, 3000, 300)
    _assert_flat(s, 1 * MiB, 100)


CREATE_DELETE_ROUNDS = ROUNDS + r'''
specs = [FlowSpec(**spec(i)) for i in range(n)]

def create_delete(r):
    made = ct.create_many(specs)
    assert int(made) == n and not made.failures
    gone = ct.delete(Match(proto="udp"), collect=(r % 2 == 0))
    assert int(gone) == n // 2
    assert int(ct.delete(Match())) == n - n // 2

rounds(create_delete, count, warm)
report()
'''


def test_creating_and_deleting_does_not_leak(netns):
    """4 rounds of 20,000 creates and deletes after the warm-up (80,000 entries each way)."""
    s = _child(netns, CREATE_DELETE_ROUNDS, 20_000, 6, 2)
    _assert_flat(s, 4 * MiB, 100)


# The child makes its own events: each round creates n entries (n NEW events) and flushes them (n
# DESTROY events) and reads all 2n through the iterator before the next round.
EVENT_ROUNDS = ROUNDS + r'''
specs = [FlowSpec(**spec(i)) for i in range(n)]
stream = ct.events("NEW,DESTROY", timeout=10)

def read(k, kind):
    got = 0
    for ev in stream:
        assert ev.type.name == kind and ev.flow.orig.dport in (22, 53, 80, 443), ev
        got += 1
        if got == k:
            return
    raise SystemExit("events stopped after %d of %d" % (got, k))

def burst(r):
    assert int(ct.create_many(specs)) == n
    read(n, "NEW")
    ct.flush()
    read(n, "DESTROY")
    if r == warm:
        print("warm", flush=True)

rounds(burst, count, warm)
report(lost=stream.lost)
'''


def test_reading_events_does_not_leak(netns, tmp_path):
    """8 rounds of 20,000 NEW and 20,000 DESTROY events after the warm-up, through the Python iterator
    and, at the same time, through ``pynfct -E`` writing to /dev/null (its RSS is read from outside)."""
    n, rounds, warm = 10_000, 10, 2
    with open(tmp_path / "err", "wb") as err:
        cli = netns.popen([*pynfct_argv(), "-E"], stdout=subprocess.DEVNULL, stderr=err, env=_pynfct_env())
        wait_for(lambda: event_sockets(cli.pid), 60, what="pynfct -E to subscribe")
        child = netns.python_popen(EVENT_ROUNDS, str(n), str(rounds), str(warm), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        assert child.stdout is not None
        cli_rss = {}
        for line in child.stdout:
            if line == b"warm\n":
                cli_rss["warm"] = rss_of(cli.pid)
                continue
            out = line
            break
        else:
            out = b""
        child.wait(120)
        assert child.returncode == 0, child.stderr.read().decode(errors="replace")[-3000:] if child.stderr else ""
        s = last_json(out)
        # pynfct -E has read everything once its socket is empty.
        wait_for(lambda: all(row["rmem"] == 0 for row in event_sockets(cli.pid)), 60, what="pynfct -E to catch up")
        cli_rss["end"] = rss_of(cli.pid)
        os.kill(cli.pid, signal.SIGINT)
        cli.wait(30)
    assert s["lost"] == 0
    _assert_flat(s, 4 * MiB, 100)
    assert cli_rss["end"] - cli_rss["warm"] < 4 * MiB, cli_rss
    assert (tmp_path / "err").read_text().endswith(f"{PREFIX}: {2 * n * rounds} flow events have been shown.\n")
