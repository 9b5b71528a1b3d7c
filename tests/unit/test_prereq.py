"""A missing prerequisite of the integration tests skips them, listed in the summary; with CI=true it
fails the run (tests/prereq.py, tests/conftest.py).

Each case runs pytest in a subprocess on one integration module with a PATH that lacks something: a
``conntrack`` that says it is v1.4.8 (it runs the real one otherwise), or no ``nft``.  The inner session
stops at collection in CI, so a case takes about a second.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import prereq

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(TESTS, "integration", "test_json.py")     # uses filled_ns: needs nft


def _pytest(path_dirs, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS", "PYNFCT_ROOT_FREE")}
    env["PATH"] = os.pathsep.join(path_dirs)
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TARGET],
                          cwd=os.path.dirname(TESTS), env=env, capture_output=True, timeout=120)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        prereq.missing(f"`{name}` is not installed")
    return found


@pytest.fixture
def fake_148(tmp_path):
    """A PATH dir whose ``conntrack`` prints v1.4.8 for -V and runs the real one otherwise."""
    real = _tool("conntrack")
    d = tmp_path / "v148"
    d.mkdir()
    script = d / "conntrack"
    script.write_text('#!/bin/sh\nif [ "$1" = "-V" ]; then echo "conntrack v1.4.8 (conntrack-tools)"; exit 0; fi\n'
                      f'exec {real} "$@"\n')
    script.chmod(0o755)
    return [str(d), *os.environ.get("PATH", os.defpath).split(os.pathsep)]


def _expected_reason(default: str) -> str:
    # without root the first problem found is that one
    return prereq.root_problem() or default


def test_wrong_conntrack_version_skips_outside_ci(fake_148):
    r = _pytest(fake_148, ci=False)
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "1 skipped" in out and "short test summary info" in out
    reason = _expected_reason("conntrack is v1.4.8; pynfct is compared with conntrack v1.4.7 exactly")
    assert f"SKIPPED [1] tests/integration/test_json.py: {reason}" in out, out


def test_wrong_conntrack_version_fails_in_ci(fake_148):
    r = _pytest(fake_148, ci=True)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 1, out
    assert "CI=true but the integration tests cannot run here" in out
    assert _expected_reason("conntrack is v1.4.8") in out
    assert "no tests ran" in out and " passed" not in out


def test_missing_nft_fails_in_ci(tmp_path):
    """Only ``ip`` and ``conntrack`` on PATH: everything but nft is there."""
    d = tmp_path / "bin"
    d.mkdir()
    for tool in ("ip", "conntrack"):
        os.symlink(_tool(tool), d / tool)
    r = _pytest([str(d)], ci=True)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 1, out
    assert _expected_reason("`nft` (nftables) is not installed") in out
    r = _pytest([str(d)], ci=False)
    out = r.stdout.decode()
    assert r.returncode == 0 and "SKIPPED [1]" in out and _expected_reason("`nft` (nftables)") in out, out


def test_conntrack_version_is_read_from_conntrack():
    """The check reads the real version line (and the suite's reference is exactly 1.4.7)."""
    if shutil.which("conntrack") is None:
        prereq.missing("`conntrack` is not installed")
    r = subprocess.run(["conntrack", "-V"], capture_output=True)
    assert r.stdout.decode() == f"conntrack v{prereq.conntrack_version()} (conntrack-tools)\n"
    assert prereq.CONNTRACK_VERSION == "1.4.7"
