"""Unit tests of the conntrack-compatible command-line parser (pynfct.cli).

Every bad-parameter case is also run through the real ``conntrack`` (1.4.7) inside a throwaway network
namespace: exit status and stderr must be the same once the program prefix is conntrack's.  Only command
lines that our parser rejects are ever given to the real conntrack, so nothing reaches a kernel table
(and it would only be the namespace's own, empty one).
"""
from __future__ import annotations

import ctypes
import io
import os
import random
import secrets
import shutil
import socket
import subprocess
from typing import List, Optional, Sequence

import pytest

from pynfct.attrs import Attr
from pynfct.cli import options as O
from pynfct.cli.errors import (CONNTRACK_PREFIX, CONNTRACK_PROG, OTHER_PROBLEM, PARAMETER_PROBLEM,
                               UsageError, format_error)
from pynfct.cli.getopt import Getopt, LongOption
from pynfct.cli.help import proto_help, usage
from pynfct.cli.parse import (ATTR_EXP_TIMEOUT, filter_init, load_labelmap, parse, parse_args, parse_file,
                              precommand_check, split_line)
from pynfct.cli.summary import err2str, exit_status, summary_failed, summary_line
from pynfct.template import Cmd, Opt, Out, Table

A = Attr
H16 = socket.htons
H32 = socket.htonl
IP = socket.inet_aton
IP6 = lambda s: socket.inet_pton(socket.AF_INET6, s)  # noqa: E731

LABELS = "# test map\n0 zero\n1\tweb\n2 db-master\n5 five\n0x1f   hex label  \n1 dupbit\n"
LABELMAP = {"zero": 0, "web": 1, "db-master": 2, "five": 5, "hex label": 31}


@pytest.fixture(autouse=True)
def _gnu_getopt_order(monkeypatch):
    """These tests expect GNU argument permutation (for us and for the conntrack we run)."""
    monkeypatch.delenv("POSIXLY_CORRECT", raising=False)


# -- the real conntrack in throwaway namespaces --------------------------------------------------------

