"""Faults: the kernel refusing, the table full, a tiny receive buffer, the namespace deleted under a
dump or an event loop. No crash, no hang, a clear error or end, an exact account of what was done, and
conntrack 1.4.7's message and exit status wherever conntrack has a behaviour for it.

- Table full: a namespace's table is full when it holds net.netfilter.nf_conntrack_max entries (the
  count is the namespace's own, the limit the host's; in a namespace the sysctl is read-only). So the
  limit is left alone (other tests run beside these) and the test namespace is filled up to it instead,
  with ASSURED entries: the kernel may drop a non-ASSURED entry early to make room, and then a create
  would succeed by evicting another. Creates then fail with ENOMEM.
- EPERM: without CAP_NET_ADMIN (setpriv drops it) nfnetlink refuses a whole sendmsg with one EPERM,
  for its first request, and answers none of the others: a pipelined writer that waits for its last
  request's answer would wait forever.
- EBUSY: the kernel refuses to set the EXPECTED status bit (or DYING) on an existing entry or a new one.
- A netlink socket holds its network namespace: `ip netns delete` removes the name only, the table
  lives on while pynfct's socket (or its namespace fd) does, and can still be flushed (here through
  /proc/PID/ns/net). What must hold: the dump or the event loop goes on, ends cleanly, counts what it
  printed, and exits as conntrack does.
- A tiny receive buffer: the kernel builds a dump batch only when the socket has room, so a dump is
  never overrun; with the buffer at its minimum the listing is still the whole table, in order.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import List

import pytest

import pynfct
from pynfct import Conntrack, FlowSpec, Status, Update
from pynfct.result import Failure

from differential import _pynfct_env, normalize_prog, pynfct_argv, run, Result
from netns import NetNS
from test_events import Listener, wait_for, wait_idle

PYNFCT = pynfct_argv()
ROOM = 100                  # free places left in the full table
MORE = 300                  # creates tried into them
SETPRIV = ["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin"]
NOMEM = "Operation failed: not enough memory\n"
NOPERM = "Operation failed: sorry, you must be root or get CAP_NET_ADMIN capability to do this\n"


def _line(i: int, net: str, dport: int) -> str:
    return (f"-I -p tcp -s {net}.{(i >> 8) & 255}.{i & 255} -d 198.18.1.{dport & 255} --sport {1024 + i % 60000} "
            f"--dport {dport} --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 100000\n")


def _fill_file(path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"-I -p tcp -s 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255} -d 198.18.1.1 "
                    f"--sport {1024 + i % 60000} --dport 80 --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 100000\n")


def py(ns: NetNS, *args: str, input=None, prefix=()) -> Result:
    return run(ns, [*prefix, *PYNFCT, *args], input=input, env=_pynfct_env(), timeout=60)


def ct(ns: NetNS, *args: str, input=None, prefix=()) -> Result:
    return run(ns, [*prefix, "conntrack", *args], input=input, timeout=60)


def sources(ns: NetNS, net: str, delete: bool = False) -> List[str]:
    """Original source addresses of the entries from `net`.0.0/16, sorted; `delete`: then delete them.
    (Each test's entries also have a destination of their own, for the kernel to filter the dump by.)"""
    dst = {"10.250": "198.18.1.187", "10.252": "198.18.1.2", "10.253": "198.18.1.80"}[net]
    with Conntrack(ns.name) as api:
        flows = [f for f in api.dump(family="ipv4", dst=dst) if str(f.orig.src).startswith(net + ".")]
        if delete:
            assert int(api.delete(flows)) == len(flows)
    return sorted(str(f.orig.src) for f in flows)


def wanted(net: str, n: int) -> List[str]:
    return sorted(f"{net}.{(i >> 8) & 255}.{i & 255}" for i in range(n))


# --- the table full -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full_ns(tmp_path_factory):
    """A namespace holding nf_conntrack_max - ROOM ASSURED entries (~260,000 by default: 1-2 s)."""
    with NetNS() as ns:
        cap = int(ns.sysctl("net.netfilter.nf_conntrack_max"))
        if not cap or cap > 600_000:
            pytest.skip(f"nf_conntrack_max is {cap} (over 600,000: filling the table would take too long): "
                        "unchecked that -R/-I into a full table stop like conntrack and that "
                        "create_many() accounts for every refused entry")
        path = tmp_path_factory.mktemp("full") / "fill"
        _fill_file(path, cap - ROOM)
        r = py(ns, "-R", str(path))
        ns.cap = cap
        if r.returncode != 0 or ns.ct_count() != cap - ROOM:
            _same_cap(ns)       # another test may have lowered the host's limit meanwhile
            pytest.fail(f"could not fill the table to nf_conntrack_max - {ROOM}: {r.err.strip()}")
        yield ns


def _same_cap(ns: NetNS) -> None:
    if int(ns.sysctl("net.netfilter.nf_conntrack_max")) != ns.cap:
        pytest.skip("nf_conntrack_max changed during the test (another test set it): the table is not "
                    "full as planned, so this table-full behaviour went unchecked")


def test_table_full_cli_load_stops_like_conntrack(full_ns, tmp_path):
    """-R of MORE creates into ROOM free places: both create the first ROOM lines, stop at the next
    with conntrack's "not enough memory" and exit 1; the table then holds exactly those ROOM lines.
    -I into the full table says the same."""
    ns = full_ns
    path = tmp_path / "more"
    path.write_text("".join(_line(i, "10.250", 443) for i in range(MORE)))
    results = []
    for run_it in (ct, py):
        r = run_it(ns, "-R", str(path))
        one = run_it(ns, "-I", "-p", "udp", "-s", "10.251.0.1", "-d", "10.251.0.2", "--sport", "1", "--dport", "2",
                     "-t", "100")
        _same_cap(ns)
        results.append((r, sources(ns, "10.250", delete=True), one))
        assert ns.ct_count() == ns.cap - ROOM
    (c, cgot, cone), (p, pgot, pone) = results
    assert (c.returncode, normalize_prog(c.err), c.out) == (1, "<PROG>: " + NOMEM, "")
    assert (p.returncode, normalize_prog(p.err), p.out) == (1, "<PROG>: " + NOMEM, "")
    assert cgot == pgot == wanted("10.250", ROOM)
    assert (cone.returncode, normalize_prog(cone.err)) == (pone.returncode, normalize_prog(pone.err)) \
        == (1, "<PROG>: " + NOMEM)


def test_table_full_create_many_accounts_exactly(full_ns):
    """create_many() of MORE specs: int(result) is ROOM, every other item is a Failure(ENOMEM, item),
    and the table holds exactly the first ROOM items. A single create() raises NfctError(ENOMEM) with
    a message that names nf_conntrack_max."""
    specs = [FlowSpec("tcp", src=f"10.252.{i >> 8}.{i & 255}", dst="198.18.1.2", sport=2000 + i, dport=443,
                      state="ESTABLISHED", status=Status.SEEN_REPLY | Status.ASSURED, timeout=100000)
             for i in range(MORE)]
    with Conntrack(full_ns.name) as api:
        try:
            r = api.create_many(specs)
            with pytest.raises(pynfct.NfctError) as e:
                api.create(FlowSpec("udp", src="10.251.0.1", dst="10.251.0.2", sport=1, dport=2, timeout=100))
            _same_cap(full_ns)
        finally:
            got = sources(full_ns, "10.252", delete=True)
    assert int(r) == ROOM and not r.interrupted
    assert r.failures == [Failure(errno.ENOMEM, i) for i in range(ROOM, MORE)]
    assert got == wanted("10.252", ROOM)
    assert e.value.errno == errno.ENOMEM and type(e.value) is pynfct.NfctError
    assert "nf_conntrack_max" in str(e.value), str(e.value)


# --- EPERM: CAP_NET_ADMIN dropped -------------------------------------------------------------------------

@pytest.fixture
def small_ns(tmp_path):
    """ROOM entries from 10.250.0.0/16 (conntrack -R)."""
    with NetNS() as ns:
        r = ct(ns, "-R", "-", input="".join(_line(i, "10.250", 443) for i in range(ROOM)))
        assert r.returncode == 0, r.err
        yield ns


EPERM_CHILD = r"""
import pickle, sys
import pynfct
from pynfct import FlowSpec
ct = pynfct.Conntrack(sys.argv[1])
flows = pickle.load(sys.stdin.buffer)
spec = lambda i: FlowSpec("tcp", src=f"10.253.0.{i}", dst="198.18.1.2", sport=2000 + i, dport=443,
                          state="ESTABLISHED", timeout=100)
out = {}
for name, call in [("create", lambda: ct.create(spec(1))),
                   ("create_many", lambda: ct.create_many([spec(i) for i in range(200)])),
                   ("delete", lambda: ct.delete(flows)), ("update", lambda: ct.update(flows, mark=1)),
                   ("dump", lambda: list(ct.dump()))]:
    try:
        r = call()
        out[name] = (int(r), [(f.errno, f.item) for f in r.failures])
    except pynfct.NfctPermissionError as e:
        r = getattr(e, "result", None)
        out[name] = ("raised", e.errno, str(e),
                     None if r is None else (int(r), [(f.errno, f.item) for f in r.failures]))
print(repr(out))
"""


def test_without_cap_net_admin_bulk_writes_fail_at_once(small_ns, tmp_path):
    """Without CAP_NET_ADMIN: -R and -I print conntrack's message and exit 1 as conntrack does (-R waited
    forever for the answers the kernel never sends); every API call raises NfctPermissionError, the
    pipelined writes (create_many, delete and update of Flows: no dump first) with a result that
    reports every item as refused. The table is unchanged."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is missing")
    ns = small_ns
    path = tmp_path / "more"
    path.write_text("".join(_line(i, "10.253", 80) for i in range(MORE)))
    for args in (["-R", str(path)], ["-I", "-p", "udp", "-s", "10.251.0.1", "-d", "10.251.0.2", "--sport", "1",
                                     "--dport", "2", "-t", "100"]):
        c, p = ct(ns, *args, prefix=SETPRIV), py(ns, *args, prefix=SETPRIV)
        assert (c.returncode, normalize_prog(c.err), c.out) == (1, "<PROG>: " + NOPERM, "")
        assert (p.returncode, normalize_prog(p.err), p.out) == (1, "<PROG>: " + NOPERM, ""), args
    import pickle
    with Conntrack(ns.name) as api:
        flows = list(api.dump())
    assert len(flows) == ROOM
    r = ns.run([*SETPRIV, sys.executable, "-c", EPERM_CHILD, ns.name], input=pickle.dumps(flows), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    out = eval(r.stdout)
    refused = lambda n, item: (0, [(errno.EPERM, item(i)) for i in range(n)])  # noqa: E731
    assert out["create_many"][3] == refused(200, lambda i: i)
    assert out["delete"][3] == out["update"][3] == refused(ROOM, lambda i: None)
    for name in ("create", "create_many", "delete", "update", "dump"):
        assert out[name][:2] == ("raised", errno.EPERM) and "CAP_NET_ADMIN" in out[name][2], out[name]
    assert out["create"][3] is out["dump"][3] is None
    assert ns.ct_count() == ROOM and sources(ns, "10.253") == []
    assert ct(ns, "-L", "-m", "1").out == ""


# --- EBUSY ----------------------------------------------------------------------------------------------

def test_kernel_busy_refusals(small_ns):
    """The kernel will not set EXPECTED on an existing entry (EBUSY). -U: conntrack prints the error, yet
    counts the entry as updated and exits 0 (README: pynfct does not count a refused update, exit 1);
    the error line is the same. The API: update() reports Failure(EBUSY), create() with EXPECTED
    raises NfctError(EBUSY) saying what the kernel will not change."""
    ns = small_ns
    args = ["-U", "-s", "10.250.0.1", "-u", "EXPECTED"]
    c, p = ct(ns, *args), py(ns, *args)
    busy = "Operation failed: Device or resource busy\n"
    assert normalize_prog(c.err) == busy + "<PROG>: 1 flow entries have been updated.\n" and c.returncode == 0
    assert normalize_prog(p.err) == busy + "<PROG>: 0 flow entries have been updated.\n" and p.returncode == 1
    assert p.out == ""
    with Conntrack(ns.name) as api:
        r = api.update(src="10.250.0.1", set=Update(status=Status.EXPECTED))
        assert int(r) == 0 and r.failures == [Failure(errno.EBUSY)]
        with pytest.raises(pynfct.NfctError) as e:
            api.create(FlowSpec("udp", src="10.251.0.1", dst="10.251.0.2", sport=1, dport=2, timeout=100,
                                status=Status.EXPECTED))
        assert e.value.errno == errno.EBUSY and "EXPECTED" in str(e.value), str(e.value)
        assert not any(f.status & Status.EXPECTED for f in api.dump())
        assert api.count() == ROOM


# --- the namespace deleted ------------------------------------------------------------------------------

N_DUMP = 30_000     # far more than a stalled lister has read ahead (pynfct: 32 batches and 1 MiB of text)
SHOWN = re.compile(r"^<PROG>: (\d+) flow entries have been shown\.\n\Z")


def _filled(n: int, events: bool = False) -> NetNS:
    """A new namespace holding n entries; `events`: they will report their end to event listeners."""
    ns = NetNS().create()
    try:
        if events:
            # nf_conntrack_events is 2 by default: an entry created while no one listens never has events
            ns.sysctl("net.netfilter.nf_conntrack_events", 1)
        r = ct(ns, "-R", "-", input="".join(_line(i, "10.250", 443) for i in range(n)))
        assert r.returncode == 0 and ns.ct_count() == n, r.err
    except BaseException:
        ns.delete()
        raise
    return ns


def _key(line: str) -> str:
    """A -L line without its timeout (the 3rd field), which ticks, and its use= count: the flush running
    beside the dump holds its own reference to an entry for a moment (use=2)."""
    f = line.split()
    return " ".join(x for x in f[:2] + f[3:] if not x.startswith("use="))


def _in_netns_of(pid: int, *argv: str) -> subprocess.CompletedProcess:
    """Run argv in the network namespace of process `pid` (after its name is gone)."""
    return subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", *argv], capture_output=True, timeout=60)


def _unname(ns: NetNS) -> None:
    subprocess.run(["ip", "netns", "delete", ns.name], check=True, timeout=60)
    assert not os.path.exists(f"/run/netns/{ns.name}")


def test_listing_while_the_namespace_is_deleted_and_flushed():
    """conntrack -L and pynfct -L run side by side on a big table, each stalled mid-dump on a full stdout
    pipe; then the namespace's name is deleted and its table flushed (through /proc/PID/ns/net: the
    listers' sockets keep the namespace). Both then finish: exit 0, a count that is what they printed,
    fewer lines than the table had (the dump really was cut), no line twice, every line an entry."""
    ns = _filled(N_DUMP)
    try:
        with Conntrack(ns.name) as api:
            table = {_key(str(f)) for f in api.dump()}
        procs = {"conntrack": ns.popen(["conntrack", "-L"], stdout=subprocess.PIPE, stderr=subprocess.PIPE),
                 "pynfct": ns.popen([*PYNFCT, "-L"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=_pynfct_env())}
        heads = {name: p.stdout.read(4096) for name, p in procs.items()}     # both are listing
        _unname(ns)
        pid = procs["pynfct"].pid
        assert _in_netns_of(pid, "conntrack", "-F").returncode == 0
        assert _in_netns_of(pid, "conntrack", "-C").stdout == b"0\n"
        for name, p in procs.items():
            out, err = p.communicate(timeout=60)
            lines = (heads[name] + out).decode().splitlines()
            m = SHOWN.match(normalize_prog(err.decode()))
            assert p.returncode == 0 and m, (name, p.returncode, err)
            assert int(m.group(1)) == len(lines) < N_DUMP, (name, len(lines))
            rows = [_key(line) for line in lines]
            assert len(set(rows)) == len(rows) and set(rows) <= table, name
    finally:
        ns.delete()


def test_api_dump_and_events_in_a_deleted_namespace():
    """The API on a table whose namespace's name is deleted: a dump under way ends cleanly when the
    table is flushed (the Conntrack's namespace fd still reaches it), an event stream opened before
    sees every DESTROY of the flush and a NEW after it, exactly, and opening the name again fails
    clearly."""
    ns = _filled(N_DUMP, events=True)
    try:
        with Conntrack(ns.name) as api:
            dump = api.dump()
            first = next(dump)
            events = api.events("NEW,DESTROY", timeout=5)
            _unname(ns)
            api.flush()
            rest = list(dump)
            assert 1 + len(rest) < N_DUMP and len({str(f) for f in rest} | {str(first)}) == 1 + len(rest)
            assert api.count() == 0
            api.create(FlowSpec("udp", src="10.251.0.1", dst="10.251.0.2", sport=1, dport=2, timeout=100))
            seen = {pynfct.EventType.DESTROY: 0, pynfct.EventType.NEW: 0}
            want = {pynfct.EventType.DESTROY: N_DUMP, pynfct.EventType.NEW: 1}
            for ev in events:       # (DESTROY events the buffer had no room for come again later)
                seen[ev.type] += 1
                if seen == want:
                    break
            events.close()
            assert seen == want
        with pytest.raises(FileNotFoundError):
            Conntrack(ns.name)
    finally:
        ns.delete()


def test_event_listeners_in_a_deleted_namespace(tmp_path):
    """conntrack -E and pynfct -E in a namespace whose name is deleted after their first events: both
    go on (the flush, through /proc/PID/ns/net, shows as DESTROY events), stop on SIGTERM and print
    the same events, the same count and the same exit status."""
    with NetNS() as ns:
        listeners = [Listener(ns, "conntrack", ["-E", "-o", "id"], tmp_path, "c"),
                     Listener(ns, "pynfct", ["-E", "-o", "id"], tmp_path, "p")]
        wait_for(lambda: all(x.subscribed() for x in listeners), 60, what="the listeners to subscribe")
        r = ct(ns, "-R", "-", input="".join(_line(i, "10.250", 443) for i in range(20)))
        assert r.returncode == 0, r.err
        wait_idle(listeners)
        _unname(ns)
        assert _in_netns_of(listeners[1].pid, "conntrack", "-F").returncode == 0
        wait_idle(listeners)
        c, p = (x.stop(signal.SIGTERM) for x in listeners)
    # the [USERSPACE] progname is looked up when the event is printed: the flushing process may be gone
    strip = lambda r: sorted(re.sub(r" \[USERSPACE\].*", "", line) for line in r.out.splitlines())  # noqa: E731
    assert strip(c) == strip(p) and len(strip(p)) == 40
    assert sum(line.startswith("[DESTROY]") for line in strip(p)) == 20
    assert (c.returncode, normalize_prog(c.err)) == (p.returncode, normalize_prog(p.err))
    assert p.returncode == 0 and "40 flow events have been shown" in p.err


# --- a tiny receive buffer ------------------------------------------------------------------------------

def test_dump_with_a_tiny_receive_buffer_is_complete():
    """The dump socket's SO_RCVBUF at the kernel's minimum (a test hook of _nfct.dump.Dump; neither tool
    has an option for it, and net.core.rmem_default is read-only in a namespace): the kernel makes a
    batch only when the socket has room, so the listing is the whole table in conntrack's order, for
    the plain dump, the family dump the kernel filters (its deferred start is skipped with a buffer this
    small: it would fail with ENOBUFS) and the text path of -L."""
    from _nfct.socket import enter_netns
    n = 10_000
    ns = _filled(n)         # deletes its namespace itself if the fill fails
    try:
        nsfd = enter_netns(ns.name)
        assert nsfd >= 0
        try:
            _tiny_rcvbuf_dumps(ns, nsfd, n)
        finally:
            os.close(nsfd)
    finally:
        ns.delete()


def _tiny_rcvbuf_dumps(ns: NetNS, nsfd: int, n: int) -> None:
    from _nfct.dump import Dump
    from _nfct.format import Format
    from differential import assert_same
    t0 = time.monotonic()
    slack = lambda: int(time.monotonic() - t0) + 2      # noqa: E731  (timeouts tick between the reads)
    ref = ct(ns, "-L")
    ref4 = ct(ns, "-L", "-f", "ipv4")
    for family, want in ((0, ref), (2, ref4)):
        lines = [str(f) + "\n" for f in Dump(nsfd, family=family, rcvbuf=1)]
        got = Result(want.argv, 0, "".join(lines).encode(), want.stderr)
        assert len(lines) == n
        assert_same(want, got, timeout_slack=slack())
    r, w = os.pipe()
    out = []
    import threading
    reader = threading.Thread(target=lambda: out.extend(iter(lambda: os.read(r, 1 << 16), b"")))
    reader.start()
    try:
        written = Dump(nsfd, rcvbuf=1).to_fd(w, Format(0, None))
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    assert written == n
    assert_same(ref, Result(ref.argv, 0, b"".join(out), ref.stderr), timeout_slack=slack())
