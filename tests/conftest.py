"""Shared pytest fixtures.

Fixtures that touch conntrack give every test a throwaway network namespace (see tests/netns.py):

* ``netns``        -- function scope: a fresh, empty namespace.
* ``synthetic_ns`` -- module scope: a namespace holding only :func:`fill.fill_synthetic`'s entries (a
                      static table: no traffic, no timestamps; ``.synthetic`` describes it).
* ``filled_ns``    -- module scope: synthetic entries plus :func:`fill.fill_traffic`'s real traffic and
                      :func:`fill.fill_nat`'s real NAT'd traffic (``.synthetic``, ``.traffic`` and ``.nat``
                      describe them).  Treat it as read-only.
* ``pynfct_cmd``   -- the argv prefix that runs the pynfct CLI ($PYNFCT, else ``pynfct`` on PATH, else
                      ``python -m pynfct``).

What they need is in tests/prereq.py: root, ``ip``, working network namespaces, ``conntrack`` exactly
v1.4.7 (``conntrack -V``) and, for the filled ones, ``nft``.  Outside CI a missing prerequisite skips the
test with the reason; tests under tests/integration/ are skipped for the same reasons even if they do not
use these fixtures.  With ``CI=true`` a missing prerequisite fails the whole run at collection instead (a
green CI run must have run the integration tests).  Every skip is listed in the summary (``-rs``).

Tests marked ``conntrack_147_bug`` assert what conntrack 1.4.7 itself does wrong: they require exactly
that version, whatever the rest of the session needs.

Leftover ``pynfct-test-*`` namespaces of dead test sessions are removed at session start, this session's at
session end.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
from typing import Optional

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from differential import pynfct_argv  # noqa: E402
from fill import fill_nat, fill_synthetic, fill_traffic  # noqa: E402
import prereq  # noqa: E402
from netns import NetNS, cleanup_leftovers  # noqa: E402


def netns_env_problem() -> Optional[str]:
    """Why the namespace tests cannot run here, or None (tests/prereq.py; checked once per session)."""
    return prereq.netns_problem()


def require_netns_env(need_nft: bool = False) -> None:
    prereq.require_netns(need_nft=need_nft)


@pytest.hookimpl(tryfirst=True)   # before the terminal reporter reads the -r option
def pytest_configure(config):
    config.addinivalue_line(
        "markers", "conntrack_147_bug: the test asserts a bug of conntrack 1.4.7 and needs exactly that version")
    # every skip and xfail is listed in the short test summary, with its reason, whatever -r says
    config.option.reportchars = (config.option.reportchars or "") + "sx"


def pytest_sessionstart(session):
    # A job started in the background by a non-interactive shell (as CI runs .ci/run, or `cmd &`)
    # inherits SIGINT ignored, and exec() passes an ignored signal on: every child would ignore Ctrl-C
    # (conntrack included) and the tests that send SIGINT would test nothing. Children get SIGINT as a
    # terminal's Ctrl-C gives it: with a handler of our own here, exec() hands them the default.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("ip"):
        cleanup_leftovers()


def pytest_sessionfinish(session, exitstatus):
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("ip"):
        cleanup_leftovers()


def pytest_collection_modifyitems(config, items):
    integration = os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration") + os.sep
    ours = [it for it in items if str(getattr(it, "path", getattr(it, "fspath", ""))).startswith(integration)]
    if not ours:
        return
    if prereq.in_ci():
        problems = prereq.all_problems()
        if problems:
            pytest.exit("CI=true but the integration tests cannot run here (they would all be skipped): "
                        + "; ".join(problems), returncode=pytest.ExitCode.TESTS_FAILED)
    problem = netns_env_problem()
    if problem:
        mark = pytest.mark.skip(reason=problem)
        for it in ours:
            it.add_marker(mark)


def pytest_runtest_setup(item):
    if item.get_closest_marker("conntrack_147_bug") is not None:
        prereq.require_conntrack_147()


@pytest.fixture
def netns():
    """A fresh network namespace with lo up; deleted afterwards, pass or fail."""
    require_netns_env()
    with NetNS() as ns:
        yield ns


@pytest.fixture(scope="module")
def synthetic_ns():
    """Module-scoped namespace holding fill_synthetic's entries only (``ns.synthetic``)."""
    require_netns_env(need_nft=True)
    with NetNS() as ns:
        fill_synthetic(ns)
        yield ns


@pytest.fixture(scope="module")
def filled_ns():
    """Module-scoped namespace with fill_synthetic's entries, fill_traffic's flows and fill_nat's NAT'd
    flows (``ns.synthetic``, ``ns.traffic``, ``ns.nat``); the held TCP connections stay open until the
    module ends."""
    require_netns_env(need_nft=True)
    with NetNS() as ns:
        fill_synthetic(ns)
        fill_traffic(ns)
        fill_nat(ns)      # last: once NAT is loaded, new entries get NAT_DONE bits
        yield ns


@pytest.fixture(scope="session")
def pynfct_cmd():
    """argv prefix of the pynfct CLI: $PYNFCT, else ``pynfct`` on PATH, else ``[sys.executable, "-m", "pynfct"]``."""
    return pynfct_argv()
