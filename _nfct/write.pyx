# cython: language_level=3
"""The write path: create (-I/-A), delete one entry, flush (-F), the expectation table, -R.

Single requests go through NfctSocket.talk, as conntrack sends them. Bulk work (the creates of a -R
file here, -D/-U over a dump in _nfct.modify) is pipelined (see _nfct.request).
"""
import os
import socket as _socket

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.errno cimport errno, EINTR, ENOENT, EEXIST, ENOMEM, EINVAL, EPIPE
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, calloc, realloc, free
from libc.string cimport memcpy, memset
from posix.unistd cimport write

from _nfct.libmnl cimport *
from _nfct.libnfct cimport *
from _nfct.netlink cimport *
from _nfct.sysapi cimport htonl, ntohl, htons
from _nfct.socket cimport NfctSocket
from _nfct.filter cimport set_attrs
from _nfct.flow cimport Flow
from _nfct.pthread cimport *
from _nfct.request cimport (req_t, batch_t, req_init, req_free, batch_init, batch_full, req_put, req_done,
                            req_flush, family_of, put_lookup, template_ct, creatable_clone)

from pynfct.errors import from_errno
from pynfct.template import Opt

cdef enum:
    AF_INET = 2
    AF_INET6 = 10
    NBATCH_LOAD = 2         # -R: one batch being sent while the next is built

cdef unsigned int O_MARK = Opt.MARK, O_STATUS = Opt.STATUS, O_PROTO = Opt.PROTO


# --- single requests ----------------------------------------------------------------------------------

cdef int _ignore_answer(const nlmsghdr *nlh, void *data) noexcept nogil:
    return MNL_CB_OK


cdef int _talk_ct(int nsfd, uint16_t type, uint16_t flags, uint8_t family, const nf_conntrack *ct) except -1:
    cdef char req[8192]
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK, type, flags, family)
    try:
        if ct != NULL and nfct_nlmsg_build(nlh, ct) < 0:
            raise from_errno(errno, "build request")
        sock.talk(nlh, _ignore_answer, NULL)
    finally:
        sock.close()
    return 0


def create(int nsfd, command):
    """-I or -A: one NEW request with NLM_F_CREATE|NLM_F_EXCL, as conntrack sends it."""
    cdef nf_conntrack *ct = template_ct(command)
    try:
        _talk_ct(nsfd, IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, command.family, ct)
    finally:
        nfct_destroy(ct)


def create_flow(int nsfd, Flow flow not None, bint exclusive=True):
    """Create an entry like a dumped one (see creatable_clone)."""
    cdef nf_conntrack *ct = creatable_clone(flow.ct)
    try:
        _talk_ct(nsfd, IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_ACK | (NLM_F_EXCL if exclusive else 0),
                 family_of(ct), ct)
    finally:
        nfct_destroy(ct)


def delete_flow(int nsfd, Flow flow not None):
    """Delete the entry a dumped Flow describes (by tuple, zone and id)."""
    cdef char req[8192]
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, NLM_F_ACK,
                                         family_of(flow.ct))
    try:
        if put_lookup(nlh, flow.ct, True) < 0:
            raise MemoryError()
        sock.talk(nlh, _ignore_answer, NULL)
    finally:
        sock.close()


def flush(int nsfd, int family):
    """-F: IPCTNL_MSG_CT_DELETE without a tuple. Like conntrack (nfgen version 0), the kernel then
    empties the whole table whatever the family."""
    _talk_ct(nsfd, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, family, NULL)


# --- the expectation table ----------------------------------------------------------------------------

cdef int _talk_exp(int nsfd, uint16_t type, uint16_t flags, uint8_t family, const nf_expect *exp) except -1:
    cdef char req[8192]
    cdef NfctSocket sock = NfctSocket(nsfd)
    cdef nlmsghdr *nlh = sock.put_header(req, NFNL_SUBSYS_CTNETLINK_EXP, type, flags, family)
    try:
        if exp != NULL and nfexp_nlmsg_build(nlh, exp) < 0:
            raise from_errno(errno, "build request")
        sock.talk(nlh, _ignore_answer, NULL)
    finally:
        sock.close()
    return 0


cdef class _Objects:
    """The template objects of an expectation command (conntrack's tmpl.ct, exptuple, mask, exp)."""
    cdef nf_conntrack *ct
    cdef nf_conntrack *exptuple
    cdef nf_conntrack *mask
    cdef nf_expect *exp

    def __cinit__(self, command):
        self.ct = nfct_new()
        self.exptuple = nfct_new()
        self.mask = nfct_new()
        self.exp = nfexp_new()
        if self.ct == NULL or self.exptuple == NULL or self.mask == NULL or self.exp == NULL:
            raise MemoryError()
        tmpl = command.tmpl
        set_attrs(self.ct, tmpl.ct)
        set_attrs(self.exptuple, tmpl.exptuple)
        set_attrs(self.mask, tmpl.mask)
        for attr, value in tmpl.exp.items():
            nfexp_set_attr_u32(self.exp, attr, value)

    def __dealloc__(self):
        if self.exp != NULL:
            nfexp_destroy(self.exp)      # copies of the objects set in it, not these
        if self.ct != NULL:
            nfct_destroy(self.ct)
        if self.exptuple != NULL:
            nfct_destroy(self.exptuple)
        if self.mask != NULL:
            nfct_destroy(self.mask)


