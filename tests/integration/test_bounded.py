"""A dump runs in bounded memory: the peak RSS of a process that lists or iterates a table does not grow
with the table (issue 10 point 8; bench/leaks.py measures 2,000,000 entries against conntrack).

The same table is read at 5,000 and at 50,000 entries, through the API iterating (not listing) and
through ``pynfct -L`` writing to /dev/null and to a pipe; the peak RSS of each reader (VmHWM, or
ru_maxrss through memwatch.PEAK_OF) may differ by the buffers a dump fills as it goes (a ring of at
most 2 MiB of batches, a 1 MiB output buffer), far less than 45,000 more entries held at once would
take (~25 MB as Flows, ~7 MB as text). A kept Flow or a missing nfct_destroy() adds ~18 MB here.
"""
from __future__ import annotations

import subprocess
import sys

import pynfct
from differential import _pynfct_env, pynfct_argv
from memwatch import CHILD, PEAK_OF, last_json, spec

MiB = 1 << 20

ITERATE = CHILD + r"""
from pynfct import Conntrack
seen = 0
for f in Conntrack().dump():
    seen += 1 + f.orig.sport + len(f.orig.src)
sample("end")
report(seen=seen > 0)
"""


def _api_peak(netns) -> int:
    """ru_maxrss (bytes) of a Python process iterating the table with the API."""
    r = netns.python(ITERATE, check=False, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-3000:]
    s = last_json(r.stdout)
    assert s["seen"]
    return s["end"]["peak"]


def _cli_peak(netns, pipe: bool) -> int:
    """Peak RSS (bytes) of ``pynfct -L`` writing to /dev/null or to a pipe this process drains."""
    p = netns.popen([sys.executable, *PEAK_OF, *pynfct_argv(), "-L"], env=_pynfct_env(),
                    stdout=subprocess.PIPE if pipe else subprocess.DEVNULL, stderr=subprocess.PIPE)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert bool(out) == pipe
    return int(err.splitlines()[-1].split(b"maxrss ")[1]) * 1024


def _peaks(netns) -> dict:
    return dict(api=_api_peak(netns), null=_cli_peak(netns, False), pipe=_cli_peak(netns, True))


def test_dump_peak_memory_does_not_grow_with_the_table(netns):
    with pynfct.Conntrack(netns.name) as ct:
        specs = [pynfct.FlowSpec(**spec(i)) for i in range(50_000)]
        assert int(ct.create_many(specs[:5_000])) == 5_000
        small = _peaks(netns)
        assert int(ct.create_many(specs[5_000:])) == 45_000
        big = _peaks(netns)
    grew = {k: big[k] - small[k] for k in small}
    assert all(g < 4 * MiB for g in grew.values()), (small, big)
