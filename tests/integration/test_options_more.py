"""Options and API calls no other test reached, each checked against conntrack 1.4.7 or the kernel's table.

- ``-G`` refused before anything is sent (reply ports without a reply address): the errno conntrack's
  parsing left behind, as conntrack reports it;
- ``-V``, ``-h``, ``-h -p PROTO`` as the installed program prints them;
- ``dump(zero=True)`` and ``delete(collect=True)`` against what conntrack lists before and after;
- ``--labelmap FILE`` (conntrack 1.4.9's option) against conntrack 1.4.7 reading the same file from its
  default place;
- the GRE key options and ``get()`` by GRE keys; DCCP ``--role`` (this kernel has no DCCP tracking, so the
  request conntrack sends is the reference);
- ``-E expect``: every filter is refused as conntrack refuses it, and the output formats no other test
  compares, on real expectations;
- ``-E`` stopped by SIGINT while its socket holds a burst: the summary counts exactly the lines printed;
- stdout on /dev/full (ENOSPC): the text is lost, the command does all its work, as conntrack's stdio;
- -D/-U/-I/-F refused by the kernel (no CAP_NET_ADMIN);
- ``-i/--id``, ``-c/--secmark``, ``update(del_labels=)``, ``events(reliable=True)`` under overrun.

Not here because this kernel cannot make them: a non-empty unconfirmed list, nonzero secmark or secctx
(no SELinux: nft cannot create a secmark object), DCCP entries, offloaded entries (no flowtable).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from typing import Dict, List, Tuple

import pytest

import pynfct
from differential import Result, _pynfct_env, assert_same, normalize_prog, pynfct_argv, run, run_both
from fill import enable_labels, fill_traffic
from netns import NetNS

PYNFCT = pynfct_argv()


def run_py(ns: NetNS, args, input=None) -> Result:
    return run(ns, [*PYNFCT, *args], input=input, env=_pynfct_env())


def run_ct(ns: NetNS, args, input=None) -> Result:
    return run(ns, ["conntrack", *args], input=input)


# --------------------------------------------------------------------------------------------------
# -G that fails before a request is sent
# --------------------------------------------------------------------------------------------------

ORIG = ["-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1", "--dport", "2"]


@pytest.fixture(scope="module")
def one_entry_ns():
    """A namespace holding one TCP entry (ORIG), for commands that change nothing."""
    with NetNS() as ns:
        assert run_ct(ns, ["-I", "-p", "tcp", *ORIG, "--state", "ESTABLISHED", "-t", "1000"]).returncode == 0
        yield ns


@pytest.mark.parametrize("args", [
    # tcp's final check reads the unset state: ENODATA ("No data available")
    ["-G", "-p", "tcp", *ORIG, "--reply-port-src", "5"],
    ["-G", "-p", "tcp", *ORIG, "--reply-port-dst", "5", "-o", "xml"],
    # with a state nothing set errno: "Success"
    ["-G", "-p", "tcp", *ORIG, "--reply-port-src", "5", "--state", "LISTEN"],
    ["-G", "-p", "udp", *ORIG, "--reply-port-src", "5"],
    ["-G", "-p", "sctp", *ORIG, "--reply-port-dst", "5"],
    ["-G", "-p", "gre", "-s", "10.0.0.1", "-d", "10.0.0.2", "--srckey", "1", "--dstkey", "2",
     "--reply-key-src", "5"],
    # the missing label map: perror() leaves EINVAL behind when stderr is a pipe ("invalid parameters")
    ["-G", "-p", "udp", *ORIG, "--reply-port-src", "5", "-o", "labels"],
    ["-G", "-p", "tcp", *ORIG, "--reply-port-src", "5", "-o", "labels"],
], ids=" ".join)
def test_get_refused_before_sending(one_entry_ns, args):
    ct, py = run_both(one_entry_ns, args)
    assert ct.returncode == 1 and "Operation failed: " in ct.err
    assert_same(ct, py)


# --------------------------------------------------------------------------------------------------
# -V and -h as the program prints them
# --------------------------------------------------------------------------------------------------

def _own_version(text: str) -> str:
    """pynfct's usage text with conntrack's program name and version, the only words that differ."""
    return text.replace(f"Version {pynfct.__version__}\n", "Version 1.4.7\n", 1) \
        .replace("Usage: pynfct [commands]", "Usage: conntrack [commands]", 1)


@pytest.mark.parametrize("args", [["-V"], ["--version"], ["-h"], ["--help"], ["-h", "-p", "tcp"],
                                  ["-h", "-p", "gre"], ["-h", "-p", "dccp"], ["-h", "-p", "icmpv6"],
                                  ["-h", "-p", "99"]], ids=" ".join)
def test_version_and_help_output(one_entry_ns, args):
    ct, py = run_both(one_entry_ns, args)
    assert ct.returncode == 0 and ct.err == "" and ct.out
    if args[0] in ("-V", "--version"):
        assert ct.out == "conntrack v1.4.7 (conntrack-tools)\n"
        assert py.out == f"pynfct v{pynfct.__version__} (conntrack-tools compatible)\n"
    assert_same(ct, Result(py.argv, py.returncode, _own_version(py.out).encode(), py.stderr))
    # the program name pynfct prints is its own (README), not argv[0]'s
    assert "Usage: pynfct [commands] [options]\n" in py.out or args[0] in ("-V", "--version")


# --------------------------------------------------------------------------------------------------
# dump(zero=True), delete(collect=True)
# --------------------------------------------------------------------------------------------------

_COUNTERS = re.compile(r" (?:packets|bytes)=(\d+)")


def _by_tuple(text: str) -> Dict[str, str]:
    """conntrack's default lines by their tuple part (the line without protocol, timeout and state)."""
    rows = {}
    for line in text.splitlines():
        moving = ("packets=", "bytes=", "delta-time=")
        key = " ".join(w for w in line.split()[3:] if "=" in w and not w.startswith(moving))
        rows[key] = line
    return rows