cdef uint8_t _exp_family(const nf_conntrack *master, const nf_conntrack *expected) noexcept:
    # the library's choice for nfexp requests: the master's family, else the expected tuple's
    if nfct_attr_is_set(master, ATTR_ORIG_L3PROTO):
        return nfct_get_attr_u8(master, ATTR_ORIG_L3PROTO)
    return nfct_get_attr_u8(expected, ATTR_ORIG_L3PROTO)


def expect_create(int nsfd, command):
    """-I expect: master = the -s/-d/-p tuple, expected = --tuple-src/--tuple-dst, mask = --mask-*."""
    cdef _Objects o = _Objects(command)
    nfexp_set_attr(o.exp, ATTR_EXP_MASTER, o.ct)
    nfexp_set_attr(o.exp, ATTR_EXP_EXPECTED, o.exptuple)
    nfexp_set_attr(o.exp, ATTR_EXP_MASK, o.mask)
    _talk_exp(nsfd, IPCTNL_MSG_EXP_NEW, NLM_F_CREATE | NLM_F_ACK | NLM_F_EXCL, _exp_family(o.ct, o.exptuple),
              o.exp)


def expect_delete(int nsfd, command):
    """-D expect: the expectation whose expected tuple is the -s/-d/-p tuple."""
    cdef _Objects o = _Objects(command)
    nfexp_set_attr(o.exp, ATTR_EXP_EXPECTED, o.ct)
    _talk_exp(nsfd, IPCTNL_MSG_EXP_DELETE, NLM_F_ACK, nfct_get_attr_u8(o.ct, ATTR_ORIG_L3PROTO), o.exp)


def expect_delete_flow(int nsfd, Flow expected not None):
    """Delete the expectation of this expected tuple (an Expectation's `tuple`)."""
    cdef nf_expect *exp = nfexp_new()
    if exp == NULL:
        raise MemoryError()
    try:
        nfexp_set_attr(exp, ATTR_EXP_EXPECTED, expected.ct)
        _talk_exp(nsfd, IPCTNL_MSG_EXP_DELETE, NLM_F_ACK, family_of(expected.ct), exp)
    finally:
        nfexp_destroy(exp)


def expect_get_request(command):
    """-G expect: (family, attributes) of the GET conntrack sends, the -s/-d/-p tuple as master."""
    cdef char buf[8192]
    cdef _Objects o = _Objects(command)
    cdef nlmsghdr *nlh = mnl_nlmsg_put_header(buf)
    cdef size_t start
    mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg))
    start = nlh.nlmsg_len
    nfexp_set_attr(o.exp, ATTR_EXP_MASTER, o.ct)
    if nfexp_nlmsg_build(nlh, o.exp) < 0:
        raise from_errno(errno, "build request")
    return _exp_family(o.ct, o.ct), PyBytes_FromStringAndSize(buf + start, nlh.nlmsg_len - start)


def expect_flush(int nsfd, int family):
    """-F expect."""
    _talk_exp(nsfd, IPCTNL_MSG_EXP_DELETE, NLM_F_ACK, family, NULL)


# --- -R: loading a file of commands ---------------------------------------------------------------------
#
# conntrack parses the whole file before it runs any line, then runs the lines one by one and stops at
# the first failure. pynfct does the same in two passes over the file: the first parses every line (and
# stops at the first bad one, having run nothing), the second parses again and runs. Most lines of a
# big file are plain -I/-A lines; those are parsed here in C with the same libc calls conntrack makes
# (inet_aton, inet_pton, strtoul, atoi, atol) and their requests are pipelined. Any line this fast
# parser does not fully understand goes to the Python port of conntrack's parser (pynfct.cli.parse),
# which also produces every error message. A failed create stops the run like conntrack's exit: the
# creates sent after it in the same batch are deleted again.

from libc.stdlib cimport strtoul, atoi, atol
from libc.string cimport memchr, memmove, strlen, strcmp, strncmp
from posix.unistd cimport read
from _nfct.sysapi cimport htons, inet_pton, inet_aton

cdef extern from "<strings.h>" nogil:
    int strncasecmp(const char *s1, const char *s2, size_t n)

cdef enum:
    LINE_MAX = 10240        # conntrack's fgets() buffer
    PARAM_MAX = 1024        # add_param_to_argv(): a longer word is "Parameter too long!"
    MAX_ARGC = 255
    READ_SIZE = 1 << 20
    BATCH_MAX = 2048        # requests per sendmsg (the buffer fills first for all but tiny ones)
    FAST_CREATE = 1
    FAST_ADD = 2

cdef unsigned int O_ORIG_SRC = Opt.ORIG_SRC, O_ORIG_DST = Opt.ORIG_DST
cdef unsigned int O_REPL_SRC = Opt.REPL_SRC, O_REPL_DST = Opt.REPL_DST
cdef unsigned int O_TIMEOUT = Opt.TIMEOUT, O_ZONE = Opt.ZONE
cdef unsigned int O_ORIG_ZONE = Opt.ORIG_ZONE, O_REPL_ZONE = Opt.REPL_ZONE
cdef unsigned int addr_opt[4]
addr_opt[:] = [O_ORIG_SRC, O_ORIG_DST, O_REPL_SRC, O_REPL_DST]

# -u words in conntrack's order (a word matches any case-insensitive prefix of it)
cdef const char *status_words[7]
status_words[:] = [b"ASSURED", b"SEEN_REPLY", b"UNSET", b"FIXED_TIMEOUT", b"EXPECTED", b"OFFLOAD",
                   b"HW_OFFLOAD"]
