"""The write half of the Python API, behind the Conntrack methods create/add/update/delete/flush/load and
the expectation ones. Every call is spelled as the conntrack command line it stands for and parsed by
the CLI's parser, so a keyword means what the option means to conntrack (and is checked the same way).
"""
from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any, Iterable, List, Mapping, Optional, Sequence, Union

from .errors import ParameterError, from_errno
from .flowspec import Expectation, ExpectSpec, FlowSpec, WriteResult, option_words
from .attrs import Attr
from .template import Cmd, Command

if TYPE_CHECKING:
    from _nfct.flow import Flow
    from .cli.load import LoadResult

FlowLike = Union[FlowSpec, "Flow", Mapping[str, Any]]
Source = Union[str, "os.PathLike[str]", bytes, Iterable[Union[str, bytes]]]

#: -U values: keyword -> option (the filters of update() are the dump() keywords)
_UPDATE_VALUES = {"mark": "--mark", "timeout": "--timeout", "status": "--status", "secmark": "--secmark",
                  "add_labels": "--label-add", "del_labels": "--label-del"}


def parse_argv(argv: Sequence[str], labelmap: Optional[str]) -> Command:
    from .cli.errors import UsageError
    from .cli.parse import parse
    try:
        return parse(list(argv), connlabel_conf=labelmap, warn=_ignore)
    except UsageError as e:
        raise ParameterError(e.message) from None


def _ignore(message: str) -> None:
    """No stderr in the API: parse warnings are dropped (errors still raise)."""


def _is_flow(obj: Any) -> bool:
    from _nfct.flow import Flow
    return isinstance(obj, Flow)


def spec_command(spec: Optional[FlowLike], fields: Mapping[str, Any], add: bool, labelmap: Optional[str]) -> Command:
    if spec is None:
        spec = FlowSpec.from_fields(fields)
    elif fields:
        raise TypeError("give a FlowSpec or keyword fields, not both")
    elif isinstance(spec, Mapping):
        spec = FlowSpec.from_fields(spec)
    return parse_argv(spec.argv("-A" if add else "-I"), labelmap)


def create(nsfd: int, labelmap: Optional[str], spec: Optional[FlowLike], fields: Mapping[str, Any],
           add: bool) -> bool:
    """One entry; True when it was created (False: -A found it there already). Raises NfctExists for
    a create of an existing entry, and the other NfctErrors."""
    from _nfct import write
    from .errors import NfctExists
    try:
        if spec is not None and _is_flow(spec):
            if fields:
                raise TypeError("give a Flow or keyword fields, not both")
            write.create_flow(nsfd, spec)
        else:
            write.create(nsfd, spec_command(spec, fields, add, labelmap))
    except NfctExists:
        if add:
            return False
        raise
    return True


def create_many(nsfd: int, labelmap: Optional[str], specs: Iterable[FlowLike], exist_ok: bool) -> WriteResult:
    """Pipelined creates; every refusal is reported (as (item index, errno) pairs in ``failures``)."""
    from _nfct.load import Loader, _Stop
    loader = Loader(-1, None, nsfd=nsfd, run=True)
    loader.keep_going = True
    try:
        for spec in specs:
            if _is_flow(spec):
                loader.queue_flow(spec, exist_ok)
            else:
                loader.queue_command(spec_command(spec, {}, exist_ok, labelmap))
        loader.sync()
    except _Stop:
        raise from_errno(loader.fail_errno, f"item {loader.fail_line - 1}") from None
    finally:
        loader.close()
    return WriteResult(loader.created, failures=[(i - 1, e) for i, e in loader.failures])


def _targets(target: Any) -> Optional[List["Flow"]]:
    if target is None:
        return None
    flows = [target] if _is_flow(target) else list(target)
    if not all(_is_flow(f) for f in flows):
        raise TypeError("update()/delete() take a Flow, a list of Flows, or keyword filters")
    return flows


