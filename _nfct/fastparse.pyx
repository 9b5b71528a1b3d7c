# cython: language_level=3
"""The C parser of the common -I/-A line of a -R file (see _nfct.load).

Most lines of a big file are plain -I/-A lines; those are parsed here in C with the same libc calls
conntrack makes (inet_aton, inet_pton, strtoul, atoi, atol), and fast_build() makes the object
conntrack would send for them. Any line this fast parser does not fully understand goes to the Python
port of conntrack's parser (pynfct.cli.parse), which also produces every error message.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.stdlib cimport strtoul, atoi, atol
from libc.string cimport memcpy, memset, memchr, strlen, strcmp, strncmp

from _nfct.libmnl cimport mnl_nlmsg_put_header, mnl_nlmsg_put_extra_header
from _nfct.libnfct cimport *
from _nfct.netlink cimport nlmsghdr, nfgenmsg
from _nfct.sysapi cimport htons, inet_pton, inet_aton
from _nfct.request cimport template_ct

from _nfct.constants cimport (O_MARK, O_STATUS, O_PROTO, O_ORIG_SRC, O_ORIG_DST, O_REPL_SRC, O_REPL_DST,
                              O_TIMEOUT, O_ZONE, O_ORIG_ZONE, O_REPL_ZONE)

cdef extern from "<strings.h>" nogil:
    int strncasecmp(const char *s1, const char *s2, size_t n)

cdef enum:
    AF_INET = 2
    AF_INET6 = 10
    PARAM_MAX = 1024        # add_param_to_argv(): a longer word is "Parameter too long!"

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
