"""What the tests that touch conntrack need, and what happens when it is missing.

The integration tests compare pynfct with the real ``conntrack`` of conntrack-tools 1.4.7, byte for byte,
inside throwaway network namespaces.  They need:

* root (network namespaces, conntrack tables),
* ``ip`` (iproute2) and working network namespaces in which ``conntrack -C`` runs,
* ``conntrack`` exactly v1.4.7 (``conntrack -V``): pynfct's output is checked against that version's,
  and many tests assert its bugs,
* ``nft`` (nftables) for the filled tables (labels, real traffic, real NAT).

Outside CI a missing prerequisite skips the test with the reason (and the pytest summary lists every
skip).  With ``CI=true`` in the environment it fails instead: a run that tested nothing must not be green.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import List, Optional

import pytest

CONNTRACK_VERSION = "1.4.7"


def in_ci() -> bool:
    """``CI`` is set to true (GitHub Actions, GitLab CI and most others set ``CI=true``), and this is not
    CI's root-free stage (``PYNFCT_ROOT_FREE=1``: .ci/stage1 runs tests/unit as nobody on purpose, and
    the comparisons with the live conntrack there skip; the root stage runs them)."""
    if os.environ.get("PYNFCT_ROOT_FREE") == "1":
        return False
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason: str) -> None:
    """Stop the current test for a missing prerequisite: fail in CI, skip elsewhere (never returns)."""
    if in_ci():
        pytest.fail(f"CI=true and a prerequisite is missing: {reason}", pytrace=False)
    pytest.skip(reason)


_cache: dict = {}


def _once(key: str, fn):
    if key not in _cache:
        _cache[key] = fn()
    return _cache[key]


def root_problem() -> Optional[str]:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (creates network namespaces and changes their conntrack tables)"
    return None


def conntrack_version() -> Optional[str]:
    """The version ``conntrack -V`` prints (``"1.4.7"``), or None when there is no working conntrack."""
    def get() -> Optional[str]:
        if shutil.which("conntrack") is None:
            return None
        try:
            r = subprocess.run(["conntrack", "-V"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        m = re.fullmatch(rb"conntrack v(\S+) \(conntrack-tools\)\n", r.stdout)
        return m.group(1).decode() if r.returncode == 0 and m else None
    return _once("version", get)


def conntrack_version_problem() -> Optional[str]:
    """Why the installed conntrack is not the reference (exactly 1.4.7), or None."""
    if shutil.which("conntrack") is None:
        return "`conntrack` (conntrack-tools) is not installed"
    v = conntrack_version()
    if v is None:
        return "`conntrack -V` does not print conntrack-tools' version line"
    if v != CONNTRACK_VERSION:
        return (f"conntrack is v{v}; pynfct is compared with conntrack v{CONNTRACK_VERSION} exactly "
                "(its output and its bugs)")
    return None


def netns_problem() -> Optional[str]:
    """Why the namespace tests cannot run here (root, ip, namespaces, conntrack 1.4.7 in one), or None."""
    def check() -> Optional[str]:
        from netns import NetNS, NetNSError
        problem = root_problem()
        if problem:
            return problem
        if shutil.which("ip") is None:
            return "`ip` (iproute2) is not installed"
        problem = conntrack_version_problem()
        if problem:
            return problem
        try:
            with NetNS() as ns:
                r = ns.run(["conntrack", "-C"])
                if r.returncode != 0:
                    return ("conntrack does not work in a network namespace: "
                            + r.stderr.decode(errors="replace").strip())
        except (NetNSError, OSError) as e:
            return f"cannot create a network namespace: {e}"
        return None
    return _once("netns", check)


def nft_problem() -> Optional[str]:
    if shutil.which("nft") is None:
        return "`nft` (nftables) is not installed"
    return None


def all_problems() -> List[str]:
    """Every missing prerequisite of the integration tests (empty when all is there)."""
    return [p for p in (netns_problem(), nft_problem()) if p]


def require_netns(need_nft: bool = False) -> None:
    """:func:`missing` unless the namespace tests can run (and ``nft`` is there, with ``need_nft``)."""
    problem = netns_problem() or (nft_problem() if need_nft else None)
    if problem:
        missing(problem)


def require_conntrack_147(what: str = "asserts a bug of conntrack 1.4.7") -> None:
    """For tests that assert what conntrack 1.4.7 itself does wrong: anything else is no reference."""
    problem = conntrack_version_problem()
    if problem:
        missing(f"{what}: {problem}")
