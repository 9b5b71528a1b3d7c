"""Deterministic ways to fill a test namespace's conntrack table.

* :func:`fill_synthetic` -- entries created with ``conntrack -I`` (batched through ``conntrack -R -``):
  every protocol conntrack knows, TCP/SCTP/DCCP states, marks, status bits, zones, NAT'd reply tuples,
  labels.  The created entries are returned (as conntrack argv) so tests can compute expectations.
* :func:`fill_traffic` -- real loopback traffic (TCP, UDP, ICMP, ICMPv6 over IPv4 and IPv6) tracked by an
  nft ruleset, with accounting and timestamps on; some TCP connections stay open until teardown.
* :func:`fill_bulk` -- ``n`` distinct entries, fast, for bulk tests.

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
    "synthetic_entries", "fill_synthetic", "fill_traffic", "fill_bulk", "bulk_entry_argv",
    "enable_labels", "wait_quiescent",
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
