"""Create, update and delete conntrack entries from a long-lived netlink socket (the event tests' writer).

``conntrack -I/-U/-D`` exits right after its request, so whether ``conntrack -E`` finds the program
behind an event's port id (``[USERSPACE] portid=N progname=conntrack``) depends on how fast it reads.
The event tests need both listeners to see the same thing, so they change the table through this
writer instead: one ctnetlink socket, created inside the test namespace by this process and kept open
for the whole test, so every listener finds the same owner. Plain ctnetlink requests, no library.

    with CtWriter(ns.name) as w:
        w.create("tcp", "10.0.0.1", "10.0.0.2", 1000, 80, state="ESTABLISHED", status=SEEN_REPLY | ASSURED)
        w.update("tcp", "10.0.0.1", "10.0.0.2", 1000, 80, mark=42)
        w.delete("tcp", "10.0.0.1", "10.0.0.2", 1000, 80)
        w.flush()
"""
from __future__ import annotations

import ctypes
import os
import socket
import struct
from typing import Optional

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW, IPCTNL_MSG_CT_DELETE = 0, 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000
CLONE_NEWNET = 0x40000000

CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_PROTOINFO, CTA_TIMEOUT, CTA_MARK, CTA_ZONE = 1, 2, 3, 4, 7, 8, 18
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE = 4, 5, 6
CTA_PROTOINFO_TCP, CTA_PROTOINFO_TCP_STATE = 1, 1

SEEN_REPLY, ASSURED, CONFIRMED = 1 << 1, 1 << 2, 1 << 3
PROTOS = {"tcp": 6, "udp": 17, "icmp": 1}
TCP_STATES = {"NONE": 0, "SYN_SENT": 1, "SYN_RECV": 2, "ESTABLISHED": 3, "FIN_WAIT": 4, "CLOSE_WAIT": 5,
              "LAST_ACK": 6, "TIME_WAIT": 7, "CLOSE": 8}

_libc = ctypes.CDLL(None, use_errno=True)


