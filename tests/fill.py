"""Deterministic ways to fill a test namespace's conntrack table.

* :func:`fill_synthetic` -- entries created with ``conntrack -I`` (batched through ``conntrack -R -``):
  every protocol conntrack knows, TCP/SCTP/DCCP states, marks, status bits, zones, NAT'd reply tuples,
  labels.  The created entries are returned (as conntrack argv) so tests can compute expectations.
* :func:`fill_traffic` -- real loopback traffic (TCP, UDP, ICMP, ICMPv6 over IPv4 and IPv6) tracked by an
  nft ruleset, with accounting and timestamps on; some TCP connections stay open until teardown.
* :func:`fill_nat` -- real loopback traffic NAT'd by the kernel (an nft ``nat`` table: DNAT, redirect, SNAT,
  SNAT to ADDR:PORT, DNAT+SNAT; IPv4 and IPv6), so entries carry the IPS_*_NAT status bits that
  ``conntrack --src-nat/--dst-nat/--any-nat`` test (``conntrack -I -r/-q`` cannot set them).
* :func:`fill_bulk` -- ``n`` distinct entries, fast, for bulk tests.
* :func:`fill_big` -- a big mixed table (50,000+ entries by default): every protocol, TCP/SCTP states,
  status bits, marks, zones, NAT'd reply tuples and labels from :func:`big_entry_argv`, plus fill_nat's
  real NAT and a burst of real SNAT'd and DNAT'd UDP flows.

All functions take a :class:`tests.netns.NetNS` and never touch the host namespace.  Nothing here relies
on time passing: synthetic entries get long timeouts, and fill_traffic raises the namespace's protocol
timeouts so that closed connections (TIME_WAIT, CLOSE) and UDP/ICMP flows do not expire during a test
module, and it returns only once no packet is in flight any more (counters stopped moving).
"""
from __future__ import annotations

import os
import select
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

try:
    from .netns import NetNS, NetNSError
except ImportError:  # imported as a top-level module (tests/ on sys.path)
    from netns import NetNS, NetNSError  # type: ignore

__all__ = [
    "DEFAULT_LABELMAP", "Entry", "FillError", "SyntheticFill", "TrafficFill", "Flow", "BulkFill",
    "NatFill", "NatFlow", "NAT_FLOWS", "synthetic_entries", "fill_synthetic", "fill_traffic", "fill_nat",
    "fill_bulk", "bulk_entry_argv", "enable_labels", "wait_quiescent", "big_entry_argv", "fill_big", "BigFill",
]


class FillError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------------
# synthetic entries
# ---------------------------------------------------------------------------------------------------

TIMEOUT = 100000  # seconds; most synthetic entries
#: bit -> name; used for the namespace's /etc/xtables/connlabel.conf when it has none of its own.
DEFAULT_LABELMAP: Dict[int, str] = {0: "pynfct-l0", 1: "pynfct-l1", 5: "pynfct-l5", 31: "pynfct-l31",
                                    63: "pynfct-l63", 64: "pynfct-l64", 127: "pynfct-l127"}
LABELS_TABLE = "pynfct_labels"

_PROTONUM = {"tcp": 6, "udp": 17, "udplite": 136, "icmp": 1, "icmpv6": 58, "sctp": 132, "dccp": 33,
             "gre": 47}


@dataclass(frozen=True)
class Entry:
    """One synthetic entry: ``conntrack *argv`` creates it (argv starts with ``-I``)."""

    name: str                     # unique, e.g. "tcp4-ESTABLISHED"
    argv: Tuple[str, ...]
    optional: bool = False        # the kernel/conntrack may refuse it; a refusal is recorded, not fatal
    needs_labels: bool = False

    def opt(self, *names: str) -> Optional[str]:
        """Value of the first of ``names`` (e.g. ``"-m", "--mark"``) in argv, or None."""
        a = self.argv
        for i, x in enumerate(a[:-1]):
            if x in names:
                return a[i + 1]
        return None

    @property
    def proto(self) -> str:
        """conntrack's protocol name as printed: tcp, udp, ..., or ``unknown`` for a bare number."""
        p = self.opt("-p", "--protonum")
        return "unknown" if p.isdigit() else p

    @property
    def protonum(self) -> int:
        p = self.opt("-p", "--protonum")
        return int(p) if p.isdigit() else _PROTONUM[p]

    @property
    def family(self) -> str:
        return "ipv6" if ":" in self.opt("-s", "--src", "--orig-src") else "ipv4"

    @property
    def src(self) -> str:
        return self.opt("-s", "--src", "--orig-src")

    @property
    def dst(self) -> str:
        return self.opt("-d", "--dst", "--orig-dst")

    @property
    def state(self) -> Optional[str]:
        return self.opt("--state")

    @property
    def mark(self) -> int:
        m = self.opt("-m", "--mark")
        return int(m, 0) if m else 0

    @property
    def status(self) -> Tuple[str, ...]:
        u = self.opt("-u", "--status")
        return tuple(u.split(",")) if u else ()

    @property
    def zone(self) -> Optional[int]:
        z = self.opt("-w", "--zone")
        return int(z) if z else None

    @property
    def labels(self) -> Tuple[str, ...]:
        v = self.opt("--label-add")
        return tuple(v.split(",")) if v else ()

    @property
    def nat(self) -> bool:
        """True when the reply tuple is not the inverted original (given with -r/-q/--reply-port-*)."""
        return any(x in self.argv for x in ("-r", "-q", "--reply-src", "--reply-dst",
                                             "--reply-port-src", "--reply-port-dst"))

    @property
    def line(self) -> str:
        return " ".join(self.argv)


def _e(name: str, *argv: str, optional: bool = False, timeout: int = TIMEOUT) -> Entry:
    labels = "--label-add" in argv
    return Entry(name, ("-I", *argv, "-t", str(timeout)), optional=optional or labels, needs_labels=labels)