def test_dump_zero_returns_the_counters_and_zeroes_them(netns):
    fill_traffic(netns, hold=False)
    before = run_ct(netns, ["-L"])
    assert before.returncode == 0
    counts = [int(x) for x in _COUNTERS.findall(before.out)]
    assert counts and any(counts), "the traffic left no counters"
    with pynfct.Conntrack(netns.name) as ct:
        zeroed = list(ct.dump(zero=True))
    # what the call returned is what conntrack listed before it: counters included
    assert_same(before, Result(["api"], 0, "".join(f"{f}\n" for f in zeroed).encode(), before.stderr))
    after = run_ct(netns, ["-L"])
    assert sorted(_by_tuple(after.out)) == sorted(_by_tuple(before.out))
    assert [int(x) for x in _COUNTERS.findall(after.out)] == [0] * len(counts)


def test_delete_collect_returns_the_deleted_flows(netns):
    fill_traffic(netns, hold=False)
    listed = run_ct(netns, ["-L", "-p", "udp"])
    others = run_ct(netns, ["-L", "-p", "tcp"])
    assert listed.returncode == 0 and len(listed.out.splitlines()) >= 2
    with pynfct.Conntrack(netns.name) as ct:
        r = ct.delete(proto="udp", collect=True)
    assert int(r) == len(r.flows) == len(listed.out.splitlines())
    assert_same(listed, Result(["api"], 0, "".join(f"{f}\n" for f in r.flows).encode(), listed.stderr))
    assert run_ct(netns, ["-L", "-p", "udp"]).out == ""
    assert_same(others, run_ct(netns, ["-L", "-p", "tcp"]))


# --------------------------------------------------------------------------------------------------
# --labelmap
# --------------------------------------------------------------------------------------------------

DEFAULT_MAP = {0: "dflt-zero", 1: "dflt-one", 5: "dflt-five"}
CUSTOM_MAP = "# a custom map\n0\tcus-zero\n1 cus-one\n5\tcus-five\n127\tcus-last\n"


@pytest.fixture
def labelled(netns, tmp_path):
    """Entries with labels (bits 0, 1, 5, 127) in a namespace whose default map is DEFAULT_MAP;
    returns (ns, path of CUSTOM_MAP on the host)."""
    enable_labels(netns)
    netns.set_labelmap({**DEFAULT_MAP, 127: "dflt-last"})
    for i, labels in enumerate(["dflt-zero", "dflt-one,dflt-five", "dflt-last", ""]):
        extra = ["--label-add", labels] if labels else []
        r = run_ct(netns, ["-I", "-p", "udp", "-s", f"192.0.2.{i + 1}", "-d", "198.51.100.1", "--sport", "5",
                           "--dport", "53", "-t", "300", *extra])
        assert r.returncode == 0, r.err
    path = tmp_path / "custom.conf"
    path.write_text(CUSTOM_MAP)
    netns.set_labelmap({**DEFAULT_MAP, 127: "dflt-last"})
    return netns, str(path)


@pytest.mark.parametrize("args", [
    ["-L", "-o", "labels"], ["-L", "-o", "extended,labels"], ["-L", "-o", "xml,labels"],
    ["-L", "-l", "cus-one"], ["-L", "-l", "cus-one", "-o", "labels"], ["-L", "-l", "cus-zero,cus-last"],
    ["-L", "-l", "dflt-one"],                                       # not in the custom map: exit 2
    ["-L", "-p", "udp", "-s", "192.0.2.2", "-o", "save"],
], ids=" ".join)
def test_labelmap_is_conntracks_default_map(labelled, args):
    """pynfct --labelmap CUSTOM answers as conntrack 1.4.7 does when CUSTOM is its default map."""
    ns, path = labelled
    py = run_py(ns, [*args, "--labelmap", path])
    assert "dflt-" not in py.out
    ns.set_labelmap(CUSTOM_MAP)
    ct = run_ct(ns, args)
    assert_same(ct, py)
    if ct.returncode == 0 and "labels" in args[-1]:
        assert "cus-" in ct.out