def modify(nsfd: int, labelmap: Optional[str], update: bool, target: Any, values: Mapping[str, Any],
           filters: Mapping[str, Any], collect: bool) -> WriteResult:
    """-U / -D over the entries the filters select, or over the given Flows."""
    from _nfct.modify import modify as modify_entries
    from .conntrack import filter_argv
    flows = _targets(target)
    if flows is not None and filters:
        raise TypeError("give Flows or keyword filters, not both")
    argv = filter_argv("-U" if update else "-D", filters)
    for key, value in values.items():
        if key == "del_labels" and value is True:
            argv.append("--label-del")       # all labels
            continue
        argv += option_words(key, _UPDATE_VALUES[key], value)
    cmd = parse_argv(argv, labelmap)
    r = modify_entries(nsfd, cmd, update, None, -1, flows=flows, collect=collect)
    return WriteResult(r.count, r.failures, r.vanished, r.unchanged, r.flows if collect else None)


def flush(nsfd: int, table: str, family: Optional[str]) -> None:
    from _nfct import write
    fam = {None: 0, "ipv4": 2, "ipv6": 10}.get(family)
    if fam is None:
        raise ParameterError(f"unknown family {family!r}; ipv4 or ipv6")
    if table == "conntrack":
        write.flush(nsfd, fam)
    elif table == "expect":
        write.expect_flush(nsfd, fam or 2)
    else:
        raise ParameterError(f"unknown table {table!r}; conntrack or expect")


def load(nsfd: int, labelmap: Optional[str], source: Source) -> "LoadResult":
    """A -R file (a path) or its lines (an iterable of str/bytes), as ``conntrack -R`` runs it."""
    from .cli.errors import UsageError
    from .cli.load import LoadAborted, LoadFailed, run_file
    spool = None
    if isinstance(source, (str, bytes, os.PathLike)):
        path = source
    else:
        spool = tempfile.NamedTemporaryFile(prefix="pynfct-load-")
        for line in source:
            data = line.encode() if isinstance(line, str) else bytes(line)
            spool.write(data if data.endswith(b"\n") else data + b"\n")
        spool.flush()
        path = spool.name
    try:
        return run_file(path, "pynfct", out_fd=-1, nsfd=nsfd, warn=_ignore, connlabel_conf=labelmap,
                        cli=False)
    except UsageError as e:
        raise ParameterError(e.message) from None
    except LoadFailed as e:
        raise from_errno(e.errno, f"line {e.lineno}") from None
    except LoadAborted:
        raise ParameterError("a -D line of the file failed") from None
    finally:
        if spool is not None:
            spool.close()


def expectations(nsfd: int, family: Optional[str]) -> List[Expectation]:
    from _nfct import query
    fam = {None: 0, "ipv4": 2, "ipv6": 10}.get(family)
    if fam is None:
        raise ParameterError(f"unknown family {family!r}; ipv4 or ipv6")
    return [Expectation.from_record(r) for r in query.expectation_records(nsfd, fam)]


def create_expect(nsfd: int, labelmap: Optional[str], spec: Optional[ExpectSpec], fields: Mapping[str, Any]) -> None:
    from _nfct import write
    if spec is None:
        spec = ExpectSpec(**fields)
    elif fields:
        raise TypeError("give an ExpectSpec or keyword fields, not both")
    cmd = parse_argv(spec.argv(), labelmap)
    # conntrack's tuple port options store the port's first byte as the expected protocol (a bug the
    # command line keeps for compatibility); the API gives the expectation the protocol it names.
    cmd.tmpl.exptuple[Attr.ORIG_L4PROTO] = cmd.protonum
    write.expect_create(nsfd, cmd)


def delete_expect(nsfd: int, expectation: Union[Expectation, "Flow"]) -> None:
    from _nfct import write
    expected = expectation.tuple if isinstance(expectation, Expectation) else expectation
    if expected is None:
        raise ParameterError("the expectation has no expected tuple")
    write.expect_delete_flow(nsfd, expected)
