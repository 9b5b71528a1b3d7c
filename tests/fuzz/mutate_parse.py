"""Feed mutated ctnetlink messages to pynfct's parser and formatters (run inside a namespace).

Usage: python mutate_parse.py SEED COUNT. Dumps the namespace's table with a raw netlink socket, then
flips random bytes of random messages and parses and formats each result in every output form. Prints
"formatted N" at the end. parse_message refuses (ValueError) a message libnetfilter_conntrack would
exit on ("ctnetlink kernel ABI is broken") or read past; a crash shows as death by a signal. The
coverage-guided fuzzer of the same parsers, without a kernel, is tests/fuzz/fuzz_parse.py.
"""
import random
import socket
import struct
import sys

from _nfct.flow import parse_message
from _nfct.format import Format
from pynfct.template import Out

NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET = 1, 1
NLM_F_REQUEST_DUMP = 0x301
NLMSG_ERROR, NLMSG_DONE = 2, 3


def dump_messages():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
    s.bind((0, 0))
    s.send(struct.pack("=IHHII", 20, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, NLM_F_REQUEST_DUMP, 1, 0)
           + bytes(4))
    msgs = []
    while True:
        data = s.recv(65536)
        off = 0
        while off < len(data):
            length, kind = struct.unpack_from("=IH", data, off)
            if kind in (NLMSG_ERROR, NLMSG_DONE):
                return msgs
            msgs.append(data[off:off + length])
            off += (length + 3) & ~3


NLA_F_NESTED = 0x8000


def leaf_payloads(msg: bytes, off: int = 20, end: int = None, out=None):
    """Byte ranges of the values of all leaf attributes (walking nested ones)."""
    out = [] if out is None else out
    end = len(msg) if end is None else end
    while off + 4 <= end:
        length, kind = struct.unpack_from("=HH", msg, off)
        if length < 4 or off + length > end:
            break
        if kind & NLA_F_NESTED:
            leaf_payloads(msg, off + 4, off + length, out)
        elif length > 5:
            out.append((off + 4, off + length - 1))  # keep the last byte: strings end in NUL
        elif length == 5:
            out.append((off + 4, off + 5))
        off += (length + 3) & ~3
    return out


def mutate(rnd: random.Random, msg: bytes) -> bytearray:
    """Mostly values (lengths stay valid, so the parser goes deep); sometimes the structure too."""
    m = bytearray(msg)
    leaves = leaf_payloads(msg)
    if leaves and rnd.random() < 0.97:
        for _ in range(rnd.randint(1, 4)):
            a, b = rnd.choice(leaves)
            m[rnd.randrange(a, b)] = rnd.choice((0, 0xFF, rnd.randrange(256)))
    else:
        for _ in range(rnd.randint(1, 3)):
            m[rnd.randrange(16, len(m))] = rnd.randrange(256)
        if rnd.random() < 0.5:
            m = m[:rnd.randrange(20, len(m) + 1)]
            struct.pack_into("=I", m, 0, len(m))
    return m


def main(seed: int, count: int) -> None:
    msgs = dump_messages()
    assert msgs, "the namespace must hold entries"
    formats = [Format(Out(0)), Format(Out.EXT | Out.ID | Out.KTMS), Format(Out.XML | Out.EXT),
               Format(Out.SAVE), Format(Out.JSON)]
    rnd = random.Random(seed)
    done = 0
    for _ in range(count):
        m = mutate(rnd, rnd.choice(msgs))
        try:
            flow = parse_message(bytes(m))
        except ValueError:
            continue
        for fmt in formats:
            fmt.format(flow)
        str(flow), flow.orig.src, flow.reply.dport, flow.state, flow.labels, flow.as_dict()
        done += 1
        if done % 100 == 0:
            print(f"formatted {done}", flush=True)
    print(f"formatted {done}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