cdef uint32_t status_values[7]
status_values[:] = [1 << 2, 1 << 1, 0, 1 << 10, 1 << 0, 1 << 14, 1 << 15]
cdef const char *tcp_state_names[10]
tcp_state_names[:] = [b"NONE", b"SYN_SENT", b"SYN_RECV", b"ESTABLISHED", b"FIN_WAIT", b"CLOSE_WAIT",
                      b"LAST_ACK", b"TIME_WAIT", b"CLOSE", b"SYN_SENT2"]


cdef struct fast_t:
    int command
    int family
    int proto
    unsigned int options
    unsigned int l4flags
    uint8_t addr[4][16]       # -s, -d, -r, -q
    uint16_t port[4]          # --sport, --dport, --reply-port-src, --reply-port-dst (network order)
    int state
    uint32_t timeout
    uint32_t status
    uint32_t mark_value
    uint32_t mark_mask
    uint16_t zone[3]          # -w, --orig-zone, --reply-zone


cdef inline bint is_prefix_ci(const char *tok, size_t n, const char *word) noexcept nogil:
    return n <= strlen(word) and strncasecmp(tok, word, n) == 0


cdef int fast_status(fast_t *f, char *arg) noexcept nogil:
    """-u as parse_parameter_mask() reads plain word lists; -1 for anything else (negations, UNREPLIED,
    the SRC_NAT/DST_NAT warnings, unknown words)."""
    cdef char *p = arg
    cdef char *comma
    cdef size_t n
    cdef uint32_t status = 0
    cdef int i
    while True:
        comma = <char *>memchr(p, b',', strlen(p))
        n = <size_t>(comma - p) if comma != NULL else strlen(p)
        if n == 0 or p[0] == b'!' or strncmp(p, "UNREPLIED", 9) == 0:
            return -1
        if is_prefix_ci(p, n, "SRC_NAT") or is_prefix_ci(p, n, "DST_NAT"):
            return -1
        for i in range(7):
            if is_prefix_ci(p, n, status_words[i]):
                status |= status_values[i]
                break
        else:
            return -1
        if comma == NULL:
            break
        p = comma + 1
    f.status = status
    f.mark_value = status          # conntrack's -u also stores the status as the mark value
    return 0


cdef int fast_addr(fast_t *f, int which, const char *arg) noexcept nogil:
    cdef int family
    if strlen(arg) > 45 or memchr(arg, b'/', strlen(arg)) != NULL:
        return -1               # CIDR (a mask object) or truncation: the full parser's job
    memset(f.addr[which], 0, 16)
    if inet_aton(arg, <void *>f.addr[which]):
        family = AF_INET
    elif inet_pton(AF_INET6, arg, f.addr[which]) > 0:
        family = AF_INET6
    else:
        return -1
    if f.family == 0:
        f.family = family
    elif f.family != family:
        return -1               # "mismatched address family"
    return 0