class RealConntrack:
    """Runs the installed conntrack inside one network namespace (with its own connlabel.conf or none)."""

    def __init__(self, labelmap: Optional[str]):
        self.name = f"pynfct-test-{os.getpid()}-cli-{secrets.token_hex(3)}"
        self.labelmap_text = labelmap
        self.etc = os.path.join("/etc/netns", self.name)
        # what the namespace's commands see as /etc/xtables/connlabel.conf, seen from the host
        self.connlabel_conf = os.path.join(self.etc, "xtables", "connlabel.conf")
        self.created = False

    def create(self) -> None:
        if self.labelmap_text is not None:
            os.makedirs("/etc/xtables", exist_ok=True)   # the bind-mount target of `ip netns exec`
            os.makedirs(os.path.dirname(self.connlabel_conf), exist_ok=True)
            with open(self.connlabel_conf, "w") as f:
                f.write(self.labelmap_text)
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True, timeout=30)
        self.created = True

    def delete(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
            self.created = False
        shutil.rmtree(self.etc, ignore_errors=True)

    def run(self, args: Sequence, *, input: Optional[bytes] = None, env=None,
            cwd: Optional[str] = None) -> subprocess.CompletedProcess:
        return subprocess.run(["timeout", "-s", "KILL", "10", "ip", "netns", "exec", self.name, "conntrack",
                               *args], input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=30, env=env, cwd=cwd)


def _real_env_problem() -> Optional[str]:
    import prereq
    problem = prereq.root_problem() or prereq.conntrack_version_problem()
    if problem:
        return problem
    for tool in ("ip", "timeout"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    return None


def _namespace(ns: RealConntrack):
    problem = _real_env_problem()
    if problem:
        import prereq
        prereq.missing(problem)
    try:
        ns.create()
        yield ns
    finally:
        ns.delete()


@pytest.fixture(scope="module")
def real():
    """The real conntrack in a namespace where /etc/xtables/connlabel.conf does not exist."""
    ns = RealConntrack(None)
    if os.path.exists("/etc/xtables/connlabel.conf"):
        # hide the host's file: `ip netns exec` bind-mounts this empty directory over /etc/xtables
        os.makedirs(os.path.join(ns.etc, "xtables"), exist_ok=True)
    yield from _namespace(ns)


@pytest.fixture(scope="module")
def real_labels():
    """The real conntrack in a namespace with LABELS as its /etc/xtables/connlabel.conf."""
    yield from _namespace(RealConntrack(LABELS))


def ours(args: Sequence, ns: RealConntrack, **kw):
    """Run our parser like conntrack's main() would: (status, stderr bytes, commands or None)."""
    warnings: List[str] = []
    try:
        cmds = parse_args(list(args), "conntrack", warn=warnings.append, connlabel_conf=ns.connlabel_conf,
                          **kw)
        for c in cmds:
            precommand_check(c)
    except UsageError as e:
        text = "".join(w + "\n" for w in warnings) + format_error(CONNTRACK_PREFIX, e.message, e.status,
                                                                  CONNTRACK_PROG)
        return e.status, os.fsencode(text), None
    return 0, os.fsencode("".join(w + "\n" for w in warnings)), cmds


def assert_same_error(ns: RealConntrack, args: Sequence, *, input: Optional[bytes] = None, env=None,
                      cwd=None, **kw) -> UsageError:
    status, err, cmds = ours(args, ns, **kw)
    assert cmds is None, f"our parser accepted {args!r}: {cmds}"
    r = ns.run(args, input=input, env=env, cwd=cwd)
    assert (r.returncode, r.stderr) == (status, err), f"conntrack {args!r}"
    return status


# -- bad parameters: compared with the real conntrack --------------------------------------------------

BAD: List[List[str]] = [
    # tables and commands
    ["-L", "foo"], ["-L", "expectx"], ["-L", "-L"], ["-L", "-D"], ["--dump", "--create"], ["-C", "-C"],
    ["-I", "dying"], ["-D", "unconfirmed"], ["-G", "d"], ["-h", "dying"], ["-V", "unconfirmed"],
    ["-U", "expect"], ["-A", "expect"], ["-A", "e"], ["--update", "ex"], ["--add", "exp"],
    ["-S", "x"], ["-E", "expect", "-s", "1.1.1.1"], ["-F", "conntrack", "-p", "tcp"],
    ["-L", "-F"], ["-L", "", "-s", "1.1.1.1"], ["-L", "expect", "-p", "tcp"], ["-S", "-z"],
    ["-V", "-s", "1.1.1.1"], ["-h", "-s", "1.1.1.1"], ["-C", "-o", "xml"], ["-C", "expect", "-f", "ipv4"],
    ["-F", "expect", "-f", "ipv4"], ["-L", "expect", "-m", "1"], ["-E", "expect", "-e", "NEW"],
    # no command at all: everything but --reply-zone is illegal
    ["-s", "1.1.1.1"], ["-p", "tcp"], ["-z"], ["-o", "xml"], ["-u", "ASSURED"], ["-w", "1"],
    ["--label-del"], ["-f", "ipv4"], ["-n"], ["-t", "5"],
    # illegal options per command (the message names the option's canonical long name)
    ["-L", "-t", "10"], ["-F", "-s", "1.2.3.4"], ["-D", "-e", "NEW"], ["-U", "-z"], ["-G", "-z"],
    ["-L", "--tuple-src", "1.1.1.1"], ["-U", "-c", "5"], ["-I", "--secmark", "5"], ["-D", "-b", "5"], ["-U", "-j"],
    ["-E", "-t", "1"], ["-L", "--label-add", "x"], ["-I", "-p", "tcp", "-t", "1", "-z"],
    ["-L", "--orig-src", "1.1.1.1", "--tim", "5"], ["-L", "-a", "x", "-t", "1"],
    ["-F", "--label-del"], ["-G", "-p", "tcp", "-t", "1"], ["-L", "--id=3", "-t", "1"],
    # compulsory options and address pairs
    ["-I"], ["-G"], ["-A"], ["-I", "-s", "1.1.1.1"], ["-G", "-s", "1.1.1.1"], ["-I", "-p", "tcp"],
    ["-I", "-p", "tcp", "-t", "10"], ["-I", "-p", "tcp", "-t", "10", "-s", "1.1.1.1"],
    ["-I", "-p", "tcp", "-t", "10", "-d", "1.1.1.1", "-r", "2.2.2.2"],
    ["-I", "-p", "tcp", "-t", "10", "-r", "1.1.1.1"], ["-A", "-p", "udp", "-t", "1", "-q", "::1"],
    ["-G", "-p", "tcp", "-r", "1.1.1.1"], ["-G", "-p", "tcp", "-s", "1.1.1.1", "-q", "2.2.2.2"],
    ["-I", "expect"], ["-I", "expect", "-p", "tcp", "-s", "1.1.1.1", "-d", "2.2.2.2", "-t", "5"],
    ["-D", "expect", "-p", "tcp", "-s", "1.1.1.1"], ["-G", "expect", "-s", "1.1.1.1", "-d", "1.1.1.2"],
    # protocol extensions' final checks
    ["-I", "-p", "tcp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2"],
    ["-I", "-p", "tcp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2", "--state", "ESTABLISHED"],
    ["-I", "-p", "tcp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2", "--state", "LISTEN", "--sport", "1"],
    ["-I", "-p", "tcp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2", "--state", "CLOSE",
     "--reply-port-src", "1"],
    ["-I", "-p", "udp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2", "--dport", "5"],
    ["-I", "-p", "udplite", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2", "--reply-port-dst", "5"],
    ["-I", "-p", "sctp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2"],
    ["-I", "-p", "sctp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2", "--state", "CLOSED"],
    ["-I", "-p", "sctp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2", "--state", "CLOSED", "--orig-vtag",
     "1", "--reply-vtag", "2"],
    ["-I", "-p", "dccp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2", "--state", "OPEN"],
    ["-I", "-p", "dccp", "-t", "10", "-s", "1.1.1.1", "-d", "2.2.2.2", "--state", "OPEN", "--role", "c",
     "--reply-port-dst", "1"],
    ["-I", "-p", "icmp", "-t", "1", "-s", "1.1.1.1", "-d", "2.2.2.2"],
    ["-I", "-p", "icmpv6", "-t", "1", "-s", "::1", "-d", "::2", "--icmpv6-type", "128"],
    ["-I", "-p", "gre", "-t", "1", "-s", "1.1.1.1", "-d", "2.2.2.2"],
    ["-I", "-p", "gre", "-t", "1", "-s", "1.1.1.1", "-d", "2.2.2.2", "--reply-key-src", "0x10"],
    ["-L", "-p", "tcp", "--tuple-port-src", "1"], ["-L", "-p", "tcp", "--mask-port-dst", "1"],
    ["-L", "-p", "sctp", "--orig-vtag", "1"], ["-L", "-p", "dccp", "--role", "server"],
    ["-L", "-p", "gre", "--tuple-key-dst", "1"], ["-E", "-p", "udp", "--mask-port-src", "1"],
    ["-I", "expect", "-p", "udp", "-s", "1.1.1.1", "-d", "2.2.2.2", "-t", "5", "--tuple-src", "3.3.3.3",
     "--tuple-dst", "4.4.4.4", "--mask-src", "255.255.255.255", "--mask-dst", "255.255.255.255"],
    # protocol option values
    ["-L", "-p", "tcp", "--state", "FOO"], ["-L", "-p", "tcp", "--state", "established"],
    ["-L", "-p", "dccp", "--state", "FOO"], ["-L", "-p", "dccp", "--role", "x"],
    ["-L", "-p", "dccp", "--role", "clients"],
    # addresses
    ["-I", "-s", "1.1.1.1", "-d", "::1"], ["-L", "-f", "ipv6", "-s", "1.1.1.1"],
    ["-L", "-s", "::1", "-f", "ipv4"], ["-L", "-r", "10.0.0.0/8"], ["-L", "-q", "::/64"],
    ["-L", "--reply-src", "10.0.0.1/32"], ["-L", "--mask-src", "10.0.0.0/8"], ["-L", "--mask-dst", "::/0"],
    ["-L", "-s", "10.0.0.0/33"], ["-L", "-s", "10.0.0.0/abc"], ["-L", "-s", "::1/129"],
    ["-L", "-d", "10.0.0.0/-1"], ["-L", "-s", "10.0.0.0/8x"], ["-L", "-s", "1.2.3.256"], ["-L", "-s", "foo"],
    ["-L", "-s", ""], ["-L", "-d", "1.2.3.4.5"], ["-L", "-s", "08.1.1.1"], ["-L", "-s", "fe80::1%lo"],
    ["-L", "-s", "10.0.0.0/4294967329"], ["-L", "-s", "1" * 50],
    ["-I", "expect", "--tuple-src", "1.1.1.1/99"], ["-L", "-s", "1.1.1.1", "-d", "::2"],
    # NAT
    ["-L", "-j", "1.1.1.1", "--src-nat"], ["-L", "--any-nat", "-g"], ["-L", "-n", "-j"],
    ["-L", "-n", "1.2.3.4:"], ["-L", "-n", "1.2.3.4:99999"], ["-L", "-n", "1.2.3.4:8a"],
    ["-L", "-n", "1.2.3.4:+80"], ["-L", "-g", "[::1"], ["-L", "-g", "[]:80"], ["-L", "-n", "[::1]"],
    ["-L", "-n", "1.2.3.4/24"], ["-L", "-j", "1.2.3.4/24"], ["-L", "-g", "::1/64"], ["-L", "-n", "foo:80"],
    ["-L", "-n", "[::1]:"], ["-L", "-g", "1.2.3.4", "-s", "::1"], ["-L", "-n", "1.2.3.4:65536"],
    # keyword lists
    ["-L", "-u", "FOO"], ["-L", "-u", "ASSURED,,SEEN_REPLY"], ["-L", "-u", ","], ["-L", "-u", "!"],
    ["-L", "-u", "!,"], ["-L", "-u", ""], ["-L", "-u", "ASSURED,FOO,SEEN_REPLY"], ["-L", "-u", "!FOO"],
    ["-L", "-u", "ASSURED,"], ["-L", "-u", "UNREPLIED,X"], ["-L", "-u", "assured,!unreplied"],
    ["-L", "-u", "SRC_NAT,FOO"], ["-E", "-e", "FOO"], ["-E", "-e", "NEW,"], ["-E", "-e", "NEW,,DESTROY"],
    ["-L", "-o", "foo"], ["-L", "-o", "xml,"], ["-L", "-o", "jsonx"], ["-L", "-o", "save,extended"],
    ["-L", "-o", "save", "-o", "xml"], ["-L", "-o", "ex,sa"], ["-L", "-o", "s,x,q"],
    ["-L", "-f", "ipx"], ["-L", "-f", "IPV4"], ["-L", "-f", "ip"],
    ["-L", "-p", "foo"], ["-L", "-p", "256"], ["-L", "-p", ""], ["-L", "-p", "-1"], ["-L", "-p", "6x"],
    ["-L", "-p", "Tcp", "--state", "NONE", "-t", "1"], ["-L", "-p", "ipv6-icmp", "--icmpv6-type", "1"],
    # option arguments
    ["-L", "-s"], ["-L", "--src"], ["-L", "-zs"], ["-L", "--protonum"], ["-L", "-p", "tcp", "--dport"],
    ["-L", "--reply-zone"], ["-L", "-i"], ["-L", "-u"], ["-E", "-e"], ["-L", "-o"], ["--mark"],
    ["-L", "-p", "icmp", "--icmp-code"],
    # unknown options, abbreviations
    ["-L", "-x"], ["-L", "--foo"], ["-L", "--foo=bar"], ["-xz"], ["-L", "-xz"], ["-L", "-zx"],
    ["--stats=1"], ["-L", "--zero=1"], ["-L", "--s", "1.1.1.1"], ["-L", "--d"], ["-L", "--reply", "x"],
    ["-L", "--orig", "1.1.1.1"], ["-L", "--lab", "x"], ["-L", "--sta", "x"], ["--=x"],
    ["--dum", "--tim", "10"], ["--cre", "--prot", "tcp"], ["-L", "--mask", "1.1.1.1"], ["-M", "x"],
    ["-L", "-R", "x"], ["-R"], ["--load-file"], ["-L", "-1"], ["-L", "-W", "x"], ["-L", "-;"],
    ["-L", "-:"], ["-L", "-\u00e9"], ["-\u00e9z"], ["baz", "-xz"], ["baz", "qux", "-L", "-xz"],
    ["-L", "-p", "tcp", "-p", "udp", "--spo", "1"], ["-L", "-p", "tcp", "--reply-p", "1"],
    ["-L", "-p", "tcp", "--sta", "x"],
    # protocol options only exist after -p
    ["-L", "--dport", "80", "-p", "tcp"], ["-L", "--sport=80", "-p", "tcp"], ["-L", "--state", "X"],
    ["-L", "-p", "icmp", "--icmp-type", "1", "--sport", "1"], ["-L", "-p", "udp", "--state", "X"],
    ["-L", "-p", "99", "--sport", "1"], ["-L", "-p", "ospf", "--dport", "1"],
    # labels (no connlabel.conf in this namespace)
    ["-L", "-l", "foo"], ["-U", "--label-add", "a", "--label-del", "b"], ["-L", "-o", "labels", "-l", "x"],
    ["-U", "--label-del", "--label-add", "x"], ["-I", "--label-add", "x"],
    # checks made when the command runs
    ["-L", "-z", "-s", "1.1.1.1"], ["-L", "-z", "-u", "ASSURED"], ["-L", "--mask-src", "255.0.0.0"],
    ["-L", "--mask-dst", "::"], ["-D", "--mask-dst", "255.0.0.0"], ["-U", "-s", "1.1.1.1", "--mask-dst",
                                                                    "255.0.0.0"],
]


@pytest.mark.parametrize("args", BAD, ids=lambda a: " ".join(a) or "(empty)")
def test_bad_parameters_match_conntrack(real, args):
    assert_same_error(real, args)


def test_bad_parameters_posixly_correct(real):
    env = dict(os.environ, POSIXLY_CORRECT="1")
    # stops at "baz": no command, and -s is illegal without one
    args = ["-s", "1.1.1.1", "baz", "-L"]
    assert_same_error(real, args, env=env, posixly_correct=True)
    # without POSIXLY_CORRECT the arguments are permuted and -L is found
    assert parse(args).command == Cmd.CT_LIST


BAD_LABELS = [
    ["-L", "-l", "bar"], ["-L", "-l", "web,nope"], ["-L", "-l", "web,"], ["-L", "-l", ""],
    ["-L", "-l", "WEB"], ["-U", "--label-add", "web", "--label-del", "db-master"],
    ["-U", "--label-del", "zero,x"], ["-L", "-l", "dupbit"], ["-L", "-l", "hex"],
    ["-L", "-l", "web,db-master", "-xz"], ["-L", "-lweb,zero", "-xz"], ["-U", "--label-del", "web,five", "-xz"],
    ["-L", "-l", "web", "-t", "1"],
]


@pytest.mark.parametrize("args", BAD_LABELS, ids=" ".join)
def test_bad_labels_match_conntrack(real_labels, args):
    assert_same_error(real_labels, args)


# -R / --load-file

BAD_FILES = [
    "-L\n",
    "-I -p tcp\n",
    "-F\n-L expect\n",
    "# comment\n\n   \t-F\n-G -p tcp -s 1.1.1.1 -d 2.2.2.2 --sport 1 --dport 2\n",
    "-D -s 1.1.1.1\n-x\n",
    "foo\n",
    "-F\n   ",
    "-F\r\n-x\n",
    '-D -s "1.1.1.1\n-x\n',
    '-D -s "1.1.1.1x"\n',
    '-D -s ""\n',
    "-U -o save\n-U -o xml\n",
    "-I -p tcp -t 1 -s 1.1.1.1 -d 2.2.2.2 --state LISTEN --sport 1 --dport 2\n-D -s 1.1.1.1 -x\n",
    "-S\n", "-C expect\n", "-E\n", "-h\n", "-V\n", "-I expect -s 1.1.1.1\n",
    "-D " + "x" * 1100 + "\n",
    "-D" + " -z" * 260 + "\n",
    "-R foo\n",
    "-D \"a\\\"b\" -x\n",
]


@pytest.mark.parametrize("content", BAD_FILES, ids=lambda c: repr(c[:40]))
def test_bad_files_match_conntrack(real, tmp_path, content):
    path = tmp_path / "batch"
    path.write_bytes(content.encode())
    assert_same_error(real, ["-R", str(path)])
    assert_same_error(real, ["--load-file", str(path), "ignored"])


def test_bad_file_from_stdin_and_missing(real, tmp_path):
    assert_same_error(real, ["-R", str(tmp_path / "missing")])
    status, err, cmds = ours(["-R", "-"], real, stdin=io.BytesIO(b"-L\n"))
    r = real.run(["-R", "-"], input=b"-L\n")
    assert (r.returncode, r.stderr) == (status, err)


# -- the differential fuzz: random command lines, compared when we reject them -------------------------

_TOKENS = ["-L", "-I", "-D", "-U", "-G", "-F", "-E", "-C", "-S", "-A", "-V", "expect", "dying", "conntrack",
           "-s", "-d", "-r", "-q", "1.1.1.1", "10.0.0.0/8", "::1", "-p", "tcp", "udp", "icmp", "sctp", "gre",
           "-t", "5", "-u", "ASSURED", "-m", "1/3", "-z", "-o", "xml", "-n", "-g", "-j", "1.2.3.4:80", "-w",
           "--sport", "--dport", "--state", "ESTABLISHED", "--icmp-type", "--src", "--dst", "--mask-src",
           "255.0.0.0", "--tuple-src", "-f", "ipv6", "--zone", "--orig-zone", "--reply-zone", "-x", "--foo",
           "-zs", "--stat", "--re", "--dum", "-b", "-e", "NEW", "--id=1", "--", "foo", "-Lexpect", "-c", "!"]


def test_random_command_lines_match_conntrack(real):
    rng = random.Random(1447)
    compared = 0
    for _ in range(250):
        args = [rng.choice(_TOKENS) for _ in range(rng.randint(1, 7))]
        status, err, cmds = ours(args, real)
        if cmds is not None:
            continue      # accepted: conntrack would run it
        r = real.run(args)
        assert (r.returncode, r.stderr) == (status, err), f"conntrack {args!r}"
        compared += 1
    assert compared > 60


# -- help --------------------------------------------------------------------------------------------

def test_usage_matches_conntrack(real):
    r = real.run(["-h"])
    assert r.returncode == 0
    assert r.stdout.decode() == usage("conntrack", "1.4.7")


@pytest.mark.parametrize("proto", ["tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "gre", "99",
                                   "ipv6-icmp", "igmp", "255", "0", "TCP", "0x6"])
def test_proto_help_matches_conntrack(real, proto):
    r = real.run(["-h", "-p", proto])
    cmd = parse(["-h", "-p", proto])
    assert r.returncode == 0
    assert r.stdout.decode() == usage("conntrack", "1.4.7") + proto_help(cmd)


def test_usage_own_version_and_extension():
    text = usage()
    assert text.startswith("Command line interface for the connection tracking system. Version ")
    assert "Usage: pynfct [commands] [options]\n" in text
    assert "--labelmap" not in text
    assert "  --labelmap path\t\t\tconnlabel file to use instead of default\n" in usage(extended=True)
    assert proto_help("unknown", 47) == "Proto `gre' help:\n  no options (unsupported)\n"


# -- valid command lines: the template ------------------------------------------------------------------

def test_representative_list_filter():
    c = parse("-L -s 10.0.0.0/8 -p tcp --dport 80 -m 0x10/0xff -u ASSURED,!SEEN_REPLY -w 3".split())
    assert c.command == Cmd.CT_LIST and c.table == Table.CONNTRACK
    assert c.options == Opt.ORIG_SRC | Opt.MASK_SRC | Opt.PROTO | Opt.MARK | Opt.STATUS | Opt.ZONE
    assert c.family == socket.AF_INET and c.protonum == 6 and c.proto_name == "tcp"
    t = c.tmpl
    assert t.ct == {A.ORIG_IPV4_SRC: IP("10.0.0.0"), A.ORIG_L3PROTO: 2, A.ORIG_L4PROTO: 6,
                    A.ORIG_PORT_DST: H16(80), A.STATUS: 4, A.ZONE: 3,
                    A.TCP_FLAGS_ORIG: 0x0A, A.TCP_MASK_ORIG: 0x0A, A.TCP_FLAGS_REPL: 0x0A,
                    A.TCP_MASK_REPL: 0x0A}
    assert t.mask == {A.ORIG_IPV4_SRC: IP("255.0.0.0"), A.ORIG_L3PROTO: 2}
    assert t.exptuple == {} and t.exp == {}
    # -u overwrites the mark value (conntrack's tmpl->mark.value = status), not its mask
    assert t.mark == (4, 0xFF)
    assert t.filter_mark_kernel == (0x10, 0xFF)
    assert t.filter_status_kernel == (4, 2)
    assert t.label is None and t.label_modify is None and t.setup is None


def test_create_tcp_and_setup():
    c = parse("-I -p tcp -t 120 -s 1.1.1.1 -d 2.2.2.2 --sport 1000 --dport 22 --state TIME_WAIT "
              "-u ASSURED -m 7 --orig-zone 0x10 --reply-zone 010 -n 9.9.9.9:99".split())
    assert c.command == Cmd.CT_CREATE and c.family == socket.AF_INET
    t = c.tmpl
    assert t.setup == "reply"
    assert t.ct[A.TIMEOUT] == 120 and t.exp == {ATTR_EXP_TIMEOUT: 120}
    assert t.ct[A.TCP_STATE] == 7
    assert t.ct[A.TCP_FLAGS_ORIG] == 0x0E == t.ct[A.TCP_MASK_REPL]      # CLOSE_INIT from TIME_WAIT on
    assert t.ct[A.ORIG_PORT_SRC] == H16(1000) and t.ct[A.ORIG_PORT_DST] == H16(22)
    assert t.ct[A.ORIG_ZONE] == 16 and t.ct[A.REPL_ZONE] == 8
    assert t.ct[A.SNAT_IPV4] == IP("9.9.9.9") and t.ct[A.SNAT_PORT] == H16(99)
    assert t.mark == (7, 0xFFFFFFFF)     # -u ASSURED then -m 7
    assert parse(["-U", "-m", "7/0xf", "-u", "ASSURED"]).tmpl.mark == (4, 0xF)   # -u overwrites the value
    c = parse("-I -p udp -t 1 -r 1.1.1.1 -q 2.2.2.2 --reply-port-src 1 --reply-port-dst 2".split())
    assert c.tmpl.setup == "original"
    assert c.tmpl.ct[A.REPL_L4PROTO] == 17 and c.tmpl.ct[A.REPL_L3PROTO] == 2
    c = parse("-A -p udp -t 1 -s 1.1.1.1 -d 2.2.2.2 -r 2.2.2.2 -q 1.1.1.1 --sport 1 --dport 2".split())
    assert c.command == Cmd.CT_ADD and c.tmpl.setup is None


def test_family_defaults():
    assert parse(["-L"]).family == 0
    for cmd in ("-D", "-U", "-F", "-E"):
        assert parse([cmd]).family == 0
    assert parse(["-C"]).family == socket.AF_INET
    assert parse(["-L", "expect"]).family == socket.AF_INET
    assert parse(["-S"]).family == socket.AF_INET
    assert parse(["-L", "-f", "ipv6"]).family == socket.AF_INET6
    assert parse(["-L", "-f", "ipv6-whatever"]).family == socket.AF_INET6


@pytest.mark.parametrize("args,command,table", [
    (["-L"], Cmd.CT_LIST, Table.CONNTRACK), (["--dump"], Cmd.CT_LIST, Table.CONNTRACK),
    (["-L", "exp"], Cmd.EXP_LIST, Table.EXPECT), (["-L", "d"], Cmd.CT_LIST, Table.DYING),
    (["-L", "u"], Cmd.CT_LIST, Table.UNCONFIRMED), (["-L", "c"], Cmd.CT_LIST, Table.CONNTRACK),
    (["-L", ""], Cmd.EXP_LIST, Table.EXPECT), (["-Lexpect"], Cmd.CT_LIST, Table.CONNTRACK),
    (["--dump=expect"], Cmd.CT_LIST, Table.CONNTRACK), (["--dump", "expect"], Cmd.EXP_LIST, Table.EXPECT),
    (["-L", "dying"], Cmd.CT_LIST, Table.DYING), (["-L", "--", "expect"], Cmd.CT_LIST, Table.CONNTRACK),
    (["-D"], Cmd.CT_DELETE, Table.CONNTRACK), (["--delete"], Cmd.CT_DELETE, Table.CONNTRACK),
    (["-U"], Cmd.CT_UPDATE, Table.CONNTRACK), (["--update"], Cmd.CT_UPDATE, Table.CONNTRACK),
    (["-F"], Cmd.CT_FLUSH, Table.CONNTRACK), (["--flush", "expect"], Cmd.EXP_FLUSH, Table.EXPECT),
    (["-E"], Cmd.CT_EVENT, Table.CONNTRACK), (["--event", "e"], Cmd.EXP_EVENT, Table.EXPECT),
    (["-C"], Cmd.CT_COUNT, Table.CONNTRACK), (["--counter", "expect"], Cmd.EXP_COUNT, Table.EXPECT),
    (["-S"], Cmd.CT_STATS, Table.CONNTRACK), (["--stats", "expect"], Cmd.EXP_STATS, Table.EXPECT),
    (["-V"], Cmd.CT_VERSION, Table.CONNTRACK), (["--version", "expect"], Cmd.CT_VERSION, Table.EXPECT),
    (["-h"], Cmd.CT_HELP, Table.CONNTRACK), (["--help"], Cmd.CT_HELP, Table.CONNTRACK),
    (["--he"], Cmd.CT_HELP, Table.CONNTRACK), (["--ver"], Cmd.CT_VERSION, Table.CONNTRACK),
    ([], Cmd.NONE, Table.CONNTRACK), (["foo"], Cmd.NONE, Table.CONNTRACK),
    (["--reply-zone", "1"], Cmd.NONE, Table.CONNTRACK), (["-a", "x"], Cmd.NONE, Table.CONNTRACK),
])
def test_commands_and_tables(args, command, table):
    c = parse(args, warn=lambda m: None)
    assert (c.command, c.table) == (command, table)


@pytest.mark.parametrize("name,command", [("--create", Cmd.CT_CREATE), ("--add", Cmd.CT_ADD),
                                          ("-I", Cmd.CT_CREATE), ("-A", Cmd.CT_ADD), ("--cr", Cmd.CT_CREATE)])
def test_create_add_long_names(name, command):
    c = parse([name, "-p", "udp", "-t", "1", "-s", "1.1.1.1", "-d", "2.2.2.2", "--sport", "1", "--dport", "2"])
    assert c.command == command and c.tmpl.setup == "reply"
    assert parse(["--get", "-p", "udp", "-s", "1.1.1.1", "-d", "2.2.2.2", "--sport", "1",
                  "--dport", "2"]).command == Cmd.CT_GET


def test_get_create_delete_expect():
    c = parse("-I expect -p tcp -s 1.1.1.1 -d 2.2.2.2 -t 30 --tuple-src 3.3.3.3 --tuple-dst 4.4.4.0/24 "
              "--mask-src 255.255.255.255 --mask-dst 255.255.255.0 --sport 1 --dport 21 "
              "--tuple-port-src 0 --tuple-port-dst 0x100 --mask-port-src 0 --mask-port-dst 65535".split())
    assert c.command == Cmd.EXP_CREATE and c.table == Table.EXPECT
    t = c.tmpl
    assert t.exptuple[A.ORIG_IPV4_SRC] == IP("3.3.3.3") and t.exptuple[A.ORIG_IPV4_DST] == IP("4.4.4.0")
    assert t.exptuple[A.ORIG_L3PROTO] == 2
    # tcp's tuple-port options store the htons()ed port's low byte as L4 protocol (conntrack bug)
    assert t.exptuple[A.ORIG_PORT_DST] == H16(0) and t.exptuple[A.ORIG_L4PROTO] == H16(0) & 0xFF
    assert t.mask[A.ORIG_IPV4_DST] == IP("255.255.255.0") and t.mask[A.ORIG_PORT_DST] == 0xFFFF
    assert t.mask[A.ORIG_L4PROTO] == 6
    assert t.exp == {ATTR_EXP_TIMEOUT: 30}
    c = parse("-I expect -p udp -s 1.1.1.1 -d 2.2.2.2 -t 30 --tuple-src 3.3.3.3 --tuple-dst 4.4.4.4 "
              "--mask-src 255.255.255.255 --mask-dst 255.255.255.0 --sport 1 --dport 21 "
              "--tuple-port-src 1 --tuple-port-dst 2 --mask-port-src 0 --mask-port-dst 65535".split())
    assert c.tmpl.exptuple[A.ORIG_L4PROTO] == 17
    c = parse("-G -p tcp -s 1.1.1.1 -d 2.2.2.2 --sport 1 --dport 2".split())
    assert c.command == Cmd.CT_GET and c.family == socket.AF_INET
    c = parse("-D expect -p tcp -s ::1 -d ::2 --sport 1 --dport 2 --reply-port-src 2 --reply-port-dst 1".split())
    assert c.command == Cmd.EXP_DELETE and c.family == socket.AF_INET6
    assert c.tmpl.ct[A.ORIG_IPV6_SRC] == IP6("::1")


def test_ipv6_and_cidr():
    c = parse(["-L", "-s", "2001:db8::1/33", "-d", "::/0", "-q", "::ffff:1.2.3.4"])
    t = c.tmpl
    assert c.family == socket.AF_INET6
    assert t.ct[A.ORIG_IPV6_SRC] == IP6("2001:db8::1")
    assert t.mask[A.ORIG_IPV6_SRC] == IP6("ffff:ffff:8000::")
    assert t.mask[A.ORIG_IPV6_DST] == bytes(16)
    assert t.ct[A.REPL_IPV6_DST] == IP6("::ffff:1.2.3.4") and t.ct[A.REPL_L3PROTO] == 10
    assert c.options & Opt.MASK_SRC and c.options & Opt.MASK_DST
    # /32 and /128 set no mask at all
    c = parse(["-L", "-s", "1.2.3.4/32"])
    assert c.tmpl.mask == {} and not c.options & Opt.MASK_SRC
    # inet_aton forms, an empty prefix length is /0, trailing garbage after a blank is ignored
    c = parse(["-L", "-s", "10.1/", "-d", "0x7f.1", "-r", "127.1 junk"])
    assert c.tmpl.ct[A.ORIG_IPV4_SRC] == IP("10.0.0.1") and c.tmpl.mask[A.ORIG_IPV4_SRC] == bytes(4)
    assert c.tmpl.ct[A.ORIG_IPV4_DST] == IP("127.0.0.1") and c.tmpl.ct[A.REPL_IPV4_SRC] == IP("127.0.0.1")
    # the prefix length is strtol'd into an int: 2**32 + 8 is /8
    assert parse(["-L", "-s", "10.0.0.0/4294967304"]).tmpl.mask[A.ORIG_IPV4_SRC] == IP("255.0.0.0")


def test_nat_options():
    c = parse(["-L", "-j", "1.2.3.4:80"])
    t = c.tmpl
    assert c.options == Opt.ANY_NAT
    assert t.ct[A.DNAT_IPV4] == t.ct[A.SNAT_IPV4] == IP("1.2.3.4")
    assert t.ct[A.DNAT_PORT] == t.ct[A.SNAT_PORT] == H16(80)
    # conntrack has no attribute table entry for -j: attribute 0 gets the address, then the family byte
    # and three bytes of stack (see parse.py)
    assert t.ct[A.ORIG_IPV4_SRC] == bytes([2, 0x7F, 0, 0]) and A.ORIG_L3PROTO not in t.ct
    assert parse(["-L", "-p", "tcp", "-j", "9.8.7.6"]).tmpl.ct[A.ORIG_IPV4_SRC] == bytes([2, 8, 7, 6])
    assert parse(["-L", "-p", "tcp", "-j", "::1"]).tmpl.ct[A.ORIG_IPV4_SRC] == bytes([10, 0x7F, 0, 0])
    c = parse(["-L", "-g", "[2001:db8::1]:443", "-n"])
    assert c.tmpl.ct[A.DNAT_IPV6] == IP6("2001:db8::1") and c.tmpl.ct[A.DNAT_PORT] == H16(443)
    assert c.options == Opt.DST_NAT | Opt.SRC_NAT and A.SNAT_IPV6 not in c.tmpl.ct
    # an attached optional argument is ignored (get_optional_arg() only looks at the next word)
    c = parse(["-L", "--src-nat=1.2.3.4"])
    assert c.options == Opt.SRC_NAT and c.tmpl.ct == {}
    # ... and a next word starting with '-' or '!' is not taken
    c = parse(["-L", "-n", "-p", "tcp"])
    assert A.SNAT_IPV4 not in c.tmpl.ct and c.protonum == 6
    c = parse(["-L", "--dst-nat", "::1"])
    assert c.tmpl.ct[A.DNAT_IPV6] == IP6("::1") and c.tmpl.ct[A.ORIG_L3PROTO] == 10


def test_numbers_like_c():
    c = parse(["-D", "-t", "-1", "-m", "-1", "-w", "0x12345", "-i", " 12abc"])
    t = c.tmpl
    assert t.ct[A.TIMEOUT] == 0xFFFFFFFF and t.exp[ATTR_EXP_TIMEOUT] == 0xFFFFFFFF
    assert t.mark == (0xFFFFFFFF, 0xFFFFFFFF)
    assert t.ct[A.ZONE] == 0x2345 and t.ct[A.ID] == 12
    c = parse(["-E", "-c", "010", "-b", "-2"])
    assert c.tmpl.ct[A.SECMARK] == 8 and c.socketbuffersize == 2 ** 64 - 2
    assert parse(["-L", "-m", "/5"]).tmpl.mark == (0, 5)
    assert parse(["-L", "-m", "x/5"]).tmpl.mark == (0, 0xFFFFFFFF)
    assert parse(["-L", "-m", "99999999999999999999999"]).tmpl.mark == (0xFFFFFFFF, 0xFFFFFFFF)
    c = parse(["-L", "-p", "tcp", "--sport", "65537", "--dport", "-1", "--reply-port-src", "0x50"])
    assert c.tmpl.ct[A.ORIG_PORT_SRC] == H16(1) and c.tmpl.ct[A.ORIG_PORT_DST] == H16(0xFFFF)
    assert c.tmpl.ct[A.REPL_PORT_SRC] == 0
    c = parse(["-L", "-p", "gre", "--srckey", "0x50", "--dstkey", "0x12345"])
    assert c.tmpl.ct[A.ORIG_PORT_SRC] == H16(0x50) and c.tmpl.ct[A.ORIG_PORT_DST] == H16(0x2345)
    c = parse(["-U", "-p", "sctp", "--orig-vtag", "1", "--reply-vtag", "-1", "--state", "ESTABLISHED"])
    assert c.tmpl.ct[A.SCTP_VTAG_ORIG] == H32(1) and c.tmpl.ct[A.SCTP_VTAG_REPL] == 0xFFFFFFFF
    assert c.tmpl.ct[A.SCTP_STATE] == 4


def test_icmp_and_unknown_protocols():
    c = parse(["-L", "-p", "icmp", "--icmp-type", "264", "--icmp-code", "3", "--icmp-id", "7", "-r", "1.1.1.1"])
    t = c.tmpl
    assert t.ct[A.ICMP_TYPE] == 8 and t.ct[A.ICMP_CODE] == 3 and t.ct[A.ICMP_ID] == H16(7)
    assert t.ct[A.ORIG_L4PROTO] == 1 and A.REPL_L4PROTO not in t.ct   # -r came after the icmp options
    c = parse(["-L", "-r", "1.1.1.1", "-p", "icmp", "--icmp-type", "8"])
    assert c.tmpl.ct[A.REPL_L4PROTO] == 1
    c = parse(["-L", "-p", "1", "-r", "::1", "--icmp-id", "1"])
    assert c.proto_name == "icmp" and c.tmpl.ct[A.REPL_L4PROTO] == 1
    # names from /etc/protocols and numbers pick the "unknown" extension; it copies L4PROTO to the reply
    c = parse(["-L", "-p", "ipv6-icmp", "-q", "::1"])
    assert c.protonum == 58 and c.proto_name == "unknown" and c.tmpl.ct[A.REPL_L4PROTO] == 58
    c = parse(["-L", "-p", "0x63"])
    assert c.protonum == 99 and c.proto_name == "unknown" and A.REPL_L4PROTO not in c.tmpl.ct
    assert parse(["-L", "-p", "TCP"]).proto_name == "tcp"
    assert parse(["-L", "-p", "6"]).proto_name == "tcp"
    # the last -p wins; options of the earlier extension stay in the table (mod-256 value reuse)
    c = parse(["-L", "-p", "tcp", "-p", "udp", "--sport", "5"])
    assert c.protonum == 17 and c.tmpl.ct[A.ORIG_PORT_SRC] == H16(5) and c.tmpl.ct[A.ORIG_L4PROTO] == 17
    c = parse(["-L", "-p", "tcp", "--state", "LISTEN"])
    assert c.tmpl.ct[A.TCP_STATE] == 9 and c.tmpl.ct[A.TCP_FLAGS_ORIG] == 0x0E
    c = parse(["-I", "-p", "dccp", "-t", "1", "-s", "1.1.1.1", "-d", "2.2.2.2", "--sport", "1", "--dport",
               "2", "--state", "OPEN", "--role", ""])
    assert c.tmpl.ct[A.DCCP_ROLE] == 0 and c.tmpl.ct[A.DCCP_STATE] == 4
    assert parse(["-L", "-p", "dccp", "--state", "RESPOND", "--sp", "1"]).tmpl.ct[A.ORIG_PORT_SRC] == H16(1)


def test_status_event_output_words():
    c = parse(["-L", "-u", "SEEN,UNREPLIEDXYZ", "-u", "!EXPECTED,fixed_timeout,o,h"])
    assert c.tmpl.ct[A.STATUS] == 2 | 1024 | (1 << 14) | (1 << 15)
    assert c.tmpl.filter_status_kernel == (2 | 1024 | (1 << 14) | (1 << 15), 2 | 1)
    msgs: List[str] = []
    c = parse(["-L", "-u", "s", "-o", "s", "-o", "sa"], warn=msgs.append)
    assert msgs == ["WARNING: ignoring SRC_NAT, use --src-nat instead"] * 2
    assert c.tmpl.filter_status_kernel == (0, 0) and c.output == Out.SAVE
    c = parse(["-E", "-e", "n,Upd", "-e", "destroy"], warn=msgs.append)
    assert c.event_mask == 7
    c = parse(["-E", "-e", "D"], warn=msgs.append)
    assert c.event_mask == 0 and msgs[-1] == "WARNING: ignoring DST_NAT, use --dst-nat instead"
    c = parse(["-L", "-o", "x,e,t,i,k,u", "-o", "ID"], warn=msgs.append)
    assert c.output == Out.XML | Out.EXT | Out.TMS | Out.ID | Out.KTMS | Out.US
    assert parse(["-L", "-o", "json,ext"]).output == Out.JSON | Out.EXT
    with pytest.raises(UsageError) as e:
        parse(["-L", "-o", "json,xml"])
    assert e.value.status == OTHER_PROBLEM and "json" in e.value.message
    with pytest.raises(UsageError) as e:
        parse(["-L", "-o", "save", "-o", "j"])
    assert e.value.status == OTHER_PROBLEM


def test_labels(tmp_path):
    conf = tmp_path / "connlabel.conf"
    conf.write_text(LABELS)
    assert load_labelmap(str(conf)) == ({k.encode(): v for k, v in LABELMAP.items()}, 0)
    msgs: List[str] = []
    c = parse(["-L", "-l", "web,db-master", "-l", "hex label"], connlabel_conf=str(conf), warn=msgs.append)
    assert c.tmpl.label == {1, 2, 31} and c.options == Opt.LABEL and msgs == []
    c = parse(["-U", "--label-add", "zero", "--label-add", "five"], connlabel_conf=str(conf))
    assert c.tmpl.label_modify == {0, 5}
    c = parse(["-U", "--label-del", "five"], connlabel_conf=str(conf))
    assert c.tmpl.label_modify == {5} and c.options == Opt.DEL_LABEL
    c = parse(["-U", "--label-del=five"], connlabel_conf=str(conf))      # attached: delete all
    assert c.tmpl.label_modify is None
    # a missing map: one perror line per lookup attempt
    msgs.clear()
    with pytest.raises(UsageError):
        parse(["-L", "-o", "labels", "-l", "web"], connlabel_conf=str(tmp_path / "none"), warn=msgs.append)
    assert msgs == ["nfct_labelmap_new: No such file or directory"] * 2
    empty = tmp_path / "empty.conf"
    empty.write_text("# nothing\nfoo bar\n2048 big\n3 bad;name\n")
    msgs.clear()
    parse(["-L", "-o", "labels"], connlabel_conf=str(empty), warn=msgs.append)
    assert msgs == ["nfct_labelmap_new: Success"]


def test_labelmap_option(tmp_path):
    conf = tmp_path / "my.conf"
    conf.write_text("7 seven\n")
    # 1.4.9 semantics: --labelmap applies to every label option, wherever it is
    c = parse(["-L", "-l", "seven", "--labelmap", str(conf)], connlabel_conf=str(tmp_path / "none"))
    assert c.tmpl.label == {7} and c.labelmap_path == str(conf) and c.options == Opt.LABEL
    c = parse(["-U", "--labelmap=" + str(conf), "--label-add", "seven"])
    assert c.tmpl.label_modify == {7}
    with pytest.raises(UsageError) as e:
        parse(["-L", "--labelmap", str(conf), "--labelmap", str(conf)])
    assert e.value.message == "option `--labelmap' can only be specified once"
    with pytest.raises(UsageError) as e:
        parse(["-I", "--labelmap", str(conf)])
    assert e.value.message.startswith("You need to supply") or "labelmap" in e.value.message
    with pytest.raises(UsageError) as e:
        parse(["-F", "--labelmap", str(conf)])
    assert e.value.message == "Illegal option `--labelmap' with this command"
    # warnings of the discarded first pass are not repeated
    msgs: List[str] = []
    parse(["-L", "-a", "x", "--labelmap", str(conf)], warn=msgs.append)
    assert msgs == ["WARNING: ignoring -a, deprecated option."]


def test_abbreviations_and_permutation():
    c = parse(["--dum", "--pro", "tcp", "--dp", "80", "--orig-s", "1.1.1.1"])
    assert c.command == Cmd.CT_LIST and c.tmpl.ct[A.ORIG_PORT_DST] == H16(80)
    assert c.tmpl.ct[A.ORIG_IPV4_SRC] == IP("1.1.1.1")
    c = parse(["-p", "tcp", "ignored", "--dport", "1", "-L", "--", "-x"])
    assert c.command == Cmd.CT_LIST
    c = parse(["-zL"])
    assert c.command == Cmd.CT_LIST and c.options == Opt.ZERO
    c = parse(["-Ls1.1.1.1"])             # -L's optional argument is "s1.1.1.1", and ignored
    assert c.command == Cmd.CT_LIST and c.options == 0
    c = parse(["-L", "-s1.1.1.1", "-pudp", "--dport=5"])
    assert c.tmpl.ct[A.ORIG_PORT_DST] == H16(5)


def test_error_statuses_and_format():
    with pytest.raises(UsageError) as e:
        parse(["-U", "--label-del", "--label-add", "a"], connlabel_conf="/nonexistent", warn=lambda m: None)
    assert (e.value.status, e.value.message) == (OTHER_PROBLEM,
                                                 "cannot use --label-add and --label-del at the same time")
    assert format_error("pfx", "boom", OTHER_PROBLEM, "prog") == "pfx: boom\n"
    assert format_error("pfx", "boom", PARAMETER_PROBLEM, "prog") == \
        "pfx: boom\nTry `prog -h' or 'prog --help' for more information.\n"
    # conntrack segfaults on these two; pynfct reports them
    with pytest.raises(UsageError) as e:
        parse(["-L", "--id"])
    assert e.value.message == "option `--id' requires an argument"
    with pytest.raises(UsageError) as e:
        parse(["-L", "-p", "sctp", "--state", "FOO"])
    assert e.value.message == "unknown SCTP state `FOO'"


# -- -R / --load-file ------------------------------------------------------------------------------------

def test_split_line_quoting():
    assert split_line(b'-D -s 1.1.1.1  \t-p "tcp" ""\n') == [b"conntrack", b"-D", b"-s", b"1.1.1.1", b"-p",
                                                             b"tcp", b""]
    assert split_line(b'a"b c"d "x\\"y\\\\" \\z') == [b"conntrack", b"ab c", b"d", b'x"y\\', b"\\z"]
    assert split_line(b'"open\n', b"p") == [b"p", b"open\n"]


def test_parse_file(tmp_path):
    f = tmp_path / "batch"
    f.write_text("# comment\n\n  -I -p tcp -t 5 -s 1.1.1.1 -d 2.2.2.2 --sport 1 --dport 2 --state NONE\n"
                 "\t-D -s 1.1.1.1 -o id\n-U -u ASSURED -o xml\n-F\n-A -p 99 -t 1 -s 1.1.1.1 -d 2.2.2.2\n")
    cmds = parse_file(str(f))
    assert [c.command for c in cmds] == [Cmd.CT_CREATE, Cmd.CT_DELETE, Cmd.CT_UPDATE, Cmd.CT_FLUSH, Cmd.CT_ADD]
    # the -o flags are global: every command runs with all of them
    assert all(c.output == Out.ID | Out.XML for c in cmds)
    # the previous line's protocol handler still runs its final check (TCP flags on the -D/-U/-F lines)
    assert cmds[1].tmpl.ct[A.TCP_FLAGS_ORIG] == 0x0A and cmds[1].protonum == 0
    assert cmds[4].proto_name == "unknown"
    assert parse_args(["-R", "-", "ignored"], stdin=io.BytesIO(b"-F\n"))[0].command == Cmd.CT_FLUSH
    with pytest.raises(UsageError) as e:
        parse_args(["-R"])
    assert e.value.message == "unknown option `-R'"


# -- summaries ------------------------------------------------------------------------------------------

def test_summary_lines():
    lst = parse(["-L"])
    assert summary_line(lst, 0) == "0 flow entries have been shown."
    assert not summary_failed(lst, 0) and exit_status(lst, 0) == 0
    dele = parse(["-D"])
    assert summary_line(dele, 0) == "0 flow entries have been deleted." and summary_failed(dele, 0)
    assert exit_status(dele, 3) == 0
    assert summary_line(parse(["-L", "expect"]), 2) == "2 expectations have been shown."
    assert summary_line(parse(["-D", "expect", "-p", "tcp", "-s", "1.1.1.1", "-d", "2.2.2.2", "--sport", "1",
                               "--dport", "2", "--reply-port-src", "2", "--reply-port-dst", "1"]), 1) == \
        "1 expectations have been shown."
    assert summary_line(parse(["-C"]), 0) is None and summary_line(parse(["-F"]), 0) is None
    assert summary_line(parse([]), 0) is None
    add = parse(["-A", "-p", "udp", "-t", "1", "-s", "1.1.1.1", "-d", "2.2.2.2", "--sport", "1", "--dport", "2"])
    assert summary_line(add, 0) == "0 flow entries have been added." and not summary_failed(add, 0)
    assert err2str(2, Cmd.CT_DELETE) == "such conntrack doesn't exist"
    assert err2str(17, Cmd.CT_CREATE) == "Such conntrack exists, try -U to update"
    assert err2str(22, Cmd.CT_LIST) == "invalid parameters"
    assert err2str(1, Cmd.CT_LIST).startswith("sorry, you must be root")
    assert err2str(2, Cmd.CT_LIST) == os.strerror(2)


def test_filter_init():
    c = parse(["-L", "-s", "10.1.2.3/8", "--mask-dst", "255.255.0.0", "-d", "192.168.7.7"])
    precommand_check(c)
    nets = filter_init(c)
    assert nets == {"src": (IP("10.0.0.0"), IP("255.0.0.0")), "dst": (IP("192.168.0.0"), IP("255.255.0.0"))}
    assert A.ORIG_IPV4_SRC not in c.tmpl.ct and A.ORIG_IPV4_DST not in c.tmpl.ct


# -- tables and getopt against glibc -------------------------------------------------------------------

def test_option_table_consistency():
    # the optstring means the same as conntrack's getopt_str
    conntrack_str = (":L::I::U::D::G::E::F::A::hVs:d:r:q:p:t:u:e:a:z[:]:{:}:m:i:f:o:n::g::c:b:C::Sj::w:l:"
                     "<:>::(:):")

    def kinds(s):
        out, i = {}, 1
        while i < len(s):
            c, n = s[i], 0
            while s[i + 1 + n:i + 2 + n] == ":":
                n += 1
            out[c] = n
            i += 1 + n
        return out
    assert kinds(O.GETOPT_STR) == kinds(conntrack_str)
    for o in O.OPTIONS:
        if o.opt is not None:
            assert O.OPTFLAGS[o.column] == o.optflag
    assert len({o.val for o in O.OPTIONS}) == len(O.OPTIONS)
    assert all(len(r) == O.NUMBER_OF_OPT for r in O.COMMANDS_V_OPTIONS.values())


_glibc = None


def _libc_getopt():
    global _glibc
    if _glibc is None:
        libc = ctypes.CDLL(None)

        class Option(ctypes.Structure):
            _fields_ = [("name", ctypes.c_char_p), ("has_arg", ctypes.c_int),
                        ("flag", ctypes.POINTER(ctypes.c_int)), ("val", ctypes.c_int)]
        libc.getopt_long.restype = ctypes.c_int
        _glibc = (libc, Option)
    return _glibc


def _run_glibc(argv: List[bytes], optstring: bytes, tables: List[List[LongOption]], switch_on: int,
               optional_on: bytes):
    libc, Option = _libc_getopt()
    optind = ctypes.c_int.in_dll(libc, "optind")
    optarg = ctypes.c_char_p.in_dll(libc, "optarg")
    ctypes.c_int.in_dll(libc, "opterr").value = 0
    arr = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
    keep = []

    def table(opts):
        t = (Option * (len(opts) + 1))(*[Option(o.name, o.has_arg, None, o.val) for o in opts],
                                        Option(None, 0, None, 0))
        keep.append(t)
        return t
    current = table(tables[0])
    optind.value = 0
    out = []
    while True:
        c = libc.getopt_long(len(argv), arr, optstring, current, None)
        if c == -1:
            break
        arg = optarg.value
        extra = None
        if c in optional_on and arg is None and optind.value < len(argv) and arr[optind.value][:1] not in (b"-", b"!"):
            extra = arr[optind.value]
            optind.value += 1
        if c == switch_on:
            current = table(tables[1])
        out.append((c, arg, extra, optind.value, arr[optind.value - 1] if optind.value else None))
    return out, [arr[i] for i in range(len(argv))], optind.value


def _run_ours(argv, optstring, tables, switch_on, optional_on, posix):
    g = Getopt(argv, optstring, posixly_correct=posix)
    current = tables[0]
    out = []
    while True:
        c = g.getopt_long(current)
        if c == -1:
            break
        extra = None
        if c in optional_on and g.optarg is None and g.optind < len(g.argv) and \
                g.argv[g.optind][:1] not in (b"-", b"!"):
            extra = g.argv[g.optind]
            g.optind += 1
        if c == switch_on:
            current = tables[1]
        out.append((c, g.optarg, extra, g.optind, g.argv[g.optind - 1] if g.optind else None))
    return out, list(g.argv), g.optind


@pytest.mark.parametrize("posix", [False, True])
def test_getopt_matches_glibc(posix, monkeypatch):
    if posix:
        monkeypatch.setenv("POSIXLY_CORRECT", "1")
    else:
        monkeypatch.delenv("POSIXLY_CORRECT", raising=False)
    base = list(O.BASE_LONGOPTS)
    merged = base + list(O.proto_longopts(O.TCP, 256)) + list(O.proto_longopts(O.SCTP, 512))
    optstring = O.GETOPT_STR.encode()
    words = [b"-L", b"-Lexp", b"expect", b"-s", b"-s1.1.1.1", b"1.1.1.1", b"-zs", b"-zL", b"-x", b"-xz",
             b"--src", b"--src=2", b"--sr", b"--s", b"--dump", b"--du=e", b"--", b"-", b"foo", b"!x", b"-p",
             b"--sport", b"--sp", b"--state", b"--sta", b"--orig-v", b"--stats=1", b"--id", b"--id=5",
             b"-n", b"--src-nat", b"-j1", b"--label-del", b"-\xc3\xa9", b"-:", b"--=", b"", b"--reply",
             b"-C", b"-S", b"-hV", b"-i", b"--any"]
    rng = random.Random(99 + posix)
    optional_on = set(b"LIUDGEFACSVhngj>")
    for _ in range(3000):
        argv = [b"prog"] + [rng.choice(words) for _ in range(rng.randint(0, 8))]
        ref = _run_glibc(list(argv), optstring, [base, merged], ord("p"), optional_on)
        mine = _run_ours(list(argv), optstring, [base, merged], ord("p"), optional_on, posix)
        assert mine == ref, argv

