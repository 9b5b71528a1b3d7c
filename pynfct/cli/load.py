"""-R FILE / --load-file FILE: conntrack's batch mode, streamed and pipelined.

conntrack 1.4.7 parses every line of the file into memory, then runs the lines one by one: any bad
line stops it before anything ran (exit 2), the first failing line stops the run (exit 1), only -I, -A,
-U, -D and -F lines are allowed, and the -o flags and label map in force at the end of the file apply to
every line. pynfct keeps those rules with two passes over the file instead of holding it in memory:
pass 1 parses (and checks) every line, pass 2 parses again and runs; nothing is sent before pass 1
has read the whole file. Plain -I/-A lines are parsed in C
and their requests pipelined (see _nfct.load.Loader); other lines go through :mod:`pynfct.cli.parse`.
Standard input is copied to a temporary file during pass 1 so that pass 2 can read it again.
"""
from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Callable, Iterable, List, Optional, Tuple, Union

    from _nfct.load import Loader
    from ..conntrack import Conntrack
    from ..result import WriteResult
    from .parse import CliCommand, Warn, _State

    #: what pass 1 finds at the end of the file: the -o flags and the label map path in force
    Final = Tuple[Out, Optional[str]]

from _nfct.errors import NfctError
from ..record import Factory, Record
from .._ints import Cmd, Out
from . import options as O
from .errors import OTHER_PROBLEM, UsageError
from .parse import FILE_COMMANDS, _FILE_CMD_TEXT, _dec, _new_state, _parse_one, split_line


class LoadFailed(Exception):
    """A line of the file failed: ``errno`` and the ``command`` (Cmd) it failed for, ``lineno``."""

    def __init__(self, errno: int, command: Cmd, lineno: int) -> None:
        super().__init__(errno, command, lineno)
        self.errno = errno
        self.command = command
        self.lineno = lineno


class LoadAborted(Exception):
    """A -D line had failures (already reported): the run stops with exit status 1."""


class LoadResult(Record):
    """What a -R run did."""

    lines: int = 0            # lines read (comments included)
    created: int = 0          # entries created by -I/-A lines
    existed: int = 0          # -A lines whose entry was there already
    updated: int = 0          # entries changed by -U lines
    deleted: int = 0          # entries removed by -D lines
    flushed: int = 0          # -F lines run
    unprinted: int = 0        # of updated and deleted, entries not printed: a signal stopped the run and
                              # the reader of the output did not take their lines in time
    failures: List[int] = Factory(list)   # errnos of -U/-D entries that failed


def _ignore(message: str) -> None:
    """Pass 2 parses lines pass 1 has already parsed: their warnings were printed then."""


