"""A short run of the coverage-guided fuzzer (tests/fuzz/fuzz_parse.py, atheris) over the recorded seeds and
the inputs of past findings: the target, which decodes raw netlink bytes and formats what it decoded in
every output, must neither crash nor raise anything but the documented refusals. The long run is a
documented command (docs/reliability.md).

atheris is in the `fuzz` extra (scripts/setup.sh installs it); without it this test fails, except in CI's
root-free stage, whose wheels are installed with the `test` extra only (PYNFCT_ROOT_FREE=1 there).
"""
import importlib.util
import os
import subprocess
import sys

import pytest

FUZZ = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz")
SCRIPT = os.path.join(FUZZ, "fuzz_parse.py")
RUNS = 50000

if importlib.util.find_spec("atheris") is None and os.environ.get("PYNFCT_ROOT_FREE"):
    pytest.skip("atheris (the fuzz extra) is not installed in CI's root-free stage", allow_module_level=True)


def fuzz(tmp_path, *args, env=None):
    corpus = tmp_path / "corpus"
    subprocess.run([sys.executable, SCRIPT, "--seeds", str(corpus)], check=True, capture_output=True)
    return subprocess.run([sys.executable, SCRIPT, *args, f"-artifact_prefix={tmp_path}/", "-max_len=65537",
                           str(corpus), os.path.join(FUZZ, "regressions")],
                          capture_output=True, text=True, timeout=600, env=env)


def test_a_short_fuzz_run_finds_nothing(tmp_path):
    assert importlib.util.find_spec("atheris") is not None, "atheris is not installed: pip install -e '.[fuzz]'"
    r = fuzz(tmp_path, f"-runs={RUNS}", "-seed=1")
    assert r.returncode == 0 and f"Done {RUNS} runs" in r.stderr, r.stderr[-3000:]
    assert not [p for p in os.listdir(tmp_path) if p.startswith(("crash-", "leak-", "timeout-"))]


def test_a_crash_in_the_target_fails_the_run(tmp_path):
    """The same run with a crash planted in the target (PYNFCT_FUZZ_PLANT: a segfault on the first input
    that decodes to something) must fail and leave the input behind."""
    env = dict(os.environ, PYNFCT_FUZZ_PLANT="1")
    r = fuzz(tmp_path, "-runs=50", "-seed=1", env=env)
    assert r.returncode != 0 and "deadly signal" in r.stderr, (r.returncode, r.stderr[-3000:])
    assert [p for p in os.listdir(tmp_path) if p.startswith("crash-")]
