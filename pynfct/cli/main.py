"""pynfct's command line: conntrack 1.4.7's commands, options, output and exit codes."""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional

from .. import __version__
from _nfct.errors import NfctError, ParameterError
from .._ints import Cmd
from ..template import Command
from .errors import OTHER_PROBLEM, PARAMETER_PROBLEM, PYNFCT_PREFIX as PREFIX, PYNFCT_PROG as PROG
from .io import Failure, err, flush_held, out
from .signals import SIGPIPE, Interrupted, ended_by, interruptible

# Command -> "module:function" of its handler, imported when used. A handler takes the Command and
# returns the counter of conntrack's summary line.
HANDLERS = {
    Cmd.CT_LIST: "listing:list_",
    Cmd.CT_GET: "listing:get",
    Cmd.CT_COUNT: "listing:count",
    Cmd.CT_STATS: "listing:stats",
    Cmd.EXP_STATS: "listing:stats",
    Cmd.EXP_LIST: "listing:expect_list",
    Cmd.EXP_COUNT: "listing:expect_count",
    Cmd.CT_CREATE: "write:create",
    Cmd.CT_ADD: "write:create",
    Cmd.CT_UPDATE: "write:update",
    Cmd.CT_DELETE: "write:delete",
    Cmd.CT_FLUSH: "write:flush",
    Cmd.EXP_CREATE: "write:expect_create",
    Cmd.EXP_DELETE: "write:expect_delete",
    Cmd.EXP_GET: "write:expect_get",
    Cmd.EXP_FLUSH: "write:flush",
    Cmd.CT_EVENT: "events:ct_events",
    Cmd.EXP_EVENT: "events:exp_events",
}


def execute(cmd: Command) -> int:
    """Run one parsed command; returns conntrack's exit status."""
    from .summary import summary_failed, summary_line

    c = cmd.command
    counter = 0
    if c == Cmd.CT_VERSION:
        out(f"{PROG} v{__version__} (conntrack-tools compatible)\n".encode())
    elif c in (Cmd.CT_HELP, Cmd.NONE):
        from .help import help_text
        out(help_text(cmd, PROG, __version__).encode())
    elif c in HANDLERS:
        module, func = HANDLERS[c].split(":")
        name = f"{__package__}.{module}"
        __import__(name)      # not importlib.import_module: importing importlib costs a start ~0.5 ms
        counter = getattr(sys.modules[name], func)(cmd)
    else:
        from _nfct.constants import Cmd as CmdEnum    # the enum, for the command's name
        raise Failure(f"{CmdEnum(c).name} is not implemented yet in pynfct {__version__}", OTHER_PROBLEM)

    line = summary_line(cmd, counter)
    if line:
        err(f"{PREFIX}: {line}\n")
    flush_held()
    # -U/-D: some entries failed (reported by the handler)
    failed = getattr(counter, "failures", None)
    return OTHER_PROBLEM if summary_failed(cmd, counter) or failed else 0


def main(argv: Optional[List[str]] = None) -> int:
    from .errors import UsageError, format_error
    from .parse import parse
    from .summary import operation_failed
    argv = sys.argv[1:] if argv is None else argv
    cmd: Optional[Command] = None
    try:
        if sys.stdout is not None:     # None: main() called by a process whose fd 1 is closed
            sys.stdout.flush()
        if len(argv) > 1 and argv[0] in ("-R", "--load-file"):
            # as conntrack's main(): a batch file only as the very first argument
            from .write import load_file
            with interruptible():
                return load_file(argv[1])
        cmd = parse(argv)
        if cmd.command in (Cmd.CT_UPDATE, Cmd.CT_DELETE):
            with interruptible():
                return execute(cmd)
        return execute(cmd)
    except UsageError as e:
        err(format_error(PREFIX, e.message, e.status, PROG))
        return e.status
    except ParameterError as e:
        err(format_error(PREFIX, str(e), PARAMETER_PROBLEM, PROG))
        return PARAMETER_PROBLEM
    except Failure as e:
        err(format_error(PREFIX, e.message, e.status, PROG))
        return e.status
    except NfctError as e:
        cmd_bits = int(cmd.command) if cmd is not None else 0
        err(format_error(PREFIX, operation_failed(e.errno or 0, cmd_bits), OTHER_PROBLEM, PROG))
        return OTHER_PROBLEM
    except Interrupted as e:
        # -D/-U/-R: the entries changed so far are printed; say how many, then die of the signal
        from .summary import interrupted_line
        err(f"{PREFIX}: {interrupted_line(cmd, e)}\n")
        return ended_by(e.signum)
    except BrokenPipeError:
        # The reader went away while SIGPIPE was blocked or ignored (as_program() not called): end as a
        # killed-by-SIGPIPE conntrack does, quietly.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        except OSError:
            pass
        return ended_by(SIGPIPE)
    except KeyboardInterrupt:
        return 130
    finally:
        flush_held()        # what conntrack's exit() flushes, after its error message

if __name__ == "__main__":
    sys.exit(main())