cdef int fast_parse(fast_t *f, char *line, size_t len, char **argv) noexcept nogil:
    """Parse one -I/-A line of the common shape; 0 when done, -1 to leave it to the full parser.

    Understood: -I/--create, -A/--add, -s -d -r -q (and long names) with an address, -p tcp|udp,
    -t, -u, -m, -w, --orig-zone, --reply-zone, and after -p: --sport --dport --orig-port-src
    --orig-port-dst --reply-port-src --reply-port-dst, --state (tcp). Each option in its own word
    with its value in the next. Lines that need conntrack's checks to fail go to the full parser too.
    """
    cdef int argc = 0, i, k
    cdef size_t pos = 0
    cdef char *tok
    cdef char *arg
    cdef char *end
    cdef unsigned long v
    cdef int need
    memset(f, 0, sizeof(fast_t))
    f.state = -1
    f.mark_mask = 0xFFFFFFFF
    # add_param_to_argv() without quotes: words split at blanks, tabs and newlines
    if memchr(line, b'"', len) != NULL:
        return -1
    while pos < len:
        while pos < len and (line[pos] == b' ' or line[pos] == b'\t' or line[pos] == b'\n'):
            pos += 1
        if pos >= len:
            break
        tok = line + pos
        while pos < len and not (line[pos] == b' ' or line[pos] == b'\t' or line[pos] == b'\n'):
            pos += 1
        if pos - (tok - line) >= PARAM_MAX - 1 or argc >= MAX_ARGC - 2:
            return -1
        line[pos] = 0           # the caller's copy; the full parser gets the original bytes
        pos += 1
        argv[argc] = tok
        argc += 1
    i = 0
    while i < argc:
        tok = argv[i]
        if tok[0] != b'-':
            return -1           # a table name or a word getopt would move: not this parser's business
        arg = argv[i + 1] if i + 1 < argc else NULL
        if strcmp(tok, "-I") == 0 or strcmp(tok, "--create") == 0 or strcmp(tok, "-A") == 0 \
                or strcmp(tok, "--add") == 0:
            if f.command:
                return -1
            f.command = FAST_ADD if (tok[1] == b'A' or tok[2] == b'a') else FAST_CREATE
            i += 1
            continue
        if arg == NULL:
            return -1
        if strcmp(tok, "-s") == 0 or strcmp(tok, "--src") == 0 or strcmp(tok, "--orig-src") == 0:
            k = 0
        elif strcmp(tok, "-d") == 0 or strcmp(tok, "--dst") == 0 or strcmp(tok, "--orig-dst") == 0:
            k = 1
        elif strcmp(tok, "-r") == 0 or strcmp(tok, "--reply-src") == 0:
            k = 2
        elif strcmp(tok, "-q") == 0 or strcmp(tok, "--reply-dst") == 0:
            k = 3
        else:
            k = -1
        if k >= 0:
            if fast_addr(f, k, arg) < 0:
                return -1
            f.options |= addr_opt[k]
        elif strcmp(tok, "-p") == 0 or strcmp(tok, "--protonum") == 0:
            if f.proto:
                return -1
            if strcmp(arg, "tcp") == 0:
                f.proto = 6
            elif strcmp(arg, "udp") == 0:
                f.proto = 17
            else:
                return -1
            f.options |= O_PROTO
        elif strcmp(tok, "-t") == 0 or strcmp(tok, "--timeout") == 0:
            f.timeout = <uint32_t>atol(arg)
            f.options |= O_TIMEOUT
        elif strcmp(tok, "-u") == 0 or strcmp(tok, "--status") == 0:
            if fast_status(f, arg) < 0:
                return -1
            f.options |= O_STATUS
        elif strcmp(tok, "-m") == 0 or strcmp(tok, "--mark") == 0:
            v = strtoul(arg, &end, 0)
            f.mark_value = <uint32_t>v
            f.mark_mask = <uint32_t>strtoul(end + 1, NULL, 0) if end[0] == b'/' else 0xFFFFFFFF
            f.options |= O_MARK
        elif strcmp(tok, "-w") == 0 or strcmp(tok, "--zone") == 0:
            f.zone[0] = <uint16_t>strtoul(arg, NULL, 0)
            f.options |= O_ZONE
        elif strcmp(tok, "--orig-zone") == 0:
            f.zone[1] = <uint16_t>strtoul(arg, NULL, 0)
            f.options |= O_ORIG_ZONE
        elif strcmp(tok, "--reply-zone") == 0:
            f.zone[2] = <uint16_t>strtoul(arg, NULL, 0)
            f.options |= O_REPL_ZONE
        elif f.proto and (strcmp(tok, "--sport") == 0 or strcmp(tok, "--orig-port-src") == 0):
            f.port[0] = htons(<uint16_t>atoi(arg))
            f.l4flags |= 1
        elif f.proto and (strcmp(tok, "--dport") == 0 or strcmp(tok, "--orig-port-dst") == 0):
            f.port[1] = htons(<uint16_t>atoi(arg))
            f.l4flags |= 2
        elif f.proto and strcmp(tok, "--reply-port-src") == 0:
            f.port[2] = htons(<uint16_t>atoi(arg))
            f.l4flags |= 4
        elif f.proto and strcmp(tok, "--reply-port-dst") == 0:
            f.port[3] = htons(<uint16_t>atoi(arg))
            f.l4flags |= 8
        elif f.proto == 6 and strcmp(tok, "--state") == 0:
            if strcmp(arg, "LISTEN") == 0:
                f.state = 9     # TCP_CONNTRACK_LISTEN
            else:
                for k in range(10):
                    if strcmp(arg, tcp_state_names[k]) == 0:
                        f.state = k
                        break
                else:
                    return -1
            f.l4flags |= 1 << 6
        else:
            return -1
        i += 2
    # conntrack's checks for -I/-A: -p and -t compulsory, both addresses of a direction, both ports of
    # a direction, --state for tcp. A line that fails them is the full parser's (it has the message).
    if not f.command or not f.proto or not (f.options & O_TIMEOUT):
        return -1
    if (f.options & (O_ORIG_SRC | O_ORIG_DST)) != (O_ORIG_SRC | O_ORIG_DST) and \
            (f.options & (O_REPL_SRC | O_REPL_DST)) != (O_REPL_SRC | O_REPL_DST):
        return -1
    if (f.l4flags & 3) != 3 and (f.l4flags & 12) != 12:
        return -1
    if f.proto == 6 and f.state < 0:
        return -1
    if f.family == 0:
        f.family = AF_INET
    return 0


