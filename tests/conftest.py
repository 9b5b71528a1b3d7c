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

They skip (with the reason) when not running as root, when ``ip``/``conntrack`` (or ``nft``, for the filled
ones) are missing, or when network namespaces cannot be created.  Tests under tests/integration/ are
skipped for the same reasons even if they do not use these fixtures.  Leftover ``pynfct-test-*``
namespaces of dead test sessions are removed at session start, this session's at session end.
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import Optional

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from differential import pynfct_argv  # noqa: E402
from fill import fill_nat, fill_synthetic, fill_traffic  # noqa: E402
from netns import NetNS, NetNSError, cleanup_leftovers  # noqa: E402

_env_problem: Optional[str] = "not checked yet"
_env_checked = False


def netns_env_problem() -> Optional[str]:
    """Why the namespace tests cannot run here, or None.  Checked once per session."""
    global _env_problem, _env_checked
    if _env_checked:
        return _env_problem
    _env_checked = True
    _env_problem = None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        _env_problem = "needs root (creates network namespaces and changes their conntrack tables)"
    elif shutil.which("ip") is None:
        _env_problem = "`ip` (iproute2) is not installed"
    elif shutil.which("conntrack") is None:
        _env_problem = "`conntrack` (conntrack-tools) is not installed"
    else:
        try:
            with NetNS() as ns:
                r = ns.run(["conntrack", "-C"])
                if r.returncode != 0:
                    _env_problem = ("conntrack does not work in a network namespace: "
                                    + r.stderr.decode(errors="replace").strip())
        except (NetNSError, OSError) as e:
            _env_problem = f"cannot create a network namespace: {e}"
    return _env_problem


def require_netns_env(need_nft: bool = False) -> None:
    problem = netns_env_problem()
    if problem:
        pytest.skip(problem)
    if need_nft and shutil.which("nft") is None:
        pytest.skip("`nft` (nftables) is not installed")


def pytest_sessionstart(session):
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("ip"):
        cleanup_leftovers()


def pytest_sessionfinish(session, exitstatus):
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("ip"):
        cleanup_leftovers()


def pytest_collection_modifyitems(config, items):
    integration = os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration") + os.sep
    ours = [it for it in items if str(getattr(it, "path", getattr(it, "fspath", ""))).startswith(integration)]
    if ours:
        problem = netns_env_problem()
        if problem:
            mark = pytest.mark.skip(reason=problem)
            for it in ours:
                it.add_marker(mark)


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
