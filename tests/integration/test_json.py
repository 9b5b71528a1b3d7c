"""-o json: one object per line, the same entries in the same order as conntrack -L, fields that agree."""
import json
import re

from differential import _pynfct_env, pynfct_argv, run


def _kv(line):
    """conntrack's key=value pairs of each direction, plus the bracketed flags."""
    return re.findall(r"(\w[\w-]*)=(\S+)", line), re.findall(r"\[(\w+)\]", line)


def test_json_matches_conntrack(filled_ns):
    ct = run(filled_ns, ["conntrack", "-L", "-o", "id"])
    py = run(filled_ns, [*pynfct_argv(), "-L", "-o", "json"], env=_pynfct_env())
    assert ct.returncode == py.returncode == 0
    ct_lines = ct.out.splitlines()
    objs = [json.loads(line) for line in py.out.splitlines()]
    assert len(objs) == len(ct_lines) > 50
    assert py.err.endswith(f"{len(objs)} flow entries have been shown.\n")
    for line, o in zip(ct_lines, objs):
        pairs, flags = _kv(line)
        fields = line.split()
        assert o["proto"] == fields[0] and o["protonum"] == int(fields[1])
        assert abs(o["timeout"] - int(fields[2])) <= 2
        srcs = [v for k, v in pairs if k == "src"]
        dsts = [v for k, v in pairs if k == "dst"]
        assert [o["orig"]["src"], o["reply"]["src"]] == srcs and [o["orig"]["dst"], o["reply"]["dst"]] == dsts
        sports = [int(v) for k, v in pairs if k == "sport"]
        if sports:
            # conntrack prints sport=0 dport=0 for protocols whose ports the kernel did not send
            # (DCCP without a DCCP tracker); JSON leaves absent fields out.
            assert [o["orig"].get("sport", 0), o["reply"].get("sport", 0)] == sports
        packets = [int(v) for k, v in pairs if k == "packets"]
        if packets:
            assert [o["orig"]["packets"], o["reply"]["packets"]] == packets
        d = dict(pairs)
        assert o["mark"] == int(d["mark"]) and o["use"] == int(d["use"]) and o["id"] == int(d["id"])
        if "zone" in d:
            assert o["zone"] == int(d["zone"])
        assert ("UNREPLIED" in flags) == ("SEEN_REPLY" not in o["status"])
        assert ("ASSURED" in flags) <= ("ASSURED" in o["status"])
        if o["proto"] == "tcp":
            assert o["state"] == fields[3]
        if "labels" in o:
            assert all(isinstance(x, (int, str)) for x in o["labels"])