def test_labelmap_update_and_delete(labelled, tmp_path):
    """-U --label-add / --label-del and -D -l name the bits of the --labelmap file: the table changes as
    conntrack changes it with the same file as its default map."""
    ns, path = labelled
    with NetNS() as twin:
        enable_labels(twin)
        twin.set_labelmap(CUSTOM_MAP)
        for i, labels in enumerate(["cus-zero", "cus-one,cus-five", "cus-last", ""]):
            extra = ["--label-add", labels] if labels else []
            assert run_ct(twin, ["-I", "-p", "udp", "-s", f"192.0.2.{i + 1}", "-d", "198.51.100.1",
                                 "--sport", "5", "--dport", "53", "-t", "300", *extra]).returncode == 0
        steps = [["-U", "-f", "ipv4", "-s", "192.0.2.4", "--label-add", "cus-five"],
                 ["-U", "-f", "ipv4", "-s", "192.0.2.2", "--label-del", "cus-one"],
                 ["-D", "-l", "cus-zero"]]
        for args in steps:
            py = run_py(ns, [*args, "--labelmap", path])
            ct = run_ct(twin, args)
            assert_same(ct, py, ordered=False)
            assert ct.returncode == 0 and ct.out
        ns.set_labelmap(CUSTOM_MAP)
        tables = [sorted(run_ct(x, ["-L", "-o", "labels"]).out.split("\n")) for x in (twin, ns)]
        strip = [[re.sub(r" \d+ (?=src=)", " ", line) for line in t] for t in tables]
        assert strip[0] == strip[1] and any("cus-five" in line for line in strip[0])


@pytest.mark.parametrize("args", [["-L", "-o", "labels"], ["-L", "-o", "extended,labels", "-p", "udp"],
                                  ["-L", "-l", "cus-one"]], ids=" ".join)
def test_labelmap_missing_file(labelled, args):
    """A --labelmap that cannot be read: conntrack 1.4.7 with no map at its default place says the same
    (the map's failure once, then the entries without label names)."""
    ns, path = labelled
    py = run_py(ns, [*args, "--labelmap", path + ".missing"])
    ns.set_labelmap({})
    os.unlink(os.path.join(ns.etc_dir, "xtables", "connlabel.conf"))
    ct = run_ct(ns, args)
    assert "nfct_labelmap_new: No such file or directory" in ct.err
    assert_same(ct, py)


@pytest.fixture(scope="module")
def twins():
    """Two namespaces for the same write by each program (labels enabled in both)."""
    with NetNS() as a, NetNS() as b:
        for ns in (a, b):
            enable_labels(ns)
        yield a, b


def _flushed(twins) -> Tuple[NetNS, NetNS]:
    for ns in twins:
        assert run_ct(ns, ["-F"]).returncode == 0
    return twins


# --------------------------------------------------------------------------------------------------
# GRE keys
# --------------------------------------------------------------------------------------------------

GRE_ENTRIES = [
    ["-p", "gre", "-s", "10.0.3.1", "-d", "10.0.3.2", "--srckey", "0x10", "--dstkey", "0x20"],
    ["-p", "gre", "-s", "10.0.3.1", "-d", "10.0.3.3", "--orig-key-src", "16", "--orig-key-dst", "32",
     "-r", "10.0.3.3", "-q", "10.0.3.1", "--reply-key-src", "0x30", "--reply-key-dst", "0x40"],
    ["-p", "gre", "-s", "2001:db8::1", "-d", "2001:db8::2", "--srckey", "7", "--dstkey", "0xffff"],
    ["-p", "udp", "-s", "10.0.3.1", "-d", "10.0.3.2", "--sport", "16", "--dport", "32"],
]


def _gre_fill(ns: NetNS) -> None:
    for argv in GRE_ENTRIES:
        r = run_ct(ns, ["-I", *argv, "-t", "300"])
        assert r.returncode == 0, r.err


@pytest.fixture(scope="module")
def gre_ns():
    with NetNS() as ns:
        _gre_fill(ns)
        yield ns


@pytest.mark.parametrize("args", [
    ["-G", "-p", "gre", "-s", "10.0.3.1", "-d", "10.0.3.2", "--srckey", "0x10", "--dstkey", "0x20"],
    ["-G", "-p", "gre", "-s", "10.0.3.1", "-d", "10.0.3.2", "--orig-key-src", "16", "--orig-key-dst", "32",
     "-o", "xml"],
    ["-G", "-p", "gre", "-s", "10.0.3.1", "-d", "10.0.3.3", "--srckey", "0x10", "--dstkey", "0x20", "-o", "save"],
    ["-G", "-p", "gre", "-s", "2001:db8::1", "-d", "2001:db8::2", "--srckey", "7", "--dstkey", "65535",
     "-o", "extended"],
    ["-G", "-p", "gre", "-s", "10.0.3.1", "-d", "10.0.3.2", "--srckey", "0x11", "--dstkey", "0x20"],  # ENOENT
    ["-G", "-p", "gre", "-s", "10.0.3.1", "-d", "10.0.3.2", "--srckey", "0x10"],      # dstkey 0: ENOENT
    # by the reply tuple alone the kernel wants the original one too: EINVAL
    ["-G", "-p", "gre", "-r", "10.0.3.3", "-q", "10.0.3.1", "--reply-key-src", "0x30", "--reply-key-dst", "0x40"],
    ["-L", "-p", "gre", "--srckey", "0x99"],              # conntrack compares no key: every gre entry
    ["-L", "-p", "gre", "--reply-key-dst", "0x40", "-o", "extended"],
], ids=" ".join)
def test_gre_keys(gre_ns, args):
    ct, py = run_both(gre_ns, args)
    assert_same(ct, py)
    assert ct.returncode in (1, 2) or "srckey=" in ct.out or "<srckey>" in ct.out or "--srckey" in ct.out