def synthetic_entries(labels: bool = True) -> List[Entry]:
    """The entries :func:`fill_synthetic` creates, in creation order (without label entries if not labels).

    Address plan: IPv4 TEST-NET ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, IPv6 2001:db8::/32.
    Every original and every reply tuple is distinct (the kernel refuses clashes).
    """
    E: List[Entry] = []
    add = E.append

    # TCP, every state conntrack -I accepts; IPv4 192.0.2.1:40000+ -> 198.51.100.1:80
    tcp_states = [("SYN_SENT", None), ("SYN_RECV", "SEEN_REPLY"), ("ESTABLISHED", "SEEN_REPLY,ASSURED"),
                  ("FIN_WAIT", "SEEN_REPLY,ASSURED"), ("CLOSE_WAIT", "SEEN_REPLY,ASSURED"),
                  ("LAST_ACK", "SEEN_REPLY,ASSURED"), ("TIME_WAIT", "SEEN_REPLY,ASSURED"),
                  ("CLOSE", "SEEN_REPLY"), ("SYN_SENT2", None), ("NONE", None)]
    for i, (st, status) in enumerate(tcp_states):
        argv = ["-p", "tcp", "-s", "192.0.2.1", "-d", "198.51.100.1", "--sport", str(40000 + i),
                "--dport", "80", "--state", st]
        if status:
            argv += ["-u", status]
        add(_e(f"tcp4-{st}", *argv, optional=st in ("SYN_SENT2", "NONE")))
    # TCP over IPv6, and formatting variety for the timeout column
    add(_e("tcp6-ESTABLISHED", "-p", "tcp", "-s", "2001:db8::1", "-d", "2001:db8::2", "--sport", "40000",
           "--dport", "443", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-m", "1"))
    add(_e("tcp6-SYN_SENT", "-p", "tcp", "-s", "2001:db8::1", "-d", "2001:db8::2", "--sport", "40001",
           "--dport", "443", "--state", "SYN_SENT"))
    add(_e("tcp6-TIME_WAIT", "-p", "tcp", "-s", "2001:db8::1", "-d", "2001:db8:1::2", "--sport", "40002",
           "--dport", "22", "--state", "TIME_WAIT", "-u", "SEEN_REPLY,ASSURED", timeout=10000))
    add(_e("tcp4-ESTABLISHED-long", "-p", "tcp", "-s", "192.0.2.2", "-d", "198.51.100.1", "--sport", "40000",
           "--dport", "80", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", timeout=1000000))

    # UDP: status bits and marks
    udp_variants = [("udp4-unreplied", None, None), ("udp4-seen-reply", "SEEN_REPLY", None),
                    ("udp4-assured", "SEEN_REPLY,ASSURED", None), ("udp4-assured-only", "ASSURED", None),
                    ("udp4-status-unset", "UNSET", None), ("udp4-mark-1", None, "1"),
                    ("udp4-mark-42", "SEEN_REPLY", "42"), ("udp4-mark-0x80000000", None, "0x80000000"),
                    ("udp4-mark-max", "SEEN_REPLY,ASSURED", "0xffffffff")]
    for i, (name, status, mark) in enumerate(udp_variants):
        argv = ["-p", "udp", "-s", "192.0.2.10", "-d", "198.51.100.2", "--sport", str(50000 + i), "--dport", "53"]
        if status:
            argv += ["-u", status]
        if mark:
            argv += ["-m", mark]
        add(_e(name, *argv))
    add(_e("udp6-unreplied", "-p", "udp", "-s", "2001:db8::10", "-d", "2001:db8::53", "--sport", "50000",
           "--dport", "53"))
    add(_e("udp6-assured", "-p", "udp", "-s", "2001:db8::10", "-d", "2001:db8::53", "--sport", "50001",
           "--dport", "53", "-u", "SEEN_REPLY,ASSURED", "-m", "7", timeout=10000))
    add(_e("udplite4", "-p", "udplite", "-s", "192.0.2.11", "-d", "198.51.100.3", "--sport", "5000",
           "--dport", "5001"))
    add(_e("udplite6", "-p", "udplite", "-s", "2001:db8::11", "-d", "2001:db8::12", "--sport", "5000",
           "--dport", "5001", "-u", "SEEN_REPLY"))

    # ICMP / ICMPv6 (only query types have an inverse the kernel accepts)
    for typ, ident in ((8, 1), (8, 65535), (13, 2), (15, 3), (17, 4)):
        add(_e(f"icmp-{typ}-{ident}", "-p", "icmp", "-s", "192.0.2.20", "-d", "198.51.100.4",
               "--icmp-type", str(typ), "--icmp-code", "0", "--icmp-id", str(ident)))
    add(_e("icmp-echo-seen-reply", "-p", "icmp", "-s", "192.0.2.21", "-d", "198.51.100.4", "--icmp-type", "8",
           "--icmp-code", "0", "--icmp-id", "4660", "-u", "SEEN_REPLY", "-m", "3"))
    for typ, ident in ((128, 1), (128, 65535), (139, 5)):
        add(_e(f"icmpv6-{typ}-{ident}", "-p", "icmpv6", "-s", "2001:db8::20", "-d", "2001:db8::21",
               "--icmpv6-type", str(typ), "--icmpv6-code", "0", "--icmpv6-id", str(ident)))

    # SCTP: states and verification tags (HEARTBEAT_SENT/HEARTBEAT_ACKED make conntrack 1.4.7 segfault)
    sctp_states = ["CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_SENT", "SHUTDOWN_RECD",
                   "SHUTDOWN_ACK_SENT", "NONE"]
    for i, st in enumerate(sctp_states):
        add(_e(f"sctp4-{st}", "-p", "sctp", "-s", "192.0.2.30", "-d", "198.51.100.5", "--sport", str(3000 + i),
               "--dport", "3868", "--state", st, "--orig-vtag", str(0x1000 + i), "--reply-vtag", str(0x2000 + i),
               optional=st == "NONE"))
    add(_e("sctp6-ESTABLISHED", "-p", "sctp", "-s", "2001:db8::30", "-d", "2001:db8::31", "--sport", "3000",
           "--dport", "3868", "--state", "ESTABLISHED", "--orig-vtag", "0xdeadbeef", "--reply-vtag", "1",
           "-u", "SEEN_REPLY,ASSURED"))

    # DCCP: states and roles.  Optional: kernels without DCCP conntrack (>= 6.16) keep them as generic
    # protocol 33 entries without ports or state -- each gets its own addresses so those do not clash.
    dccp = [("REQUEST", "CLIENT"), ("RESPOND", "SERVER"), ("PARTOPEN", "CLIENT"), ("OPEN", "CLIENT"),
            ("OPEN", "SERVER"), ("CLOSEREQ", "SERVER"), ("CLOSING", "CLIENT"), ("TIMEWAIT", "CLIENT")]
    for i, (st, role) in enumerate(dccp):
        add(_e(f"dccp4-{st}-{role}", "-p", "dccp", "-s", f"192.0.2.{40 + i}", "-d", "198.51.100.6",
               "--sport", str(4000 + i), "--dport", "5004", "--state", st, "--role", role, optional=True))
    add(_e("dccp6-OPEN", "-p", "dccp", "-s", "2001:db8::40", "-d", "2001:db8::41", "--sport", "4000",
           "--dport", "5004", "--state", "OPEN", "--role", "SERVER", optional=True))

    # GRE with keys
    add(_e("gre4", "-p", "gre", "-s", "192.0.2.50", "-d", "198.51.100.7", "--srckey", "0x1234",
           "--dstkey", "0x5678"))
    add(_e("gre4-key0", "-p", "gre", "-s", "192.0.2.51", "-d", "198.51.100.7", "--srckey", "0",
           "--dstkey", "0xffff", "-u", "SEEN_REPLY"))
    add(_e("gre6", "-p", "gre", "-s", "2001:db8::50", "-d", "2001:db8::51", "--srckey", "1", "--dstkey", "2"))

    # protocols conntrack has no name for (generic tracker)
    add(_e("proto99", "-p", "99", "-s", "192.0.2.60", "-d", "198.51.100.8"))
    add(_e("proto253", "-p", "253", "-s", "192.0.2.61", "-d", "198.51.100.8", "-m", "5"))
    add(_e("proto254-v6", "-p", "254", "-s", "2001:db8::60", "-d", "2001:db8::61"))

    # zones: the same tuple in the default zone, zones 1 and 65535, and directional zones
    zt = ["-p", "udp", "-s", "192.0.2.70", "-d", "198.51.100.9", "--sport", "1000", "--dport", "2000"]
    add(_e("zone-none", *zt))
    add(_e("zone-1", *zt, "-w", "1"))
    add(_e("zone-65535", *zt, "-w", "65535", "-u", "SEEN_REPLY"))
    # a directional zone leaves the other direction in zone 0, so these need their own tuples
    add(_e("zone-orig-2", *zt[:6], "--sport", "1001", "--dport", "2000", "--orig-zone", "2"))
    add(_e("zone-reply-3", *zt[:6], "--sport", "1002", "--dport", "2000", "--reply-zone", "3"))
    add(_e("zone-7-tcp", "-p", "tcp", "-s", "192.0.2.71", "-d", "198.51.100.9", "--sport", "1000", "--dport", "22",
           "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-w", "7", "-m", "0x2a"))

    # NAT: reply tuple differs from the inverted original
    add(_e("snat4", "-p", "tcp", "-s", "10.0.0.1", "-d", "203.0.113.1", "--sport", "33000", "--dport", "80",
           "-r", "203.0.113.1", "-q", "198.51.100.100", "--reply-port-src", "80", "--reply-port-dst", "33000",
           "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED"))
    add(_e("snat4-port", "-p", "udp", "-s", "10.0.0.1", "-d", "203.0.113.1", "--sport", "33001", "--dport", "53",
           "-r", "203.0.113.1", "-q", "198.51.100.100", "--reply-port-src", "53", "--reply-port-dst", "61000"))
    add(_e("dnat4", "-p", "tcp", "-s", "203.0.113.2", "-d", "198.51.100.100", "--sport", "33002", "--dport", "80",
           "-r", "10.0.0.2", "-q", "203.0.113.2", "--reply-port-src", "8080", "--reply-port-dst", "33002",
           "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-m", "2"))
    add(_e("dnat4-udp", "-p", "udp", "-s", "203.0.113.2", "-d", "198.51.100.100", "--sport", "33003",
           "--dport", "53", "-r", "10.0.0.53", "-q", "203.0.113.2", "--reply-port-src", "53",
           "--reply-port-dst", "33003"))
    add(_e("snat-dnat4", "-p", "tcp", "-s", "10.0.0.3", "-d", "198.51.100.101", "--sport", "33004",
           "--dport", "443", "-r", "10.1.0.3", "-q", "198.51.100.102", "--reply-port-src", "8443",
           "--reply-port-dst", "20000", "--state", "SYN_RECV", "-u", "SEEN_REPLY"))
    add(_e("snat6", "-p", "tcp", "-s", "fd00::1", "-d", "2001:db8:2::1", "--sport", "33000", "--dport", "80",
           "-r", "2001:db8:2::1", "-q", "2001:db8:3::1", "--reply-port-src", "80", "--reply-port-dst", "33000",
           "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED"))
    # (no NAT'd ICMP: with -r/-q conntrack 1.4.7 sends no reply ICMP type/id and the kernel says EINVAL)

    # everything at once: NAT + zone + mark + status (+ label below)
    add(_e("combo", "-p", "tcp", "-s", "10.0.0.5", "-d", "203.0.113.5", "--sport", "34000", "--dport", "25",
           "-r", "203.0.113.5", "-q", "198.51.100.105", "--reply-port-src", "25", "--reply-port-dst", "34001",
           "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-w", "9", "-m", "0xdeadbeef"))

    if labels:
        add(_e("label-one", "-p", "udp", "-s", "192.0.2.80", "-d", "198.51.100.10", "--sport", "1", "--dport", "2",
               "--label-add", "pynfct-l1"))
        add(_e("label-many", "-p", "udp", "-s", "192.0.2.80", "-d", "198.51.100.10", "--sport", "3", "--dport", "4",
               "--label-add", "pynfct-l0,pynfct-l5,pynfct-l31,pynfct-l64", "-m", "9"))
        add(_e("label-last", "-p", "tcp", "-s", "2001:db8::80", "-d", "2001:db8::81", "--sport", "1", "--dport", "2",
               "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "--label-add", "pynfct-l63,pynfct-l127"))
        add(_e("label-combo", "-p", "tcp", "-s", "10.0.0.6", "-d", "203.0.113.6", "--sport", "34000", "--dport", "25",
               "-r", "203.0.113.6", "-q", "198.51.100.106", "--reply-port-src", "25", "--reply-port-dst", "34002",
               "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-w", "9", "-m", "1",
               "--label-add", "pynfct-l1,pynfct-l127"))
    names = [e.name for e in E]
    assert len(names) == len(set(names)), "duplicate entry names"
    return E


@dataclass
class SyntheticFill:
    """What :func:`fill_synthetic` created (``entries``) and what was refused (``refused``)."""

    entries: List[Entry]
    refused: List[Tuple[Entry, str]] = field(default_factory=list)  # (entry, conntrack's stderr or reason)
    labels_enabled: bool = False
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.entries)

    def by_name(self, name: str) -> Entry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    def where(self, **attrs) -> List[Entry]:
        """Entries whose attributes equal the given values, e.g. ``where(proto="tcp", family="ipv6")``."""
        return [e for e in self.entries if all(getattr(e, k) == v for k, v in attrs.items())]

    @property
    def protocols(self) -> set:
        return {e.proto for e in self.entries}


def enable_labels(ns: NetNS) -> None:
    """Make the kernel give new conntrack entries of ``ns`` room for labels.

    The kernel only attaches the labels extension to entries created while something in the namespace
    uses labels (an nft rule with ``ct label``, or xt_connlabel).  Without it ``conntrack -I --label-add``
    succeeds but stores no labels, and ``-U --label-add`` fails with ENOSPC.  The table stays loaded for
    the namespace's lifetime.  Idempotent.
    """
    r = ns.run(["nft", "list", "table", "inet", LABELS_TABLE])
    if r.returncode == 0:
        return
    ns.nft(f"""
table inet {LABELS_TABLE} {{
    chain labels {{
        type filter hook prerouting priority 0; policy accept;
        ct label 127 counter
    }}
}}
""")


def _run_batch(ns: NetNS, entries: Sequence[Entry]) -> None:
    if not entries:
        return
    before = ns.ct_count()
    data = "".join(e.line + "\n" for e in entries)
    r = ns.conntrack("-R", "-", input=data)
    if r.returncode != 0:
        # conntrack -R stops at the first failing line; the entries before it were created.
        done = ns.ct_count() - before
        bad = entries[done] if 0 <= done < len(entries) else None
        raise FillError(f"conntrack -R failed ({r.returncode}) at line {done + 1}: "
                        f"{bad.line if bad else '?'}\n{r.stderr.decode(errors='replace')}")


def fill_synthetic(ns: NetNS, labels: bool = True, entries: Optional[Sequence[Entry]] = None) -> SyntheticFill:
    """Fill ``ns`` with the synthetic entries of :func:`synthetic_entries` and return what was created.

    Contents (see :func:`synthetic_entries` for the exact argv): TCP in states SYN_SENT, SYN_RECV,
    ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2 and NONE (IPv4) plus
    IPv6 ones; UDP with status bits (none/UNREPLIED, SEEN_REPLY, SEEN_REPLY+ASSURED, ASSURED, UNSET) and
    marks (1, 42, 0x80000000, 0xffffffff); UDPlite v4/v6; ICMP echo/timestamp/info/address-mask with ids
    (1, 2..4, 65535); ICMPv6 echo and node-information with ids; SCTP in 8 states with vtags (v4 and v6);
    DCCP in 8 state/role pairs (optional, see below); GRE with keys (v4 and v6); protocols 99 and 253
    (IPv4) and 254 (IPv6); zones (none, -w 1, -w 65535, --orig-zone 2, --reply-zone 3 on the same tuple,
    and -w 7/9 elsewhere); NAT'd entries (SNAT, SNAT with port change, DNAT with port change, UDP DNAT,
    SNAT+DNAT, IPv6 SNAT, a combined NAT+zone+mark entry); labels (single, several, bits 63
    and 127, combined with NAT/zone/mark).  Timeouts are 100000 s (a few 10000 s and 1000000 s).

    Required entries go through one ``conntrack -R -`` batch (conntrack 1.4.7 accepts -I lines there);
    ``optional`` ones run one by one and a refusal lands in ``refused``.  Label entries need a labelmap
    (the namespace's own one from ``ns.set_labelmap``; ``DEFAULT_LABELMAP`` is installed when it has
    none) and :func:`enable_labels`; they are checked to really carry labels afterwards.

    Not created, because conntrack 1.4.7 or the kernel cannot: secmark (``-c`` is illegal with -I and
    the kernel only reports a security context with an LSM), SCTP HEARTBEAT_* states (conntrack 1.4.7
    segfaults parsing them), status EXPECTED (kernel: EBUSY), --orig-zone together with --reply-zone or
    -w (kernel: EINVAL), NAT'd ICMP (with -r/-q conntrack sends no reply ICMP
    type/id: EINVAL).  On kernels >= 6.16 (no DCCP tracker) DCCP entries exist but as generic
    protocol-33 entries without ports or state.
    """
    t0 = time.monotonic()
    todo = list(entries) if entries is not None else synthetic_entries(labels=labels)
    result = SyntheticFill(entries=[])
    labels_problem = None
    if any(e.needs_labels for e in todo):
        if ns.labelmap is None:
            ns.set_labelmap(DEFAULT_LABELMAP)
        try:
            enable_labels(ns)
            result.labels_enabled = True
        except (NetNSError, OSError) as err:  # e.g. no nft: the other entries are still worth having
            labels_problem = f"cannot enable labels: {err}"
    known_labels = set((ns.labelmap or {}).values())

    required = [e for e in todo if not e.optional]
    _run_batch(ns, required)
    created = {e.name for e in required}
    for e in todo:
        if not e.optional:
            continue
        if e.needs_labels and (labels_problem or not set(e.labels) <= known_labels):
            result.refused.append((e, labels_problem or f"labels {e.labels} not all in the namespace's labelmap"))
            continue
        r = ns.conntrack(*e.argv)
        if r.returncode == 0:
            created.add(e.name)
        else:
            result.refused.append((e, r.stderr.decode(errors="replace").strip() or f"exit {r.returncode}"))
    result.entries = [e for e in todo if e.name in created]

    if any(e.needs_labels for e in result.entries):
        out = ns.conntrack("-L", "-o", "labels", check=True).stdout.decode()
        have = sum(1 for line in out.splitlines() if " labels=" in line)
        need = sum(1 for e in result.entries if e.needs_labels)
        if have < need:
            raise FillError(f"{need} label entries created but only {have} carry labels:\n{out}")
    result.seconds = time.monotonic() - t0
    ns.synthetic = result
    return result


# ---------------------------------------------------------------------------------------------------
# real traffic
# ---------------------------------------------------------------------------------------------------

TRAFFIC_TABLE = "pynfct_traffic"
TRAFFIC_TIMEOUT = 100000
#: protocol timeouts raised in the namespace so that nothing fill_traffic made expires during a test.
_TRAFFIC_SYSCTLS = [
    "nf_conntrack_tcp_timeout_syn_sent", "nf_conntrack_tcp_timeout_syn_recv",
    "nf_conntrack_tcp_timeout_fin_wait", "nf_conntrack_tcp_timeout_close_wait",
    "nf_conntrack_tcp_timeout_last_ack", "nf_conntrack_tcp_timeout_time_wait",
    "nf_conntrack_tcp_timeout_close", "nf_conntrack_tcp_timeout_max_retrans",
    "nf_conntrack_tcp_timeout_unacknowledged", "nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream",
    "nf_conntrack_icmp_timeout", "nf_conntrack_icmpv6_timeout", "nf_conntrack_generic_timeout",
]

TRAFFIC_RULESET = f"""
table inet {TRAFFIC_TABLE} {{
    chain output {{
        type filter hook output priority 0; policy accept;
        ct state established,related counter accept
        tcp dport 20002 ct mark set 0x2a
        udp dport 20012 ct label set 1
        ct state new counter accept
    }}
    chain input {{
        type filter hook input priority 0; policy accept;
        ct state established,related counter accept
        ct state new counter accept
    }}
}}
"""


@dataclass(frozen=True)
class Flow:
    """A flow fill_traffic made; ``packets`` is (original, reply) when it is exact, else None."""

    name: str
    family: str
    proto: str
    src: str
    dst: str
    sport: Optional[int] = None   # for icmp/icmpv6: None
    dport: Optional[int] = None
    state: Optional[str] = None
    icmp_id: Optional[int] = None
    packets: Optional[Tuple[int, int]] = None
    mark: int = 0
    label_bits: Tuple[int, ...] = ()
    open: bool = False            # kept open by a process until teardown


TRAFFIC_FLOWS: List[Flow] = [
    Flow("tcp4-closed-1", "ipv4", "tcp", "127.0.0.1", "127.0.0.1", 31001, 20001, "TIME_WAIT"),
    Flow("tcp4-closed-2", "ipv4", "tcp", "127.0.0.1", "127.0.0.1", 31002, 20001, "TIME_WAIT"),
    Flow("tcp4-closed-3", "ipv4", "tcp", "127.0.0.1", "127.0.0.1", 31003, 20001, "TIME_WAIT"),
    Flow("tcp4-reset", "ipv4", "tcp", "127.0.0.1", "127.0.0.1", 31004, 20003, "CLOSE"),
    Flow("tcp6-closed", "ipv6", "tcp", "::1", "::1", 31011, 20001, "TIME_WAIT"),
    Flow("tcp4-open", "ipv4", "tcp", "127.0.0.1", "127.0.0.1", 31021, 20002, "ESTABLISHED", mark=0x2a, open=True),
    Flow("tcp6-open", "ipv6", "tcp", "::1", "::1", 31022, 20002, "ESTABLISHED", mark=0x2a, open=True),
    Flow("udp4-replied", "ipv4", "udp", "127.0.0.1", "127.0.0.1", 31031, 20011, packets=(3, 3)),
    Flow("udp4-unreplied", "ipv4", "udp", "127.0.0.1", "127.0.0.1", 31032, 20019, packets=(1, 0)),
    Flow("udp6-replied", "ipv6", "udp", "::1", "::1", 31033, 20011, packets=(2, 2)),
    Flow("udp4-labelled", "ipv4", "udp", "127.0.0.1", "127.0.0.1", 31034, 20012, packets=(1, 1), label_bits=(1,)),
    Flow("icmp4-echo", "ipv4", "icmp", "127.0.0.1", "127.0.0.1", icmp_id=0x1234, packets=(2, 2)),
    Flow("icmp6-echo", "ipv6", "icmpv6", "::1", "::1", icmp_id=0x4321, packets=(2, 2)),
]

# One-shot traffic: everything here finishes (closed TCP, UDP, ICMP).  Ports/ids match TRAFFIC_FLOWS.
_TRAFFIC_ONESHOT = r'''
import socket, struct, time

def tcp_server(fam, host, port):
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port)); srv.listen(8)
    return srv

def tcp_client(fam, host, cport, srv, dport, nbytes=100):
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind((host, cport)); c.connect((host, dport))
    a, _ = srv.accept()
    c.sendall(b"q" * nbytes)
    got = b""
    while len(got) < nbytes:
        got += a.recv(65536)
    a.sendall(got)
    back = b""
    while len(back) < nbytes:
        back += c.recv(65536)
    c.shutdown(socket.SHUT_WR)           # client FIN
    assert a.recv(10) == b""
    a.shutdown(socket.SHUT_WR)           # server FIN
    assert c.recv(10) == b""
    c.close(); a.close()

for fam, host, cports in ((socket.AF_INET, "127.0.0.1", (31001, 31002, 31003)), (socket.AF_INET6, "::1", (31011,))):
    srv = tcp_server(fam, host, 20001)
    for cp in cports:
        tcp_client(fam, host, cp, srv, 20001)
    srv.close()

# reset: an established connection aborted with RST (SO_LINGER 0) -> CLOSE.  (A connection refused
# outright leaves no entry: the kernel drops an entry whose only reply is a RST.)
srv = tcp_server(socket.AF_INET, "127.0.0.1", 20003)
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
c.bind(("127.0.0.1", 31004)); c.connect(("127.0.0.1", 20003))
a, _ = srv.accept()
c.sendall(b"x"); assert a.recv(1) == b"x"
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
try:
    a.recv(1)
except ConnectionResetError:
    pass
a.close(); srv.close()

def udp(fam, host, cport, dport, n, reply=True):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((host, dport))
    c = socket.socket(fam, socket.SOCK_DGRAM); c.bind((host, cport))
    for i in range(n):
        c.sendto(b"ping%d" % i, (host, dport))
        data, peer = s.recvfrom(2048)
        if reply:
            s.sendto(b"pong" + data, peer)
            c.recvfrom(2048)
    c.close(); s.close()

udp(socket.AF_INET, "127.0.0.1", 31031, 20011, 3)
udp(socket.AF_INET, "127.0.0.1", 31032, 20019, 1, reply=False)   # a bound socket that never answers
udp(socket.AF_INET6, "::1", 31033, 20011, 2)
udp(socket.AF_INET, "127.0.0.1", 31034, 20012, 1)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff

def ping(fam, host, ident, count):
    if fam == socket.AF_INET:
        s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMP); req, rep, hdr = 8, 0, 20
    else:
        s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMPV6); req, rep, hdr = 128, 129, 0
    s.settimeout(5)
    for seq in range(1, count + 1):
        payload = b"pynfct%02d" % seq
        pkt = struct.pack("!BBHHH", req, 0, 0, ident, seq) + payload
        if fam == socket.AF_INET:      # the kernel computes the ICMPv6 checksum itself
            pkt = pkt[:2] + struct.pack("!H", csum(pkt)) + pkt[4:]
        s.sendto(pkt, (host, 0))
        while True:                    # a raw socket also sees our own request on loopback
            data = s.recv(2048)[hdr:]
            t, _, _, i, q = struct.unpack("!BBHHH", data[:8])
            if t == rep and i == ident and q == seq:
                break
    s.close()

ping(socket.AF_INET, "127.0.0.1", 0x1234, 2)
ping(socket.AF_INET6, "::1", 0x4321, 2)
print("done", flush=True)
'''

# Long-lived: TCP connections (v4 and v6) that stay ESTABLISHED until the process is stopped.
_TRAFFIC_HOLD = r'''
import socket, sys
held = []
for fam, host, cport in ((socket.AF_INET, "127.0.0.1", 31021), (socket.AF_INET6, "::1", 31022)):
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, 20002)); srv.listen(1)
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind((host, cport)); c.connect((host, 20002))
    a, _ = srv.accept()
    c.sendall(b"hello"); assert a.recv(5) == b"hello"
    a.sendall(b"world"); assert c.recv(5) == b"world"
    held += [srv, c, a]
print("ready", flush=True)
sys.stdin.read()          # until the harness closes stdin or kills us
'''


@dataclass
class TrafficFill:
    flows: List[Flow]
    holder: Optional[subprocess.Popen] = None
    seconds: float = 0.0

    def by_name(self, name: str) -> Flow:
        for f in self.flows:
            if f.name == name:
                return f
        raise KeyError(name)

    def stop(self) -> None:
        """Close the long-lived connections now (otherwise the namespace teardown does it)."""
        p, self.holder = self.holder, None
        if p is not None and p.poll() is None:
            try:
                p.stdin.close()
            except OSError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _set_sysctls(ns: NetNS, values: Dict[str, int]) -> None:
    """Set net.netfilter.* sysctls in one shell; names the kernel does not have are skipped."""
    script = ('for kv; do n=${kv%%=*}; v=${kv#*=}; f=/proc/sys/net/netfilter/$n; '
              'if [ -e "$f" ]; then printf "%s\\n" "$v" > "$f" || exit 1; fi; done')
    ns.sh(script, *[f"{k}={v}" for k, v in values.items()])


def _counters_snapshot(ns: NetNS) -> List[str]:
    """Per entry: everything but the timeout column (what moves when packets flow)."""
    out = ns.conntrack("-L", "-o", "extended", check=True).stdout.decode()
    snap = []
    for line in out.splitlines():
        f = line.split()
        snap.append(" ".join(x for x in f[:4] + f[5:] if not x.startswith("delta-time=")))
    return sorted(snap)


def wait_quiescent(ns: NetNS, interval: float = 0.15, stable_reads: int = 3, limit: float = 10.0) -> None:
    """Return once ``stable_reads`` consecutive ``-L -o extended`` reads (``interval`` apart) agree on
    everything but the timeouts: no packet (a delayed ACK, a late reply) is in flight any more."""
    deadline = time.monotonic() + limit
    last, same = None, 0
    while True:
        snap = _counters_snapshot(ns)
        same = same + 1 if snap == last else 1
        last = snap
        if same >= stable_reads:
            return
        if time.monotonic() > deadline:
            raise FillError("conntrack table did not settle (counters still moving)")
        time.sleep(interval)


def fill_traffic(ns: NetNS, hold: bool = True, timeout: float = 30.0) -> TrafficFill:
    """Make real loopback traffic in ``ns`` so that it has entries with counters and timestamps.

    Sets ``nf_conntrack_acct=1`` and ``nf_conntrack_timestamp=1`` in the namespace, raises the protocol
    timeouts to 100000 s (so TIME_WAIT/CLOSE/UDP/ICMP entries stay), loads :data:`TRAFFIC_RULESET`
    (``ct state`` rules register conntrack in the namespace; TCP to port 20002 gets ``ct mark 0x2a``,
    UDP to port 20012 gets label bit 1), then makes the flows of :data:`TRAFFIC_FLOWS` with fixed ports
    and ICMP ids: closed TCP connections (TIME_WAIT), one aborted with RST (CLOSE), UDP exchanges with and
    without replies, ICMP and ICMPv6 echo (Python raw sockets -- no ping binary needed), all over
    127.0.0.1 and ::1.  With ``hold`` a process keeps two TCP connections (v4, v6) ESTABLISHED until
    teardown (no keepalives: they stay silent).  Returns once no packet is in flight, so two reads of the
    table agree on every counter.
    """
    t0 = time.monotonic()
    ns.nft(TRAFFIC_RULESET)  # first: on modular kernels this is what loads nf_conntrack (and its sysctls)
    values = {"nf_conntrack_acct": 1, "nf_conntrack_timestamp": 1}
    values.update((n, TRAFFIC_TIMEOUT) for n in _TRAFFIC_SYSCTLS)
    _set_sysctls(ns, values)

    ns.python(_TRAFFIC_ONESHOT, timeout=timeout)
    holder = None
    flows = [f for f in TRAFFIC_FLOWS if hold or not f.open]
    if hold:
        holder = ns.python_popen(_TRAFFIC_HOLD, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        ready, _, _ = select.select([holder.stdout], [], [], timeout)
        line = holder.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            holder.kill()
            err = holder.stderr.read().decode(errors="replace") if holder.poll() is not None else ""
            raise FillError(f"traffic holder did not start: {line!r} {err}")
    fill = TrafficFill(flows=flows, holder=holder)
    ns.add_finalizer(fill.stop)
    wait_quiescent(ns)
    fill.seconds = time.monotonic() - t0
    ns.traffic = fill
    return fill


# ---------------------------------------------------------------------------------------------------
# real NAT
# ---------------------------------------------------------------------------------------------------

NAT_TABLE = "pynfct_nat"
#: addresses fill_nat puts on ``lo`` (/32 and /128): clients, NAT'd destinations and NAT targets.  They
#: are outside every range the other fills use (100.64.0.0/24, 2.64.0.60 and fd00:64::/64).
NAT_ADDRS_V4 = ["100.64.0.1", "100.64.0.10", "100.64.0.11", "100.64.0.20", "100.64.0.21", "100.64.0.30",
                "100.64.0.31", "100.64.0.40", "100.64.0.41", "100.64.0.42", "100.64.0.50", "100.64.0.51",
                "100.64.0.60", "100.64.0.61", "2.64.0.60"]
NAT_ADDRS_V6 = ["fd00:64::1", "fd00:64::10", "fd00:64::11", "fd00:64::20", "fd00:64::21"]

# DNAT (and redirect) in the output hook, for locally generated traffic; SNAT in postrouting.  Rules only
# see a connection's first packet; the kernel NATs the rest (and de-NATs the replies) itself.
NAT_RULESET = f"""
table inet {NAT_TABLE} {{
    chain output {{
        type nat hook output priority -100; policy accept;
        ip daddr 100.64.0.10 tcp dport 20101 dnat ip to 100.64.0.11:20111
        ip daddr 127.0.0.1 tcp dport 20102 redirect to :20112
        ip daddr 100.64.0.40 tcp dport 20141 dnat ip to 100.64.0.41:20151
        ip6 daddr fd00:64::10 tcp dport 20161 dnat ip6 to [fd00:64::11]:20171
        ip daddr 100.64.0.61 tcp dport 20191 dnat ip to 100.64.0.60:20201
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        ip daddr 100.64.0.20 udp dport 20121 snat ip to 100.64.0.21
        ip daddr 100.64.0.20 udp dport 20122 snat ip to 100.64.0.1:40012
        ip daddr 100.64.0.30 tcp dport 20131 snat ip to 100.64.0.31:40021
        ip daddr 100.64.0.41 tcp dport 20151 snat ip to 100.64.0.42:40031
        ip daddr 100.64.0.50 icmp type echo-request snat ip to 100.64.0.51
        ip6 daddr fd00:64::20 udp dport 20181 snat ip6 to fd00:64::21
    }}
}}
"""


@dataclass(frozen=True)
class NatFlow(Flow):
    """A flow fill_nat made.  ``src``/``dst``/``sport``/``dport`` are the original tuple (as the client
    sent it), ``reply_*`` the reply tuple the kernel's NAT made (what ``conntrack -L`` prints second)."""

    reply_src: str = ""
    reply_dst: str = ""
    reply_sport: Optional[int] = None
    reply_dport: Optional[int] = None

    # What was really NAT'd.  (libnetfilter_conntrack's NFCT_GOPT_IS_SPAT/DPAT compare the "port" union
    # also for ICMP, where it holds id vs type/code: conntrack counts every ICMP entry with a NAT_DONE
    # bit as port-NAT'd.  These properties do not copy that.)
    @property
    def snat(self) -> bool:
        """Source address changed (IPS_SRC_NAT with another address)."""
        return self.reply_dst != self.src

    @property
    def spat(self) -> bool:
        """Source port changed."""
        return self.sport is not None and self.reply_dport != self.sport

    @property
    def dnat(self) -> bool:
        """Destination address changed."""
        return self.reply_src != self.dst

    @property
    def dpat(self) -> bool:
        """Destination port changed (e.g. ``redirect to :PORT``)."""
        return self.dport is not None and self.reply_sport != self.dport

    # What conntrack's --src-nat / --dst-nat without an address select (NFCT_GOPT_IS_SNAT || IS_SPAT, resp.
    # IS_DNAT || IS_DPAT, which need the NAT_DONE status bit): for ICMP the "ports" compared are the id
    # (network order) against the reply's type/code bytes, resp. the reply's id against the request's
    # type/code (8, 0).
    @property
    def listed_by_src_nat(self) -> bool:
        if self.proto == "icmp":
            return self.snat or self.icmp_id != 0
        return self.snat or self.spat

    @property
    def listed_by_dst_nat(self) -> bool:
        if self.proto == "icmp":
            return self.dnat or self.icmp_id != 0x0800
        return self.dnat or self.dpat

    @property
    def orig_key(self) -> str:
        """The original tuple as ``conntrack -L`` prints it (without the trailing fields)."""
        if self.proto in ("icmp", "icmpv6"):
            return f"src={self.src} dst={self.dst} type={8 if self.proto == 'icmp' else 128} code=0 " \
                   f"id={self.icmp_id}"
        return f"src={self.src} dst={self.dst} sport={self.sport} dport={self.dport}"

    @property
    def reply_key(self) -> str:
        """The reply tuple as ``conntrack -L`` prints it (without the trailing fields)."""
        if self.proto in ("icmp", "icmpv6"):
            return f"src={self.reply_src} dst={self.reply_dst} type={0 if self.proto == 'icmp' else 129} " \
                   f"code=0 id={self.icmp_id}"
        return f"src={self.reply_src} dst={self.reply_dst} sport={self.reply_sport} dport={self.reply_dport}"


NAT_FLOWS: List[NatFlow] = [
    # DNAT with address and port change (output hook), closed
    NatFlow("nat-tcp4-dnat", "ipv4", "tcp", "100.64.0.1", "100.64.0.10", 32001, 20101, "TIME_WAIT",
            reply_src="100.64.0.11", reply_dst="100.64.0.1", reply_sport=20111, reply_dport=32001),
    # redirect: only the destination port changes (127.0.0.1 stays 127.0.0.1)
    NatFlow("nat-tcp4-redirect", "ipv4", "tcp", "127.0.0.1", "127.0.0.1", 32002, 20102, "TIME_WAIT",
            reply_src="127.0.0.1", reply_dst="127.0.0.1", reply_sport=20112, reply_dport=32002),
    # SNAT, address only (the source port is kept)
    NatFlow("nat-udp4-snat", "ipv4", "udp", "100.64.0.1", "100.64.0.20", 32011, 20121, packets=(2, 2),
            reply_src="100.64.0.20", reply_dst="100.64.0.21", reply_sport=20121, reply_dport=32011),
    # SNAT to the same address, other port: only the source port changes
    NatFlow("nat-udp4-spat", "ipv4", "udp", "100.64.0.1", "100.64.0.20", 32012, 20122, packets=(1, 1),
            reply_src="100.64.0.20", reply_dst="100.64.0.1", reply_sport=20122, reply_dport=40012),
    # SNAT with address and port change, held open
    NatFlow("nat-tcp4-snat-port", "ipv4", "tcp", "100.64.0.1", "100.64.0.30", 32021, 20131, "ESTABLISHED",
            open=True, reply_src="100.64.0.30", reply_dst="100.64.0.31", reply_sport=20131, reply_dport=40021),
    # DNAT (output) and SNAT (postrouting) on the same connection, both with port change, held open
    NatFlow("nat-tcp4-both", "ipv4", "tcp", "100.64.0.1", "100.64.0.40", 32031, 20141, "ESTABLISHED",
            open=True, reply_src="100.64.0.41", reply_dst="100.64.0.42", reply_sport=20151, reply_dport=40031),
    # SNAT'd ICMP echo (the id is kept)
    NatFlow("nat-icmp4-snat", "ipv4", "icmp", "100.64.0.1", "100.64.0.50", icmp_id=0x2345, packets=(1, 1),
            reply_src="100.64.0.50", reply_dst="100.64.0.51"),
    # IPv6 DNAT with address and port change, closed
    NatFlow("nat-tcp6-dnat", "ipv6", "tcp", "fd00:64::1", "fd00:64::10", 32041, 20161, "TIME_WAIT",
            reply_src="fd00:64::11", reply_dst="fd00:64::1", reply_sport=20171, reply_dport=32041),
    # IPv6 SNAT, address only
    NatFlow("nat-udp6-snat", "ipv6", "udp", "fd00:64::1", "fd00:64::20", 32051, 20181, packets=(1, 1),
            reply_src="fd00:64::20", reply_dst="fd00:64::21", reply_sport=20181, reply_dport=32051),
    # Two TCP connections DNAT'd to 100.64.0.60:20201, closed.  conntrack 1.4.7's "-p tcp -j 100.64.0.60"
    # also sets the template's original source to 2.64.0.60 (the family byte over the address's first
    # byte), so it lists the first (from 2.64.0.60) and not the second; "-j 100.64.0.60" lists both.
    NatFlow("nat-tcp4-jsrc", "ipv4", "tcp", "2.64.0.60", "100.64.0.61", 32061, 20191, "TIME_WAIT",
            reply_src="100.64.0.60", reply_dst="2.64.0.60", reply_sport=20201, reply_dport=32061),
    NatFlow("nat-tcp4-jother", "ipv4", "tcp", "100.64.0.1", "100.64.0.61", 32062, 20191, "TIME_WAIT",
            reply_src="100.64.0.60", reply_dst="100.64.0.1", reply_sport=20201, reply_dport=32062),
]

# One process: the closed flows first, then the held connections; prints "ready" and waits for stdin EOF.
_NAT_TRAFFIC = r'''
import socket, struct, sys
V4, V6 = socket.AF_INET, socket.AF_INET6

def tcp_pair(fam, chost, cport, dhost, dport, shost, sport):
    """Connect chost:cport -> dhost:dport; the NAT'd SYN arrives at the listener shost:sport."""
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((shost, sport)); srv.listen(1)
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind((chost, cport)); c.connect((dhost, dport))
    a, _ = srv.accept()
    c.sendall(b"hello"); assert a.recv(5) == b"hello"
    a.sendall(b"world"); assert c.recv(5) == b"world"
    return srv, c, a

def tcp_closed(*args):
    srv, c, a = tcp_pair(*args)
    c.shutdown(socket.SHUT_WR); assert a.recv(10) == b""      # client FIN
    a.shutdown(socket.SHUT_WR); assert c.recv(10) == b""      # server FIN
    c.close(); a.close(); srv.close()

def udp(fam, chost, cport, dhost, dport, n):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((dhost, dport))
    c = socket.socket(fam, socket.SOCK_DGRAM); c.bind((chost, cport))
    for i in range(n):
        c.sendto(b"ping%d" % i, (dhost, dport))
        data, peer = s.recvfrom(2048)
        s.sendto(b"pong" + data, peer)                          # to the NAT'd source
        data, frm = c.recvfrom(2048)
        assert frm[:2] == (dhost, dport), frm
    c.close(); s.close()

def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff

def ping4(src, dst, ident):
    s = socket.socket(V4, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.bind((src, 0)); s.settimeout(5)
    pkt = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"pynfct-n"
    s.sendto(pkt[:2] + struct.pack("!H", csum(pkt)) + pkt[4:], (dst, 0))
    while True:
        data = s.recv(2048)[20:]
        t, _, _, i, q = struct.unpack("!BBHHH", data[:8])
        if t == 0 and i == ident and q == 1:
            break
    s.close()

tcp_closed(V4, "100.64.0.1", 32001, "100.64.0.10", 20101, "100.64.0.11", 20111)
tcp_closed(V4, "127.0.0.1", 32002, "127.0.0.1", 20102, "127.0.0.1", 20112)
tcp_closed(V6, "fd00:64::1", 32041, "fd00:64::10", 20161, "fd00:64::11", 20171)
tcp_closed(V4, "2.64.0.60", 32061, "100.64.0.61", 20191, "100.64.0.60", 20201)
tcp_closed(V4, "100.64.0.1", 32062, "100.64.0.61", 20191, "100.64.0.60", 20201)
udp(V4, "100.64.0.1", 32011, "100.64.0.20", 20121, 2)
udp(V4, "100.64.0.1", 32012, "100.64.0.20", 20122, 1)
udp(V6, "fd00:64::1", 32051, "fd00:64::20", 20181, 1)
ping4("100.64.0.1", "100.64.0.50", 0x2345)
held = []
if sys.argv[1:] == ["hold"]:
    held += tcp_pair(V4, "100.64.0.1", 32021, "100.64.0.30", 20131, "100.64.0.30", 20131)
    held += tcp_pair(V4, "100.64.0.1", 32031, "100.64.0.40", 20141, "100.64.0.41", 20151)
print("ready", flush=True)
if held:
    sys.stdin.read()          # until the harness closes stdin or kills us
'''


@dataclass
class NatFill(TrafficFill):
    """What :func:`fill_nat` made (``flows`` are :class:`NatFlow`)."""

    def where(self, **attrs) -> List[NatFlow]:
        """Flows whose attributes equal the given values, e.g. ``where(snat=True, family="ipv4")``."""
        return [f for f in self.flows if all(getattr(f, k) == v for k, v in attrs.items())]


def fill_nat(ns: NetNS, hold: bool = True, timeout: float = 30.0) -> NatFill:
    """Make real traffic in ``ns`` that the kernel NATs, so that it has entries with IPS_SRC_NAT /
    IPS_DST_NAT (and the _DONE bits) set and reply tuples NAT made -- what ``conntrack --src-nat``,
    ``--dst-nat`` and ``--any-nat`` select (``conntrack -I`` with ``-r/-q`` sets no NAT status bits).

    Puts :data:`NAT_ADDRS_V4` / :data:`NAT_ADDRS_V6` on ``lo``, sets the same sysctls as
    :func:`fill_traffic` (accounting, timestamps, 100000 s protocol timeouts), loads :data:`NAT_RULESET`
    (table ``inet pynfct_nat``: DNAT/redirect in the output hook, SNAT in postrouting) and makes the
    flows of :data:`NAT_FLOWS` with fixed ports and ids: IPv4 TCP DNAT with port change, a port-only
    redirect, UDP SNAT (address only), SNAT of the port only, TCP SNAT to ADDR:PORT, a TCP connection
    both DNAT'd and SNAT'd, SNAT'd ICMP echo, IPv6 TCP DNAT with port change, IPv6 UDP SNAT and two TCP
    connections DNAT'd to one address, one of them from 2.64.0.60 (for ``-p tcp -j``, see NAT_FLOWS).  With
    ``hold`` the two ``open`` TCP connections stay ESTABLISHED (silent) until teardown; without, they
    are not made.  One Python process does all of it.  Returns once no packet is in flight.

    Once a nat chain exists in the namespace, every *new* entry (also unrelated traffic) gets a null
    binding and so both NAT_DONE bits; call it after the other fills to keep their entries as they were.
    """
    t0 = time.monotonic()
    batch = "".join(f"address add {a}/32 dev lo\n" for a in NAT_ADDRS_V4)
    batch += "".join(f"address add {a}/128 dev lo nodad\n" for a in NAT_ADDRS_V6)
    ns.run(["ip", "-batch", "-"], input=batch, check=True)
    ns.nft(NAT_RULESET)       # also loads conntrack and NAT in the namespace
    values = {"nf_conntrack_acct": 1, "nf_conntrack_timestamp": 1}
    values.update((n, TRAFFIC_TIMEOUT) for n in _TRAFFIC_SYSCTLS)
    _set_sysctls(ns, values)

    flows = [f for f in NAT_FLOWS if hold or not f.open]
    p = ns.python_popen(_NAT_TRAFFIC, *(["hold"] if hold else []), stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    line = p.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        p.kill()
        p.wait()
        raise FillError(f"NAT traffic failed: {line!r} {p.stderr.read().decode(errors='replace')}")
    fill = NatFill(flows=flows, holder=p if hold else None)
    if hold:
        ns.add_finalizer(fill.stop)
    else:
        p.wait(timeout)
    wait_quiescent(ns)
    fill.seconds = time.monotonic() - t0
    ns.nat = fill
    return fill


# ---------------------------------------------------------------------------------------------------
# bulk
# ---------------------------------------------------------------------------------------------------

_BULK_DPORTS = (22, 53, 80, 443)


def bulk_entry_argv(i: int, timeout: int = TIMEOUT) -> List[str]:
    """argv (without ``conntrack``) of bulk entry ``i`` (0 <= i < 2**24).

    Even i: TCP ESTABLISHED [ASSURED]; odd i: UDP [UNREPLIED].  src 10.(i>>16).(i>>8 & 255).(i & 255),
    dst 198.18.0.(1 + i % 4), sport 1024 + i % 60000, dport (22, 53, 80, 443)[i % 4], mark i % 3.
    """
    if not 0 <= i < 1 << 24:
        raise ValueError("bulk index out of range")
    src = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    argv = ["-I", "-p", "tcp" if i % 2 == 0 else "udp", "-s", src, "-d", f"198.18.0.{1 + i % 4}",
            "--sport", str(1024 + i % 60000), "--dport", str(_BULK_DPORTS[i % 4])]
    if i % 2 == 0:
        argv += ["--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED"]
    argv += ["-m", str(i % 3), "-t", str(timeout)]
    return argv


@dataclass
class BulkFill:
    start: int
    n: int
    seconds: float

    def argv(self, k: int) -> List[str]:
        return bulk_entry_argv(self.start + k)

    @property
    def tcp(self) -> int:
        """How many of the entries are TCP (the rest are UDP)."""
        first = self.start + (self.start % 2)
        return len(range(first, self.start + self.n, 2))

    def mark_count(self, mark: int) -> int:
        return sum(1 for i in range(self.start, self.start + self.n) if i % 3 == mark)


def fill_bulk(ns: NetNS, n: int, start: int = 0, jobs: Optional[int] = None) -> BulkFill:
    """Create ``n`` distinct entries (:func:`bulk_entry_argv` of ``start`` .. ``start+n-1``) in ``ns``.

    Lines go to ``conntrack -R -``, split over ``jobs`` parallel conntrack processes for large n.
    Raises :class:`FillError` when the table cannot take them (``nf_conntrack_max`` is per namespace
    count but its value is the host's).
    """
    t0 = time.monotonic()
    if n <= 0:
        return BulkFill(start, 0, 0.0)
    before = ns.ct_count()
    cap = int(ns.sysctl("net.netfilter.nf_conntrack_max"))
    if cap and before + n > cap:
        raise FillError(f"nf_conntrack_max is {cap}: cannot add {n} entries to {before}")
    if jobs is None:
        jobs = 1 if n < 50000 else max(1, min(4, os.cpu_count() or 1))
    bounds = [start + n * j // jobs for j in range(jobs + 1)]

    def chunk(j: int) -> Optional[str]:
        data = "".join(" ".join(bulk_entry_argv(i)) + "\n" for i in range(bounds[j], bounds[j + 1]))
        r = ns.conntrack("-R", "-", input=data, timeout=600)
        return r.stderr.decode(errors="replace") if r.returncode != 0 else None

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        errors = [e for e in pool.map(chunk, range(jobs)) if e]
    after = ns.ct_count()
    if errors or after - before != n:
        raise FillError(f"bulk fill: {after - before} of {n} entries created; {''.join(errors)}")
    bulk = BulkFill(start, n, time.monotonic() - t0)
    ns.bulk.append(bulk)
    return bulk


# ---------------------------------------------------------------------------------------------------
# big mixed table
# ---------------------------------------------------------------------------------------------------

_BIG_TCP = [("ESTABLISHED", "SEEN_REPLY,ASSURED"), ("SYN_SENT", None), ("SYN_RECV", "SEEN_REPLY"),
            ("FIN_WAIT", "SEEN_REPLY,ASSURED"), ("CLOSE_WAIT", "SEEN_REPLY,ASSURED"),
            ("LAST_ACK", "SEEN_REPLY,ASSURED"), ("TIME_WAIT", "SEEN_REPLY,ASSURED"), ("CLOSE", "SEEN_REPLY")]
_BIG_SCTP = ["CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED", "SHUTDOWN_SENT", "SHUTDOWN_RECD",
             "SHUTDOWN_ACK_SENT"]
_BIG_MARKS = [0, 0, 0, 1, 42, 0x80000000, 0xFFFFFFFF, 0x100, 7, 0x2A]
_BIG_UDP_STATUS = [None, "SEEN_REPLY", "SEEN_REPLY,ASSURED", "ASSURED"]
#: labelled entries: label names of DEFAULT_LABELMAP
_BIG_LABELS = ["pynfct-l1", "pynfct-l0,pynfct-l5", "pynfct-l127", "pynfct-l31,pynfct-l63,pynfct-l64",
               "pynfct-l1,pynfct-l127"]
BIG_LABEL_EVERY = 10       # one big entry in ten carries labels (created by pynfct -R: see fill_big)


def _big_v4(i: int, net: int = 10) -> str:
    return f"{net}.{128 + ((i >> 16) & 127)}.{(i >> 8) & 255}.{i & 255}"


def _big_v6(i: int) -> str:
    return f"fd00:b16::{(i >> 16) & 0xffff:x}:{i & 0xffff:x}"


def big_entry_argv(i: int, timeout: int = TIMEOUT) -> List[str]:
    """argv (without ``conntrack``) of big entry ``i`` (0 <= i < 2**23): one of 16 kinds by ``i % 16``.

    IPv4 sources 10.128.0.0/9 (one per i), destinations 198.18.0.0/24, NAT'd reply destinations
    172.16.0.0/12 (one per i); IPv6 sources fd00:b16::/64.  Kinds: TCP in 8 states (4 of 16, IPv4, one
    in ten in zone 9), UDP with status bits (2, IPv4), TCP and UDP over IPv6, ICMP and ICMPv6 echo with
    ids, SCTP in 7 states with vtags, GRE with keys, UDPlite, protocol 99, TCP with a SNAT'd or DNAT'd
    reply tuple, UDP in zones (-w 1..5, --orig-zone, --reply-zone).  Marks cycle through
    :data:`_BIG_MARKS`; every 97th entry has a 1,000,000 s timeout.  Entries with ``i % BIG_LABEL_EVERY ==
    3`` (UDP ones) add labels.
    """
    if not 0 <= i < 1 << 23:
        raise ValueError("big index out of range")
    kind, k = i % 16, i // 16
    src4, dst4 = _big_v4(i), f"198.18.0.{1 + k % 250}"
    sport = 1024 + (i % 60000)
    a: List[str]
    if kind < 4:
        state, status = _BIG_TCP[k % len(_BIG_TCP)]
        a = ["-p", "tcp", "-s", src4, "-d", dst4, "--sport", str(sport), "--dport", str((22, 80, 443, 8080)[k % 4]),
             "--state", state]
        if status:
            a += ["-u", status]
        if k % 10 == 0:
            a += ["-w", "9"]
    elif kind < 6:
        a = ["-p", "udp", "-s", src4, "-d", dst4, "--sport", str(sport), "--dport", str((53, 123, 5353)[k % 3])]
        status = _BIG_UDP_STATUS[k % len(_BIG_UDP_STATUS)]
        if status:
            a += ["-u", status]
    elif kind == 6:
        a = ["-p", "tcp", "-s", _big_v6(i), "-d", "2001:db8:b16::1", "--sport", str(sport), "--dport", "443",
             "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED"]
    elif kind == 7:
        a = ["-p", "udp", "-s", _big_v6(i), "-d", "2001:db8:b16::53", "--sport", str(sport), "--dport", "53"]
    elif kind == 8:
        a = ["-p", "icmp", "-s", src4, "-d", dst4, "--icmp-type", "8", "--icmp-code", "0", "--icmp-id", str(k & 0xFFFF)]
    elif kind == 9:
        a = ["-p", "icmpv6", "-s", _big_v6(i), "-d", "2001:db8:b16::1", "--icmpv6-type", "128", "--icmpv6-code", "0",
             "--icmpv6-id", str(k & 0xFFFF)]
    elif kind == 10:
        a = ["-p", "sctp", "-s", src4, "-d", dst4, "--sport", str(sport), "--dport", "3868",
             "--state", _BIG_SCTP[k % len(_BIG_SCTP)], "--orig-vtag", str(k + 1), "--reply-vtag", str(k + 2)]
    elif kind == 11:
        a = ["-p", "gre", "-s", src4, "-d", dst4, "--srckey", hex(k & 0xFFFF), "--dstkey", hex((k * 7) & 0xFFFF)]
    elif kind == 12:
        a = ["-p", "udplite", "-s", src4, "-d", dst4, "--sport", str(sport), "--dport", "5001"]
    elif kind == 13:
        a = ["-p", "99", "-s", src4, "-d", dst4]
    elif kind == 14:
        nat = f"172.{16 + ((i >> 16) & 15)}.{(i >> 8) & 255}.{i & 255}"
        if k % 2 == 0:      # SNAT: the reply goes to another address and port
            a = ["-p", "tcp", "-s", src4, "-d", dst4, "--sport", str(sport), "--dport", "80", "-r", dst4, "-q", nat,
                 "--reply-port-src", "80", "--reply-port-dst", str(1024 + (k % 50000))]
        else:               # DNAT: the reply comes from another address and port
            a = ["-p", "tcp", "-s", src4, "-d", dst4, "--sport", str(sport), "--dport", "80", "-r", nat, "-q", src4,
                 "--reply-port-src", "8080", "--reply-port-dst", str(sport)]
        a += ["--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED"]
    else:
        a = ["-p", "udp", "-s", src4, "-d", dst4, "--sport", str(sport), "--dport", "514"]
        z = k % 7
        a += ["--orig-zone", "2"] if z == 5 else ["--reply-zone", "3"] if z == 6 else ["-w", str(1 + z)]
    mark = _BIG_MARKS[k % len(_BIG_MARKS)]
    if mark:
        a += ["-m", str(mark)]
    if kind in (4, 5, 7) and i % BIG_LABEL_EVERY == 3:
        a += ["--label-add", _BIG_LABELS[(i // 10) % len(_BIG_LABELS)]]
    a += ["-t", str(1000000 if i % 97 == 0 else timeout)]
    return ["-I", *a]


BIG_NAT_TABLE = "pynfct_bignat"
#: addresses of the NAT burst (on ``lo``): the client, the SNAT'd destination and its SNAT address, the
#: DNAT'd destination and its DNAT target.
BIG_NAT_ADDRS = ["100.65.0.10", "100.65.0.1", "100.65.0.2", "100.65.1.1", "100.65.1.2"]
BIG_NAT_RULESET = f"""
table ip {BIG_NAT_TABLE} {{
    chain output {{
        type nat hook output priority -100; policy accept;
        ip daddr 100.65.1.1 udp dport 9999 dnat ip to 100.65.1.2
    }}
    chain postrouting {{
        type nat hook postrouting priority 100; policy accept;
        ip daddr 100.65.0.1 udp dport 9999 snat ip to 100.65.0.2
    }}
}}
"""
# One UDP datagram from each of n source ports of 100.65.0.10: even ones to 100.65.0.1:9999 (SNAT'd to
# 100.65.0.2), odd ones to 100.65.1.1:9999 (DNAT'd to 100.65.1.2).  Two bound receivers take them (no
# ICMP errors), so each flow is one packet the original way and nothing back.
_BIG_NAT_TRAFFIC = r'''
import socket, sys
n = int(sys.argv[1])
rx = []
for host in ("100.65.0.1", "100.65.1.2"):
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind((host, 9999)); r.setblocking(False); rx.append(r)
def drain():
    for r in rx:
        try:
            while r.recv(64):
                pass
        except BlockingIOError:
            pass
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("100.65.0.10", 20000 + i))
    s.sendto(b"x", ("100.65.0.1" if i % 2 == 0 else "100.65.1.1", 9999))
    s.close()
    if i % 64 == 63:
        drain()
drain()
'''


@dataclass
class BigFill:
    """What :func:`fill_big` made: ``n`` entries of :func:`big_entry_argv` (``labelled`` of them with
    labels), fill_nat's flows (``nat``) and ``nat_burst`` real NAT'd UDP flows."""

    n: int
    labelled: int
    nat: "NatFill"
    nat_burst: int
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return self.n + len(self.nat.flows) + self.nat_burst


def fill_big(ns: NetNS, n: int = 50000, nat_burst: int = 2000, pynfct: Optional[Sequence[str]] = None,
             env: Optional[Dict[str, str]] = None, jobs: int = 2) -> BigFill:
    """Fill ``ns`` with a big mixed table: :func:`big_entry_argv` 0..n-1, fill_nat's real NAT'd flows and a
    burst of ``nat_burst`` real SNAT'd / DNAT'd UDP flows.

    The entries without labels go through ``conntrack -R -`` (``jobs`` processes at once).  conntrack
    1.4.7 cannot load labels from a file (it frees its label map after the first line), so the labelled
    ones go through pynfct's ``-R -`` (``pynfct``: its argv prefix, ``env`` its environment); the number
    of entries conntrack then lists with labels is checked.  Created first and without accounting, the
    synthetic entries print no counters; the NAT'd flows have counters and timestamps.
    """
    t0 = time.monotonic()
    if ns.labelmap is None:
        ns.set_labelmap(DEFAULT_LABELMAP)
    enable_labels(ns)
    plain: List[str] = []
    labelled: List[str] = []
    for i in range(n):
        argv = big_entry_argv(i)
        (labelled if "--label-add" in argv else plain).append(" ".join(argv) + "\n")
    bounds = [len(plain) * j // jobs for j in range(jobs + 1)]

    def chunk(j: int) -> Optional[str]:
        r = ns.conntrack("-R", "-", input="".join(plain[bounds[j]:bounds[j + 1]]), timeout=600)
        return r.stderr.decode(errors="replace") if r.returncode != 0 else None

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        errors = [e for e in pool.map(chunk, range(jobs)) if e]
    if errors:
        raise FillError("big fill: " + "".join(errors))
    if labelled:
        if pynfct is None:
            raise FillError("big fill: labelled entries need pynfct's argv (conntrack -R cannot load labels)")
        r = ns.run([*pynfct, "-R", "-"], input="".join(labelled), env=env, timeout=600)
        if r.returncode != 0:
            raise FillError(f"big fill: pynfct -R failed: {r.stderr.decode(errors='replace')}")
    have = ns.ct_count()
    if have != n:
        raise FillError(f"big fill: {have} of {n} entries created")
    out = ns.conntrack("-L", "-o", "labels", check=True, timeout=600).stdout
    with_labels = out.count(b" labels=")
    if with_labels != len(labelled):
        raise FillError(f"big fill: {with_labels} entries carry labels, {len(labelled)} were given some")

    nat = fill_nat(ns)
    batch = "".join(f"address add {a}/32 dev lo\n" for a in BIG_NAT_ADDRS)
    ns.run(["ip", "-batch", "-"], input=batch, check=True)
    ns.nft(BIG_NAT_RULESET)
    ns.python(_BIG_NAT_TRAFFIC, str(nat_burst), timeout=120)
    big = BigFill(n=n, labelled=len(labelled), nat=nat, nat_burst=nat_burst)
    have = ns.ct_count()
    if have != big.count:
        raise FillError(f"big fill: {have} entries, expected {big.count}")
    big.seconds = time.monotonic() - t0
    ns.big = big
    return big
