"""Flow and Event values over real tables and events.

Every entry of the filled namespace (synthetic entries of every protocol, real traffic with counters and
timestamps, real NAT) round-trips through as_dict() / Flow.from_dict() and through pickle, equals itself
read again, differs from every other entry; rebuilt Flows work with the writes that take Flows; the
Event objects of a real event stream round-trip too and match what ``pynfct -E -o json`` prints.
"""
import json
import pickle
import signal
import time

import pytest

import pynfct
from _nfct.events import Event
from _nfct.flow import Flow, raw_state
from _nfct.format import Format
from ctwriter import CtWriter
from fill import fill_synthetic
from prereq import missing, require_netns
from pynfct.template import Out
from test_events import Listener, play, prepare, wait_for, wait_idle

FORMATS = [Out(0), Out.EXT, Out.XML, Out.ID, Out.KTMS, Out.SAVE, Out.JSON, Out.EXT | Out.ID | Out.KTMS,
           Out.XML | Out.ID | Out.KTMS]


@pytest.fixture(scope="module")
def ct(filled_ns):
    with pynfct.Conntrack(filled_ns.name) as handle:
        yield handle


@pytest.fixture(scope="module")
def flows(ct):
    return list(ct.dump())


def test_the_table_has_every_kind_of_entry(flows):
    protos = {f.proto for f in flows}
    assert {"tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", "gre", "unknown"} <= protos
    assert {f.family for f in flows} == {"ipv4", "ipv6"}
    status = [f.status for f in flows]
    assert any(s & pynfct.Status.SRC_NAT for s in status) and any(s & pynfct.Status.DST_NAT for s in status)
    assert any(f.zone for f in flows) and any(f.orig.zone for f in flows) and any(f.reply.zone for f in flows)
    assert any(f.mark for f in flows) and any(f.labels for f in flows)
    assert any(f.orig.packets for f in flows) and any(f.start for f in flows)
    assert any(f.orig.vtag for f in flows) and any(f.orig.srckey for f in flows)
    assert any(f.proto == "icmpv6" and f.orig.icmp_type == 139 for f in flows)


def test_every_entry_round_trips_through_as_dict(flows):
    for f in flows:
        d = f.as_dict()
        g = Flow.from_dict(d)
        assert g == f and hash(g) == hash(f) and g.key == f.key, d
        assert g.as_dict() == d
        # what as_dict() leaves out is not printed by conntrack either: the lines are the same
        assert str(g) == str(f)
        for out in FORMATS:
            assert Format(out).format(g) == Format(out).format(f), (out, d)


def test_every_entry_round_trips_through_pickle(flows):
    back = pickle.loads(pickle.dumps(flows))
    assert back == flows
    for f, g in zip(flows, back):
        assert raw_state(g) == raw_state(f)           # every attribute, the ones as_dict() leaves out too
        assert hash(g) == hash(f) and str(g) == str(f) and g.as_dict() == f.as_dict()
        for out in FORMATS:
            assert Format(out).format(g) == Format(out).format(f), out


def test_entries_are_distinct_values_and_connections(flows):
    assert len(set(flows)) == len(flows)
    assert len({f.key for f in flows}) == len(flows)


def test_an_entry_read_again(ct, flows):
    again = {f.key: f for f in ct.dump()}
    assert again.keys() == {f.key for f in flows}
    for f in flows:
        g = again[f.key]
        # nothing moves in the filled table but the timeouts: with the same timeout, the same value
        assert g == Flow.from_dict(dict(f.as_dict(), timeout=g.timeout)), f
        assert (g == f) == (g.timeout == f.timeout)


def test_a_live_entry_ticks(ct, flows):
    f = next(f for f in flows if f.proto == "tcp" and f.timeout and f.timeout > 100)
    time.sleep(1.1)
    g = next(g for g in ct.dump() if g.key == f.key)
    assert g.timeout < f.timeout and g != f and g.key == f.key