def test_gre_get_by_keys_is_conntracks_get(gre_ns):
    """get() with GRE keys names the entry conntrack -G finds with the same keys."""
    with pynfct.Conntrack(gre_ns.name) as ct:
        for src, dst, sk, dk in (("10.0.3.1", "10.0.3.2", 0x10, 0x20), ("10.0.3.1", "10.0.3.3", 16, 32),
                                 ("2001:db8::1", "2001:db8::2", 7, 0xFFFF), ("10.0.3.1", "10.0.3.2", 0x20, 0x10)):
            got = ct.get(proto="gre", src=src, dst=dst, srckey=sk, dstkey=dk)
            r = run_ct(gre_ns, ["-G", "-p", "gre", "-s", src, "-d", dst, "--srckey", str(sk), "--dstkey", str(dk)])
            if r.returncode:
                assert got is None and "such conntrack doesn't exist" in r.err
            else:
                assert got is not None and (got.orig.srckey, got.orig.dstkey) == (sk, dk)
                assert_same(Result(r.argv, 0, r.stdout, b""), Result(["api"], 0, f"{got}\n".encode(), b""))


@pytest.mark.parametrize("args", [
    ["-D", "-p", "gre", "--srckey", "0x99", "-d", "10.0.3.3"],       # the key selects nothing: -d does
    ["-U", "-p", "gre", "-f", "ipv4", "-d", "10.0.3.3", "--dstkey", "0x99", "-m", "5"],
    ["-I", "-p", "gre", "-s", "10.0.3.9", "-d", "10.0.3.8", "--srckey", "1", "--dstkey", "2",
     "--reply-key-src", "3", "--reply-key-dst", "4", "-r", "10.0.3.8", "-q", "10.0.3.9", "-t", "50"],
    ["-I", "-p", "gre", "-s", "10.0.3.9", "-d", "10.0.3.8", "--reply-key-src", "3", "-t", "50"],
], ids=" ".join)
def test_gre_key_writes(twins, args):
    """The same GRE write in two namespaces filled alike: same output, same table afterwards."""
    a, b = _flushed(twins)
    _gre_fill(a)
    _gre_fill(b)
    before = _table(a)
    ct, py = run_ct(a, args), run_py(b, args)
    assert_same(ct, py, ordered=False)
    assert _table(a) == _table(b)
    assert (ct.returncode == 0) == (_table(a) != before)


def _table(ns: NetNS) -> List[str]:
    """-L -o extended without the timeouts (5th field), sorted."""
    lines = run_ct(ns, ["-L", "-o", "extended"]).out.splitlines()
    return sorted(" ".join(f[:4] + f[5:]) for f in (line.split() for line in lines))


# --------------------------------------------------------------------------------------------------
# DCCP --role: this kernel tracks no DCCP, so the reference is the request conntrack sends
# --------------------------------------------------------------------------------------------------

_HEXDUMP = re.compile(r"^ \| [0-9a-f]{5}  (.{49})", re.M)      # strace -e write=: 16 bytes a line


def _attrs(data: bytes) -> List[Tuple[int, object]]:
    """Netlink attributes as (type, payload or nested list), padding left out (it is not initialised)."""
    out, i = [], 0
    while i + 4 <= len(data):
        ln, typ = int.from_bytes(data[i:i + 2], "little"), int.from_bytes(data[i + 2:i + 4], "little")
        if ln < 4:
            break
        payload = data[i + 4:i + ln]
        out.append((typ, _attrs(payload) if typ & 0x8000 else payload))
        i += (ln + 3) & ~3
    return out


def _request(ns: NetNS, prog: List[str], args: List[str], env=None) -> Tuple[int, int, List]:
    """(nlmsg_type, nfgen family, attributes) of the one ctnetlink request prog sends for args."""
    r = ns.run(["strace", "-qq", "-f", "-e", "trace=sendto,sendmsg", "-e", "write=all", "-o", "/dev/stderr",
                *prog, *args], env=env)
    dumps = []
    for block in re.split(r"\n(?=\S)", r.stderr.decode()):      # one block per system call
        hexes = _HEXDUMP.findall(block)
        if hexes:
            dumps.append(bytes.fromhex("".join(hexes)))
    msgs = [d for d in dumps if len(d) >= 20 and d[5] == 1]   # NFNL_SUBSYS_CTNETLINK, any message type
    assert len(msgs) == 1, r.stderr.decode()
    m = msgs[0]
    return int.from_bytes(m[4:6], "little"), m[16], _attrs(m[20:int.from_bytes(m[:4], "little")])


needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (scripts/install-deps.sh)")


@needs_strace
@pytest.mark.parametrize("extra", [["--role", "client"], ["--role", "server"], ["--role", "CLIENT"]], ids=" ".join)
def test_dccp_role_request(netns, extra):
    args = ["-I", "-p", "dccp", "-s", "10.0.4.1", "-d", "10.0.4.2", "--sport", "1", "--dport", "2",
            "--state", "OPEN", *extra, "-t", "100"]
    want = _request(netns, ["conntrack"], args)
    assert run_ct(netns, ["-F"]).returncode == 0
    got = _request(netns, PYNFCT, args, env=_pynfct_env())
    assert got == want
    protoinfo = dict(want[2])[0x8004]
    role = 1 if extra[1].lower() == "server" else 0
    assert dict(dict(protoinfo)[0x8002])[2] == bytes([role])      # CTA_PROTOINFO_DCCP_ROLE


@pytest.mark.parametrize("args", [
    ["-I", "-p", "dccp", "-s", "10.0.4.1", "-d", "10.0.4.2", "--sport", "1", "--dport", "2", "--state", "OPEN",
     "-t", "100"],                                                  # --role is required
    ["-I", "-p", "dccp", "-s", "10.0.4.1", "-d", "10.0.4.2", "--sport", "1", "--dport", "2", "--state", "OPEN",
     "--role", "bogus", "-t", "100"],
    ["-L", "-p", "dccp", "--role", "client"],
    ["-D", "-p", "dccp", "--role", "server"],
], ids=" ".join)
def test_dccp_role_refused(one_entry_ns, args):
    ct, py = run_both(one_entry_ns, args)
    assert ct.returncode == 2
    assert_same(ct, py)


# --------------------------------------------------------------------------------------------------
# -E expect: filters refused, the other output formats on real expectations
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["-p", "tcp"], ["-s", "127.0.0.1"], ["-d", "127.0.0.1"], ["-r", "127.0.0.1"], ["-q", "127.0.0.1"],
    ["-f", "ipv4"], ["-m", "1"], ["-u", "ASSURED"], ["-w", "1"], ["-c", "1"], ["--tuple-src", "127.0.0.1"],
    ["--mask-dst", "255.0.0.0"], ["-z"], ["-t", "5"], ["-j"], ["--orig-zone", "1"], ["-l", "x"],
    ["-p", "tcp", "--dport", "21"],
], ids=" ".join)
def test_expect_events_refuse_filters(one_entry_ns, args):
    """conntrack -E expect takes no filter: each is refused before anything is subscribed."""
    ct, py = run_both(one_entry_ns, ["-E", "expect", *args], timeout=20)
    assert ct.returncode == 2
    assert_same(ct, py)


def test_expect_events_other_formats(netns, tmp_path):
    """-E expect with the output options test_events.py does not compare, on expectations an FTP
    helper creates and -F expect destroys."""
    from test_events import FTP, Listener, check_pairs, wait_for, wait_idle
    netns.nft("""
table inet pynfct_ftp {
    ct helper ftp-standard { type "ftp" protocol tcp; }
    chain output { type filter hook output priority 0; tcp dport 21 ct helper set "ftp-standard"; }
}
""")
    cases = [["-o", "save"], ["-o", "id"], ["-o", "ktimestamp"], ["-o", "userspace"], ["-o", "extended"],
             ["-o", "labels"], ["-o", "xml,id,extended"]]
    pairs = [(a, Listener(netns, "conntrack", ["-E", "expect", *a], tmp_path, f"x{i}"),
              Listener(netns, "pynfct", ["-E", "expect", *a], tmp_path, f"x{i}")) for i, a in enumerate(cases)]
    every = [x for _, c, p in pairs for x in (c, p)]
    wait_for(lambda: all(x.subscribed() for x in every), 60, what="the listeners to subscribe")
    netns.python(FTP)
    assert run_ct(netns, ["-F", "expect"]).returncode == 0
    wait_idle(every)
    results = [(a, c.stop(), p.stop()) for a, c, p in pairs]
    check_pairs(results)
    for _, ct, _ in results:
        assert "helper=ftp" in ct.out or "<helper>ftp" in ct.out or "ftp" in ct.out, ct.out


# --------------------------------------------------------------------------------------------------
# -E stopped by SIGINT while its socket holds a burst
# --------------------------------------------------------------------------------------------------

BURST = 3000


