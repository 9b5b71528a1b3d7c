"""Throwaway network namespaces for the integration tests.

Every test that touches conntrack runs inside its own namespace, never in the host one::

    with NetNS() as ns:
        ns.run(["conntrack", "-L"], check=True)

A namespace is named ``pynfct-test-<pid>-<n>-<random>`` (``<pid>`` is the creating process, so that
:func:`cleanup_leftovers` can tell a crashed session's namespaces from those of a session still running
next to it), gets ``lo`` up, and is deleted in ``__exit__`` whatever happened, together with every process
started through :meth:`NetNS.popen` / :meth:`NetNS.python_popen` and its ``/etc/netns/<name>`` directory.

Commands run through ``ip netns exec``, which also gives them a private mount namespace in which every
entry of ``/etc/netns/<name>/`` is bind-mounted over the same entry of ``/etc``.  :meth:`NetNS.set_labelmap`
uses that to give the namespace its own ``/etc/xtables/connlabel.conf`` (the file conntrack 1.4.7 and
libnetfilter_conntrack read label names from) without touching the host's file; for the bind mount to work
``/etc/xtables`` has to exist, so it is created (empty) when missing -- the only change to the host's /etc.

Only needs iproute2 (``ip``), a POSIX ``sh`` and the running Python.
"""
from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Mapping, Optional, Sequence, Union

PREFIX = "pynfct-test-"
NETNS_RUN_DIR = "/var/run/netns"
NETNS_ETC_DIR = "/etc/netns"
XTABLES_DIR = "/etc/xtables"
LABELMAP_NAME = "connlabel.conf"
DEFAULT_TIMEOUT = 60.0

_counter = itertools.count(1)
_NAME_RE = re.compile(r"^" + re.escape(PREFIX) + r"(\d+)-")

Argv = Sequence[Union[str, bytes, os.PathLike]]


class NetNSError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check and r.returncode != 0:
        raise NetNSError(f"ip {' '.join(args)} failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()}")
    return r


def list_namespaces() -> List[str]:
    """Names of all named network namespaces (``ip netns list``)."""
    r = _ip("netns", "list", check=False)
    names = []
    for line in r.stdout.decode(errors="replace").splitlines():
        if line.strip():
            names.append(line.split()[0])  # "name (id: 3)" or just "name"
    return names


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete(name: str, attempts: int = 20) -> None:
    """``ip netns delete`` with a few retries (a just-killed child may still hold a mount busy)."""
    err = ""
    for _ in range(attempts):
        r = _ip("netns", "delete", name, check=False)
        if r.returncode == 0 or not os.path.exists(os.path.join(NETNS_RUN_DIR, name)):
            break
        err = r.stderr.decode(errors="replace").strip()
        time.sleep(0.05)
    else:
        raise NetNSError(f"could not delete network namespace {name}: {err}")
    shutil.rmtree(os.path.join(NETNS_ETC_DIR, name), ignore_errors=True)


def cleanup_leftovers(all_sessions: bool = False) -> List[str]:
    """Delete leftover ``pynfct-test-*`` namespaces (and their /etc/netns directories); returns the names.

    By default only namespaces whose creating process is gone, or is this process, are deleted: other test
    sessions may be running next to this one on the same machine and their namespaces are left alone.
    ``all_sessions=True`` deletes every ``pynfct-test-*`` namespace.
    """
    removed = []
    names = set(n for n in list_namespaces() if n.startswith(PREFIX))
    try:
        names.update(n for n in os.listdir(NETNS_ETC_DIR) if n.startswith(PREFIX))
    except OSError:
        pass
    for name in sorted(names):
        m = _NAME_RE.match(name)
        owner = int(m.group(1)) if m else None
        if not all_sessions and owner is not None and owner != os.getpid() and _pid_alive(owner):
            continue
        _delete(name)
        removed.append(name)
    return removed


def format_labelmap(labelmap: Union[Mapping[int, str], str]) -> str:
    """connlabel.conf text for ``{bit: name}`` (a str is taken as the file's text)."""
    if isinstance(labelmap, str):
        return labelmap
    return "".join(f"{bit}\t{name}\n" for bit, name in sorted(labelmap.items()))


