"""The write half of the Python API, behind the Conntrack methods create/add/create_many/update/delete/
flush and the expectation ones. Every call goes from checked typed values (FlowSpec, Match, Update)
straight to the template the C layer runs; nothing here reads command-line words."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, List, Mapping, Optional, Union

from _nfct.flow import Flow

from .errors import ParameterError, from_errno
from .expect import Expectation, ExpectSpec
from .flowspec import FlowSpec
from .match import Match
from .result import Failure, WriteResult
from .template import Cmd
from .values import check_family

if TYPE_CHECKING:
    from .conntrack import Conntrack
    from .update import Update


def _spec(spec: object, fields: Mapping[str, Any], what: str) -> FlowSpec:
    if spec is None:
        return FlowSpec.from_fields(fields)
    if fields:
        raise TypeError(f"{what}: give a FlowSpec or keywords, not both")
    if not isinstance(spec, FlowSpec):
        raise TypeError(f"{what} takes a FlowSpec, a Flow or FlowSpec's keywords, not {type(spec).__name__}")
    return spec


def create(nsfd: int, ct: "Conntrack", spec: object, fields: Mapping[str, Any], add: bool) -> bool:
    """One entry; True when it was created (False: add() found it there already). Raises NfctExists
    for a create of an existing entry, and the other NfctErrors."""
    from _nfct import write
    from .errors import NfctExists
    what = "add()" if add else "create()"
    try:
        if isinstance(spec, Flow):
            if fields:
                raise TypeError(f"{what}: give a Flow or keywords, not both")
            write.create_flow(nsfd, spec)
        else:
            s = _spec(spec, fields, what)
            labels = ct.labelmap() if "labels" in s.fields else None
            write.create(nsfd, s.command(add, labels))
    except NfctExists:
        if add:
            return False
        raise
    return True


def _denied(done: int, failures: List[Failure], what: str) -> None:
    """Without CAP_NET_ADMIN nfnetlink refuses each whole datagram of a pipelined write with one
    EPERM (the C layer marks every request in it refused): nothing done and every request refused
    with EPERM is that missing capability, raised as NfctPermissionError like every other call's
    (the result, 0 done, travels with it as .result)."""
    import errno
    if done == 0 and failures and all(f.errno == errno.EPERM for f in failures):
        e = from_errno(errno.EPERM, what)
        e.result = WriteResult(0, failures)  # type: ignore[attr-defined]
        raise e


def create_many(nsfd: int, ct: "Conntrack", specs: Iterable[object], exist_ok: bool) -> WriteResult:
    """Pipelined creates; every refusal is reported as Failure(errno, item), item its position
    (all refused for want of CAP_NET_ADMIN: NfctPermissionError)."""
    from _nfct.load import Loader, _Stop
    if isinstance(specs, (FlowSpec, Flow, str, bytes, Mapping)):
        raise TypeError("create_many() takes an iterable of FlowSpecs or Flows")
    if isinstance(specs, (list, tuple)):
        # a bad item anywhere in a list is found before anything is sent (an iterator's, when it
        # comes: then the exception carries what was created before it)
        for i, spec in enumerate(specs):
            if not isinstance(spec, (FlowSpec, Flow)):
                raise TypeError(f"create_many() item {i}: a FlowSpec or a Flow, not {type(spec).__name__}")
    loader = Loader(-1, None, nsfd=nsfd, run=True)
    loader.keep_going = True
    labels = None
    try:
        for i, spec in enumerate(specs):
            if isinstance(spec, FlowSpec):
                # its checked values straight to the request (_nfct.spec); the template path where
                # that declines: label names before the label map is read, or names it lacks
                if not loader.queue_spec(spec._v, exist_ok, labels):
                    if labels is None and "labels" in spec._v:
                        labels = ct.labelmap()
                    loader.queue_command(spec.command(exist_ok, labels))
            elif isinstance(spec, Flow):
                loader.queue_flow(spec, exist_ok)
            else:
                raise TypeError(f"create_many() item {i}: a FlowSpec or a Flow, not {type(spec).__name__}")
        loader.sync()
    except _Stop:
        loader.close()
        raise from_errno(loader.fail_errno, f"item {loader.fail_line - 1}") from None
    except BaseException as e:
        # Ctrl-C, or a bad item an iterator gave, between or inside the queue calls: what the kernel
        # created of the batches already sent travels with the exception
        loader.close()
        e.result = WriteResult(loader.created,  # type: ignore[attr-defined]
                               failures=[Failure(err, i - 1) for i, err in loader.failures],
                               interrupted=True)
        raise
    loader.close()
    failures = [Failure(e, i - 1) for i, e in loader.failures]
    _denied(loader.created, failures, "create_many()")
    return WriteResult(loader.created, failures=failures)


def _targets(target: Any, what: str) -> Optional[List[Flow]]:
    if target is None or isinstance(target, Match):
        return None
    if isinstance(target, Flow):
        return [target]
    if isinstance(target, (str, bytes, Mapping)):
        raise TypeError(f"{what} takes a Match, a Flow, Flows or keywords, not {type(target).__name__}")
    try:
        flows = list(target)
    except TypeError:
        raise TypeError(f"{what} takes a Match, a Flow, Flows or keywords, not {type(target).__name__}") from None
    for f in flows:
        if not isinstance(f, Flow):
            raise TypeError(f"{what} takes Flows, not {type(f).__name__}")
    return flows


def modify(nsfd: int, ct: "Conntrack", update: bool, target: Any, values: Optional["Update"],
           filters: Mapping[str, Any], collect: bool) -> WriteResult:
    """-U / -D over the entries a Match selects, or over the given Flows."""
    from _nfct.modify import modify as modify_entries
    from .builder import Builder
    what = "update()" if update else "delete()"
    flows = _targets(target, what)
    if target is not None and filters:
        raise TypeError(f"{what}: give a Match or Flows, or keywords, not both")
    if isinstance(target, Match):
        m = target
    elif flows is None:
        if not filters:
            raise TypeError(f"{what} needs a Match, Flows or filter keywords; to select every entry, "
                            f"pass Match() explicitly")
        m = Match(**filters)
    else:
        m = Match()
    command = Cmd.CT_UPDATE if update else Cmd.CT_DELETE
    m.check_for(command, what=what)        # update: no mark/status/state filters
    b = Builder(command)
    need_labels = "labels" in m or (values is not None and bool({"add_labels", "del_labels"} & set(values.fields)))
    labels = ct.labelmap() if need_labels else None
    m.fill(b, labels)
    if values is not None:
        values.fill(b, labels)
    cmd = b.finish()
    try:
        r = modify_entries(nsfd, cmd, update, None, -1, flows=flows, collect=collect, status_clear=True)
    except BaseException as e:
        # Ctrl-C, or another exception a signal handler raised: _nfct.modify stopped, had what it
        # sent answered and counted, and hands that over as .partial
        partial = getattr(e, "partial", None)
        if partial is not None:
            e.result = WriteResult(partial.count, [Failure(x) for x in partial.failures],  # type: ignore[attr-defined]
                                   partial.vanished, partial.unchanged,
                                   partial.flows if collect else None, interrupted=True)
        raise
    failures = [Failure(x) for x in r.failures]
    if flows is not None:       # (a Match's dump has raised already)
        _denied(r.count + r.vanished + r.unchanged, failures, what)
    return WriteResult(r.count, failures, r.vanished, r.unchanged, r.flows if collect else None)


def flush(nsfd: int, table: str) -> None:
    from _nfct import write
    if table == "conntrack":
        write.flush(nsfd, 0)
    elif table == "expect":
        write.expect_flush(nsfd, 2)
    else:
        raise ParameterError(f"table={table!r}: conntrack or expect")


def expectations(nsfd: int, family: object) -> List[Expectation]:
    from _nfct import query
    fam = 0 if family is None else int(check_family("family", family))
    return [Expectation.from_record(r) for r in query.expectation_records(nsfd, fam)]


def create_expect(nsfd: int, spec: ExpectSpec) -> None:
    from _nfct import write
    if not isinstance(spec, ExpectSpec):
        raise TypeError(f"create_expect() takes an ExpectSpec, not {type(spec).__name__}")
    write.expect_create(nsfd, spec.command())


def delete_expect(nsfd: int, expectation: Union[Expectation, Flow]) -> None:
    from _nfct import write
    if isinstance(expectation, Expectation):
        expected = expectation.tuple
    elif isinstance(expectation, Flow):
        expected = expectation
    else:
        raise TypeError(f"delete_expect() takes an Expectation or a Flow, not {type(expectation).__name__}")
    if expected is None:
        raise ParameterError("the expectation has no expected tuple")
    write.expect_delete_flow(nsfd, expected)
