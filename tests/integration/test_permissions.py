"""Permissions and private files (issue 10, point 6).

* Without CAP_NET_ADMIN (root with the capability dropped by setpriv, and the unprivileged user nobody)
  every command fails as conntrack 1.4.7 fails, run the same way on the same namespace: exit status,
  stdout (-C and -S print /proc's numbers before they report the refusal) and stderr.
* The library raises NfctPermissionError naming CAP_NET_ADMIN for every request.
* -R FILE refuses a file it cannot read as conntrack does.
* The spool of `-R -` (and of load() given lines) is private and has no name: nothing is left in the
  temporary directory after a success, a bad line, SIGINT or SIGTERM.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from differential import _pynfct_env, assert_same, normalize_prog, pynfct_argv, run_both
from fill import bulk_entry_argv, fill_bulk
from netns import NetNS

DROP = ["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
WAYS = pytest.mark.parametrize("way", ["no-cap", "nobody"])
ONE = ["-p", "tcp", "-s", "10.0.0.1", "-d", "198.18.0.1", "--sport", "1024", "--dport", "80"]
EXPECTED = ["-p", "tcp", "-s", "127.0.0.1", "-d", "127.0.0.1", "--sport", "0", "--dport", "5000",
            "--reply-port-src", "0", "--reply-port-dst", "0"]
COMMANDS = [
    ["-L"], ["-L", "-o", "xml"], ["-L", "dying"], ["-L", "unconfirmed"], ["-L", "expect"], ["-C"], ["-C", "expect"],
    ["-S"], ["-S", "expect"], ["-G", *ONE], ["-E"], ["-E", "expect"], ["-E", "-p", "tcp"],
    ["-I", *ONE, "--state", "ESTABLISHED", "-t", "10"], ["-A", *ONE, "--state", "ESTABLISHED", "-t", "10"],
    ["-D"], ["-D", *ONE], ["-U", "-m", "1"], ["-U", "-f", "ipv4", "-p", "tcp", "-m", "1"], ["-F"], ["-F", "expect"],
    ["-R", "FILE"], ["-R", "MANY"], ["-G", "expect", *EXPECTED], ["-D", "expect", *EXPECTED],
]


@pytest.fixture(scope="module")
def ns(tmp_path_factory):
    with NetNS() as ns:
        fill_bulk(ns, 50)
        yield ns


def _prefix(way: str):
    return DROP if way == "no-cap" else NOBODY


def _runs_as_nobody() -> bool:
    """nobody can start pynfct from this checkout (a checkout under /root cannot)."""
    r = subprocess.run([*NOBODY, *pynfct_argv(), "-V"], env=_pynfct_env(), capture_output=True)
    return r.returncode == 0


@pytest.fixture
def batch_file(tmp_path):
    path = tmp_path / "batch"
    path.write_text(" ".join(["-I", *ONE, "--state", "ESTABLISHED", "-t", "10"]) + "\n")
    many = tmp_path / "many"     # creates pipelined 64 to a datagram, which nfnetlink refuses whole
    many.write_text(_lines(500).decode())
    os.chmod(tmp_path, 0o755)
    os.chmod(path, 0o644)
    os.chmod(many, 0o644)
    return str(path), str(many)


@WAYS
@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_without_cap_net_admin_every_command_fails_like_conntrack(ns, way, args, batch_file):
    if way == "nobody" and not _runs_as_nobody():
        pytest.skip("nobody cannot read this checkout")
    args = [{"FILE": batch_file[0], "MANY": batch_file[1]}.get(a, a) for a in args]
    prefix = _prefix(way)
    ct, py = run_both(ns, args, conntrack=[*prefix, "conntrack"], pynfct=[*prefix, *pynfct_argv()], timeout=30)
    assert ct.returncode in (1, 2), ct       # (2: conntrack's own parameter check comes first)
    assert_same(ct, py)
    if ct.returncode == 1 and args[0] != "-E":
        assert "CAP_NET_ADMIN" in ct.err


API = r"""
import json, pynfct
from pynfct import Conntrack, FlowSpec, Match
ops = {
    "dump": lambda ct: list(ct.dump()),
    "dump dying": lambda ct: list(ct.dump(table="dying")),
    "get": lambda ct: ct.get(proto="tcp", src="10.0.0.1", dst="198.18.0.1", sport=1024, dport=80),
    "count": lambda ct: ct.count(),
    "stats": lambda ct: ct.stats(),
    "events": lambda ct: next(iter(ct.events("ALL", timeout=0.1)), None),
    "create": lambda ct: ct.create(FlowSpec("tcp", src="10.0.0.1", dst="198.18.0.9", sport=1, dport=2,
                                            state="ESTABLISHED", timeout=10)),
    "update": lambda ct: ct.update(Match(), mark=1),
    "delete": lambda ct: ct.delete(Match()),
    "flush": lambda ct: ct.flush(),
    "create_many": lambda ct: ct.create_many([FlowSpec("udp", src="10.0.0.1", dst="198.18.0.9", sport=i, dport=2,
                                                       timeout=10) for i in range(1, 201)]),
    "expectations": lambda ct: ct.expectations(),
}
out = {}
with Conntrack() as ct:
    for name, op in ops.items():
        try:
            op(ct)
            out[name] = None
        except BaseException as e:
            r = getattr(e, "result", None)     # create_many's: nothing created, each item refused
            out[name] = [type(e).__name__, getattr(e, "errno", None), str(e),
                         None if r is None else [int(r), sorted({f.errno for f in r.failures}), len(r.failures)]]