@pytest.mark.parametrize("prog,args", [("conntrack", []), ("pynfct", []), ("conntrack", ["-o", "xml"]),
                                       ("pynfct", ["-o", "xml"])],
                         ids=["conntrack", "pynfct", "conntrack-xml", "pynfct-xml"])
def test_sigint_with_a_burst_queued(netns, tmp_path, prog, args):
    """A listener is stopped (SIGSTOP) while 3,000 entries are created, then gets SIGINT and SIGCONT: its
    summary counts exactly the events it printed. conntrack exits from its signal handler and prints
    none of them. pynfct first writes what its socket holds, reading it for 30 ms at most (README), so
    it prints some of the burst (all of it when the machine is quick enough), each entry at most once,
    every line as a conntrack listening beside it printed that event, and closes -o xml."""
    from fill import fill_bulk
    from test_events import Listener, wait_for, wait_idle
    listener = Listener(netns, prog, ["-E", "-e", "NEW", *args], tmp_path, "burst")
    # the reference: conntrack, not stopped, printing every event of the burst
    ref = Listener(netns, "conntrack", ["-E", "-e", "NEW", *args], tmp_path, "ref") if prog == "pynfct" else None
    try:
        wait_for(lambda: listener.subscribed() and (ref is None or ref.subscribed()), 60,
                 what="the listeners to subscribe")
        wait_idle([listener] + ([ref] if ref else []))
        os.kill(listener.pid, signal.SIGSTOP)
        try:
            fill_bulk(netns, BURST)
            os.kill(listener.pid, signal.SIGINT)
        finally:
            os.kill(listener.pid, signal.SIGCONT)
        r = listener.stop(timeout=30)          # already interrupted: this only waits for the exit
        if ref is not None:
            wait_idle([ref])
    finally:
        if ref is not None:
            ref_r = ref.stop()
    assert r.returncode == 0, r.err
    if "xml" in args:
        events = [line for line in r.out.splitlines() if line.startswith("<flow ")]
        assert r.out.endswith("</conntrack>\n") or not events
    else:
        events = r.out.splitlines()
    prefix = "conntrack v1.4.7 (conntrack-tools)" if prog == "conntrack" else \
        f"pynfct v{pynfct.__version__} (conntrack-tools compatible)"
    assert r.err.endswith(f"{prefix}: {len(events)} flow events have been shown.\n"), r.err
    if prog == "conntrack":
        assert events == []
        return

    def by_source(lines):
        # progname= names the sender if it still runs when the line is formatted: the filler has ended
        # by the time the stopped listener reads its events, not when conntrack beside it reads them
        return {re.search(r"(?:src=|<src>)(10\.\d+\.\d+\.\d+)\b", e).group(1): re.sub(r" progname=\S+$", "", e)
                for e in lines}
    printed = by_source(events)
    assert 0 < len(events) == len(printed) <= BURST       # some of the burst, each entry at most once
    ref_lines = [line for line in ref_r.out.splitlines() if line.startswith("<flow ")] \
        if "xml" in args else ref_r.out.splitlines()
    expected = by_source(ref_lines)
    comparable = printed.keys() & expected.keys()
    assert comparable, "conntrack printed none of the events pynfct printed"
    assert {k: printed[k] for k in comparable} == {k: expected[k] for k in comparable}
    print(f"\npynfct -E {' '.join(args)}: printed {len(events)} of {BURST} queued events after SIGINT")


# --------------------------------------------------------------------------------------------------
# stdout that cannot be written (ENOSPC): conntrack's stdio loses the text and the command goes on
# --------------------------------------------------------------------------------------------------

def _to_full(ns: NetNS, prog: List[str], args: List[str], env=None) -> Result:
    r = ns.run(["sh", "-c", 'exec "$@" > /dev/full', "sh", *prog, *args], env=env)
    return Result(list(args), r.returncode, r.stdout, r.stderr)


@pytest.fixture(scope="module")
def full_ns():
    """1,000 bulk entries (~200 KB of -L text)."""
    from fill import fill_bulk
    with NetNS() as ns:
        fill_bulk(ns, 1000)
        yield ns


@pytest.mark.parametrize("args", [
    ["-L"], ["-L", "-o", "xml"], ["-L", "-p", "udp"],        # -p udp: the split dump's own writer
    ["-G", "-p", "udp", "-s", "10.0.0.1", "-d", "198.18.0.2", "--sport", "1025", "--dport", "53"],
    ["-C"], ["-S"], ["-L", "expect"], ["-V"], ["-h"],
], ids=" ".join)
def test_stdout_full_read_commands(full_ns, args):
    ct = _to_full(full_ns, ["conntrack"], args)
    py = _to_full(full_ns, PYNFCT, args, env=_pynfct_env())
    assert ct.returncode == 0 and ct.stdout == b""
    assert_same(ct, py)


