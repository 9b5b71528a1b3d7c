"""-S, -S expect and Conntrack.stats() against conntrack and against counts the kernel must show.

A namespace's per-cpu counters move only with the packets it sees.  Each test makes a fresh namespace,
sends a known number of packets from a process pinned to one cpu, and then nothing moves: conntrack -S
and pynfct -S read the same numbers one after the other and are compared byte for byte, stats() returns
the same numbers, and the counters the packets drive have the values the kernel gives them (measured on
Linux 6.18: an invalid TCP segment sent over lo counts twice as invalid, in the output and in the
prerouting hook, on the sending cpu; the FTP helper reads a PASV reply sent over lo twice, in the
postrouting and the input hook, and each time creates its expectation, the second replacing the first
(expect_create +2, expect_delete +1); the data connection that uses an expectation counts expect_new and
removes it, expect_delete +1).
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Tuple

import pytest

import pynfct
from differential import assert_same, run, run_both

# a TCP segment with every flag set: no valid state change, conntrack counts it invalid
INVALID_TCP = r"""
import os, socket, struct, sys
cpu, count = int(sys.argv[1]), int(sys.argv[2])
os.sched_setaffinity(0, {cpu})
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
seg = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x3F, 1024, 0, 0)
for _ in range(count):
    s.sendto(seg, ("127.0.0.1", 0))
"""

# conntrack loads in the namespace with the first rule that uses it
CT_RULESET = """
table inet pynfct_stats {
    chain out {
        type filter hook output priority 0; policy accept;
        ct state new accept
    }
}
"""

FTP_RULESET = """
table inet pynfct_ftp {
    ct helper ftp-standard { type "ftp" protocol tcp; }
    chain output { type filter hook output priority 0; tcp dport 21 ct helper set "ftp-standard"; }
}
"""

# Two PASV replies (two expectations), one data connection to the first (expect_new, expect_delete).
FTP_PASV = r"""
import os, socket, sys, threading, time
os.sched_setaffinity(0, {int(sys.argv[1])})
def listen(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(); return s
srv, data = listen(21), listen(51210)
def serve():
    c, _ = srv.accept(); c.sendall(b"220 hi\r\n"); c.recv(100)
    c.sendall(b"227 Entering Passive Mode (127,0,0,1,200,10)\r\n"); c.recv(100)
    c.sendall(b"227 Entering Passive Mode (127,0,0,1,200,11)\r\n"); c.recv(100); c.close()
t = threading.Thread(target=serve); t.start()
cl = socket.create_connection(("127.0.0.1", 21)); cl.recv(100); cl.sendall(b"PASV\r\n"); cl.recv(100)
time.sleep(0.2)
d = socket.create_connection(("127.0.0.1", 51210)); a, _ = data.accept(); d.sendall(b"x"); a.recv(1)
cl.sendall(b"PASV\r\n"); cl.recv(100); time.sleep(0.1); cl.sendall(b"QUIT\r\n")
t.join(); d.close(); a.close(); cl.close()
"""


def _cpu() -> int:
    """The cpu the traffic is pinned to: the last one this process may use."""
    return max(os.sched_getaffinity(0))


def parse_stats(text: str) -> List[Tuple[int, Dict[str, int]]]:
    """``conntrack -S`` lines (``cpu=N\\tkey=value ...``) as stats() returns them."""
    rows = []
    for line in text.splitlines():
        head, _, rest = line.partition("\t")
        m = re.fullmatch(r"cpu=(\d+)\s*", head)
        assert m, line
        rows.append((int(m.group(1)), {k: int(v) for k, v in (kv.split("=") for kv in rest.split())}))
    return rows


def _total(rows, key: str) -> int:
    return sum(row[key] for _, row in rows)


def test_stats_count_invalid_packets(netns):
    netns.nft(CT_RULESET)
    cpu, count = _cpu(), 7
    netns.python(INVALID_TCP, str(cpu), str(count))
    ct, py = run_both(netns, ["-S"])
    assert_same(ct, py)
    rows = parse_stats(ct.out)
    by_cpu = dict(rows)
    assert os.sched_getaffinity(0) <= set(by_cpu)
    assert by_cpu[cpu]["invalid"] == 2 * count
    assert _total(rows, "invalid") == 2 * count
    assert list(by_cpu[cpu]) == ["found", "invalid", "insert", "insert_failed", "drop", "early_drop", "error",
                                 "search_restart", "clash_resolve", "chaintoolong"]
    with pynfct.Conntrack(netns.name) as c:
        assert c.stats() == rows
    # and again after more: the numbers are read, not remembered
    netns.python(INVALID_TCP, str(cpu), "3")
    ct, py = run_both(netns, ["-S"], pynfct_first=True)
    assert_same(ct, py)
    assert _total(parse_stats(py.out), "invalid") == 2 * (count + 3)


def test_stats_expect_counts_ftp_expectations(netns):
    netns.nft(FTP_RULESET)
    cpu = _cpu()
    netns.python(FTP_PASV, str(cpu))
    ct, py = run_both(netns, ["-S", "expect"])
    assert_same(ct, py)
    rows = parse_stats(ct.out)
    totals = {k: _total(rows, k) for k in ("expect_new", "expect_create", "expect_delete")}
    # two replies seen twice each: 4 created, 2 replaced; one used by the data connection
    assert totals == {"expect_new": 1, "expect_create": 4, "expect_delete": 3}, ct.out
    assert dict(rows)[cpu] == totals
    with pynfct.Conntrack(netns.name) as c:
        assert c.stats(expect=True) == rows
    # created minus removed: the second PASV's expectation is still there
    assert len(run(netns, ["conntrack", "-L", "expect"]).stdout.splitlines()) == 1


@pytest.mark.parametrize("args", [["-S", "conntrack"], ["-S", "-o", "xml"], ["-S", "expect", "-f", "ipv6"],
                                  ["-S", "nosuchtable"], ["-S", "dying"]], ids=" ".join)
def test_stats_options(netns, args):
    netns.nft(CT_RULESET)
    netns.python(INVALID_TCP, str(_cpu()), "2")
    ct, py = run_both(netns, args)
    assert_same(ct, py)
