# cython: language_level=3
"""Small requests: get one entry (-G), count (-C), per-cpu statistics (-S), the expectation table."""
from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.stdio cimport snprintf
from libc.string cimport memcpy, memset

from _nfct.libmnl cimport *
from _nfct.libnfct cimport *
from _nfct.netlink cimport *
from _nfct.socket cimport NfctSocket
from _nfct.filter cimport Filter, ct_filter_reject
from _nfct.format cimport Format, format_ct, ENTRY_MAX
from _nfct.flow cimport Flow
from _nfct.sysapi cimport ntohs, ntohl, timeval, gettimeofday
from _nfct.policy cimport checked_message

from _nfct.errors import from_errno


cdef enum:
    REQ_SIZE = 8192
    EXP_MAX = 1024          # conntrack formats expectations into 1024 bytes
    STATS_MAX = 20          # CTA_STATS_MAX (15) + the 4 "unknown" slots conntrack prints
    NFCT_OF_TIME_FLAG = 2   # NFCT_OF_TIME

# Names of the per-cpu counters, by attribute number (as conntrack 1.4.7 prints them).
_CT_STATS = {1: "searched", 2: "found", 3: "new", 4: "invalid", 5: "ignore", 6: "delete",
             7: "delete_list", 8: "insert", 9: "insert_failed", 10: "drop", 11: "early_drop",
             12: "error", 13: "search_restart", 14: "clash_resolve", 15: "chaintoolong",
             16: "unknown1", 17: "unknown2", 18: "unknown3", 19: "unknown4"}
_EXP_STATS = {1: "expect_new", 2: "expect_create", 3: "expect_delete"}


cdef struct collect_ctx:
    void *obj          # a Python list of results (borrowed; the caller keeps it alive)
    void *extra        # per-request context (borrowed)


cdef int _ct_cb(const nlmsghdr *nlh, void *data) noexcept nogil:
    cdef nf_conntrack *ct = nfct_new()
    if ct == NULL:
        return MNL_CB_ERROR
    nfct_nlmsg_parse(nlh, ct)
    with gil:
        (<list>(<collect_ctx *>data).obj).append(Flow.adopt(ct))
    return MNL_CB_OK


def get(int nsfd, Filter filt not None):
    """Ask the kernel for the entry whose tuple the filter's template names (-G). Returns Flows."""
    cdef char req[REQ_SIZE]
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh
    memset(req, 0, REQ_SIZE)    # the builders leave some attribute padding unwritten
    nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, NLM_F_ACK, filt.family)
    cdef list out = []
    cdef collect_ctx c
    if nfct_nlmsg_build(nlh, filt.ct) < 0:
        raise from_errno(errno, "build request")
    c.obj = <void *>out
    try:
        sock.talk(nlh, _ct_cb, &c)
    finally:
        sock.close()
    return [f for f in out if not ct_filter_reject(&filt.f, (<Flow>f).ct)]


def format_flows(list flows, Format fmt not None, unsigned int msg_type=NFCT_T_UNKNOWN):
    """Text of flows, one line each, as the dump path writes them."""
    cdef char buf[ENTRY_MAX]
    cdef size_t n
    lines = []
    if fmt.f.save and msg_type == NFCT_T_UNKNOWN:
        msg_type = NFCT_T_NEW     # as the dump path: saved entries are -A lines
    for f in flows:
        n = format_ct(buf, ENTRY_MAX, (<Flow>f).ct, &fmt.f, msg_type)
        lines.append(buf[:n] + b"\n")
    return b"".join(lines)


cdef int _global_stats_cb(const nlmsghdr *nlh, void *data) noexcept nogil:
    cdef const nlattr *tb[4]
    tb[0] = tb[1] = tb[2] = tb[3] = NULL
    mnl_attr_parse(nlh, sizeof(nfgenmsg), _attr_cb3, tb)
    if tb[<int>CTA_STATS_GLOBAL_ENTRIES] != NULL:
        (<long *>data)[0] = ntohl(mnl_attr_get_u32(tb[<int>CTA_STATS_GLOBAL_ENTRIES]))
    return MNL_CB_OK


cdef int _attr_cb3(const nlattr *attr, void *data) noexcept nogil:
    if mnl_attr_type_valid(attr, 3) < 0:
        return MNL_CB_OK
    (<const nlattr **>data)[mnl_attr_get_type(attr)] = attr
    return MNL_CB_OK


def count(int nsfd):
    """Number of entries (-C), from IPCTNL_MSG_CT_GET_STATS; None if the kernel lacks it."""
    cdef char req[REQ_SIZE]
    cdef long n = -1
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS, 0, 0)
    try:
        sock.talk(nlh, _global_stats_cb, &n)
    finally:
        sock.close()
    return None if n < 0 else n


