"""Handlers of the listing commands: -L (conntrack, dying, unconfirmed, expect), -G, -C, -S.

Each takes the parsed Command and returns the counter conntrack's summary line reports.
"""
from __future__ import annotations

import os

from .._ints import Cmd, Opt, Out, Table
from ..template import Command
from _nfct.errors import NfctError
from .io import Failure, out, out_stdio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from _nfct.filter import Filter
    from _nfct.format import Format, LabelMap



def _labelmap(cmd: Command) -> Optional[LabelMap]:
    from _nfct.format import LabelMap
    try:
        return LabelMap(cmd.labelmap_path)
    except OSError:
        # conntrack goes on without names; its one nfct_labelmap_new() call was reported by the parser
        # (pynfct.cli.parse loads the same file under the same condition)
        return None


def _labelmap_for(cmd: Command) -> Optional[LabelMap]:
    # conntrack loads the label map for -o labels and for any label option, and prints label names
    # whenever it has the map.
    if cmd.output & Out.CL or cmd.options & (Opt.LABEL | Opt.ADD_LABEL | Opt.DEL_LABEL):
        return _labelmap(cmd)
    return None


def list_(cmd: Command) -> int:
    from .parse import precommand_check
    from _nfct.dump import DUMP_CONNTRACK, DUMP_DYING, DUMP_UNCONFIRMED, DUMP_ZERO
    from _nfct.filter import Filter
    from _nfct.format import Format

    precommand_check(cmd)
    other_list = cmd.table in (Table.DYING, Table.UNCONFIRMED)
    if other_list:
        msg = DUMP_DYING if cmd.table == Table.DYING else DUMP_UNCONFIRMED
        filt = Filter(cmd, False, False)
    else:
        msg = DUMP_ZERO if cmd.options & Opt.ZERO else DUMP_CONNTRACK
        filt = Filter(cmd, True)
    # -o xml: conntrack 1.4.7 prints the header but no closing </conntrack> for dying/unconfirmed
    fmt = Format(cmd.output, _labelmap_for(cmd), footer=not other_list)
    return write_flows(-1, msg, cmd.family, filt, 1, fmt)


def write_flows(nsfd: int, msg: int, family: int, filt: "Filter", fd: int, fmt: "Format") -> int:
    """Write one dump as text to fd; returns the number of entries written. Filtered in the kernel as
    far as it can without changing conntrack's order (_nfct.dump.split_dump)."""
    from _nfct.dump import SPLIT_BATCHES, split_dump
    from _nfct.query import format_flows
    head, rest = split_dump(nsfd, msg, family, filt, batches=SPLIT_BATCHES)
    if not head:
        return rest.to_fd(fd, fmt, True)
    flows = head + list(rest)
    out(fmt.header + format_flows(flows, fmt) + fmt.footer, fd)
    return len(flows)


def get(cmd: Command) -> int:
    from _nfct import query
    from _nfct.filter import Filter
    from _nfct.format import Format
    filt = Filter(cmd, False)
    try:
        flows = query.get(-1, filt)
    except NfctError as e:
        if e.errno:
            raise
        # nfct_nlmsg_build() refused the template (reply ports without a reply address) and set no errno:
        # conntrack reports the errno its parsing left behind
        left = getattr(cmd, "errno", 0)
        raise NfctError(left, os.strerror(left)) from None
    fmt = Format(cmd.output, _labelmap_for(cmd))
    if flows:
        # conntrack closes the <conntrack> element only after a listing, not after -G.
        out_stdio(fmt.header + query.format_flows(flows, fmt))
    return len(flows)


def count(cmd: Command) -> int:
    """-C. As conntrack 1.4.7: when the kernel refuses (no CAP_NET_ADMIN), the count is read from /proc
    and printed, then the refusal is reported (exit 1): a script sees that the kernel was not asked."""
    from _nfct import query
    failed: Optional[NfctError] = None
    try:
        n = query.count(-1)
    except NfctError as e:
        failed = e
        n = None
    if n is None:
        path = "/proc/sys/net/netfilter/nf_conntrack_count"
        try:
            with open(path, "rb") as f:
                n = int(f.read().split()[0])
        except OSError:
            raise Failure(f"Can't open {path}")
        except (ValueError, IndexError):
            raise Failure(f"Can't read {path}")
    out_stdio(b"%d\n" % n)      # printf()ed: after the refusal's error line, as conntrack's exit() flushes
    if failed is not None:
        raise failed
    return 0


def stats(cmd: Command) -> int:
    """-S and -S expect; on a refusal, conntrack's /proc display, then the refusal (as count())."""
    expect = cmd.command == Cmd.EXP_STATS
    from _nfct import query
    try:
        rows = query.stats(-1, expect)
    except NfctError:
        _proc_stats()
        raise
    out("".join("cpu=%-4u\t%s\n" % (cpu, "".join(f"{k}={v} " for k, v in row.items()))
                 for cpu, row in rows).encode())
    return 0


def _proc_stats() -> None:
    """conntrack's display_proc_conntrack_stats(): /proc/net/stat/nf_conntrack, one row per line with
    the header's names and the values read as hex (the same file for -S expect)."""
    try:
        with open("/proc/net/stat/nf_conntrack", "rb") as f:
            names = f.readline().split()
            rows = [line.split() for line in f]
    except OSError:
        names = []
    if not names:
        raise Failure("Can't open /proc interface")
    out_stdio(b"".join(b"cpu=%-4d\t" % cpu + b"".join(b"%s=%d " % (k, int(v, 16) & 0xFFFFFFFF)
                                                 for k, v in zip(names, row)) + b"\n"
                 for cpu, row in enumerate(rows)))


def expect_list(cmd: Command) -> int:
    from _nfct import query
    xml = bool(cmd.output & Out.XML)
    lines = query.expectations(-1, cmd.family, xml, bool(cmd.output & Out.TMS))
    if lines and xml:
        # conntrack flushes stdout after the closing tag
        out(b'<?xml version="1.0" encoding="utf-8"?>\n<expect>\n' + b"".join(lines) + b"</expect>\n")
    else:
        out_stdio(b"".join(lines))
    return len(lines)


def expect_count(cmd: Command) -> int:
    from _nfct import query
    try:
        n = len(query.expectations(-1, cmd.family))
    except NfctError:
        out_stdio(b"0\n")  # conntrack printf()s its counter, then reports the failed dump
        raise
    out_stdio(b"%d\n" % n)
    return 0