class NetNS:
    """A uniquely named throwaway network namespace; use as a context manager."""

    def __init__(self, prefix: str = PREFIX, labelmap: Union[Mapping[int, str], str, None] = None):
        if not prefix.startswith(PREFIX):
            raise ValueError(f"namespace prefix must start with {PREFIX!r}")
        self.name = f"{prefix}{os.getpid()}-{next(_counter)}-{secrets.token_hex(3)}"
        self._initial_labelmap = labelmap
        self.labelmap: Optional[Dict[int, str]] = None
        self._procs: List[subprocess.Popen] = []
        self._finalizers: List = []
        self.created = False
        # what tests/fill.py put in the table (set by fill_synthetic / fill_traffic / fill_bulk)
        self.synthetic = None
        self.traffic = None
        self.bulk: List = []

    # -- lifetime -------------------------------------------------------------------------------

    def create(self) -> "NetNS":
        _ip("netns", "add", self.name)
        self.created = True
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            if self._initial_labelmap is not None:
                self.set_labelmap(self._initial_labelmap)
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        """Stop our processes, run finalizers, delete the namespace.  Safe to call twice."""
        errors = []
        while self._finalizers:
            fn = self._finalizers.pop()
            try:
                fn()
            except Exception as e:  # keep tearing down
                errors.append(e)
        for p in self._procs:
            _stop_process(p)
        self._procs.clear()
        if self.created:
            self.created = False
            _delete(self.name)
        else:
            shutil.rmtree(self.etc_dir, ignore_errors=True)
        if errors:
            raise errors[0]

    def __enter__(self) -> "NetNS":
        return self.create()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.delete()
        return False

    def add_finalizer(self, fn) -> None:
        """Call ``fn()`` at teardown, before processes are stopped and the namespace is deleted."""
        self._finalizers.append(fn)

    def __repr__(self) -> str:
        return f"NetNS({self.name!r})"

    # -- running things ---------------------------------------------------------------------------

    def exec_argv(self, argv: Argv) -> List:
        """The argv that runs ``argv`` inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Argv, input: Union[bytes, str, None] = None, check: bool = False,
            timeout: float = DEFAULT_TIMEOUT, env: Optional[Mapping[str, str]] = None,
            cwd: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run ``argv`` in the namespace; stdout/stderr are captured as bytes.

        ``check=True`` raises :class:`NetNSError` (with the command's stderr) on a non-zero exit.
        """
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run(self.exec_argv(argv), input=input,
                           stdin=None if input is not None else subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=None if env is None else dict(env), cwd=cwd)
        r.args = list(argv)
        if check and r.returncode != 0:
            raise NetNSError(f"{_show(argv)} failed in {self.name} ({r.returncode}):\n"
                             f"{r.stderr.decode(errors='replace')}{r.stdout.decode(errors='replace')}")
        return r

    def popen(self, argv: Argv, **kwargs) -> subprocess.Popen:
        """Start ``argv`` in the namespace (``subprocess.Popen`` keywords); stopped at teardown."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("start_new_session", True)
        p = subprocess.Popen(self.exec_argv(argv), **kwargs)
        self._procs.append(p)
        return p

    def python(self, code: str, *args: str, input: Union[bytes, str, None] = None, check: bool = True,
               timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
        """Run Python ``code`` (``sys.argv[1:] == args``) inside the namespace with this interpreter."""
        return self.run([sys.executable, "-c", code, *args], input=input, check=check, timeout=timeout)

    def python_popen(self, code: str, *args: str, **kwargs) -> subprocess.Popen:
        """Start Python ``code`` inside the namespace; stopped at teardown."""
        return self.popen([sys.executable, "-c", code, *args], **kwargs)

    def sh(self, script: str, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run a POSIX sh script in the namespace (``$1``... are ``args``)."""
        return self.run(["sh", "-c", script, "sh", *args], check=check, **kwargs)

    # -- configuration ----------------------------------------------------------------------------

    def sysctl(self, name: str, value: Union[str, int, None] = None) -> str:
        """Set (and return) or read a sysctl of the namespace: ``ns.sysctl("net.netfilter.nf_conntrack_acct", 1)``.

        Writes /proc/sys directly, so it does not need procps' ``sysctl``.
        """
        path = "/proc/sys/" + name.replace(".", "/")
        if value is not None:
            self.sh('printf "%s\\n" "$1" > "$2"', str(value), path)
        return self.run(["cat", path], check=True).stdout.decode().strip()

    def nft(self, ruleset: str, check: bool = True) -> subprocess.CompletedProcess:
        """Load an nft ruleset (``nft -f -``) into the namespace."""
        if not ruleset.endswith("\n"):
            ruleset += "\n"
        return self.run(["nft", "-f", "-"], input=ruleset, check=check)

    @property
    def etc_dir(self) -> str:
        return os.path.join(NETNS_ETC_DIR, self.name)

    def set_labelmap(self, labelmap: Union[Mapping[int, str], str]) -> str:
        """Give commands run in this namespace their own /etc/xtables/connlabel.conf; returns its path on the host.

        ``labelmap`` is ``{bit: name}`` or the file's text.  Affects commands started afterwards.
        """
        text = format_labelmap(labelmap)
        os.makedirs(XTABLES_DIR, exist_ok=True)  # the bind-mount target has to exist
        d = os.path.join(self.etc_dir, "xtables")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, LABELMAP_NAME)
        with open(path, "w") as f:
            f.write(text)
        parsed = {}
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit():
                parsed[int(parts[0])] = parts[1]
        self.labelmap = parsed
        return path

    # -- conntrack shortcuts ------------------------------------------------------------------------

    def conntrack(self, *args: str, input=None, check: bool = False,
                  timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
        return self.run(["conntrack", *args], input=input, check=check, timeout=timeout)

    def ct_count(self) -> int:
        """``conntrack -C`` in the namespace."""
        return int(self.conntrack("-C", check=True).stdout.split()[0])


def listens(pid: int) -> bool:
    """Process `pid` has a netlink socket bound to multicast groups: it listens for events."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
        with open(f"/proc/{pid}/net/netlink") as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
    except OSError:
        return False
    return any(int(r[9]) in inodes and int(r[3], 16) for r in rows)


def sleeps_in(pid: int, where: str) -> bool:
    """Some thread of process `pid` sleeps in a kernel function whose name holds `where` (its wchan):
    "pipe_write" waits for the reader of a full pipe, "pipe_read" for a writer."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/wchan") as f:
                if where in f.read():
                    return True
        except OSError:
            pass
    return False


def _show(argv: Argv) -> str:
    return " ".join(os.fsdecode(a) for a in argv)


def _stop_process(p: subprocess.Popen, grace: float = 3.0) -> None:
    """Terminate a process started with start_new_session (its whole group), then kill it."""
    if p.poll() is not None:
        _close_pipes(p)
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            p.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    _close_pipes(p)


def _close_pipes(p: subprocess.Popen) -> None:
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