def run_file(path: Union[str, bytes, os.PathLike[str], os.PathLike[bytes]], prog: str = "pynfct", out_fd: int = 1, nsfd: int = -1,
             warn: Optional[Callable[[str], None]] = None, connlabel_conf: Optional[str] = None,
             stop_on_delete_failure: bool = True, cli: bool = True) -> LoadResult:
    """Run a -R file in the namespace of ``nsfd`` (-1: this one); entries -U/-D print go to ``out_fd``
    (-1: nowhere). ``cli``: print conntrack's messages (flush, failed entries) on stderr.
    Raises UsageError (a bad line, exit 2), LoadFailed (exit 1) or LoadAborted."""
    from _nfct.load import Loader, _Stop
    name = os.fsencode(path)
    shown = "/dev/stdin" if name == b"-" else _dec(name)
    try:
        fd = os.open(b"/dev/stdin" if name == b"-" else name, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        raise UsageError(f"Failed to open file {shown} for reading")
    spool: Optional[IO[bytes]] = None
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            return LoadResult()       # fopen() of a directory succeeds and reads nothing
        seekable = stat.S_ISREG(os.fstat(fd).st_mode)
        if not seekable:
            try:
                spool = open_spool("pynfct-stdin-")
            except SpoolError as e:
                raise UsageError(f"Operation failed: {e.strerror}", OTHER_PROBLEM) from None
        progb = os.fsencode(prog)
        warn = warn if warn is not None else _stderr
        return _two_passes(fd, spool, progb, out_fd, nsfd, warn, connlabel_conf, stop_on_delete_failure, cli)
    finally:
        os.close(fd)
        if spool is not None:
            spool.close()


class SpoolError(OSError):
    """No private temporary file could be made to hold the lines read (see open_spool)."""


def open_spool(prefix: str) -> IO[bytes]:
    """A private (0600), nameless file to copy lines into: no exit path, a signal's included, can leave
    it behind. tempfile's first (O_TMPFILE, else created O_EXCL and unlinked at once, in $TMPDIR, /tmp,
    ...); where no such directory is writable, a memfd, which needs none. Raises SpoolError."""
    import tempfile       # only for a pipe or load(lines): it costs a few ms of every start
    try:
        return tempfile.TemporaryFile(prefix=prefix)
    except OSError as e:
        first = e
    try:
        return open(os.memfd_create(prefix + "spool", os.MFD_CLOEXEC), "w+b")
    except OSError as e:
        raise SpoolError(e.errno, f"cannot make a temporary file to hold the lines read "
                                  f"(no writable temporary directory: {first}; memfd_create: "
                                  f"{e.strerror})") from None


def _stderr(message: str) -> None:
    from .io import err         # (None-safe: main() may run with fd 2 closed)
    err(message + "\n")


def _check(fd: int, copy_fd: int, progb: bytes, warn: Warn, connlabel_conf: Optional[str]) -> Final:
    """Pass 1: parse every line (conntrack's ct_parse_file); the first bad one raises UsageError.
    Returns the -o flags and the label map path in force at the end of the file."""
    from _nfct.load import Loader
    state = _new_state(connlabel_conf, None)
    bad: List[CliCommand] = []

    def check(line: bytes, lineno: int) -> None:
        _fix_handler(state, loader)
        cmd = _parse_one(split_line(line, progb), state, warn)
        if not bad and not cmd.command & FILE_COMMANDS:
            bad.append(cmd)

    loader = Loader(fd, check, copy_fd=copy_fd)
    loader.scan()
    if bad:
        text = next((t for c, t in _FILE_CMD_TEXT if bad[0].command == c), "unknown")
        raise UsageError(f"Cannot use command `{text}' with --load-file")
    labelmap_path = _dec(state.labelmap_path) if state.labelmap_path is not None else None
    return Out(state.output_mask), labelmap_path


def _two_passes(fd: int, spool: Optional[IO[bytes]], progb: bytes, out_fd: int, nsfd: int, warn: Warn,
                connlabel_conf: Optional[str], stop_on_delete_failure: bool, cli: bool) -> LoadResult:
    from _nfct.load import Loader, _Stop
    # conntrack parses the whole file before it runs a line: a bad line anywhere must find nothing
    # sent, not even for a moment (other tools would see the entries, a real connection could be
    # taken for one). Most lines are checked in C, so this pass costs little next to the kernel's work.
    if spool is not None:
        # standard input that is no file: check it all first, copying it for pass 2
        final = _check(fd, spool.fileno(), progb, warn, connlabel_conf)
        spool.flush()
        spool.seek(0)
        src = spool.fileno()
    else:
        final = _check(fd, -1, progb, warn, connlabel_conf)
        os.lseek(fd, 0, os.SEEK_SET)
        src = fd
    output, labelmap_path = final       # the flags in force at the end of the file apply to every line
    state = _new_state(connlabel_conf, None)
    result = LoadResult()

    def run(line: bytes, lineno: int) -> None:
        _fix_handler(state, second)
        cmd = _parse_one(split_line(line, progb), state, _ignore)
        if cmd.command in (Cmd.CT_CREATE, Cmd.CT_ADD):
            second.queue_create(cmd)
            return
        cmd.output = output
        if labelmap_path is not None:
            cmd.labelmap_path = labelmap_path
        second.sync()
        try:
            _run_line(cmd, result, out_fd, nsfd, cli, stop_on_delete_failure)
        except NfctError as e:
            raise LoadFailed(e.errno or 0, cmd.command, lineno) from None

    second = Loader(src, run, nsfd=nsfd, run=True)
    try:
        second.scan()
    except _Stop:
        raise LoadFailed(second.fail_errno, Cmd.CT_ADD if second.fail_add else Cmd.CT_CREATE,
                         second.fail_line) from None
    except KeyboardInterrupt as e:
        # a signal stopped the run (what ran stays, as when conntrack is killed): say what it did;
        # `result` is complete once the finally below has run
        e.partial = result      # type: ignore[attr-defined]
        raise
    finally:
        result.lines = second.lineno
        result.created += second.created
        result.existed += second.existed
        second.close()
    return result


def _fix_handler(state: _State, loader: Loader) -> None:
    # conntrack keeps the last -p's protocol handler across lines; the C parser only reads lines with -p
    proto = loader.proto
    if proto is not None:
        state.h = O.protocol(proto)


def _run_line(cmd: CliCommand, result: LoadResult, out_fd: int, nsfd: int, cli: bool, stop_on_delete_failure: bool) -> None:
    from .write import _after_flush, _modify
    from .summary import FLUSH_MSG
    if cmd.command == Cmd.CT_FLUSH:
        from _nfct import write
        _after_flush(lambda: write.flush(nsfd, cmd.family), FLUSH_MSG[Cmd.CT_FLUSH] if cli else None)
        result.flushed += 1
        return
    update = cmd.command == Cmd.CT_UPDATE
    try:
        counted = _modify(cmd, update, out_fd, nsfd, report=cli)
    except BaseException as e:
        # a signal handler's exception (Ctrl-C): count what the line did before it stopped
        p = getattr(e, "partial", None)
        if p is not None:
            _count(result, update, p.count, p.failures)
            result.unprinted += p.unprinted
        raise
    _count(result, update, int(counted), counted.failures)
    if not update and counted.failures and stop_on_delete_failure:
        raise LoadAborted()


def _count(result: LoadResult, update: bool, n: int, failures: List[int]) -> None:
    result.failures.extend(failures)
    if update:
        result.updated += n
    else:
        result.deleted += n


def load(ct: "Conntrack", source: "Union[str, os.PathLike[str], bytes, Iterable[Union[str, bytes]]]") -> "WriteResult":
    """Run a ``conntrack -R`` file on a :class:`pynfct.Conntrack`'s table: a path, or an iterable of its
    lines. A -R file is conntrack command lines, so it is read by this (the command line's) parser,
    with conntrack's rules: every line is checked first (ParameterError, nothing done); then they run
    in order and the first failing one raises (NfctError; the creates pipelined after it are undone).
    Returns a WriteResult: entries created, updated and deleted, and the Failures of -U/-D lines."""
    from _nfct.errors import ParameterError, from_errno
    from ..result import Failure, WriteResult
    spool = None
    if isinstance(source, (str, bytes, os.PathLike)):
        path: Union[str, bytes] = os.fsencode(source)
    else:
        # nameless and private: nothing is left behind whatever ends the process; the run reads it
        # through /proc/self/fd. SpoolError (an OSError) if none can be made.
        spool = open_spool("pynfct-load-")
        for line in source:
            if not isinstance(line, (str, bytes)):
                raise TypeError(f"load() takes lines as str or bytes, not {type(line).__name__}")
            data = line.encode() if isinstance(line, str) else bytes(line)
            spool.write(data if data.endswith(b"\n") else data + b"\n")
        spool.flush()
        path = f"/proc/self/fd/{spool.fileno()}"
    try:
        r = run_file(path, "pynfct", out_fd=-1, nsfd=ct._fd(), warn=_ignore,
                     connlabel_conf=ct._labelmap_path, cli=False)
    except UsageError as e:
        raise ParameterError(e.message) from None
    except LoadFailed as e:
        raise from_errno(e.errno, f"line {e.lineno}") from None
    except LoadAborted:
        raise ParameterError("a -D line of the file failed") from None
    finally:
        if spool is not None:
            spool.close()
    return WriteResult(r.created + r.updated + r.deleted, [Failure(e) for e in r.failures])
