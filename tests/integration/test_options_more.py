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
- ``-E`` stopped by SIGINT while its socket holds a burst: the summary counts exactly the lines printed.
"""
from __future__ import annotations

import os
import re
from typing import Dict

import pytest

import pynfct
from differential import Result, _pynfct_env, assert_same, pynfct_argv, run, run_both
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
def test_get_refused_before_sending(netns, args):
    assert run_ct(netns, ["-I", "-p", "tcp", *ORIG, "--state", "ESTABLISHED", "-t", "100"]).returncode == 0
    ct, py = run_both(netns, args)
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
def test_version_and_help_output(netns, args):
    ct, py = run_both(netns, args)
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