@pytest.mark.parametrize("args", [
    ["-D", "-p", "udp", "-o", "xml"], ["-U", "-f", "ipv4", "-s", "10.0.0.3", "-m", "9"],
    ["-I", "-p", "udp", "-s", "192.0.2.1", "-d", "192.0.2.2", "--sport", "1", "--dport", "2", "-t", "30"],
], ids=" ".join)
def test_stdout_full_write_commands(twins, args):
    """The same write in twin namespaces with stdout on /dev/full: same summary and exit status, and the
    same table afterwards (every entry done, none left for the failed output)."""
    from fill import fill_bulk
    a, b = _flushed(twins)
    fill_bulk(a, 300)
    fill_bulk(b, 300)
    ct = _to_full(a, ["conntrack"], args)
    py = _to_full(b, PYNFCT, args, env=_pynfct_env())
    assert ct.returncode == 0
    assert_same(ct, py)
    after = _table(a)
    assert after == _table(b)
    if args[0] == "-U":
        assert sum(" mark=9 " in line for line in after) == 1
    else:
        assert len(after) != 300


def test_stdout_full_events(netns):
    """-E on /dev/full: both count every event they formatted and exit 0 on SIGINT."""
    from test_events import event_sockets, wait_for
    full = open("/dev/full", "wb")
    procs = [netns.popen([*prog, "-E", "-e", "NEW"], stdout=full, stderr=subprocess.PIPE, env=env)
             for prog, env in ((["conntrack"], None), (PYNFCT, _pynfct_env()))]
    full.close()
    wait_for(lambda: all(event_sockets(p.pid) for p in procs), 60, what="the listeners to subscribe")
    # one create at a time: conntrack's socket keeps its default size, a burst would overrun it
    netns.sh('i=0; while [ $i -lt 40 ]; do conntrack -I -p udp -s 10.9.0.$i -d 10.9.1.1 --sport 1 --dport 2 '
             '-t 60 2>/dev/null || exit 1; i=$((i+1)); done')
    wait_for(lambda: all(s["rmem"] == 0 for p in procs for s in event_sockets(p.pid)), 30,
             what="the listeners to read the events")
    time.sleep(0.2)
    results = []
    for p in procs:
        p.send_signal(signal.SIGINT)
        results.append((p.wait(30), normalize_prog(p.stderr.read().decode())))
    assert results[0] == results[1] == (0, "<PROG>: 40 flow events have been shown.\n")


# --------------------------------------------------------------------------------------------------
# writes the kernel refuses: no CAP_NET_ADMIN
# --------------------------------------------------------------------------------------------------

UNPRIVILEGED = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--reuid=65534", "--regid=65534",
                "--clear-groups"]


@pytest.mark.parametrize("args", [
    ["-D", "-p", "udp", "-s", "10.0.0.1", "-d", "198.18.0.2", "--sport", "1025", "--dport", "53"],
    ["-U", "-f", "ipv4", "-p", "udp", "-m", "7"],
    ["-I", "-p", "udp", "-s", "192.0.2.1", "-d", "192.0.2.2", "--sport", "1", "--dport", "2", "-t", "30"],
    ["-F"],
], ids=" ".join)
def test_writes_refused_by_the_kernel(full_ns, args):
    """A -D/-U/-I/-F run without CAP_NET_ADMIN: the kernel refuses the first request; conntrack's words,
    exit status and an unchanged table."""
    before = _table(full_ns)
    ct = run(full_ns, [*UNPRIVILEGED, "conntrack", *args])
    py = run(full_ns, [*UNPRIVILEGED, *PYNFCT, *args], env=_pynfct_env())
    assert ct.returncode == 1 and "CAP_NET_ADMIN" in ct.err
    assert_same(ct, py)
    assert _table(full_ns) == before


# --------------------------------------------------------------------------------------------------
# -i/--id, -c/--secmark, update(del_labels=)
# --------------------------------------------------------------------------------------------------

ID_ENTRIES = [["-p", "udp", "-s", f"10.0.5.{i}", "-d", "10.0.5.100", "--sport", "1", "--dport", "2"] for i in (1, 2, 3)]


def _id_of(ns: NetNS, src: str) -> str:
    r = run_ct(ns, ["-L", "-s", src, "-o", "id"])
    ids = re.findall(r" id=(\d+)", r.out)
    assert len(ids) == 1, r.out
    return ids[0]


