"""The summary of a -D/-U/-R stopped by a signal (pynfct.cli.summary.interrupted_line): what the kernel
did, and how many changed entries were not printed because the reader of a pipe did not take them."""
from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest

from pynfct.cli.parse import parse
from pynfct.cli.signals import Interrupted
from pynfct.cli.summary import interrupted_line


def _interrupted(sig: int, partial: object) -> Interrupted:
    e = Interrupted(sig)
    e.partial = partial     # type: ignore[attr-defined]
    return e


@pytest.mark.parametrize("argv,what", [(["-D"], "deleted"), (["-U", "-m", "1"], "updated")])
def test_modify_all_printed(argv, what):
    e = _interrupted(signal.SIGINT, SimpleNamespace(count=5, unprinted=0))
    assert interrupted_line(parse(argv), e) == f"interrupted by SIGINT: 5 flow entries have been {what}."


@pytest.mark.parametrize("argv,what", [(["-D"], "deleted"), (["-U", "-m", "1"], "updated")])
def test_modify_some_not_printed(argv, what):
    e = _interrupted(signal.SIGTERM, SimpleNamespace(count=1500, unprinted=700))
    assert interrupted_line(parse(argv), e) == (
        f"interrupted by SIGTERM: 1500 flow entries have been {what}, 700 of them not printed "
        "(the output was not read).")


def test_load_counts():
    p = SimpleNamespace(created=3, updated=4, deleted=5, unprinted=0)
    assert interrupted_line(None, _interrupted(signal.SIGINT, p)) == (
        "interrupted by SIGINT: 3 flow entries have been created, 4 updated, 5 deleted.")
    p.unprinted = 6
    assert interrupted_line(None, _interrupted(signal.SIGINT, p)) == (
        "interrupted by SIGINT: 3 flow entries have been created, 4 updated, 5 deleted, 6 of those "
        "updated and deleted not printed (the output was not read).")


def test_no_partial():
    assert interrupted_line(parse(["-D"]), Interrupted(signal.SIGINT)) == (
        "interrupted by SIGINT: 0 flow entries have been deleted.")