print(json.dumps(out))
"""


def test_api_raises_a_permission_error_naming_the_capability(ns):
    r = ns.run([*DROP, sys.executable, "-c", API], env=_pynfct_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # create_many raises too, its result saying nothing was created and each item was refused (it used
    # to wait forever for answers the kernel never sends, then returned the refusals without raising)
    assert out["create_many"][3] == [0, [1], 200]
    assert len(out) == 12
    for name, got in out.items():
        assert got is not None, f"{name}: no error"
        kind, errno, message, result = got
        assert result is None or result[0] == 0, (name, result)     # (update/delete: what was done)
        assert (kind, errno) == ("NfctPermissionError", 1), (name, got)
        assert "CAP_NET_ADMIN" in message and "root" in message, (name, message)
    assert ns.ct_count() == 50      # nothing changed


@pytest.mark.parametrize("case", ["missing", "unreadable", "directory"])
def test_load_refuses_a_file_it_cannot_read_like_conntrack(ns, tmp_path, case):
    if case == "unreadable" and not _runs_as_nobody():
        pytest.skip("nobody cannot read this checkout")
    os.chmod(tmp_path, 0o755)
    path = tmp_path / "batch"
    if case == "directory":
        path.mkdir()
    elif case == "unreadable":
        path.write_text(" ".join(["-I", *ONE, "--state", "ESTABLISHED", "-t", "10"]) + "\n")
        os.chmod(path, 0o600)       # root's: nobody cannot read it
    prefix = NOBODY if case == "unreadable" else []
    ct, py = run_both(ns, ["-R", str(path)], conntrack=[*prefix, "conntrack"], pynfct=[*prefix, *pynfct_argv()])
    assert_same(ct, py)
    if case != "directory":         # (reading a directory reads nothing: exit 0, as conntrack)
        assert ct.returncode == 2 and "Failed to open file" in ct.err


# -- the spool of -R - --------------------------------------------------------------------------------

def _spool_fds(pid: int, tmpdir: str):
    """(fd, link, mode, links) of the files `pid` holds open in tmpdir."""
    found = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith(tmpdir + "/"):
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                found.append((fd, link, stat.S_IMODE(st.st_mode), st.st_nlink))
        except OSError:
            pass
    return found


def _lines(n: int, start: int = 0) -> bytes:
    return "".join(" ".join(bulk_entry_argv(i)) + "\n" for i in range(start, start + n)).encode()


@pytest.mark.parametrize("ending", ["success", "bad line", "SIGINT", "SIGTERM"])
def test_stdin_spool_is_private_nameless_and_never_left_behind(tmp_path, ending):
    tmpdir = str(tmp_path / "tmp")
    os.mkdir(tmpdir, 0o700)
    env = dict(_pynfct_env(), TMPDIR=tmpdir)
    with NetNS() as ns:
        p = ns.popen([*pynfct_argv(), "-R", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, env=env)
        try:
            p.stdin.write(_lines(2000))
            p.stdin.flush()
            deadline = time.monotonic() + 30
            while not _spool_fds(p.pid, tmpdir):
                assert p.poll() is None and time.monotonic() < deadline, "no spool opened"
                time.sleep(0.005)
            held = _spool_fds(p.pid, tmpdir)
            names = os.listdir(tmpdir)
            if ending in ("SIGINT", "SIGTERM"):
                os.kill(p.pid, getattr(signal, ending))
            rest = b"-I -p tcp --bogus\n" if ending == "bad line" else b""
            _, err = p.communicate(rest, timeout=60)      # (and closes standard input)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        assert len(held) == 1 and names == []
        fd, link, mode, links = held[0]
        assert mode == 0o600 and links == 0 and link.endswith("(deleted)"), held
        expected = {"success": 0, "bad line": 2, "SIGINT": -signal.SIGINT, "SIGTERM": -signal.SIGTERM}[ending]
        assert p.returncode == expected, err
        assert os.listdir(tmpdir) == []


LOAD_LINES = r"""
import os, sys, pynfct
from pynfct.cli.load import load
lines = [l for l in sys.stdin.read().splitlines()]
with pynfct.Conntrack() as ct:
    print(int(load(ct, lines)), os.listdir(os.environ["TMPDIR"]))
"""


def test_load_of_lines_leaves_no_file(tmp_path):
    tmpdir = str(tmp_path / "tmp")
    os.mkdir(tmpdir, 0o700)
    with NetNS() as ns:
        r = ns.run([sys.executable, "-c", LOAD_LINES], input=_lines(100), env=dict(_pynfct_env(), TMPDIR=tmpdir))
        assert r.returncode == 0, r.stderr
        assert r.stdout.split(maxsplit=1) == [b"100", b"[]\n"]
        assert os.listdir(tmpdir) == []


@pytest.mark.parametrize("args", [["-C"], ["-C", "expect"], ["-S"], ["-S", "expect"]], ids=" ".join)
def test_proc_figures_and_refusal_in_conntrack_order_with_2_to_1(ns, args):
    """-C/-S fall back to /proc and then report the refusal. conntrack printf()s the figures into
    stdio's buffer and flushes it at exit, after its error line: with stdout and stderr into one pipe
    the error line comes first, and pynfct's bytes must be the same."""
    def combined(argv):
        r = ns.run([*DROP, "sh", "-c", 'exec "$@" 2>&1', "sh", *argv, *args], env=_pynfct_env(), timeout=30)
        return r.returncode, normalize_prog(r.stdout.decode())
    ct = combined(["conntrack"])
    assert ct[0] == 1 and ct[1].startswith("<PROG>: Operation failed") and "\n" in ct[1][:-1], ct
    assert combined(pynfct_argv()) == ct