@pytest.mark.parametrize("args", [
    ["-G", "-p", "udp", "-s", "10.0.5.2", "-d", "10.0.5.100", "--sport", "1", "--dport", "2", "-i", "{id}"],
    ["-G", "-p", "udp", "-s", "10.0.5.2", "-d", "10.0.5.100", "--sport", "1", "--dport", "2", "--id={id}",
     "-o", "id"],
    ["-G", "-p", "udp", "-s", "10.0.5.2", "-d", "10.0.5.100", "--sport", "1", "--dport", "2", "-i", "{other}"],
    ["-D", "-i", "{id}"], ["-D", "-p", "udp", "-i", "{other}", "-s", "10.0.5.2"],
    ["-U", "-f", "ipv4", "-i", "{id}", "-m", "5"], ["-U", "-f", "ipv4", "-i", "{id}", "-m", "5", "-o", "id"],
], ids=" ".join)
def test_id_option(twins, args):
    """-i selects the entry with that id (10.0.5.2's; {other} is 10.0.5.3's). Ids differ between two
    namespaces, so each program gets its own namespace's id for the same entry."""
    a, b = _flushed(twins)
    argvs = []
    for ns in (a, b):
        for e in ID_ENTRIES:
            assert run_ct(ns, ["-I", *e, "-t", "300"]).returncode == 0
        ids = dict(id=_id_of(ns, "10.0.5.2"), other=_id_of(ns, "10.0.5.3"))
        argvs.append(([x.format(**ids) for x in args], ids))
    ct, py = run_ct(a, argvs[0][0]), run_py(b, argvs[1][0])
    # the only word that may differ is the id itself, where -o id prints it
    py_out = py.out.replace(argvs[1][1]["id"], argvs[0][1]["id"])
    assert_same(ct, Result(py.argv, py.returncode, py_out.encode(), py.stderr))
    assert _table(a) == _table(b)
    changed = {"-G": False}.get(args[0], ct.returncode == 0)
    assert (len(_table(a)) != len(ID_ENTRIES) or " mark=5 " in " ".join(_table(a))) == changed


@pytest.mark.parametrize("args", [["-L", "-c", "0"], ["-L", "--secmark", "5", "-o", "extended"],
                                  ["-L", "-p", "tcp", "-c", "4294967295"], ["-L", "-c", "4294967296"],
                                  ["-U", "-p", "tcp", "-c", "5"], ["-D", "-c", "5"]], ids=" ".join)
def test_secmark_option(one_entry_ns, args):
    """conntrack compares no secmark in -L (every entry is listed, README) and refuses -c with -U/-D."""
    ct, py = run_both(one_entry_ns, args)
    assert_same(ct, py)
    assert ct.returncode != 0 or "sport=1 dport=2" in ct.out


@pytest.mark.parametrize("api,cli", [
    (dict(del_labels=["dflt-one"]), ["--label-del", "dflt-one"]),
    (dict(del_labels=["dflt-one", "dflt-five"]), ["--label-del", "dflt-one,dflt-five"]),
    (dict(del_labels=True), ["--label-del"]),
], ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_update_del_labels(twins, api, cli):
    """update(del_labels=) leaves the table as conntrack -U --label-del does on a twin table."""
    a, b = _flushed(twins)
    for ns in (a, b):
        enable_labels(ns)
        ns.set_labelmap(DEFAULT_MAP)
        for i, labels in enumerate(["dflt-zero,dflt-one", "dflt-one,dflt-five", "dflt-five"]):
            assert run_ct(ns, ["-I", "-p", "udp", "-s", f"192.0.2.{i + 1}", "-d", "198.51.100.1",
                               "--sport", "5", "--dport", "53", "-t", "300", "--label-add", labels]).returncode == 0
    ct = run_ct(a, ["-U", "-f", "ipv4", "-s", "192.0.2.2", *cli])
    assert ct.returncode == 0, ct.err
    labelmap = os.path.join(b.etc_dir, "xtables", "connlabel.conf")
    with pynfct.Conntrack(b.name, labelmap=labelmap) as c:
        r = c.update(family="ipv4", src="192.0.2.2", **api)
    assert int(r) == 1
    tables = [sorted(" ".join(f[:2] + f[3:]) for f in (line.split() for line in
                     run_ct(x, ["-L", "-o", "labels"]).out.splitlines())) for x in (a, b)]
    assert tables[0] == tables[1]
    assert any("src=192.0.2.2 " in line and "dflt-one" not in line for line in tables[0])


# --------------------------------------------------------------------------------------------------
# events(reliable=True) under overrun
# --------------------------------------------------------------------------------------------------

def test_reliable_events_resend_destroy(netns):
    """A reliable listener with a 4 KiB buffer that reads nothing while 300 entries are flushed: the
    kernel keeps the entries it could not report on its dying list (conntrack -L dying lists them) and
    sends their DESTROY events again once there is room, so every flushed entry is reported, once."""
    from fill import fill_bulk
    with pynfct.Conntrack(netns.name) as ct:
        # subscribed first: with nf_conntrack_events=2 (the default) only entries created while someone
        # listens carry the event extension
        stream = ct.events("DESTROY", buffer_size=4096, reliable=True, timeout=2)
        events = iter(stream)
        fill_bulk(netns, 300)
        table = run_ct(netns, ["-L"]).out
        listed = {re.search(r"src=(\S+) dst=\S+ sport=(\d+)", line).groups() for line in table.splitlines()}
        assert len(listed) == 300
        assert run_ct(netns, ["-F"]).returncode == 0
        held = run_ct(netns, ["-L", "dying"]).out.splitlines()
        assert held, "the kernel did not hold any unreported entry"
        got = [(str(e.flow.orig.src), str(e.flow.orig.sport)) for e in events]
    assert stream.overruns > 0
    assert sorted(got) == sorted(listed)
    assert run_ct(netns, ["-L", "dying"]).out == ""