cdef nf_conntrack *fast_build(const fast_t *f) noexcept nogil:
    """The object conntrack's do_parse() and do_command_ct() build for the line."""
    cdef nf_conntrack *ct = nfct_new()
    cdef nf_conntrack_attr a4[4]
    cdef nf_conntrack_attr a6[4]
    cdef nf_conntrack_attr pa[4]
    cdef int k
    cdef uint8_t flags
    if ct == NULL:
        return NULL
    a4[:] = [ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST]
    a6[:] = [ATTR_ORIG_IPV6_SRC, ATTR_ORIG_IPV6_DST, ATTR_REPL_IPV6_SRC, ATTR_REPL_IPV6_DST]
    pa[:] = [ATTR_ORIG_PORT_SRC, ATTR_ORIG_PORT_DST, ATTR_REPL_PORT_SRC, ATTR_REPL_PORT_DST]
    for k in range(4):
        if f.options & addr_opt[k]:
            if f.family == AF_INET:
                nfct_set_attr_l(ct, a4[k], f.addr[k], 4)
            else:
                nfct_set_attr_l(ct, a6[k], f.addr[k], 16)
            nfct_set_attr_u8(ct, ATTR_ORIG_L3PROTO if k < 2 else ATTR_REPL_L3PROTO, f.family)
    nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO, f.proto)
    for k in range(4):
        if f.l4flags & (1 << k):
            nfct_set_attr_u16(ct, pa[k], f.port[k])
            nfct_set_attr_u8(ct, ATTR_ORIG_L4PROTO if k < 2 else ATTR_REPL_L4PROTO, f.proto)
    if f.state >= 0:
        nfct_set_attr_u8(ct, ATTR_TCP_STATE, f.state)
    nfct_set_attr_u32(ct, ATTR_TIMEOUT, f.timeout)
    if f.options & O_STATUS:
        nfct_set_attr_u32(ct, ATTR_STATUS, f.status)
    if f.options & O_ZONE:
        nfct_set_attr_u16(ct, ATTR_ZONE, f.zone[0])
    if f.options & O_ORIG_ZONE:
        nfct_set_attr_u16(ct, ATTR_ORIG_ZONE, f.zone[1])
    if f.options & O_REPL_ZONE:
        nfct_set_attr_u16(ct, ATTR_REPL_ZONE, f.zone[2])
    if f.proto == 6:
        # the tcp extension's final check: window tracking off (and re-open from TIME_WAIT)
        flags = 0x08 | 0x02
        if f.state >= 7:
            flags |= 0x04
        nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_ORIG, flags)
        nfct_set_attr_u8(ct, ATTR_TCP_MASK_ORIG, flags)
        nfct_set_attr_u8(ct, ATTR_TCP_FLAGS_REPL, flags)
        nfct_set_attr_u8(ct, ATTR_TCP_MASK_REPL, flags)
    if f.options & (O_ORIG_SRC | O_ORIG_DST) and not f.options & (O_REPL_SRC | O_REPL_DST):
        nfct_setobjopt(ct, NFCT_SOPT_SETUP_REPLY)
    elif not f.options & (O_ORIG_SRC | O_ORIG_DST) and f.options & (O_REPL_SRC | O_REPL_DST):
        nfct_setobjopt(ct, NFCT_SOPT_SETUP_ORIGINAL)
    if f.options & O_MARK:
        nfct_set_attr_u32(ct, ATTR_MARK, f.mark_value)
    return ct


def fast_request(bytes line):
    """(command, family, request bytes) of a line the C parser takes, else None. For tests: the
    request must be the one the full parser's template gives (see create_request)."""
    cdef fast_t f
    cdef char *argv[MAX_ARGC]
    cdef char buf[8192]
    cdef char work[LINE_MAX]
    cdef nf_conntrack *ct
    cdef nlmsghdr *nlh
    if len(line) >= LINE_MAX:
        return None
    memcpy(work, <const char *>line, len(line))     # the parser cuts its copy into words
    if fast_parse(&f, work, len(line), argv) < 0:
        return None
    ct = fast_build(&f)
    if ct == NULL:
        raise MemoryError()
    memset(buf, 0, sizeof(buf))           # attribute padding is left as it was: compare zeros
    nlh = mnl_nlmsg_put_header(buf)
    mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg))
    nfct_nlmsg_build(nlh, ct)
    nfct_destroy(ct)
    return ("add" if f.command == FAST_ADD else "create", f.family,
            PyBytes_FromStringAndSize(buf, nlh.nlmsg_len))


def create_request(command):
    """(family, request bytes) of a parsed -I/-A command, as create() sends it (without the header
    fields that vary)."""
    cdef char buf[8192]
    cdef nf_conntrack *ct = template_ct(command)
    cdef nlmsghdr *nlh
    memset(buf, 0, sizeof(buf))
    nlh = mnl_nlmsg_put_header(buf)
    mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg))
    nfct_nlmsg_build(nlh, ct)
    nfct_destroy(ct)
    return command.family, PyBytes_FromStringAndSize(buf, nlh.nlmsg_len)


cdef struct reader_t:
    int fd
    int copy_fd              # pass 1 of a pipe: what is read is also kept here for pass 2
    char *buf
    size_t start
    size_t end
    bint eof
    int err


cdef int reader_fill(reader_t *r) noexcept nogil:
    cdef ssize_t n
    cdef size_t off
    cdef ssize_t w
    if r.start > 0:
        memmove(r.buf, r.buf + r.start, r.end - r.start)
        r.end -= r.start
        r.start = 0
    while True:
        n = read(r.fd, r.buf + r.end, READ_SIZE - r.end)
        if n < 0 and errno == EINTR:
            continue
        break
    if n < 0:
        r.err = errno
        return -1
    if n == 0:
        r.eof = True
        return 0
    if r.copy_fd >= 0:
        off = 0
        while off < <size_t>n:
            w = write(r.copy_fd, r.buf + r.end + off, n - off)
            if w < 0:
                if errno == EINTR:
                    continue
                r.err = errno
                return -1
            off += w
    r.end += n
    return 0


cdef int reader_next(reader_t *r, char **line, size_t *len) noexcept nogil:
    """The next fgets(buf, 10240) chunk: up to and with a newline, at most 10239 bytes. 0 at the end."""
    cdef char *nl
    cdef size_t avail
    while True:
        avail = r.end - r.start
        nl = <char *>memchr(r.buf + r.start, b'\n', avail if avail < LINE_MAX - 1 else LINE_MAX - 1)
        if nl != NULL:
            line[0] = r.buf + r.start
            len[0] = <size_t>(nl - (r.buf + r.start)) + 1
            r.start += len[0]
            return 1
        if avail >= LINE_MAX - 1 or (r.eof and avail > 0):
            line[0] = r.buf + r.start
            len[0] = avail if avail < LINE_MAX - 1 else LINE_MAX - 1
            r.start += len[0]
            return 1
        if r.eof:
            return 0
        if reader_fill(r) < 0:
            return -1


