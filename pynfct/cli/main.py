"""pynfct's command line: conntrack 1.4.7's commands, options, output and exit codes."""
from __future__ import annotations

import os
import sys
from typing import List, Optional

from .. import __version__
from ..errors import NfctError, ParameterError
from ..template import Cmd, Command, Opt, Out, Table
from .errors import OTHER_PROBLEM, PARAMETER_PROBLEM, PYNFCT_PREFIX as PREFIX, PYNFCT_PROG as PROG

class Failure(Exception):
    """Ends the command with conntrack's "<prefix>: message" on stderr and an exit status."""

    def __init__(self, message: str, status: int = OTHER_PROBLEM):
        super().__init__(message)
        self.message = message
        self.status = status


def _out(data: bytes) -> None:
    if data:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]


def _err(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def _labelmap(cmd: Command):
    from _nfct.format import LabelMap
    try:
        return LabelMap(cmd.labelmap_path)
    except OSError:
        # conntrack reports the failed map and goes on without names.
        _err("nfct_labelmap_new: No such file or directory\n")
        return None


def _labelmap_for(cmd: Command):
    # conntrack loads the label map for -o labels and for any label option, and prints label names
    # whenever it has the map.
    if cmd.output & Out.CL or cmd.options & (Opt.LABEL | Opt.ADD_LABEL | Opt.DEL_LABEL):
        return _labelmap(cmd)
    return None


def _list(cmd: Command) -> int:
    from .parse import precommand_check
    from _nfct.dump import DUMP_CONNTRACK, DUMP_DYING, DUMP_UNCONFIRMED, DUMP_ZERO
    from _nfct.filter import Filter
    from _nfct.format import Format
    from ..conntrack import write_flows

    precommand_check(cmd)
    if cmd.table in (Table.DYING, Table.UNCONFIRMED):
        msg = DUMP_DYING if cmd.table == Table.DYING else DUMP_UNCONFIRMED
        filt = Filter(cmd, False, False)
    else:
        msg = DUMP_ZERO if cmd.options & Opt.ZERO else DUMP_CONNTRACK
        filt = Filter(cmd, True)
    fmt = Format(cmd.output, _labelmap_for(cmd))
    return write_flows(-1, msg, cmd.family, filt, 1, fmt)


def _get(cmd: Command) -> int:
    from _nfct import query
    from _nfct.filter import Filter
    from _nfct.format import Format
    filt = Filter(cmd, False)
    flows = query.get(-1, filt)
    fmt = Format(cmd.output, _labelmap_for(cmd))
    if flows:
        # conntrack closes the <conntrack> element only after a listing, not after -G.
        _out(fmt.header + query.format_flows(flows, fmt))
    return len(flows)


def _count() -> None:
    from _nfct import query
    try:
        n = query.count(-1)
    except NfctError:
        n = None
    if n is None:
        path = "/proc/sys/net/netfilter/nf_conntrack_count"
        try:
            with open(path) as f:
                n = int(f.read().split()[0])
        except OSError:
            raise Failure(f"Can't open {path}")
        except (ValueError, IndexError):
            raise Failure(f"Can't read {path}")
    _out(b"%d\n" % n)


def _stats(expect: bool) -> None:
    from _nfct import query
    rows = query.stats(-1, expect)
    _out("".join("cpu=%-4u\t%s\n" % (cpu, "".join(f"{k}={v} " for k, v in row.items()))
                 for cpu, row in rows).encode())


def _expect_list(cmd: Command) -> int:
    from _nfct import query
    xml = bool(cmd.output & Out.XML)
    lines = query.expectations(-1, cmd.family, xml, bool(cmd.output & Out.TMS))
    if lines and xml:
        _out(b'<?xml version="1.0" encoding="utf-8"?>\n<expect>\n' + b"".join(lines) + b"</expect>\n")
    else:
        _out(b"".join(lines))
    return len(lines)


def execute(cmd: Command) -> int:
    """Run one parsed command; returns conntrack's exit status."""
    from .help import help_text
    from .summary import summary_failed, summary_line

    c = cmd.command
    counter = 0
    if c == Cmd.CT_LIST:
        counter = _list(cmd)
    elif c == Cmd.CT_GET:
        counter = _get(cmd)
    elif c == Cmd.CT_COUNT:
        _count()
    elif c in (Cmd.CT_STATS, Cmd.EXP_STATS):
        _stats(c == Cmd.EXP_STATS)
    elif c == Cmd.EXP_LIST:
        counter = _expect_list(cmd)
    elif c == Cmd.EXP_COUNT:
        from _nfct import query
        _out(b"%d\n" % len(query.expectations(-1, cmd.family)))
    elif c == Cmd.CT_VERSION:
        _out(f"{PROG} v{__version__} (conntrack-tools compatible)\n".encode())
    elif c in (Cmd.CT_HELP, Cmd.NONE):
        _out(help_text(cmd, PROG, __version__).encode())
    else:
        raise Failure(f"{c.name} is not implemented yet in pynfct {__version__}", OTHER_PROBLEM)

    line = summary_line(cmd, counter)
    if line:
        _err(f"{PREFIX}: {line}\n")
    return OTHER_PROBLEM if summary_failed(cmd, counter) else 0


def main(argv: Optional[List[str]] = None) -> int:
    from .errors import UsageError, format_error
    from .parse import parse
    from .summary import operation_failed
    argv = sys.argv[1:] if argv is None else argv
    cmd: Optional[Command] = None
    try:
        sys.stdout.flush()
        cmd = parse(argv)
        return execute(cmd)
    except UsageError as e:
        _err(format_error(PREFIX, e.message, e.status, PROG))
        return e.status
    except ParameterError as e:
        _err(format_error(PREFIX, str(e), PARAMETER_PROBLEM, PROG))
        return PARAMETER_PROBLEM
    except Failure as e:
        _err(format_error(PREFIX, e.message, e.status, PROG))
        return e.status
    except NfctError as e:
        cmd_bits = int(cmd.command) if cmd is not None else 0
        _err(format_error(PREFIX, operation_failed(e.errno, cmd_bits), OTHER_PROBLEM, PROG))
        return OTHER_PROBLEM
    except BrokenPipeError:
        # The reader went away (`pynfct -L | head`): stop quietly, as a killed-by-SIGPIPE conntrack does.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        except OSError:
            pass
        return 141
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
