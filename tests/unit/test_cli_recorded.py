"""The command-line parser against conntrack 1.4.7's recorded answers, without root.

test_cli_parse.py runs each rejected command line through the real conntrack in a network namespace,
which needs root. tests/fixtures/conntrack-cli.json keeps what that conntrack answered (exit status and
stderr; stdout for -h) for the same cases, recorded by tests/fixtures/record_cli.py; here our parser's
answers are compared with it, so the comparison also runs as an unprivileged user (the root stage runs
both). A case that is not in the recording (added to test_cli_parse.py since) is skipped until the
recording is made again.
"""
from __future__ import annotations

import io
import json
import os
import random
from typing import Iterator, List, NamedTuple, Optional, Tuple

import pytest

import test_cli_parse as T
from pynfct.cli.help import proto_help, usage
from pynfct.cli.parse import parse

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures",
                       "conntrack-cli.json")
FILE = "@FILE@"           # stands for the batch file's path in the recorded arguments and messages
PROTOS = ["tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "gre", "99", "ipv6-icmp", "igmp", "255",
          "0", "TCP", "0x6"]


class Case(NamedTuple):
    labels: bool                 # the namespace has test_cli_parse.LABELS as its connlabel.conf
    args: Tuple[str, ...]        # FILE for the path of a file holding `content`
    content: Optional[str] = None
    stdin: Optional[str] = None
    posixly: bool = False

    @property
    def key(self) -> str:
        return json.dumps(list(self))


class Env(NamedTuple):
    """What test_cli_parse.ours() needs of a namespace: where its connlabel.conf is."""
    connlabel_conf: str


def cases() -> Iterator[Case]:
    """test_cli_parse.py's comparisons with the real conntrack (the recorder imports this)."""
    for args in T.BAD:
        yield Case(False, tuple(args))
    yield Case(False, ("-s", "1.1.1.1", "baz", "-L"), posixly=True)
    for args in T.BAD_LABELS:
        yield Case(True, tuple(args))
    for content in T.BAD_FILES:
        yield Case(False, ("-R", FILE), content)
        yield Case(False, ("--load-file", FILE, "ignored"), content)
    yield Case(False, ("-R", FILE))                     # no such file
    yield Case(False, ("-R", "-"), stdin="-L\n")


def random_cases(env: Env) -> List[Case]:
    """test_cli_parse's random command lines that our parser rejects (the ones it compares)."""
    rng = random.Random(1447)
    found = []
    for _ in range(250):
        args = [rng.choice(T._TOKENS) for _ in range(rng.randint(1, 7))]
        if ours(Case(False, tuple(args)), env, "")[2] is None:
            found.append(Case(False, tuple(args)))
    return found


def help_cases() -> List[Case]:
    return [Case(False, ("-h",))] + [Case(False, ("-h", "-p", p)) for p in PROTOS]


def ours(case: Case, env: Env, path: str):
    """(status, stderr, commands or None) of our parser, `path` standing in for FILE."""
    args = [path if a == FILE else a for a in case.args]
    kw = {}
    if case.stdin is not None:
        kw["stdin"] = io.BytesIO(case.stdin.encode())
    if case.posixly:
        kw["posixly_correct"] = True
    status, err, cmds = T.ours(args, env, **kw)
    return status, err.decode().replace(path, FILE) if path else err.decode(), cmds


# --- the comparisons ------------------------------------------------------------------------------------

def _load() -> dict:
    if not os.path.exists(FIXTURE):          # (the recorder imports this module before there is one)
        return {"conntrack": "", "answers": {}}
    with open(FIXTURE) as f:
        return json.load(f)


RECORD = _load()


@pytest.fixture(scope="module")
def envs(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "labels.conf").write_text(T.LABELS)
    return {False: Env(str(d / "none.conf")), True: Env(str(d / "labels.conf"))}


def _compare(case: Case, envs, tmp_path) -> None:
    recorded = RECORD["answers"].get(case.key)
    if recorded is None:
        pytest.skip("not recorded yet: run tests/fixtures/record_cli.py as root")
    path = str(tmp_path / "batch")
    if case.content is not None:
        with open(path, "w") as f:
            f.write(case.content)
    status, err, cmds = ours(case, envs[case.labels], path)
    assert cmds is None, f"our parser accepted {case.args!r}: {cmds}"
    assert (status, err) == (recorded["status"], recorded["stderr"]), f"conntrack {case.args!r}"


@pytest.mark.parametrize("case", list(cases()), ids=lambda c: " ".join(c.args) + (f" <{c.content[:30]!r}>"
                                                                                    if c.content else ""))
def test_rejected_as_conntrack_did(case, envs, tmp_path):
    _compare(case, envs, tmp_path)


def test_random_command_lines_rejected_as_conntrack_did(envs, tmp_path):
    found = random_cases(envs[False])
    assert len(found) > 60
    missing = [c for c in found if c.key not in RECORD["answers"]]
    assert not missing, f"not recorded ({len(missing)}): run tests/fixtures/record_cli.py as root"
    for case in found:
        _compare(case, envs, tmp_path)


@pytest.mark.parametrize("case", help_cases(), ids=lambda c: " ".join(c.args))
def test_help_as_conntrack_printed(case):
    recorded = RECORD["answers"][case.key]
    assert recorded["status"] == 0
    text = usage("conntrack", "1.4.7")
    if len(case.args) > 1:
        text += proto_help(parse(list(case.args)))
    assert text == recorded["stdout"]


def test_the_recording_is_of_conntrack_1_4_7():
    assert "v1.4.7" in RECORD["conntrack"]
    assert len(RECORD["answers"]) > 300