def _attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _nest(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _tuple(kind: int, proto: str, src: str, dst: str, sport: int, dport: int, reply: bool) -> bytes:
    fam = _family(src)
    base = 1 if fam == socket.AF_INET else 3          # CTA_IP_V4_SRC or CTA_IP_V6_SRC
    ip = _nest(CTA_TUPLE_IP, _attr(base, socket.inet_pton(fam, src)), _attr(base + 1, socket.inet_pton(fam, dst)))
    num = PROTOS[proto]
    l4 = [_attr(CTA_PROTO_NUM, bytes([num]))]
    if proto == "icmp":
        # sport is the id, dport the type (echo request 8; the reply direction answers with 0)
        l4 += [_attr(CTA_PROTO_ICMP_ID, struct.pack("!H", sport)),
               _attr(CTA_PROTO_ICMP_TYPE, bytes([0 if reply else dport])), _attr(CTA_PROTO_ICMP_CODE, b"\0")]
    else:
        l4 += [_attr(CTA_PROTO_SRC_PORT, struct.pack("!H", sport)), _attr(CTA_PROTO_DST_PORT, struct.pack("!H", dport))]
    return _nest(kind, ip, _nest(CTA_TUPLE_PROTO, *l4))


class CtWriterError(OSError):
    pass


class CtWriter:
    """A ctnetlink socket inside network namespace ``netns`` (a name under /run/netns)."""

    def __init__(self, netns: str) -> None:
        self.seq = 0
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(os.path.join("/run/netns", netns), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise CtWriterError(ctypes.get_errno(), "setns")
            try:
                self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
                self.sock.bind((0, 0))
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    raise CtWriterError(ctypes.get_errno(), "setns back")
        finally:
            os.close(own)
            os.close(target)
        self.portid = self.sock.getsockname()[0]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "CtWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, msg: int, flags: int, family: int, attrs: bytes) -> None:
        self.seq += 1
        payload = struct.pack("=BBH", family, 0, 0) + attrs
        hdr = struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_CTNETLINK << 8) | msg,
                          NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0)
        self.sock.send(hdr + payload)
        while True:
            data = self.sock.recv(65536)
            length, kind, _, seq, _ = struct.unpack_from("=IHHII", data)
            if kind == NLMSG_ERROR and seq == self.seq:
                err = struct.unpack_from("=i", data, 16)[0]
                if err:
                    raise CtWriterError(-err, os.strerror(-err))
                return

    def _entry(self, proto: str, src: str, dst: str, sport: int, dport: int, reply_src: Optional[str],
               reply_dst: Optional[str], reply_sport: Optional[int], reply_dport: Optional[int]) -> bytes:
        orig = _tuple(CTA_TUPLE_ORIG, proto, src, dst, sport, dport, False)
        reply = _tuple(CTA_TUPLE_REPLY, proto, reply_src or dst, reply_dst or src,
                       sport if proto == "icmp" else (reply_sport or dport),
                       dport if proto == "icmp" else (reply_dport or sport), True)
        return orig + reply

    def create(self, proto: str, src: str, dst: str, sport: int, dport: int, *, timeout: int = 1000,
               state: Optional[str] = None, status: int = 0, mark: Optional[int] = None,
               zone: Optional[int] = None, reply_src: Optional[str] = None, reply_dst: Optional[str] = None,
               reply_sport: Optional[int] = None, reply_dport: Optional[int] = None) -> None:
        """``conntrack -I``: for icmp, sport is the id and dport the type."""
        attrs = self._entry(proto, src, dst, sport, dport, reply_src, reply_dst, reply_sport, reply_dport)
        # CONFIRMED as libnetfilter_conntrack sends it: the kernel refuses to change that bit (EBUSY).
        attrs += _attr(CTA_TIMEOUT, struct.pack("!I", timeout)) + _attr(CTA_STATUS, struct.pack("!I", status | CONFIRMED))
        if state is not None:
            attrs += _nest(CTA_PROTOINFO, _nest(CTA_PROTOINFO_TCP,
                                                _attr(CTA_PROTOINFO_TCP_STATE, bytes([TCP_STATES[state]]))))
        if mark is not None:
            attrs += _attr(CTA_MARK, struct.pack("!I", mark))
        if zone is not None:
            attrs += _attr(CTA_ZONE, struct.pack("!H", zone))
        self._request(IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL, _family(src), attrs)

    def update(self, proto: str, src: str, dst: str, sport: int, dport: int, *, zone: Optional[int] = None,
               mark: Optional[int] = None, state: Optional[str] = None, status: Optional[int] = None,
               timeout: Optional[int] = None) -> None:
        """``conntrack -U`` of the entry with this original tuple."""
        attrs = _tuple(CTA_TUPLE_ORIG, proto, src, dst, sport, dport, False)
        if zone is not None:
            attrs += _attr(CTA_ZONE, struct.pack("!H", zone))
        if mark is not None:
            attrs += _attr(CTA_MARK, struct.pack("!I", mark))
        if status is not None:
            attrs += _attr(CTA_STATUS, struct.pack("!I", status | CONFIRMED))
        if timeout is not None:
            attrs += _attr(CTA_TIMEOUT, struct.pack("!I", timeout))
        if state is not None:
            attrs += _nest(CTA_PROTOINFO, _nest(CTA_PROTOINFO_TCP,
                                                _attr(CTA_PROTOINFO_TCP_STATE, bytes([TCP_STATES[state]]))))
        self._request(IPCTNL_MSG_CT_NEW, 0, _family(src), attrs)

    def delete(self, proto: str, src: str, dst: str, sport: int, dport: int, *, zone: Optional[int] = None) -> None:
        attrs = _tuple(CTA_TUPLE_ORIG, proto, src, dst, sport, dport, False)
        if zone is not None:
            attrs += _attr(CTA_ZONE, struct.pack("!H", zone))
        self._request(IPCTNL_MSG_CT_DELETE, 0, _family(src), attrs)

    def flush(self) -> None:
        """``conntrack -F``: every entry of every family."""
        self._request(IPCTNL_MSG_CT_DELETE, 0, socket.AF_UNSPEC, b"")