cdef int _attr_cb_stats(const nlattr *attr, void *data) noexcept nogil:
    if mnl_attr_type_valid(attr, STATS_MAX - 1) < 0:
        return MNL_CB_OK
    (<const nlattr **>data)[mnl_attr_get_type(attr)] = attr
    return MNL_CB_OK


cdef int _stats_cb(const nlmsghdr *nlh, void *data) noexcept nogil:
    cdef const nlattr *tb[STATS_MAX]
    cdef const nfgenmsg *nfg = <const nfgenmsg *>mnl_nlmsg_get_payload(nlh)
    cdef int i
    for i in range(STATS_MAX):
        tb[i] = NULL
    mnl_attr_parse(nlh, sizeof(nfgenmsg), _attr_cb_stats, tb)
    with gil:
        row = {i: ntohl(mnl_attr_get_u32(tb[i])) for i in range(STATS_MAX) if tb[i] != NULL}
        (<list>(<collect_ctx *>data).obj).append((ntohs(nfg.res_id), row))
    return MNL_CB_OK


def stats(int nsfd, bint expect=False):
    """Per-cpu statistics (-S): a list of (cpu, {name: value}) in the kernel's order."""
    cdef char req[REQ_SIZE]
    cdef list rows = []
    cdef collect_ctx c
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh
    if expect:
        nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET_STATS_CPU, NLM_F_DUMP, 0)
    else:
        nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET_STATS_CPU, NLM_F_DUMP, 0)
    c.obj = <void *>rows
    try:
        sock.talk(nlh, _stats_cb, &c)
    finally:
        sock.close()
    names = _EXP_STATS if expect else _CT_STATS
    return [(cpu, {names[k]: v for k, v in sorted(row.items()) if k in names}) for cpu, row in rows]


cdef struct exp_ctx:
    unsigned int out_type
    unsigned int out_flags
    bint tms
    void *lines


cdef int _exp_text(char *buf, const nf_expect *exp, unsigned int msg_type, unsigned int out_type,
                   unsigned int out_flags) noexcept nogil:
    """The expectation as conntrack formats it, into buf (EXP_MAX bytes, cut as conntrack's); the length."""
    cdef int n = nfexp_snprintf(buf, EXP_MAX, exp, msg_type, out_type, out_flags)
    if n < 0:
        return 0
    return n if n < EXP_MAX else EXP_MAX - 1


cdef int _exp_cb(const nlmsghdr *nlh, void *data) noexcept nogil:
    cdef exp_ctx *c = <exp_ctx *>data
    cdef nf_expect *exp = nfexp_new()
    cdef char buf[EXP_MAX]
    cdef char stamp[64]
    cdef timeval tv
    cdef int n
    if exp == NULL:
        return MNL_CB_ERROR
    nfexp_nlmsg_parse(nlh, exp)
    stamp[0] = 0
    if c.tms and c.out_type != NFCT_O_XML:
        gettimeofday(&tv, NULL)
        snprintf(stamp, 64, "[%-8ld.%-6ld]\t", tv.tv_sec, tv.tv_usec)
    n = _exp_text(buf, exp, NFCT_T_UNKNOWN, c.out_type, c.out_flags)
    nfexp_destroy(exp)
    with gil:
        (<list>c.lines).append(stamp + buf[:n] + b"\n")
    return MNL_CB_OK


def expectations(int nsfd, int family, bint xml=False, bint timestamp=False, bytes get=None):
    """The expectation table as conntrack prints it (-L expect): a list of lines (bytes).

    With `get` (the attributes of a -G expect request, see _nfct.write.expect_get_request) the kernel
    is asked for that one expectation instead of the whole table.
    """
    cdef char req[REQ_SIZE]
    cdef list lines = []
    cdef exp_ctx c
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh
    memset(req, 0, REQ_SIZE)    # the builders leave some attribute padding unwritten
    nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET,
                          NLM_F_DUMP if get is None else NLM_F_ACK, family)
    if get is not None:
        if nlh.nlmsg_len + len(get) > REQ_SIZE:
            raise ValueError("expectation request too long")
        memcpy(req + nlh.nlmsg_len, <const char *>get, len(get))
        nlh.nlmsg_len += len(get)
    c.out_type = NFCT_O_XML if xml else NFCT_O_DEFAULT
    c.out_flags = NFCT_OF_TIME_FLAG if (timestamp and xml) else 0
    c.tms = timestamp
    c.lines = <void *>lines
    try:
        sock.talk(nlh, _exp_cb, &c)
    finally:
        sock.close()
    return lines


