"""Both ways the bulk writes run, whatever this machine's CPU count picks.

-D/-U hand their requests to a sender thread only with three or more CPUs (on two, the dump's reader
and the calling thread already keep both busy), and -R uses a sender thread from two CPUs on. CI runs
on two CPUs, where the sender thread of -D/-U would otherwise never run, and production machines
usually have more: both paths must count and print exactly the same.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from differential import _pynfct_env, pynfct_argv
from fill import fill_bulk
from netns import NetNS

from _nfct.format import Format
from _nfct.modify import modify
from _nfct.socket import enter_netns
from pynfct.cli.parse import parse

N = 6000        # fill_bulk: half tcp, half udp


def _modify(ns: NetNS, argv, update: bool, threaded: bool, out_path):
    cmd = parse(argv)
    nsfd = enter_netns(ns.name)
    try:
        with open(out_path, "wb") as f:
            return modify(nsfd, cmd, update, Format(cmd.output), f.fileno(), threaded=threaded)
    finally:
        os.close(nsfd)


def _no_use(lines):
    return [line.rsplit(b" use=", 1)[0] for line in lines]


def _listing(ns: NetNS, *args: str):
    r = ns.conntrack("-L", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@pytest.mark.parametrize("threaded", [False, True], ids=["calling-thread-sends", "sender-thread"])
def test_update_then_delete_count_and_print_exactly(tmp_path, threaded):
    with NetNS() as ns:
        fill_bulk(ns, N)
        out = tmp_path / "out"
        r = _modify(ns, ["-U", "-f", "ipv4", "-m", "0x100/0x100"], True, threaded, out)
        assert (r.count, r.vanished, r.failures) == (N, 0, [])
        marked = _listing(ns, "-m", "0x100/0x100")
        assert len(marked) == N
        # -U prints each entry as the kernel has it after the update (its GET answer, so the kernel
        # counts one more user than -L shows): what -L shows now
        assert sorted(_no_use(out.read_bytes().splitlines())) == sorted(_no_use(marked))

        tcp = _listing(ns, "-p", "tcp")
        r = _modify(ns, ["-D", "-p", "tcp", "-m", "0x100/0x100"], False, threaded, out)
        assert (r.count, r.vanished, r.failures) == (N // 2, 0, [])
        assert sorted(out.read_bytes().splitlines()) == sorted(tcp)
        assert ns.ct_count() == N // 2
        assert _listing(ns, "-p", "tcp") == []


def test_load_without_a_sender_thread_matches_conntrack(tmp_path):
    """-R on one CPU (taskset) sends from the calling thread; the table must be conntrack's."""
    lines = [f"-I -p udp -s 10.4.{i >> 8}.{i & 255} -d 203.0.113.9 --sport 7 --dport 53 -t 300 -m {i % 5}"
             for i in range(N)]
    # a line the C parser leaves to the full one, between the pipelined creates
    lines.insert(N // 2, "-I -p icmp -s 10.4.99.1 -d 203.0.113.9 --icmp-type 8 --icmp-code 0 --icmp-id 1 -t 30")
    lines.append("-D -p udp -s 10.4.0.1")
    path = tmp_path / "batch"
    path.write_text("\n".join(lines) + "\n")
    with NetNS() as a, NetNS() as b:
        ct = a.conntrack("-R", str(path))
        py = b.run(["taskset", "-c", "0", *pynfct_argv(), "-R", str(path)], env=_pynfct_env())
        assert (ct.returncode, py.returncode) == (0, 0), py.stderr
        assert sorted(py.stdout.splitlines()) == sorted(ct.stdout.splitlines())
        rows = [[line.split(b" id=")[0] for line in _listing(ns, "-o", "extended")] for ns in (a, b)]
        # timeouts tick: compare without them, sorted once they are gone
        strip = [sorted(b" ".join(f.split()[:4] + f.split()[5:]) for f in r) for r in rows]
        assert strip[0] == strip[1]
        assert len(strip[1]) == N          # N creates, one icmp create, one delete