# A batch of creates and what each request came from; the Loader's sender thread sends full batches
# while the calling thread parses and builds the next one (the kernel does its part inside sendmsg).
cdef struct cbatch_t:
    batch_t b
    long lines[BATCH_MAX]
    long ords[BATCH_MAX]      # the request's place among all creates of the run
    char is_add[BATCH_MAX]
    int errs[BATCH_MAX]
    size_t offs[BATCH_MAX]


cdef struct load_ctx:
    req_t req
    cbatch_t batches[NBATCH_LOAD]
    pthread_mutex_t lock
    pthread_cond_t cond
    long submitted            # batches handed over (the one being filled is batches[submitted % N])
    long processed            # batches the sender is done with
    bint done
    bint threaded
    bint stopped              # a create failed: later batches are dropped unsent
    pthread_t thread
    long created
    long existed
    bint keep_going
    long *fail_pairs          # keep_going: (line, errno) pairs
    long nfail
    long capfail
    long fail_line
    int fail_errno
    bint fail_add
    long ordinal              # creates queued so far
    uint8_t *done_bits        # bit per create: it made an entry (for a later undo)
    long done_cap             # bytes
    bint cancelled            # stop reading (the check of the file found an error)
    const uint8_t *undo_bits  # undo mode: delete what these creates made, instead of creating
    long undo_len             # bytes of undo_bits


