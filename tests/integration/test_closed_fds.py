"""A standard descriptor closed by the caller, and no writable temporary directory: pynfct ends as
conntrack 1.4.7 does (exit status, stderr when it is open, the table afterwards), never with a traceback.

- ``>&-`` / ``2>&-``: conntrack's text to the closed descriptor is lost (its stdio gets EBADF, or its
  netlink socket took the number) and the command does all its work; pynfct opens /dev/null there
  (pynfct.cli.signals.as_program) and loses the text too;
- ``<&-``: pynfct puts a socket on fd 0, so that /dev/stdin cannot be opened, as with conntrack;
- ``-R -`` and ``load(lines)`` with /tmp, /var/tmp, $TMPDIR and the working directory read-only (a private
  mount namespace): conntrack reads stdin directly, pynfct spools the lines to a memfd instead.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import List

import pytest

from differential import REPO_ROOT, Result, _pynfct_env, assert_same, normalize_prog, pynfct_argv
from netns import NetNS
from test_events import event_sockets, wait_for
from test_options_more import _flushed, _table, run_ct, twins  # noqa: F401  (twins: the fixture)

PYNFCT = pynfct_argv()
PROGS = [("conntrack", ["conntrack"], None), ("pynfct", PYNFCT, _pynfct_env())]
CLOSED = [">&-", "2>&-"]

ENTRY = ["-p", "udp", "-s", "10.7.0.{}", "-d", "10.7.1.1", "--sport", "1", "--dport", "2", "-t", "60"]


def _fill(ns: NetNS, n: int = 5) -> None:
    ns.sh(f'i=0; while [ $i -lt {n} ]; do conntrack -I -p udp -s 10.7.0.$i -d 10.7.1.1 --sport 1 '
          '--dport 2 -t 60 2>/dev/null || exit 1; i=$((i+1)); done')


def _closed(ns: NetNS, prog: List[str], args: List[str], closed: str, env=None) -> Result:
    r = ns.run(["sh", "-c", f'exec "$@" {closed}', "sh", *prog, *args], env=env)
    return Result(list(args), r.returncode, r.stdout, r.stderr)


def _same_end(ct: Result, py: Result, closed: str) -> None:
    assert b"Traceback" not in py.stderr
    assert py.returncode == ct.returncode
    if closed == ">&-":
        assert normalize_prog(py.err) == normalize_prog(ct.err)
    else:
        assert ct.stderr == py.stderr == b""


@pytest.mark.parametrize("closed", CLOSED)
@pytest.mark.parametrize("args,status", [
    (["-L"], 0), (["-C"], 0), (["-L", "-o", "xml"], 0), (["-L", "--bogus"], 2), (["-S"], 0),
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_closed_read(netns, closed, args, status):
    _fill(netns)
    ct = _closed(netns, ["conntrack"], args, closed)
    py = _closed(netns, PYNFCT, args, closed, env=_pynfct_env())
    assert ct.returncode == status
    _same_end(ct, py, closed)
    if closed == "2>&-":        # stdout still open: the same text on it (a timeout may tick between the reads)
        assert_same(ct, py, check_stderr=False)
        assert status or ct.stdout


@pytest.mark.parametrize("closed", CLOSED)
@pytest.mark.parametrize("args", [
    ["-D", "-s", "10.7.0.1"],
    ["-U", "-s", "10.7.0.2", "-m", "9"],
    ["-I", *ENTRY[:3], "10.7.0.99", *ENTRY[4:]],
    ["-D", "-s", "10.7.9.9"],                                   # nothing matches: exit 1
], ids=" ".join)
def test_closed_write(twins, closed, args):  # noqa: F811
    """The same write in twin namespaces: same exit status (and summary), same table afterwards."""
    a, b = _flushed(twins)
    _fill(a)
    _fill(b)
    ct = _closed(a, ["conntrack"], args, closed)
    py = _closed(b, PYNFCT, args, closed, env=_pynfct_env())
    _same_end(ct, py, closed)
    after = _table(a)
    assert after == _table(b)
    assert len(after) == {"-D": 4 if args[2] == "10.7.0.1" else 5, "-U": 5, "-I": 6}[args[0]]
    if args[0] == "-U":
        assert sum(" mark=9 " in line for line in after) == 1


@pytest.mark.parametrize("closed", CLOSED)
def test_closed_load_file(twins, closed, tmp_path):  # noqa: F811
    path = tmp_path / "batch"
    path.write_text("-I " + " ".join(ENTRY).format(50) + "\n-D -s 10.7.0.3\n-U -s 10.7.0.4 -m 7\n")
    a, b = _flushed(twins)
    _fill(a)
    _fill(b)
    ct = _closed(a, ["conntrack"], ["-R", str(path)], closed)
    py = _closed(b, PYNFCT, ["-R", str(path)], closed, env=_pynfct_env())
    assert ct.returncode == 0
    _same_end(ct, py, closed)
    after = _table(a)
    assert after == _table(b) and len(after) == 5 and sum(" mark=7 " in line for line in after) == 1


@pytest.mark.parametrize("args", [["-R", "-"], ["-R", "/dev/stdin"], ["-L"]], ids=" ".join)
def test_closed_stdin(netns, args):
    """``<&-``: neither can open /dev/stdin (exit 2, same message); -L does not care."""
    _fill(netns, 2)
    ct = _closed(netns, ["conntrack"], args, "<&-")
    py = _closed(netns, PYNFCT, args, "<&-", env=_pynfct_env())
    assert ct.returncode == (2 if args[0] == "-R" else 0)
    _same_end(ct, py, ">&-")
    assert_same(ct, py)         # (-L: a timeout may tick between the two reads)


def _sleeping(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "S"


@pytest.mark.parametrize("closed", CLOSED)
def test_closed_events(netns, closed):
    """-E stopped by SIGINT once subscribed: both count the events and exit 0."""
    procs = [netns.popen(["sh", "-c", f'exec "$@" {closed}', "sh", *prog, "-E", "-e", "NEW"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _, prog, env in PROGS]
    wait_for(lambda: all(event_sockets(p.pid) for p in procs), 60, what="the listeners to subscribe")
    _fill(netns, 3)
    # read from the socket, and back asleep in recv: nothing left half handled when SIGINT comes
    wait_for(lambda: all(s["rmem"] == 0 for p in procs for s in event_sockets(p.pid))
             and all(_sleeping(p.pid) for p in procs), 30, what="the listeners to handle the events")
    results = []
    for p in procs:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        results.append((p.returncode, normalize_prog(err.decode()), out if closed == "2>&-" else b""))
    assert results[0][:2] == results[1][:2]
    assert results[0][0] == 0
    if closed == ">&-":
        assert results[0][1] == "<PROG>: 3 flow events have been shown.\n"
    else:
        assert results[0][2].count(b"[NEW]") == results[1][2].count(b"[NEW]") == 3


# --------------------------------------------------------------------------------------------------
# no writable temporary directory: -R - and load(lines) spool to a memfd
# --------------------------------------------------------------------------------------------------

# A private mount namespace where /tmp and /var/tmp (and /usr/tmp, where it exists) are empty
# read-only tmpfs mounts, TMPDIR points at one and the working directory is one: tempfile finds
# no usable directory at all.
NO_TMP = ('for d in /tmp /var/tmp /usr/tmp; do [ -d $d ] || continue; '
          'mount -t tmpfs -o ro,size=64k none $d || exit 99; done; cd /tmp && TMPDIR=/tmp exec "$@"')


def _no_tmp(ns: NetNS, argv: List[str], input=None, env=None) -> Result:
    r = ns.run(["unshare", "-m", "sh", "-c", NO_TMP, "sh", *argv], input=input, env=env)
    return Result(list(argv), r.returncode, r.stdout, r.stderr)


BATCH = ("-I " + " ".join(ENTRY).format(60) + "\n" + "-I " + " ".join(ENTRY).format(61) + "\n"
         "-D -s 10.7.0.0\n")


def test_no_tmp_really(netns):
    """The environment the tests below rely on: tempfile cannot make a file in it."""
    r = _no_tmp(netns, [sys.executable, "-c", "import tempfile; tempfile.TemporaryFile()"])
    assert r.returncode == 1 and b"No usable temporary directory" in r.stderr


@pytest.mark.parametrize("source", ["-", "/dev/stdin"])
def test_load_stdin_no_tmp(twins, source):  # noqa: F811
    a, b = _flushed(twins)
    _fill(a, 2)
    _fill(b, 2)
    ct = _no_tmp(a, ["conntrack", "-R", source], input=BATCH.encode())
    py = _no_tmp(b, [*PYNFCT, "-R", source], input=BATCH.encode(), env=_pynfct_env())
    assert ct.returncode == 0
    assert (py.returncode, normalize_prog(py.err), py.stdout) == (ct.returncode, normalize_prog(ct.err), ct.stdout)
    after = _table(a)
    assert after == _table(b) and len(after) == 3


def test_api_load_lines_no_tmp(netns):
    """load(lines) in the same environment: the lines run (entries made), no error."""
    code = ("import sys, pynfct\n"
            "from pynfct.cli.load import load\n"
            "with pynfct.Conntrack() as ct:\n"
            "    r = load(ct, sys.stdin.read().splitlines())\n"
            "print(int(r), len(r.failures))\n")
    _fill(netns, 1)
    env = dict(_pynfct_env(), PYTHONPATH=REPO_ROOT)
    r = _no_tmp(netns, [sys.executable, "-c", code], input=BATCH.encode(), env=env)
    assert (r.returncode, r.stderr) == (0, b"")
    assert r.stdout == b"3 0\n"
    assert len(_table(netns)) == 2        # two created, 10.7.0.0 deleted


@pytest.mark.parametrize("closed", CLOSED)
def test_closed_bin_script(netns, closed):
    """The installed script (bin/pynfct) fills the fds as ``python -m pynfct`` does (the tests above)."""
    _fill(netns, 2)
    r = _closed(netns, [sys.executable, os.path.join(REPO_ROOT, "bin", "pynfct")], ["-D", "-s", "10.7.0.1"],
                closed, env=_pynfct_env())
    assert r.returncode == 0
    if closed == ">&-":
        assert normalize_prog(r.err) == "<PROG>: 1 flow entries have been deleted.\n"
    left = _table(netns)
    assert len(left) == 1 and "src=10.7.0.0 " in left[0]


MAIN_NO_STDERR = """
import os, sys
os.close(2)
sys.stderr = None           # what Python gives a process started with fd 2 closed
from pynfct.cli.main import main
print(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("args", [["-L", "-a", "x", "-s", "10.7.0.1"], ["-R", "FILE"]], ids=" ".join)
def test_main_in_process_without_stderr(twins, tmp_path, args):  # noqa: F811
    """main() called from Python, as the library's callers may, in a process whose fd 2 is closed
    (sys.stderr None, as_program() not run): the warning (-a: deprecated, ignored) and the -R summary
    are lost as conntrack's are, the command does its work, and it returns conntrack's status."""
    a, b = _flushed(twins)
    for ns in (a, b):
        _fill(ns, 2)
    if args[1] == "FILE":
        (tmp_path / "batch").write_text("-D -s 10.7.0.1\n-I -p udp -s 10.7.0.9 -d 10.7.1.1 --sport 1 --dport 2 "
                                        "-t 60 -a x\n")
        args = ["-R", str(tmp_path / "batch")]
    ct = _closed(a, ["conntrack"], args, "2>&-")
    r = b.run([sys.executable, "-c", MAIN_NO_STDERR, *args], env=dict(_pynfct_env(), PYTHONPATH=REPO_ROOT))
    assert b"Traceback" not in r.stderr and r.returncode == 0, r.stderr
    *out, status = r.stdout.decode().splitlines()
    assert status == str(ct.returncode) and out
    # the same text (a timeout may tick between the two reads)
    assert_same(ct, Result(list(args), ct.returncode, ("\n".join(out) + "\n").encode(), b""), check_stderr=False)
    assert _table(a) == _table(b)
