"""Coverage-guided fuzzing (atheris, libFuzzer) of pynfct's parsers of raw netlink bytes and of every
formatter of what they decode.

An input is one kind byte and the bytes of that kind:
  b"D" + a dump batch: messages as one recv() of a dump returns them   -> _nfct.dump.parse_batch
  b"E" + an event datagram (one or more event messages)                  -> _nfct.events.parse_events
  b"X" + one expectation message                                          -> _nfct.query.parse_expect
(any other first byte picks one of the three by its value). Each decoded entry goes through every output
of the command line and the API: conntrack's text formats (default, extended/id/ktimestamp/labels, xml,
save, json), str(), as_dict(), pickling and Flow.from_dict(); events through str() and as_dict();
expectations through the -L expect/-E expect lines (text and xml) and pynfct.Expectation.

The parsers may refuse bad input only with ValueError (or the dump's OSError for an NLMSG_ERROR);
anything else, a crash or an exit, is a finding. Seeds are real kernel messages from tests/fixtures/
(written by ``--seeds DIR``) and the inputs of past findings in tests/fuzz/regressions/.

    python tests/fuzz/fuzz_parse.py --seeds /tmp/corpus        # write the seeds
    python tests/fuzz/fuzz_parse.py -max_total_time=600 /tmp/corpus tests/fuzz/regressions
    python tests/fuzz/fuzz_parse.py --run /tmp/corpus tests/fuzz/regressions   # each input once, no atheris

(docs/reliability.md: the short run in the test suite, the long run, and the AddressSanitizer build.)
"""
from __future__ import annotations

import json
import os
import pickle
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), "fixtures")
REGRESSIONS = os.path.join(HERE, "regressions")
KINDS = b"DEX"
PLANT = os.environ.get("PYNFCT_FUZZ_PLANT") == "1"


def seeds() -> dict:
    """{name: input} from the recorded kernel messages: dump batches of up to 16 entries, event datagrams
    of up to 4 events, each expectation alone."""
    out = {}
    with open(os.path.join(FIXTURES, "conntrack-dump.json")) as f:
        dump = json.load(f)
    with open(os.path.join(FIXTURES, "conntrack-events.json")) as f:
        events = json.load(f)
    msgs = [bytes.fromhex(m) for m in dump["messages"]]
    for i in range(0, len(msgs), 16):
        out[f"dump-{i:03d}"] = b"D" + b"".join(_aligned(m) for m in msgs[i:i + 16])
    evs = [bytes.fromhex(m) for m in events["messages"]]
    for i in range(0, len(evs), 4):
        out[f"events-{i:03d}"] = b"E" + b"".join(_aligned(m) for m in evs[i:i + 4])
    path = os.path.join(FIXTURES, "conntrack-expect.json")
    if os.path.exists(path):
        with open(path) as f:
            for i, m in enumerate(json.load(f)["messages"]):
                out[f"expect-{i:03d}"] = b"X" + bytes.fromhex(m)
    return out


def _aligned(m: bytes) -> bytes:
    return m + bytes(-len(m) % 4)


def write_seeds(directory: str) -> int:
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    return len(os.listdir(directory))


class Target:
    """What one input goes through (made once: formats and a label map)."""

    def __init__(self) -> None:
        from _nfct.format import Format, LabelMap
        from pynfct.template import Out
        with open(os.path.join(FIXTURES, "conntrack-dump.json")) as f:
            labelmap_text = json.load(f)["labelmap"]
        fd, path = tempfile.mkstemp(prefix="pynfct-fuzz-connlabel.")
        with os.fdopen(fd, "w") as f:
            f.write(labelmap_text)
        self.labelmap = LabelMap(path)
        os.unlink(path)
        every = Out.EXT | Out.ID | Out.KTMS
        self.formats = [Format(Out(0)), Format(every, self.labelmap, True), Format(Out.SAVE), Format(Out.CL),
                        Format(Out.XML | every, self.labelmap, True), Format(Out.JSON | every, self.labelmap, True)]

    def __call__(self, data: bytes) -> None:
        from _nfct.dump import parse_batch
        from _nfct.events import T_DESTROY, T_NEW, T_UPDATE, parse_events
        from _nfct.query import parse_expect
        if not data:
            return
        kind, body = data[0], data[1:]
        if kind not in KINDS:
            kind = KINDS[kind % 3]
        try:
            if kind == ord("D"):
                decoded = parse_batch(body)
            elif kind == ord("E"):
                decoded = parse_events(body)
            else:
                decoded = [parse_expect(body)]
        except ValueError:
            return
        except OSError:
            if kind != ord("D"):
                raise
            return
        if decoded and PLANT:
            import ctypes
            ctypes.string_at(0)     # the test that a crash fails the run (tests/unit/test_fuzz_parse.py)
        for item in decoded:
            if kind == ord("D"):
                self.flow(item, (0, T_NEW))
            elif kind == ord("E"):
                self.flow(item.flow, (item.type, T_UPDATE, T_DESTROY))
                str(item), repr(item)
                assert json.loads(json.dumps(item.as_dict())) == item.as_dict()
            else:
                self.expectation(body, item)

    def flow(self, flow, msg_types) -> None:
        from _nfct.flow import Flow
        for fmt in self.formats:
            for t in msg_types:
                fmt.format(flow, t)
        str(flow), repr(flow), hash(flow), flow.key, flow.state, flow.role, flow.status, flow.labels
        for t in (flow.orig, flow.reply):
            repr(t), t.icmp_type, t.icmp_code, t.icmp_id, t.vtag, t.zone, t.packets, t.bytes
        d = flow.as_dict()
        assert json.loads(json.dumps(d)) == d
        again = pickle.loads(pickle.dumps(flow))
        assert again == flow, (flow, again)
        try:
            built = Flow.from_dict(d)
        except (TypeError, ValueError):
            return            # from_dict() takes only what docs/json.md allows; a crafted entry may not be
        assert built == flow, (d, built.as_dict())

    def expectation(self, body: bytes, rec) -> None:
        from _nfct.events import T_DESTROY, T_NEW, T_UPDATE
        from _nfct.query import format_expect
        from pynfct.expect import Expectation
        for xml in (False, True):
            for t in (0, T_NEW, T_UPDATE, T_DESTROY):
                format_expect(body, xml, t)
        e = Expectation.from_record(rec)
        e.family, e.proto, repr(e)
        for f in (e.master, e.tuple, e.mask):
            if f is not None:
                self.flow(f, (0,))


def run_files(paths) -> int:
    """Each input of these files or directories through the target once, without atheris (the ASan
    build runs the corpus so); returns how many."""
    target = Target()
    n = 0
    for path in paths:
        names = sorted(os.path.join(path, f) for f in os.listdir(path)) if os.path.isdir(path) else [path]
        for name in names:
            with open(name, "rb") as f:
                target(f.read())
            n += 1
    return n


def main(argv) -> None:
    if len(argv) == 3 and argv[1] == "--seeds":
        print(f"{write_seeds(argv[2])} seeds in {argv[2]}")
        return
    if len(argv) >= 2 and argv[1] == "--run":
        print(f"ran {run_files(argv[2:])} inputs")
        return
    import atheris
    # Coverage of the Python side: this target and the pynfct code it runs. The extension is C, whose
    # branches libFuzzer sees only where they change what the target does in Python (see the docs).
    with atheris.instrument_imports(include=["pynfct"]):
        import pynfct.expect  # noqa: F401
    for cls in (Target,):
        for name, fn in list(vars(cls).items()):
            if callable(fn):
                setattr(cls, name, atheris.instrument_func(fn))
    target = Target()
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
