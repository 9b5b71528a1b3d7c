"""-R runs nothing before the whole file is checked, watched with an event listener.

conntrack 1.4.7 parses every line of a -R file before it runs one: a bad line anywhere means exit 2 and
not a single request sent. The final table alone cannot show that pynfct does the same (entries created
and deleted again leave it unchanged), so a `conntrack -E` listens in each twin namespace while -R runs;
two marker entries created before and after the run bracket the events the run caused (the listener
gets events in order). A line the kernel refuses is another matter: the lines before it have run, in
conntrack as in pynfct.
"""
from __future__ import annotations

import re
from typing import List, Sequence, Tuple

import pytest

from differential import Result, assert_same
from netns import NetNS
from test_events import Listener, wait_for
from test_write import assert_same_table, keys, run_ct, run_py, twins

MARKER_START = "192.0.2.250"
MARKER_END = "192.0.2.251"
_EVENT = re.compile(r"^\s*\[(NEW|DESTROY)\] .*? src=(\S+)")


def _line(i: int) -> str:
    return f"-I -p udp -s 10.4.{i >> 8 & 255}.{i & 255} -d 203.0.113.{2 + (i >> 16)} --sport 1 --dport 2 -t 100"


def _marker(ns: NetNS, src: str) -> None:
    r = run_ct(ns, ["-I", "-p", "udp", "-s", src, "-d", "192.0.2.1", "--sport", "9", "--dport", "9",
                    "-t", "100"])
    assert r.returncode == 0, r.err


def _events(listener: Listener) -> List[Tuple[str, str]]:
    """(NEW or DESTROY, original source) of each event between the two markers."""
    out = []
    for line in listener.output().decode().splitlines():
        m = _EVENT.match(line)
        assert m, line      # an ENOBUFS warning or anything else unexpected
        out.append((m.group(1), m.group(2)))
    start = out.index(("NEW", MARKER_START))
    end = out.index(("NEW", MARKER_END))
    return out[start + 1:end]


def _watched(ns: NetNS, tmp_path, tag: str, run) -> Tuple[Result, List[Tuple[str, str]]]:
    """`run(ns)` with a listener on the namespace: its result and the events it caused."""
    listener = Listener(ns, "conntrack", ["-E", "-e", "NEW,DESTROY"], tmp_path, tag)
    try:
        wait_for(listener.subscribed, what="the listener to subscribe")
        _marker(ns, MARKER_START)
        r = run(ns)
        _marker(ns, MARKER_END)
        wait_for(lambda: f"src={MARKER_END} ".encode() in listener.output()
                 or b"ENOBUFS" in listener.err_path.read_bytes(), what="the end marker's event")
    finally:
        stopped = listener.stop()
    for src in (MARKER_START, MARKER_END):
        run_ct(ns, ["-D", "-s", src])
    # events lost (ENOBUFS: here ~170 at once can overflow it, whatever --buffer-size says) would make
    # the count meaningless
    assert b"ENOBUFS" not in stopped.stderr, f"more events than the listener could take: {stopped.err}"
    return r, _events(listener)


def _both(tmp_path, args: Sequence[str], input=None):
    """conntrack and pynfct in twin namespaces, each watched: (results, events, tables before/after)."""
    with twins() as (a, b):
        before = keys(a), keys(b)
        ct, ct_events = _watched(a, tmp_path, "ct", lambda ns: run_ct(ns, args, input=input))
        py, py_events = _watched(b, tmp_path, "py", lambda ns: run_py(ns, args, input=input))
        assert_same(ct, py)
        assert_same_table(a, b)
        after = keys(a), keys(b)
    return ct, py, ct_events, py_events, before, after


BAD = "-I -p udp -s 10.5.0.1 -d 203.0.113.2 --sport 1 --dport 2 -t 100 -u NOSUCHSTATUS"


@pytest.mark.parametrize("where,source", [("last", "file"), ("middle", "file"), ("last", "stdin")])
def test_load_bad_line_sends_nothing(tmp_path, where, source):
    """30,000 good -I lines and one bad one (last, or in the middle): both exit 2 with the same message,
    neither sends a single create (no event at all between the markers), the table is unchanged."""
    lines = [_line(i) for i in range(30000)]
    lines.insert(len(lines) if where == "last" else len(lines) // 2, BAD)
    text = "\n".join(lines) + "\n"
    path = tmp_path / "batch"
    path.write_text(text)
    args = ["-R", "-"] if source == "stdin" else ["-R", str(path)]
    ct, py, ct_events, py_events, before, after = _both(tmp_path, args,
                                                        input=text if source == "stdin" else None)
    assert ct.returncode == 2 and "NOSUCHSTATUS" in ct.err
    assert ct_events == []
    assert py_events == [], f"pynfct caused {len(py_events)} events, first {py_events[:3]}"
    assert after == before


def test_load_refused_line_runs_the_lines_before_it(tmp_path):
    """A line that parses but that the kernel refuses (an -I of an entry made by an earlier line): the
    lines before it have run and stay, the run stops there with exit 1 and conntrack's message. pynfct
    has sent some later lines in the same batch already; what they made is deleted again, so every
    entry of a later line that shows up is gone by the end."""
    lines = [_line(i) for i in range(60)]     # few: the listener must not lose events
    k = 40
    lines.insert(k, lines[10])
    path = tmp_path / "batch"
    path.write_text("\n".join(lines) + "\n")
    ct, py, ct_events, py_events, before, after = _both(tmp_path, ["-R", str(path)])
    assert ct.returncode == 1 and "Such conntrack exists" in ct.err
    ran = [("NEW", line.split()[4]) for line in lines[:k]]
    assert ct_events == ran
    made = [e for e in py_events if e[0] == "NEW"]
    assert made[:k] == ran
    later = {src for _, src in made[k:]}
    assert later == {src for kind, src in py_events if kind == "DESTROY"}
    assert not later & {line.split()[4] for line in lines[:k]}
    assert len(after[1]) == len(before[1]) + k