cdef object _exp_record(const nf_expect *exp, uint8_t family):
    """An expectation as a dict: master/tuple/mask as Flows (their `orig` tuple), and its meta data;
    `family`: the message's (nfgen_family)."""
    cdef const void *p
    cdef nf_conntrack *ct
    rec = {}
    for key, attr in (("master", ATTR_EXP_MASTER), ("tuple", ATTR_EXP_EXPECTED), ("mask", ATTR_EXP_MASK)):
        p = nfexp_get_attr(exp, attr) if nfexp_attr_is_set(exp, attr) else NULL
        if p == NULL:
            rec[key] = None
            continue
        # Only its original tuple: the library leaves the rest of these embedded objects unset, so a
        # whole-object copy (nfct_clone) would follow garbage pointers.
        ct = nfct_new()
        if ct == NULL:
            raise MemoryError()
        nfct_copy(ct, <const nf_conntrack *>p, NFCT_CP_ORIG)
        # The library gives each tuple's family to another one (the master's to the expected tuple,
        # the expected's to the mask, the mask's to the master): a tuple whose neighbour is missing
        # would have none, and such a Flow would not come back whole from its pickle (the fuzzer's
        # finding, tests/fuzz/regressions/expect-without-tuple). All three have the message's family.
        if not nfct_attr_is_set(ct, ATTR_ORIG_L3PROTO):
            nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO, family)
        rec[key] = Flow.adopt(ct)
    for key, attr in (("timeout", ATTR_EXP_TIMEOUT), ("flags", ATTR_EXP_FLAGS), ("class", ATTR_EXP_CLASS)):
        rec[key] = nfexp_get_attr_u32(exp, attr) if nfexp_attr_is_set(exp, attr) else None
    rec["zone"] = nfexp_get_attr_u16(exp, ATTR_EXP_ZONE) if nfexp_attr_is_set(exp, ATTR_EXP_ZONE) else None
    for key, attr in (("helper", ATTR_EXP_HELPER_NAME), ("fn", ATTR_EXP_FN)):
        p = nfexp_get_attr(exp, attr) if nfexp_attr_is_set(exp, attr) else NULL
        rec[key] = (<const char *>p).decode("utf-8", "replace") if p != NULL else None
    return rec


cdef int _exp_rec_cb(const nlmsghdr *nlh, void *data) noexcept nogil:
    cdef nf_expect *exp = nfexp_new()
    if exp == NULL:
        return MNL_CB_ERROR
    nfexp_nlmsg_parse(nlh, exp)
    with gil:
        try:
            (<list>data).append(_exp_record(exp, (<const nfgenmsg *>mnl_nlmsg_get_payload(nlh)).nfgen_family))
        except BaseException:
            nfexp_destroy(exp)
            return MNL_CB_ERROR
    nfexp_destroy(exp)
    return MNL_CB_OK


def expectation_records(int nsfd, int family):
    """The expectation table as dicts (see _exp_record); family 0 for both."""
    cdef char req[REQ_SIZE]
    cdef list records = []
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_GET, NLM_F_DUMP, family)
    try:
        sock.talk(nlh, _exp_rec_cb, <void *>records)
    finally:
        sock.close()
    return records


# --- one expectation message from bytes (recorded messages, the fuzzer) --------------------------------

cdef nf_expect *_exp_parse(bytes data) except NULL:
    cdef const nlmsghdr *nlh = checked_message(data, True)
    cdef nf_expect *exp = nfexp_new()
    if exp == NULL:
        raise MemoryError()
    nfexp_nlmsg_parse(nlh, exp)
    return exp


def parse_expect(bytes data not None):
    """The record (as expectation_records() gives) of one expectation message, nlmsghdr included, with
    no socket. ValueError: not one whole message, or not an expectation as the kernel sends it
    (_nfct.policy: libnetfilter_conntrack would exit, abort or read past it)."""
    cdef nf_expect *exp = _exp_parse(data)
    try:
        return _exp_record(exp, data[16])     # nfgen_family, right after the nlmsghdr _exp_parse checked
    finally:
        nfexp_destroy(exp)


def format_expect(bytes data not None, bint xml=False, unsigned int msg_type=NFCT_T_UNKNOWN):
    """The line conntrack prints for one expectation message (-L expect; -E expect with the event's
    msg_type, T_NEW/T_UPDATE/T_DESTROY), newline included. Refuses what parse_expect() refuses."""
    cdef char buf[EXP_MAX]
    cdef nf_expect *exp = _exp_parse(data)
    cdef int n = _exp_text(buf, exp, msg_type, NFCT_O_XML if xml else NFCT_O_DEFAULT, 0)
    nfexp_destroy(exp)
    return buf[:n] + b"\n"