def test_rebuilt_flows_work_with_the_writes(netns):
    require_netns(need_nft=True)
    fill_synthetic(netns)
    with pynfct.Conntrack(netns.name) as ct:
        before = list(ct.dump())
        assert len(before) > 50
        rebuilt = [Flow.from_dict(f.as_dict()) for f in before]
        pickled = pickle.loads(pickle.dumps(before))

        # -U and -D by Flow (the flows= path): by the entries' tuples, zones and ids
        r = ct.update(rebuilt, mark=0x77)
        assert (r.count, r.failures) == (len(before), [])
        assert {f.mark for f in ct.dump()} == {0x77}
        r = ct.delete(pickled)
        assert (r.count, r.failures) == (len(before), []) and ct.count() == 0

        # create from rebuilt Flows: one by one (write.create_flow) and pipelined (Loader.queue_flow)
        half = len(rebuilt) // 2
        for f in rebuilt[:half]:
            ct.create(f)
        r = ct.create_many(rebuilt[half:])
        assert (r.count, r.failures) == (len(rebuilt) - half, [])
        now = {f.key: f for f in ct.dump()}
        assert now.keys() == {f.key for f in before}

        def same(d):        # what a create gives the new entry: not the id, use, counters or timeout
            return {k: v for k, v in d.items() if k not in ("id", "use", "timeout")}
        for f in before:
            g = now[f.key]
            assert same(g.as_dict()) == same(f.as_dict()), f
            assert 0 < g.timeout <= f.timeout


def test_events_round_trip_and_match_the_cli_json(netns, tmp_path):
    prepare(netns)
    listener = Listener(netns, "pynfct", ["-E", "-o", "json"], tmp_path, "json")
    wait_for(listener.subscribed, 60, what="pynfct -E to subscribe")
    with pynfct.Conntrack(netns.name) as ct:
        stream = ct.events(timeout=1)
        with CtWriter(netns.name) as w:
            play(netns, w)
            wait_idle([listener])
            events = list(stream)
            r = listener.stop(signal.SIGINT)
    assert r.returncode == 0
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(events) == len(lines) > 30
    assert {ev.as_dict()["type"] for ev in events} == {"new", "update", "destroy"}
    assert any(ev.portid for ev in events) and any(not ev.portid for ev in events)
    for ev, line in zip(events, lines):
        d = ev.as_dict()
        line.pop("progname", None)
        assert d == line
        assert Event.from_dict(d) == ev and Event.from_dict(line) == ev
        assert Flow.from_dict({k: v for k, v in d.items() if k not in ("type", "portid")}) == ev.flow
        back = pickle.loads(pickle.dumps(ev))
        assert back == ev and hash(back) == hash(ev) and str(back) == str(ev)
        assert raw_state(back.flow) == raw_state(ev.flow)


FTP = r"""
import socket, threading, time
def listen(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(); return s
srv, data = listen(21), listen(51210)
def serve():
    c, _ = srv.accept(); c.sendall(b"220 hi\r\n"); c.recv(100)
    c.sendall(b"227 Entering Passive Mode (127,0,0,1,200,10)\r\n"); c.recv(100)
    c.sendall(b"227 Entering Passive Mode (127,0,0,1,200,11)\r\n"); time.sleep(0.3); c.close()
t = threading.Thread(target=serve); t.start()
cl = socket.create_connection(("127.0.0.1", 21)); cl.recv(100); cl.sendall(b"PASV\r\n"); cl.recv(100)
time.sleep(0.2)
d = socket.create_connection(("127.0.0.1", 51210)); a, _ = data.accept(); d.sendall(b"x"); a.recv(1)
cl.sendall(b"PASV\r\n"); cl.recv(100)          # expected 51211: never connected, stays in the table
time.sleep(0.1); d.close(); a.close(); cl.close(); t.join()
"""
MASTER_L3PROTO = 43


def test_pickle_keeps_helper_master_and_expectations(netns):
    """Real kernel attributes that as_dict() does not show: the FTP control connection's helper, the
    data connection's master tuple, TCP window tracking; and the Flows of an expectation."""
    r = netns.nft("""
table inet pynfct_ftp {
    ct helper ftp-standard { type "ftp" protocol tcp; }
    chain output { type filter hook output priority 0; tcp dport 21 ct helper set "ftp-standard"; }
}
""", check=False)
    if r.returncode != 0:
        missing(f"no FTP conntrack helper in this kernel: {r.stderr.decode(errors='replace')}")
    netns.python(FTP)
    with pynfct.Conntrack(netns.name) as ct:
        flows = list(ct.dump())
        exps = ct.expectations()
    assert any(f.helper == "ftp" for f in flows)
    data = [f for f in flows if f.orig.dport == 51210]
    assert len(data) == 1 and MASTER_L3PROTO in [a[0] for a in raw_state(data[0])[0]]
    for f in flows:
        g = pickle.loads(pickle.dumps(f))
        assert raw_state(g) == raw_state(f) and g == f and str(g) == str(f)
        assert Flow.from_dict(f.as_dict()) == f
    assert [e.tuple.orig.dport for e in exps] == [51211]
    for e in exps:
        for part in (e.master, e.tuple, e.mask):
            back = pickle.loads(pickle.dumps(part))
            assert raw_state(back) == raw_state(part) and back == part