cdef int mark_done(load_ctx *c, long ordinal) noexcept nogil:
    cdef uint8_t *p
    cdef long need = ordinal // 8 + 1, cap
    if need > c.done_cap:
        cap = need * 2 + 4096
        p = <uint8_t *>realloc(c.done_bits, cap)
        if p == NULL:
            return -1
        memset(p + c.done_cap, 0, cap - c.done_cap)
        c.done_bits = p
        c.done_cap = cap
    c.done_bits[ordinal // 8] |= 1 << (ordinal % 8)
    return 0


cdef int load_flush(load_ctx *c, cbatch_t *cb) noexcept nogil:
    """Send one batch. On the first failure (an existing entry is none for -A), delete again what
    the requests after it created, and return -1 with fail_* set."""
    cdef batch_t *b = &cb.b
    cdef int n = b.n, i, k = -1, e
    cdef size_t len = 0
    cdef nlmsghdr *nlh
    cdef long *p
    if n == 0:
        return 0
    if req_flush(&c.req, b, create_answer, <void *>cb.errs) < 0:
        c.fail_errno = c.req.err
        c.fail_line = cb.lines[0]
        b.len = b.n = 0
        return -1
    if c.undo_bits != NULL:
        return 0        # undoing: an entry already gone is as good as deleted
    for i in range(n):
        e = cb.errs[i]
        if e == 0:
            if k < 0:
                c.created += 1
        elif e == EEXIST and cb.is_add[i]:
            if k < 0:
                c.existed += 1
        elif c.keep_going:
            if c.nfail == c.capfail:
                p = <long *>realloc(c.fail_pairs, (c.capfail * 2 + 64) * 2 * sizeof(long))
                if p == NULL:
                    c.fail_errno = ENOMEM
                    return -1
                c.fail_pairs = p
                c.capfail = c.capfail * 2 + 64
            c.fail_pairs[2 * c.nfail] = cb.lines[i]
            c.fail_pairs[2 * c.nfail + 1] = e
            c.nfail += 1
        elif k < 0:
            k = i
    for i in range(n if k < 0 else k):
        if cb.errs[i] == 0 and mark_done(c, cb.ords[i]) < 0:
            c.fail_errno = ENOMEM
            return -1
    if k < 0:
        return 0
    c.fail_line = cb.lines[k]
    c.fail_errno = cb.errs[k]
    c.fail_add = cb.is_add[k]
    # Undo: the same requests as deletes (the kernel finds the entry by their original tuple); their
    # sequence numbers are answered already, so they are used again.
    for i in range(k + 1, n):
        if cb.errs[i] != 0:
            continue
        nlh = <nlmsghdr *>(b.buf + cb.offs[i])
        memmove(b.buf + len, nlh, nlh.nlmsg_len)
        nlh = <nlmsghdr *>(b.buf + len)
        nlh.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
        nlh.nlmsg_flags = NLM_F_REQUEST
        b.len = len
        req_done(b, nlh)
        len += nlh.nlmsg_len
    req_flush(&c.req, b, ignore_answer, NULL)
    b.len = b.n = 0
    return -1


cdef void *load_sender(void *arg) noexcept nogil:
    cdef load_ctx *c = <load_ctx *>arg
    cdef cbatch_t *cb
    while True:
        pthread_mutex_lock(&c.lock)
        while c.processed == c.submitted and not c.done:
            pthread_cond_wait(&c.cond, &c.lock)
        if c.processed == c.submitted:
            pthread_mutex_unlock(&c.lock)
            return NULL
        cb = &c.batches[c.processed % NBATCH_LOAD]
        pthread_mutex_unlock(&c.lock)
        if c.stopped:
            cb.b.len = cb.b.n = 0           # after a failure nothing more is sent
        elif load_flush(c, cb) < 0:
            c.stopped = True
        pthread_mutex_lock(&c.lock)
        c.processed += 1
        pthread_cond_broadcast(&c.cond)
        pthread_mutex_unlock(&c.lock)


cdef inline cbatch_t *load_batch(load_ctx *c) noexcept nogil:
    return &c.batches[c.submitted % NBATCH_LOAD]


cdef int load_submit(load_ctx *c, bint wait_all) noexcept nogil:
    """Hand the batch being filled over (threaded) or send it; with wait_all, also wait until every
    batch is done. -1 once a create has failed."""
    if not c.threaded:
        if not c.stopped and load_flush(c, load_batch(c)) < 0:
            c.stopped = True
        return -1 if c.stopped else 0
    pthread_mutex_lock(&c.lock)
    if load_batch(c).b.n:
        c.submitted += 1
        pthread_cond_broadcast(&c.cond)
    while c.submitted - c.processed >= (1 if wait_all else NBATCH_LOAD):
        pthread_cond_wait(&c.cond, &c.lock)
    pthread_mutex_unlock(&c.lock)
    return -1 if c.stopped else 0


cdef class Loader:
    """One pass over a -R file. `slow(line: bytes, lineno: int)` is called for every line the C parser
    leaves to the full one (with `proto`, the -p of the last line parsed here: "tcp", "udp" or None);
    with `run`, fast -I/-A lines are sent as they come and slow ones go through queue_create() or,
    after sync(), through the command handlers. A sender thread sends full batches of creates while
    the calling thread reads and builds the next ones."""
    cdef reader_t rd
    cdef load_ctx *c
    cdef NfctSocket sock
    cdef bint run
    cdef bint started
    cdef object slow
    cdef readonly long lineno
    cdef readonly long fast_lines
    cdef readonly int last_proto

    def __cinit__(self):
        memset(&self.rd, 0, sizeof(reader_t))
        self.rd.fd = self.rd.copy_fd = -1
        self.c = <load_ctx *>calloc(1, sizeof(load_ctx))
        if self.c == NULL:
            raise MemoryError()

    cdef object undo_ref
    cdef long stop_line

    def __init__(self, int fd, slow, int nsfd=-1, bint run=False, int copy_fd=-1, threaded=None,
                 bytes undo=None, long stop_line=0):
        """`undo` (done_bits() of an earlier run over the same file) makes the creates of the lines up
        to `stop_line` delete what that run created instead."""
        cdef int k
        self.rd.fd = fd
        self.rd.copy_fd = copy_fd
        if fd >= 0:
            self.rd.buf = <char *>malloc(READ_SIZE)
            if self.rd.buf == NULL:
                raise MemoryError()
        self.slow = slow
        self.run = run
        self.stop_line = stop_line
        if undo is not None:
            self.undo_ref = undo                      # kept alive
            self.c.undo_bits = <const uint8_t *><const char *>self.undo_ref
            self.c.undo_len = len(undo)
        if run:
            self.sock = NfctSocket(nsfd)
            req_init(&self.c.req, self.sock)
            for k in range(NBATCH_LOAD):
                if batch_init(&self.c.batches[k].b) < 0:
                    raise MemoryError()
            pthread_mutex_init(&self.c.lock, NULL)
            pthread_cond_init(&self.c.cond, NULL)
            self.started = True
            if threaded is None:
                threaded = len(os.sched_getaffinity(0)) >= 2
            if threaded and pthread_create(&self.c.thread, NULL, load_sender, self.c) == 0:
                self.c.threaded = True

    def __dealloc__(self):
        cdef int k
        self._join()
        free(self.rd.buf)
        if self.c != NULL:
            for k in range(NBATCH_LOAD):
                free(self.c.batches[k].b.buf)
            if self.started:
                pthread_mutex_destroy(&self.c.lock)
                pthread_cond_destroy(&self.c.cond)
            req_free(&self.c.req)
            free(self.c.fail_pairs)
            free(self.c.done_bits)
            free(self.c)
            self.c = NULL

    cdef void _join(self) noexcept:
        if self.c != NULL and self.c.threaded:
            with nogil:
                pthread_mutex_lock(&self.c.lock)
                self.c.done = True
                pthread_cond_broadcast(&self.c.cond)
                pthread_mutex_unlock(&self.c.lock)
                pthread_join(self.c.thread, NULL)
            self.c.threaded = False

    def close(self):
        self._join()
        if self.sock is not None:
            self.sock.close()

    @property
    def proto(self):
        return {6: "tcp", 17: "udp"}.get(self.last_proto)

    @property
    def created(self):
        """Requests that created an entry (final after sync() or scan())."""
        return self.c.created

    @property
    def existed(self):
        """-A lines whose entry was there already."""
        return self.c.existed

    @property
    def fail_line(self):
        return self.c.fail_line

    @property
    def fail_errno(self):
        return self.c.fail_errno

    @property
    def fail_add(self):
        return self.c.fail_add

    property keep_going:
        """API bulk creates: note every failure (in `failures`) and undo nothing."""
        def __get__(self):
            return self.c.keep_going

        def __set__(self, bint value):
            self.c.keep_going = value

    @property
    def failures(self):
        """(line or item number, errno) of the refused creates, with keep_going."""
        return [(self.c.fail_pairs[2 * i], <int>self.c.fail_pairs[2 * i + 1]) for i in range(self.c.nfail)]

    cdef int queue(self, nf_conntrack *ct, int family, bint add) noexcept nogil:
        """Add a create request to the batch; hands the batch over when full. -1 once one failed."""
        cdef cbatch_t *cb = load_batch(self.c)
        cdef nlmsghdr *nlh
        cdef int i = cb.b.n
        cdef long ordinal = self.c.ordinal
        if self.c.stopped:
            return -1
        self.c.ordinal += 1
        if self.c.undo_bits != NULL:
            # undo mode: the kernel finds the entry by the create request's original tuple
            if ordinal // 8 >= self.c.undo_len or not self.c.undo_bits[ordinal // 8] & (1 << (ordinal % 8)):
                return 0
            nlh = req_put(&self.c.req, &cb.b, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, 0, family)
        else:
            nlh = req_put(&self.c.req, &cb.b, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW,
                          NLM_F_CREATE | NLM_F_EXCL, family)
        nfct_nlmsg_build(nlh, ct)
        cb.offs[i] = cb.b.len
        req_done(&cb.b, nlh)
        cb.ords[i] = ordinal
        cb.lines[i] = self.lineno
        cb.is_add[i] = add
        cb.errs[i] = 0
        if cb.b.n == BATCH_MAX or batch_full(&cb.b):
            return load_submit(self.c, False)
        return 0

    def done_bits(self):
        """Which creates made an entry (a bit per create, in file order): for an undo run."""
        return PyBytes_FromStringAndSize(<const char *>self.c.done_bits, self.c.done_cap) \
            if self.c.done_bits != NULL else b""

    def cancel(self):
        """Stop scan() at the next line (from another thread): the file check found an error."""
        self.c.cancelled = True

    @property
    def cancelled(self):
        return self.c.cancelled

    def queue_create(self, command):
        """A -I/-A line the full parser read: its request joins the batch."""
        cdef nf_conntrack *ct = template_ct(command)
        cdef int ret
        cdef bint add
        cdef int family = command.family
        from pynfct.template import Cmd
        add = command.command == Cmd.CT_ADD
        with nogil:
            ret = self.queue(ct, family, add)
        nfct_destroy(ct)
        if ret < 0:
            raise _Stop()

    def queue_flow(self, Flow flow not None, bint add=False):
        """Create an entry like a dumped one (see create_flow) as part of the batch."""
        cdef nf_conntrack *ct = creatable_clone(flow.ct)
        cdef int ret
        self.lineno += 1
        with nogil:
            ret = self.queue(ct, family_of(ct), add)
        nfct_destroy(ct)
        if ret < 0:
            raise _Stop()

    def queue_command(self, command):
        """queue_create() for the API: counts items as lines."""
        self.lineno += 1
        self.queue_create(command)

    def sync(self):
        """Send what is queued and wait for it (before a -U/-D/-F line runs, and at the end)."""
        cdef int ret = 0
        if self.run:
            with nogil:
                ret = load_submit(self.c, True)
        if ret < 0:
            raise _Stop()

    def scan(self):
        """Read the whole file; raises _Stop after a failed create (see fail_*)."""
        cdef char *line
        cdef size_t len, j
        cdef fast_t f
        cdef char *argv[MAX_ARGC]
        cdef char work[LINE_MAX]
        cdef int rc
        cdef nf_conntrack *ct
        cdef bint stop = False
        while True:
            with nogil:
                while True:
                    if self.c.cancelled or (self.stop_line and self.lineno >= self.stop_line):
                        rc = 0
                        break
                    rc = reader_next(&self.rd, &line, &len)
                    if rc <= 0:
                        break
                    self.lineno += 1
                    # as ct_parse_file(): the string ends at a NUL; blanks first; empty lines and comments
                    j = 0
                    while j < len and line[j] != 0:
                        j += 1
                    len = j
                    j = 0
                    while j < len and (line[j] == b' ' or line[j] == b'\t'):
                        j += 1
                    if j < len and (line[j] == b'\n' or line[j] == b'#'):
                        continue
                    memcpy(work, line + j, len - j)
                    if fast_parse(&f, work, len - j, argv) == 0:
                        self.fast_lines += 1
                        self.last_proto = f.proto
                        if self.run:
                            ct = fast_build(&f)
                            if ct == NULL:
                                self.c.fail_errno = ENOMEM
                                self.c.fail_line = self.lineno
                                stop = True
                                break
                            if self.queue(ct, f.family, f.command == FAST_ADD) < 0:
                                stop = True
                            nfct_destroy(ct)
                            if stop:
                                break
                        continue
                    break       # the full parser's line
            if stop:
                self.sync_quietly()
                raise _Stop()
            if rc < 0:
                raise from_errno(self.rd.err, "read")
            if rc == 0:
                break
            self.slow(PyBytes_FromStringAndSize(line + j, len - j), self.lineno)
            self.last_proto = 0
        self.sync()

    cdef void sync_quietly(self) noexcept:
        # let the sender finish (and drop) what is in flight before fail_* are read
        if self.run:
            with nogil:
                load_submit(self.c, True)


class _Stop(Exception):
    """A create of the file failed: Loader.fail_* say which and why."""


cdef void create_answer(void *data, uint32_t index, int err, const nlmsghdr *nlh) noexcept nogil:
    if nlh == NULL and index < BATCH_MAX:
        (<int *>data)[index] = err


cdef void ignore_answer(void *data, uint32_t index, int err, const nlmsghdr *nlh) noexcept nogil:
    pass
