"""Run conntrack 1.4.7 with a clock the test chooses, so that its clock-dependent failures are deterministic.

libnetfilter_conntrack numbers every request it sends with ``time(NULL)`` (the seconds of the wall clock)
and libnfnetlink refuses an answer whose sequence number is not the current one.  conntrack 1.4.7's
``-U`` reads a stale answer for every other request (the acknowledgement of the previous one): while the
second does not change the stale answer carries the same number and is accepted, but when the second
changes between two requests conntrack stops with "Operation failed: Protocol error".  Whether that
happens depends on when the test runs.

:func:`clock_env` gives conntrack (not pynfct) a ``time()`` of our own through ``LD_PRELOAD``: it starts at
the real time and advances by ``step`` seconds at every call -- ``step=0`` is a run within one second (what
happens almost always), ``step=1`` a second that changes between any two requests.  Only the ``time``
symbol is replaced; everything else, the kernel and the sockets are real.

The shim is compiled once per session with the C compiler pynfct's build needs anyway (``cc``).
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from typing import Dict, Optional

STEP_ENV = "PYNFCT_TEST_TIME_STEP"

_SOURCE = r"""
#include <stdlib.h>
#include <time.h>

/* time() as the test wants it: the real time at the first call, then STEP seconds more at every call. */
time_t time(time_t *out)
{
    static time_t now = 0, step = 0;
    struct timespec ts;
    if (now == 0) {
        const char *s = getenv("PYNFCT_TEST_TIME_STEP");
        step = s ? (time_t)atol(s) : 0;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = ts.tv_sec;
    } else {
        now += step;
    }
    if (out)
        *out = now;
    return now;
}
"""

_built: Optional[str] = None


def shim_problem() -> Optional[str]:
    """Why the shim cannot be built here, or None."""
    if shutil.which("cc") is None:
        return "no C compiler (`cc`) to build the clock shim for conntrack"
    return None


def shim_path() -> str:
    """The shared object (built on first use, removed when the session ends)."""
    global _built
    if _built is None:
        d = tempfile.mkdtemp(prefix="pynfct-ctclock-")
        atexit.register(shutil.rmtree, d, True)
        src, so = os.path.join(d, "ctclock.c"), os.path.join(d, "ctclock.so")
        with open(src, "w") as f:
            f.write(_SOURCE)
        r = subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", so, src], capture_output=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"building the clock shim failed: {r.stderr.decode(errors='replace')}")
        _built = so
    return _built


def clock_env(step: int = 0) -> Dict[str, str]:
    """The environment for a conntrack whose ``time()`` starts now and advances ``step`` s per call."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = shim_path()
    env[STEP_ENV] = str(step)
    return env
