"""create_many() (FlowSpecs built straight into requests, _nfct.spec) makes the table that creating the
same specs one by one with create() (the template path) makes, refusals included."""
import ipaddress
import os
import random

import pynfct
from pynfct import FlowSpec
from fill import enable_labels
from netns import NetNS
from test_write import keys

LABELS = {1: "web", 5: "db", 42: "blue", 127: "top"}
PROTOS = ["tcp", "udp", "udplite", "sctp", "dccp", "gre", "icmp", "icmpv6", 50, 132, 4, 103]
STATES = {"tcp": ["SYN_SENT", "ESTABLISHED", "FIN_WAIT", "TIME_WAIT", "CLOSE"],
          "sctp": ["CLOSED", "COOKIE_WAIT", "ESTABLISHED", "SHUTDOWN_SENT"],
          "dccp": ["REQUEST", "RESPOND", "OPEN", "TIMEWAIT"]}


def _addr(rnd: random.Random, family: int):
    if family == 4:
        ip = ipaddress.IPv4Address(rnd.randrange(0x0A000001, 0x0AFFFFFF))       # 10.0.0.0/8
    else:
        ip = ipaddress.IPv6Address((0x20010DB8 << 96) | rnd.getrandbits(64))
    return rnd.choice([ip, str(ip)])


def mixed_specs(n: int, seed: int):
    """n FlowSpecs of every protocol, both families, one or both directions, with zones, mark, status,
    NAT and labels (names and bits)."""
    rnd = random.Random(seed)
    specs = []
    while len(specs) < n:
        proto = PROTOS[len(specs) % len(PROTOS)]
        if proto == 132 and rnd.random() < 0.5:
            proto = "sctp"
        family = 4 if proto == "icmp" else 6 if proto == "icmpv6" else rnd.choice([4, 6])
        # (the kernel refuses an icmp reply tuple of a request type: few of those)
        direction = rnd.choice(["orig", "both"] * 4 + ["reply"] if "icmp" in str(proto) else ["orig", "reply", "both"])
        f: dict = {}
        names = (["src", "dst"] if direction != "reply" else []) + \
                (["reply_src", "reply_dst"] if direction != "orig" else [])
        for key in names:
            f[key] = _addr(rnd, family)
        if proto in ("tcp", "udp", "udplite", "sctp", 132, "dccp", "gre"):
            pk = ("srckey", "dstkey", "reply_srckey", "reply_dstkey") if proto == "gre" else \
                 ("sport", "dport", "reply_sport", "reply_dport")
            chosen = pk[:2] if direction == "orig" else pk[2:] if direction == "reply" else pk
            for key in chosen:
                f[key] = rnd.randrange(1, 65536)
        name = "sctp" if proto == 132 else proto
        if name in STATES:
            f["state"] = rnd.choice(STATES[name])
        if name == "sctp":
            f["orig_vtag"] = rnd.getrandbits(32)
            f["reply_vtag"] = rnd.getrandbits(32)
        if name == "dccp":
            f["role"] = rnd.choice(["client", "server"])
        if proto in ("icmp", "icmpv6"):
            f["icmp_type"], f["icmp_code"] = rnd.choice([(8, 0), (0, 0), (13, 0)] if proto == "icmp"
                                                         else [(128, 0), (129, 0)])
            f["icmp_id"] = rnd.randrange(65536)
        f["timeout"] = rnd.randrange(1000, 100000)
        if rnd.random() < 0.5:
            f["status"] = rnd.choice([["ASSURED"], ["SEEN_REPLY", "ASSURED"], "FIXED_TIMEOUT"])
        if rnd.random() < 0.5:
            f["mark"] = rnd.getrandbits(32)
        # one zone kind (the kernel refuses most mixes)
        for key in rnd.choice([(), (), (), ("zone",), ("orig_zone",), ("reply_zone",)]):
            f[key] = rnd.randrange(1, 8)
        if direction == "orig":                # NAT needs a reply tuple to differ from the original's inverse
            for key in ("snat", "dnat"):
                if rnd.random() < 0.15:
                    a = _addr(rnd, family)
                    f[key] = (a, rnd.randrange(1, 65536)) if rnd.random() < 0.5 else a
        if rnd.random() < 0.2:
            f["labels"] = rnd.sample([1, 5, 42, 127, "web", "db", "blue", "top"], rnd.randrange(1, 4))
        specs.append(FlowSpec(proto, **f))
    return specs


def test_create_many_makes_the_table_creates_one_by_one_make():
    specs = mixed_specs(1200, seed=7)
    with NetNS(labelmap=LABELS) as ns:
        enable_labels(ns)
        path = os.path.join(ns.etc_dir, "xtables", "connlabel.conf")
        with pynfct.Conntrack(ns.name, labelmap=path) as ct:
            r = ct.create_many(specs)
            many = keys(ns)
            again = ct.create_many(specs, exist_ok=True)      # -A: every entry is there already
            ct.flush()
            refused = []
            for i, spec in enumerate(specs):
                try:
                    ct.create(spec)
                except pynfct.NfctError as e:
                    refused.append(pynfct.Failure(e.errno, i))
            one = keys(ns)
    assert r.failures == refused
    assert int(r) == len(specs) - len(refused) == len(many)
    assert len(refused) < len(specs) // 10, refused[:10]      # a real comparison: most were created
    assert many == one
    assert int(again) == 0 and again.failures == refused
    assert any(" labels=" in k for k in many) and any("zone=" in k for k in many)
    assert {k.split()[2] for k in many} >= {"tcp", "udp", "udplite", "sctp", "dccp", "gre", "icmp", "icmpv6",
                                            "unknown"}
