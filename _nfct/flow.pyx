# cython: language_level=3
"""Flow and Tuple: one conntrack entry, decoded field by field only when Python reads it.

A Flow is a value: equal to another when their as_dict() objects are equal (docs/json.md), built back
from such an object by Flow.from_dict(), and pickled as one ctnetlink message holding every attribute.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset, memcpy, strlen

from _nfct.libnfct cimport *
from _nfct.libmnl cimport mnl_nlmsg_put_header, mnl_nlmsg_put_extra_header, mnl_attr_put, mnl_attr_put_u8, \
    mnl_attr_put_u16, mnl_attr_put_u32, mnl_attr_nest_start, mnl_attr_nest_end
from _nfct.netlink cimport nlmsghdr, nlattr, nfgenmsg, NFNL_SUBSYS_CTNETLINK, NFNETLINK_V0, IPCTNL_MSG_CT_NEW, \
    CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_STATUS, CTA_MARK, CTA_ZONE, CTA_ID, CTA_TUPLE_IP, CTA_TUPLE_PROTO, \
    CTA_TUPLE_ZONE, CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST, CTA_PROTO_NUM, \
    CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT, CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE, \
    CTA_PROTO_ICMPV6_ID, CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE
from _nfct.netlink cimport \
    CTA_PROTOINFO, CTA_HELP, CTA_TIMEOUT, CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY, CTA_USE, \
    CTA_TUPLE_MASTER, CTA_NAT_SEQ_ADJ_ORIG, CTA_NAT_SEQ_ADJ_REPLY, CTA_SECMARK, CTA_SECCTX, \
    CTA_TIMESTAMP, CTA_LABELS, CTA_SYNPROXY, CTA_PROTOINFO_TCP, CTA_PROTOINFO_DCCP, CTA_PROTOINFO_SCTP, \
    CTA_PROTOINFO_TCP_STATE, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, CTA_PROTOINFO_TCP_WSCALE_REPLY, \
    CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, CTA_PROTOINFO_TCP_FLAGS_REPLY, CTA_PROTOINFO_DCCP_STATE, \
    CTA_PROTOINFO_DCCP_ROLE, CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ, CTA_PROTOINFO_SCTP_STATE, \
    CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, CTA_PROTOINFO_SCTP_VTAG_REPLY, CTA_COUNTERS_PACKETS, \
    CTA_COUNTERS_BYTES, CTA_NAT_SEQ_CORRECTION_POS, CTA_NAT_SEQ_OFFSET_BEFORE, CTA_NAT_SEQ_OFFSET_AFTER, \
    CTA_SECCTX_NAME, CTA_TIMESTAMP_START, CTA_TIMESTAMP_STOP, CTA_SYNPROXY_ISN, CTA_SYNPROXY_ITS, \
    CTA_SYNPROXY_TSOFF, CTA_HELP_NAME
from _nfct.sysapi cimport ntohs, ntohl, htons, htonl, inet_ntop, inet_pton
from _nfct.format cimport state_name, fmt_t, format_ct
from _nfct.policy cimport checked_message



cdef extern from "<endian.h>" nogil:
    uint64_t htobe64(uint64_t)
from _nfct.constants cimport OUT_JSON


cdef enum:
    AF_INET = 2
    AF_INET6 = 10
    VALUE_MAX = 16384       # the JSON text of one entry (a Flow's value); -o json has 4096
    NLA_HDR = 4

_PROTO_NAMES = {6: "tcp", 17: "udp", 136: "udplite", 1: "icmp", 58: "icmpv6", 132: "sctp", 33: "dccp",
                47: "gre"}
cdef object _Status = None

cdef object _FlowKey = None


cdef object _flow_key():
    """The FlowKey class, made on first use: collections and the namedtuple cost a command line start
    about 1.5 ms, and only Flow.key needs it."""
    global _FlowKey
    if _FlowKey is None:
        from collections import namedtuple
        cls = namedtuple("FlowKey", "family protonum src dst l4 zone", module=__name__)
        cls.__doc__ = "What identifies a connection (Flow.key): the original tuple and zone."
        if _FlowKey is None:     # not made meanwhile by another thread
            _FlowKey = cls
    return _FlowKey


def __getattr__(name):
    if name == "FlowKey":
        return _flow_key()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_DCCP_ROLES = ("client", "server")       # -o json's names of the DCCP roles


cdef inline object _addr(const nf_conntrack *ct, nf_conntrack_attr a4, nf_conntrack_attr a6):
    cdef char buf[48]
    cdef uint8_t l3 = nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO)
    cdef const void *p
    if l3 == AF_INET:
        p = nfct_get_attr(ct, a4)
    elif l3 == AF_INET6:
        p = nfct_get_attr(ct, a6)
    else:
        return None
    if p == NULL or inet_ntop(l3, p, buf, 48) == NULL:
        return None
    return buf.decode("ascii")


cdef inline object _u16be(const nf_conntrack *ct, nf_conntrack_attr a):
    return ntohs(nfct_get_attr_u16(ct, a)) if nfct_attr_is_set(ct, a) else None


cdef inline object _u32(const nf_conntrack *ct, nf_conntrack_attr a):
    return nfct_get_attr_u32(ct, a) if nfct_attr_is_set(ct, a) else None


cdef inline object _u16(const nf_conntrack *ct, nf_conntrack_attr a):
    return nfct_get_attr_u16(ct, a) if nfct_attr_is_set(ct, a) else None


cdef inline object _str(const nf_conntrack *ct, nf_conntrack_attr a):
    if not nfct_attr_is_set(ct, a):
        return None
    return (<const char *>nfct_get_attr(ct, a)).decode("utf-8", "replace")


cdef object _MAKE = object()    # the key to make Flows and Tuples (see Flow.__cinit__)


cdef class Flow:
    """One conntrack entry. Read-only; fields are decoded when read.

    ``orig`` and ``reply`` are the two tuples; ``status`` is a :class:`pynfct.Status` flag set.
    Fields the kernel did not send (counters without nf_conntrack_acct, say) read as None.

    A Flow is a value: ``==`` and ``hash()`` compare its as_dict() (timeout and counters included; ``key``
    names the connection), ``Flow.from_dict(flow.as_dict()) == flow``, and it pickles exactly.
    """

    def __cinit__(self, key=None):
        # Only this module may make an empty Flow (and give it an entry at once): one made by
        # Flow.__new__(Flow) from Python would hold no entry, and C code reads its entry unchecked.
        if key is not _MAKE:
            raise TypeError("Flow objects come from Conntrack.dump()/get()/events() and Flow.from_dict(); "
                            "build new entries with pynfct.FlowSpec")
        self.ct = NULL

    def __init__(self, *args):
        raise TypeError("Flow objects come from Conntrack.dump()/get()/events() and Flow.from_dict(); "
                        "build new entries with pynfct.FlowSpec")

    def __dealloc__(self):
        if self.ct != NULL:
            nfct_destroy(self.ct)

    @staticmethod
    cdef Flow adopt(nf_conntrack *ct):
        cdef Flow f = Flow.__new__(Flow, _MAKE)
        f.ct = ct
        return f

    @property
    def family(self) -> str:
        cdef uint8_t l3 = nfct_get_attr_u8(self.ct, ATTR_ORIG_L3PROTO)
        return "ipv4" if l3 == AF_INET else "ipv6" if l3 == AF_INET6 else str(l3)

    @property
    def protonum(self) -> int:
        return nfct_get_attr_u8(self.ct, ATTR_ORIG_L4PROTO)

    @property
    def proto(self) -> str:
        n = nfct_get_attr_u8(self.ct, ATTR_ORIG_L4PROTO)
        return _PROTO_NAMES.get(n, "unknown")

    @property
    def orig(self) -> "Tuple":
        cdef Tuple t = Tuple.__new__(Tuple, _MAKE)
        t.flow = self
        t.reply = False
        return t

    @property
    def reply(self) -> "Tuple":
        cdef Tuple t = Tuple.__new__(Tuple, _MAKE)
        t.flow = self
        t.reply = True
        return t

    @property
    def state(self):
        """TCP, SCTP or DCCP state name, as conntrack prints it; None for other protocols."""
        cdef uint8_t l4 = nfct_get_attr_u8(self.ct, ATTR_ORIG_L4PROTO)
        cdef nf_conntrack_attr a
        cdef const char *name
        if l4 == 6:
            a = ATTR_TCP_STATE
        elif l4 == 132:
            a = ATTR_SCTP_STATE
        elif l4 == 33:
            a = ATTR_DCCP_STATE
        else:
            return None
        if not nfct_attr_is_set(self.ct, a):
            return None
        name = state_name(l4, nfct_get_attr_u8(self.ct, a))
        return name.decode() if name != NULL else str(nfct_get_attr_u8(self.ct, a))

    @property
    def status(self):
        global _Status
        if _Status is None:
            from _nfct.flags import Status
            _Status = Status
        return _Status(nfct_get_attr_u32(self.ct, ATTR_STATUS))

    @property
    def timeout(self):
        return _u32(self.ct, ATTR_TIMEOUT)

    @property
    def mark(self):
        return _u32(self.ct, ATTR_MARK)

    @property
    def secmark(self):
        return _u32(self.ct, ATTR_SECMARK)

    @property
    def secctx(self):
        return _str(self.ct, ATTR_SECCTX)

    @property
    def helper(self):
        return _str(self.ct, ATTR_HELPER_NAME)

    @property
    def zone(self):
        return _u16(self.ct, ATTR_ZONE)

    @property
    def id(self):
        return _u32(self.ct, ATTR_ID)

    @property
    def use(self):
        return _u32(self.ct, ATTR_USE)

    @property
    def start(self):
        """Kernel timestamp (ns) of creation; needs net.netfilter.nf_conntrack_timestamp=1."""
        return nfct_get_attr_u64(self.ct, ATTR_TIMESTAMP_START) if nfct_attr_is_set(self.ct, ATTR_TIMESTAMP_START) else None

    @property
    def stop(self):
        return nfct_get_attr_u64(self.ct, ATTR_TIMESTAMP_STOP) if nfct_attr_is_set(self.ct, ATTR_TIMESTAMP_STOP) else None

    @property
    def labels(self) -> frozenset:
        """The set label bits (names: pynfct.LabelMap)."""
        cdef const nfct_bitmask *b = <const nfct_bitmask *>nfct_get_attr(self.ct, ATTR_CONNLABELS)
        cdef unsigned int i
        if b == NULL:
            return frozenset()
        return frozenset([i for i in range(nfct_bitmask_maxbit(b) + 1) if nfct_bitmask_test_bit(b, i)])

    @property
    def role(self):
        """DCCP role (``client`` or ``server``); None for other protocols."""
        if nfct_get_attr_u8(self.ct, ATTR_ORIG_L4PROTO) != 33 or not nfct_attr_is_set(self.ct, ATTR_DCCP_ROLE):
            return None
        r = nfct_get_attr_u8(self.ct, ATTR_DCCP_ROLE)
        return _DCCP_ROLES[r] if r < 2 else str(r)

    @property
    def key(self):
        """What identifies the connection, not its state: a FlowKey(family, protonum, src, dst, l4, zone).

        These are what the kernel finds an entry by: the original tuple (``l4`` is (sport, dport), the
        GRE keys, or ICMP's (type, code, id)) and the zone of the original direction (``orig.zone``, else
        ``zone``, else 0). Two snapshots of one connection have the same key while their timeouts and
        counters differ; no two entries of one table have the same key.
        """
        cdef Tuple o = self.orig
        l4 = nfct_get_attr_u8(self.ct, ATTR_ORIG_L4PROTO)
        if l4 == 1 or l4 == 58:
            ports = (o.icmp_type, o.icmp_code, o.icmp_id)
        else:
            ports = (o.sport, o.dport)
        zone = o.zone
        if zone is None:
            zone = self.zone or 0
        return _flow_key()(self.family, l4, o.src, o.dst, ports, zone)

    def __str__(self):
        cdef char buf[4096]
        cdef int n = nfct_snprintf_labels(buf, 4096, self.ct, NFCT_T_UNKNOWN, NFCT_O_DEFAULT, 0, NULL)
        return buf[:min(max(n, 0), 4095)].decode("utf-8", "replace")

    def __repr__(self):
        return f"<Flow {self}>"

    cdef bytes _value(self):
        """The entry's -o json text (label bits as numbers): what equality and the hash compare."""
        cdef char buf[VALUE_MAX]
        cdef fmt_t f
        cdef size_t n
        memset(&f, 0, sizeof(fmt_t))
        f.out_type = NFCT_O_DEFAULT
        f.json = True
        n = format_ct(buf, VALUE_MAX, self.ct, &f, NFCT_T_UNKNOWN)
        return buf[:n]

    def __eq__(self, other):
        """Value equality: the same as_dict(), every field of it.

        That includes what changes while the connection lives (timeout, counters, state, status, use),
        so two dumps of one live entry are usually not equal; compare their ``key`` to ask whether they
        are the same connection. What as_dict() does not show (TCP window scaling and flags, NAT
        sequence adjustments, the master of an expected connection, the reply's ICMP type) is not part
        of the value. Hashing agrees with equality.
        """
        if not isinstance(other, Flow):
            return NotImplemented
        return self._value() == (<Flow>other)._value()

    def __hash__(self):
        return hash(self._value())

    def __copy__(self):
        return self            # read-only: a copy would be the same value

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        """Pickled as one ctnetlink message, the form the kernel sends an entry in: every attribute the
        entry has (the ones as_dict() leaves out too) comes back, bit for bit, through the same parser
        a dump uses (parse_message)."""
        return parse_message, (self._message(),)

    def _message(self) -> bytes:
        """The ctnetlink message (nlmsghdr included) that parse_message() turns back into this entry."""
        return ct_message(self.ct)

    def as_dict(self) -> dict:
        """The JSON schema of `-o json` as a dict (docs/json.md); label bits are numbers."""
        import json
        return json.loads(self._value())

    @classmethod
    def from_dict(cls, d, labelmap=None):
        """The Flow an as_dict() object describes: ``Flow.from_dict(f.as_dict()) == f``.

        ``d`` follows docs/json.md. Required: ``family``, ``protonum`` or ``proto`` (both: they must
        agree), ``orig`` and ``reply`` with ``src`` and ``dst``; the other keys are optional (None is
        the same as leaving a key out). A tuple has the fields of its protocol only (``sport``/``dport``,
        GRE ``srckey``/``dstkey``, ICMP ``type``/``code``/``id`` with type and code in ``orig`` only,
        SCTP ``vtag``), ``packets`` and ``bytes`` together or not at all. The reply direction's ICMP type
        is the kernel's answer to the original's (echo request 8: reply 0); a type that has none is
        refused. ``labels`` are bit numbers 0..127, or names when a LabelMap is given.

        Anything else raises, naming the key (``orig.sport``): TypeError for a value of the wrong type,
        ValueError for an unknown key, a missing one, a value out of range or an unknown name.

        The entry is built as the kernel would send it (one ctnetlink message, parsed like a dump), so
        it works wherever a dumped Flow does: str(), the attributes, create/update/delete.
        """
        return flow_from_dict(d, labelmap)


cdef class Tuple:
    """One direction of a flow: addresses, ports (or ICMP fields, GRE keys), counters, zone."""

    def __cinit__(self, key=None):
        if key is not _MAKE:      # as Flow: a Tuple without its Flow would be read unchecked
            raise TypeError("Tuple objects come from Flow.orig/Flow.reply")

    def __init__(self, *args):
        raise TypeError("Tuple objects come from Flow.orig/Flow.reply")

    @property
    def src(self):
        if self.reply:
            return _addr(self.flow.ct, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC)
        return _addr(self.flow.ct, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC)

    @property
    def dst(self):
        if self.reply:
            return _addr(self.flow.ct, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST)
        return _addr(self.flow.ct, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST)

    @property
    def sport(self):
        return _u16be(self.flow.ct, ATTR_REPL_PORT_SRC if self.reply else ATTR_ORIG_PORT_SRC)

    @property
    def dport(self):
        return _u16be(self.flow.ct, ATTR_REPL_PORT_DST if self.reply else ATTR_ORIG_PORT_DST)

    # GRE keys travel in the port attributes.
    @property
    def srckey(self):
        return self.sport

    @property
    def dstkey(self):
        return self.dport

    @property
    def icmp_type(self):
        return nfct_get_attr_u8(self.flow.ct, ATTR_ICMP_TYPE) if nfct_attr_is_set(self.flow.ct, ATTR_ICMP_TYPE) else None

    @property
    def icmp_code(self):
        return nfct_get_attr_u8(self.flow.ct, ATTR_ICMP_CODE) if nfct_attr_is_set(self.flow.ct, ATTR_ICMP_CODE) else None

    @property
    def icmp_id(self):
        return _u16be(self.flow.ct, ATTR_ICMP_ID)

    @property
    def vtag(self):
        cdef nf_conntrack_attr a = ATTR_SCTP_VTAG_REPL if self.reply else ATTR_SCTP_VTAG_ORIG
        return ntohl(nfct_get_attr_u32(self.flow.ct, a)) if nfct_attr_is_set(self.flow.ct, a) else None

    @property
    def zone(self):
        cdef nf_conntrack_attr a = ATTR_REPL_ZONE if self.reply else ATTR_ORIG_ZONE
        return nfct_get_attr_u16(self.flow.ct, a) if nfct_attr_is_set(self.flow.ct, a) else None

    @property
    def packets(self):
        cdef nf_conntrack_attr a = ATTR_REPL_COUNTER_PACKETS if self.reply else ATTR_ORIG_COUNTER_PACKETS
        return nfct_get_attr_u64(self.flow.ct, a) if nfct_attr_is_set(self.flow.ct, a) else None

    @property
    def bytes(self):
        cdef nf_conntrack_attr a = ATTR_REPL_COUNTER_BYTES if self.reply else ATTR_ORIG_COUNTER_BYTES
        return nfct_get_attr_u64(self.flow.ct, a) if nfct_attr_is_set(self.flow.ct, a) else None

    def __repr__(self):
        return f"<Tuple {'reply' if self.reply else 'orig'} src={self.src} dst={self.dst} sport={self.sport} dport={self.dport}>"


def parse_message(bytes data not None) -> Flow:
    """A Flow from one raw ctnetlink message (nlmsghdr included), as the dump path parses it.

    What a pickled Flow is made of (Flow._message()), and what tests and the fuzzer feed crafted bytes
    to. Raises ValueError for a message whose length field does not fit the buffer, or whose attributes
    are not what the kernel sends (see _nfct.policy: libnetfilter_conntrack would exit or read past them).
    """
    cdef const nlmsghdr *nlh = checked_message(data, False)
    cdef nf_conntrack *ct = nfct_new()
    if ct == NULL:
        raise MemoryError()
    nfct_nlmsg_parse(nlh, ct)
    return Flow.adopt(ct)


# --- the pickled form: every attribute of an entry as one ctnetlink message -----------------------------
#
# nfct_nlmsg_parse() is the reference: the message written here sets the same attributes, with the same
# values, as the entry has. It is written from the attributes rather than by nfct_nlmsg_build(), which
# builds requests (it adds IPS_CONFIRMED to the status, writes whole tuples whatever is set, leaves out
# the counters, id, use, timestamps and security context). Two things no attribute getter reads are
# taken from nfct_nlmsg_build()'s message: the reply direction's ICMP type, code and id (kept in the
# reply tuple, while ATTR_ICMP_* read the original's), and the helper's private data (whose length the
# library keeps to itself).

cdef inline bint _set(const nf_conntrack *ct, int a) noexcept nogil:
    return nfct_attr_is_set(ct, <nf_conntrack_attr>a)


cdef inline uint8_t _u8(const nf_conntrack *ct, int a) noexcept nogil:
    return nfct_get_attr_u8(ct, <nf_conntrack_attr>a)


cdef inline uint16_t _g16(const nf_conntrack *ct, int a) noexcept nogil:
    return nfct_get_attr_u16(ct, <nf_conntrack_attr>a)


cdef inline uint32_t _g32(const nf_conntrack *ct, int a) noexcept nogil:
    return nfct_get_attr_u32(ct, <nf_conntrack_attr>a)


cdef inline uint64_t _g64(const nf_conntrack *ct, int a) noexcept nogil:
    return nfct_get_attr_u64(ct, <nf_conntrack_attr>a)


cdef inline void _put_be64(nlmsghdr *nlh, uint16_t type, uint64_t v) noexcept nogil:
    cdef uint64_t be = htobe64(v)
    mnl_attr_put(nlh, type, 8, &be)


cdef const nlattr *_find_attr(const char *start, size_t length, uint16_t type) noexcept nogil:
    """The first attribute of this type among the ones in [start, start+length), or NULL."""
    cdef size_t off = 0
    cdef const nlattr *a
    while off + NLA_HDR <= length:
        a = <const nlattr *>(start + off)
        if a.nla_len < NLA_HDR or off + a.nla_len > length:
            return NULL
        if (a.nla_type & 0x3fff) == type:
            return a
        off += (a.nla_len + 3) & ~(<size_t>3)
    return NULL


cdef struct icmp_t:
    bint have_type, have_code, have_id
    uint8_t type, code
    uint16_t id          # network order


cdef void _reply_icmp(const char *payload, size_t length, icmp_t *r) noexcept nogil:
    """The reply tuple's ICMP fields in nfct_nlmsg_build()'s message (attributes after the nfgenmsg)."""
    cdef const nlattr *t = _find_attr(payload, length, CTA_TUPLE_REPLY)
    cdef const nlattr *p
    cdef const nlattr *a
    cdef int kind
    memset(r, 0, sizeof(icmp_t))
    if t == NULL:
        return
    p = _find_attr(<const char *>t + NLA_HDR, t.nla_len - NLA_HDR, CTA_TUPLE_PROTO)
    if p == NULL:
        return
    for kind in range(2):
        a = _find_attr(<const char *>p + NLA_HDR, p.nla_len - NLA_HDR,
                       CTA_PROTO_ICMP_TYPE if kind == 0 else CTA_PROTO_ICMPV6_TYPE)
        if a != NULL and a.nla_len >= NLA_HDR + 1:
            r.have_type = True
            r.type = (<const uint8_t *>a + NLA_HDR)[0]
        a = _find_attr(<const char *>p + NLA_HDR, p.nla_len - NLA_HDR,
                       CTA_PROTO_ICMP_CODE if kind == 0 else CTA_PROTO_ICMPV6_CODE)
        if a != NULL and a.nla_len >= NLA_HDR + 1:
            r.have_code = True
            r.code = (<const uint8_t *>a + NLA_HDR)[0]
        a = _find_attr(<const char *>p + NLA_HDR, p.nla_len - NLA_HDR,
                       CTA_PROTO_ICMP_ID if kind == 0 else CTA_PROTO_ICMPV6_ID)
        if a != NULL and a.nla_len >= NLA_HDR + 2:
            r.have_id = True
            memcpy(&r.id, <const char *>a + NLA_HDR, 2)


cdef void _put_ct_tuple(nlmsghdr *nlh, const nf_conntrack *ct, uint16_t kind, int dir, const icmp_t *ricmp) noexcept nogil:
    """One tuple nest with exactly the attributes set for this direction (0 orig, 1 reply, 2 master)."""
    cdef int l3a, v4s, v4d, v6s, v6d, ps, pd, l4a, za
    cdef nlattr *nest
    cdef nlattr *inner
    cdef bint icmp_v6 = _u8(ct, ATTR_ORIG_L4PROTO) == 58
    cdef bint icmp_type, icmp_code, icmp_id
    cdef uint8_t t, c
    cdef uint16_t ident
    if dir == 0:
        l3a, v4s, v4d, v6s, v6d = ATTR_ORIG_L3PROTO, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_SRC, ATTR_ORIG_IPV6_DST
        ps, pd, l4a, za = ATTR_ORIG_PORT_SRC, ATTR_ORIG_PORT_DST, ATTR_ORIG_L4PROTO, ATTR_ORIG_ZONE
    elif dir == 1:
        l3a, v4s, v4d, v6s, v6d = ATTR_REPL_L3PROTO, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_SRC, ATTR_REPL_IPV6_DST
        ps, pd, l4a, za = ATTR_REPL_PORT_SRC, ATTR_REPL_PORT_DST, ATTR_REPL_L4PROTO, ATTR_REPL_ZONE
    else:
        l3a, v4s, v4d, v6s, v6d = ATTR_MASTER_L3PROTO, ATTR_MASTER_IPV4_SRC, ATTR_MASTER_IPV4_DST, ATTR_MASTER_IPV6_SRC, ATTR_MASTER_IPV6_DST
        ps, pd, l4a, za = ATTR_MASTER_PORT_SRC, ATTR_MASTER_PORT_DST, ATTR_MASTER_L4PROTO, -1
    if not _set(ct, l3a):
        return          # the parser sets the direction's layer 3 protocol when the nest is there
    # ATTR_ICMP_* are set by either direction's fields; the master tuple never has any.
    icmp_type = dir != 2 and _set(ct, ATTR_ICMP_TYPE)
    icmp_code = dir != 2 and _set(ct, ATTR_ICMP_CODE)
    icmp_id = dir != 2 and _set(ct, ATTR_ICMP_ID)
    if dir == 1:
        icmp_type = icmp_type and ricmp.have_type
        icmp_code = icmp_code and ricmp.have_code
        icmp_id = icmp_id and ricmp.have_id
    nest = mnl_attr_nest_start(nlh, kind)
    if _set(ct, v4s) or _set(ct, v4d) or _set(ct, v6s) or _set(ct, v6d):
        inner = mnl_attr_nest_start(nlh, CTA_TUPLE_IP)
        if _set(ct, v4s):
            mnl_attr_put(nlh, CTA_IP_V4_SRC, 4, nfct_get_attr(ct, <nf_conntrack_attr>v4s))
        if _set(ct, v4d):
            mnl_attr_put(nlh, CTA_IP_V4_DST, 4, nfct_get_attr(ct, <nf_conntrack_attr>v4d))
        if _set(ct, v6s):
            mnl_attr_put(nlh, CTA_IP_V6_SRC, 16, nfct_get_attr(ct, <nf_conntrack_attr>v6s))
        if _set(ct, v6d):
            mnl_attr_put(nlh, CTA_IP_V6_DST, 16, nfct_get_attr(ct, <nf_conntrack_attr>v6d))
        mnl_attr_nest_end(nlh, inner)
    if _set(ct, l4a) or _set(ct, ps) or _set(ct, pd) or icmp_type or icmp_code or icmp_id:
        inner = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO)
        if _set(ct, l4a):
            mnl_attr_put_u8(nlh, CTA_PROTO_NUM, _u8(ct, l4a))
        if _set(ct, ps):
            mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, _g16(ct, ps))
        if _set(ct, pd):
            mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, _g16(ct, pd))
        if dir == 1:
            t, c, ident = ricmp.type, ricmp.code, ricmp.id
        else:
            t, c, ident = _u8(ct, ATTR_ICMP_TYPE), _u8(ct, ATTR_ICMP_CODE), _g16(ct, ATTR_ICMP_ID)
        if icmp_type:
            mnl_attr_put_u8(nlh, CTA_PROTO_ICMPV6_TYPE if icmp_v6 else CTA_PROTO_ICMP_TYPE, t)
        if icmp_code:
            mnl_attr_put_u8(nlh, CTA_PROTO_ICMPV6_CODE if icmp_v6 else CTA_PROTO_ICMP_CODE, c)
        if icmp_id:
            mnl_attr_put_u16(nlh, CTA_PROTO_ICMPV6_ID if icmp_v6 else CTA_PROTO_ICMP_ID, ident)
        mnl_attr_nest_end(nlh, inner)
    if za >= 0 and _set(ct, za):
        mnl_attr_put_u16(nlh, CTA_TUPLE_ZONE, htons(_g16(ct, za)))
    mnl_attr_nest_end(nlh, nest)


cdef void _put_u32_if(nlmsghdr *nlh, const nf_conntrack *ct, int a, uint16_t type) noexcept nogil:
    if _set(ct, a):
        mnl_attr_put_u32(nlh, type, htonl(_g32(ct, a)))


cdef void _put_seq_adj(nlmsghdr *nlh, const nf_conntrack *ct, uint16_t kind, int pos, int before, int after) noexcept nogil:
    cdef nlattr *nest
    if not (_set(ct, pos) or _set(ct, before) or _set(ct, after)):
        return
    nest = mnl_attr_nest_start(nlh, kind)
    _put_u32_if(nlh, ct, pos, CTA_NAT_SEQ_CORRECTION_POS)
    _put_u32_if(nlh, ct, before, CTA_NAT_SEQ_OFFSET_BEFORE)
    _put_u32_if(nlh, ct, after, CTA_NAT_SEQ_OFFSET_AFTER)
    mnl_attr_nest_end(nlh, nest)


cdef void _put_counters(nlmsghdr *nlh, const nf_conntrack *ct, uint16_t kind, int packets, int nbytes) noexcept nogil:
    cdef nlattr *nest
    if not (_set(ct, packets) or _set(ct, nbytes)):
        return
    nest = mnl_attr_nest_start(nlh, kind)
    if _set(ct, packets):
        _put_be64(nlh, CTA_COUNTERS_PACKETS, _g64(ct, packets))
    if _set(ct, nbytes):
        _put_be64(nlh, CTA_COUNTERS_BYTES, _g64(ct, nbytes))
    mnl_attr_nest_end(nlh, nest)


cdef void _put_tcp_flags(nlmsghdr *nlh, const nf_conntrack *ct, uint16_t type, int flags, int mask) noexcept nogil:
    # struct nf_ct_tcp_flags {flags, mask}: the parser sets both attributes from it
    cdef uint8_t fm[2]
    if _set(ct, flags) or _set(ct, mask):
        fm[0] = _u8(ct, flags)
        fm[1] = _u8(ct, mask)
        mnl_attr_put(nlh, type, 2, fm)


cdef void _put_protoinfo(nlmsghdr *nlh, const nf_conntrack *ct) noexcept nogil:
    cdef nlattr *nest
    cdef nlattr *proto
    cdef bint tcp = (_set(ct, ATTR_TCP_STATE) or _set(ct, ATTR_TCP_WSCALE_ORIG) or _set(ct, ATTR_TCP_WSCALE_REPL)
                     or _set(ct, ATTR_TCP_FLAGS_ORIG) or _set(ct, ATTR_TCP_MASK_ORIG)
                     or _set(ct, ATTR_TCP_FLAGS_REPL) or _set(ct, ATTR_TCP_MASK_REPL))
    cdef bint sctp = _set(ct, ATTR_SCTP_STATE) or _set(ct, ATTR_SCTP_VTAG_ORIG) or _set(ct, ATTR_SCTP_VTAG_REPL)
    cdef bint dccp = _set(ct, ATTR_DCCP_STATE) or _set(ct, ATTR_DCCP_ROLE) or _set(ct, ATTR_DCCP_HANDSHAKE_SEQ)
    if not (tcp or sctp or dccp):
        return
    nest = mnl_attr_nest_start(nlh, CTA_PROTOINFO)
    if tcp:
        proto = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP)
        if _set(ct, ATTR_TCP_STATE):
            mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, _u8(ct, ATTR_TCP_STATE))
        if _set(ct, ATTR_TCP_WSCALE_ORIG):
            mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, _u8(ct, ATTR_TCP_WSCALE_ORIG))
        if _set(ct, ATTR_TCP_WSCALE_REPL):
            mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_WSCALE_REPLY, _u8(ct, ATTR_TCP_WSCALE_REPL))
        _put_tcp_flags(nlh, ct, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, ATTR_TCP_FLAGS_ORIG, ATTR_TCP_MASK_ORIG)
        _put_tcp_flags(nlh, ct, CTA_PROTOINFO_TCP_FLAGS_REPLY, ATTR_TCP_FLAGS_REPL, ATTR_TCP_MASK_REPL)
        mnl_attr_nest_end(nlh, proto)
    if sctp:
        proto = mnl_attr_nest_start(nlh, CTA_PROTOINFO_SCTP)
        if _set(ct, ATTR_SCTP_STATE):
            mnl_attr_put_u8(nlh, CTA_PROTOINFO_SCTP_STATE, _u8(ct, ATTR_SCTP_STATE))
        _put_u32_if(nlh, ct, ATTR_SCTP_VTAG_ORIG, CTA_PROTOINFO_SCTP_VTAG_ORIGINAL)
        _put_u32_if(nlh, ct, ATTR_SCTP_VTAG_REPL, CTA_PROTOINFO_SCTP_VTAG_REPLY)
        mnl_attr_nest_end(nlh, proto)
    if dccp:
        proto = mnl_attr_nest_start(nlh, CTA_PROTOINFO_DCCP)
        if _set(ct, ATTR_DCCP_STATE):
            mnl_attr_put_u8(nlh, CTA_PROTOINFO_DCCP_STATE, _u8(ct, ATTR_DCCP_STATE))
        if _set(ct, ATTR_DCCP_ROLE):
            mnl_attr_put_u8(nlh, CTA_PROTOINFO_DCCP_ROLE, _u8(ct, ATTR_DCCP_ROLE))
        if _set(ct, ATTR_DCCP_HANDSHAKE_SEQ):
            _put_be64(nlh, CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ, _g64(ct, ATTR_DCCP_HANDSHAKE_SEQ))
        mnl_attr_nest_end(nlh, proto)
    mnl_attr_nest_end(nlh, nest)


cdef void _put_labels(nlmsghdr *nlh, const nf_conntrack *ct, uint32_t *words) noexcept nogil:
    """CTA_LABELS as the kernel sends it: the bitmask's words in host order, every one of them."""
    cdef const nfct_bitmask *b = <const nfct_bitmask *>nfct_get_attr(ct, ATTR_CONNLABELS)
    cdef unsigned int i, n
    if b == NULL:
        return
    n = (nfct_bitmask_maxbit(b) + 1) // 32
    memset(words, 0, n * 4)
    for i in range(n * 32):
        if nfct_bitmask_test_bit(b, i):
            words[i // 32] |= (<uint32_t>1) << (i % 32)
    mnl_attr_put(nlh, CTA_LABELS, n * 4, words)


cdef nlmsghdr *_put_msg_header(char *buf, uint8_t family) noexcept nogil:
    cdef nlmsghdr *nlh = mnl_nlmsg_put_header(buf)
    cdef nfgenmsg *nfg
    nlh.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW
    nfg = <nfgenmsg *>mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg))
    nfg.nfgen_family = family
    nfg.version = NFNETLINK_V0
    nfg.res_id = 0
    return nlh


cdef size_t _message_bound(const nf_conntrack *ct) noexcept nogil:
    """Room for the message of ct, by ct_message() or nfct_nlmsg_build() (which writes labels and their
    mask; the helper's data is one attribute, at most 64 KiB)."""
    cdef const nfct_bitmask *labels = <const nfct_bitmask *>nfct_get_attr(ct, ATTR_CONNLABELS)
    cdef const nfct_bitmask *mask = <const nfct_bitmask *>nfct_get_attr(ct, ATTR_CONNLABELS_MASK)
    cdef const char *secctx = <const char *>nfct_get_attr(ct, ATTR_SECCTX)
    return (8192 + ((nfct_bitmask_maxbit(labels) + 1) // 8 if labels != NULL else 0)
            + ((nfct_bitmask_maxbit(mask) + 1) // 8 if mask != NULL else 0)
            + (strlen(secctx) if secctx != NULL else 0) + (65536 if _set(ct, ATTR_HELPER_INFO) else 0))


cdef bytes ct_message(const nf_conntrack *ct):
    """The ctnetlink message nfct_nlmsg_parse() turns into an entry with ct's attributes and values."""
    cdef const nfct_bitmask *labels = <const nfct_bitmask *>nfct_get_attr(ct, ATTR_CONNLABELS)
    cdef const char *secctx = <const char *>nfct_get_attr(ct, ATTR_SECCTX)
    cdef const char *helper = <const char *>nfct_get_attr(ct, ATTR_HELPER_NAME)
    cdef size_t label_bytes = (nfct_bitmask_maxbit(labels) + 1) // 8 if labels != NULL else 0
    cdef size_t size = _message_bound(ct)
    cdef char *built = <char *>malloc(size)
    cdef char *buf = <char *>malloc(size)
    cdef uint32_t *words = <uint32_t *>malloc(label_bytes + 4)
    cdef nlmsghdr *bnl
    cdef nlmsghdr *nlh
    cdef const nlattr *help = NULL
    cdef const char *payload
    cdef size_t plen
    cdef icmp_t ricmp
    cdef nlattr *nest
    cdef uint8_t family
    try:
        if built == NULL or buf == NULL or words == NULL:
            raise MemoryError()
        memset(&ricmp, 0, sizeof(icmp_t))
        memset(built, 0, size)
        memset(buf, 0, size)
        if _set(ct, ATTR_ORIG_L3PROTO):
            bnl = mnl_nlmsg_put_header(built)
            mnl_nlmsg_put_extra_header(bnl, sizeof(nfgenmsg))
            if nfct_nlmsg_build(bnl, ct) == 0:
                payload = built + sizeof(nlmsghdr) + sizeof(nfgenmsg)
                plen = bnl.nlmsg_len - sizeof(nlmsghdr) - sizeof(nfgenmsg)
                _reply_icmp(payload, plen, &ricmp)
                help = _find_attr(payload, plen, CTA_HELP)
        family = _u8(ct, ATTR_ORIG_L3PROTO) if _set(ct, ATTR_ORIG_L3PROTO) else _u8(ct, ATTR_REPL_L3PROTO)
        nlh = _put_msg_header(buf, family)
        _put_ct_tuple(nlh, ct, CTA_TUPLE_ORIG, 0, &ricmp)
        _put_ct_tuple(nlh, ct, CTA_TUPLE_REPLY, 1, &ricmp)
        _put_ct_tuple(nlh, ct, CTA_TUPLE_MASTER, 2, &ricmp)
        _put_seq_adj(nlh, ct, CTA_NAT_SEQ_ADJ_ORIG, ATTR_ORIG_NAT_SEQ_CORRECTION_POS,
                     ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE, ATTR_ORIG_NAT_SEQ_OFFSET_AFTER)
        _put_seq_adj(nlh, ct, CTA_NAT_SEQ_ADJ_REPLY, ATTR_REPL_NAT_SEQ_CORRECTION_POS,
                     ATTR_REPL_NAT_SEQ_OFFSET_BEFORE, ATTR_REPL_NAT_SEQ_OFFSET_AFTER)
        _put_u32_if(nlh, ct, ATTR_STATUS, CTA_STATUS)
        _put_protoinfo(nlh, ct)
        _put_u32_if(nlh, ct, ATTR_TIMEOUT, CTA_TIMEOUT)
        _put_u32_if(nlh, ct, ATTR_MARK, CTA_MARK)
        _put_u32_if(nlh, ct, ATTR_SECMARK, CTA_SECMARK)
        _put_counters(nlh, ct, CTA_COUNTERS_ORIG, ATTR_ORIG_COUNTER_PACKETS, ATTR_ORIG_COUNTER_BYTES)
        _put_counters(nlh, ct, CTA_COUNTERS_REPLY, ATTR_REPL_COUNTER_PACKETS, ATTR_REPL_COUNTER_BYTES)
        _put_u32_if(nlh, ct, ATTR_USE, CTA_USE)
        _put_u32_if(nlh, ct, ATTR_ID, CTA_ID)
        if helper != NULL:
            if help != NULL:
                memcpy(buf + nlh.nlmsg_len, help, help.nla_len)      # name and private data, as built
                nlh.nlmsg_len += (help.nla_len + 3) & ~(<uint32_t>3)
            else:
                nest = mnl_attr_nest_start(nlh, CTA_HELP)
                mnl_attr_put(nlh, CTA_HELP_NAME, strlen(helper) + 1, helper)
                mnl_attr_nest_end(nlh, nest)
        if _set(ct, ATTR_ZONE):
            mnl_attr_put_u16(nlh, CTA_ZONE, htons(_g16(ct, ATTR_ZONE)))
        if secctx != NULL:
            nest = mnl_attr_nest_start(nlh, CTA_SECCTX)
            mnl_attr_put(nlh, CTA_SECCTX_NAME, strlen(secctx) + 1, secctx)
            mnl_attr_nest_end(nlh, nest)
        if _set(ct, ATTR_TIMESTAMP_START) or _set(ct, ATTR_TIMESTAMP_STOP):
            nest = mnl_attr_nest_start(nlh, CTA_TIMESTAMP)
            if _set(ct, ATTR_TIMESTAMP_START):
                _put_be64(nlh, CTA_TIMESTAMP_START, _g64(ct, ATTR_TIMESTAMP_START))
            if _set(ct, ATTR_TIMESTAMP_STOP):
                _put_be64(nlh, CTA_TIMESTAMP_STOP, _g64(ct, ATTR_TIMESTAMP_STOP))
            mnl_attr_nest_end(nlh, nest)
        _put_labels(nlh, ct, words)
        if _set(ct, ATTR_SYNPROXY_ISN) or _set(ct, ATTR_SYNPROXY_ITS) or _set(ct, ATTR_SYNPROXY_TSOFF):
            nest = mnl_attr_nest_start(nlh, CTA_SYNPROXY)
            _put_u32_if(nlh, ct, ATTR_SYNPROXY_ISN, CTA_SYNPROXY_ISN)
            _put_u32_if(nlh, ct, ATTR_SYNPROXY_ITS, CTA_SYNPROXY_ITS)
            _put_u32_if(nlh, ct, ATTR_SYNPROXY_TSOFF, CTA_SYNPROXY_TSOFF)
            mnl_attr_nest_end(nlh, nest)
        return buf[:nlh.nlmsg_len]
    finally:
        free(built)
        free(buf)
        free(words)


# Byte sizes of the fixed-size attributes (libnetfilter_conntrack.h's comments); 0: not fixed.
cdef list _ATTR_SIZES = [4, 4, 4, 4, 16, 16, 16, 16, 2, 2, 2, 2, 1, 1, 2, 1, 1, 1, 1, 1, 4, 4, 2, 2, 4, 4,
                         8, 8, 8, 8, 4, 4, 4, 1, 1, 1, 1, 4, 4, 16, 16, 2, 2, 1, 1, 4, 4, 4, 4, 4, 4, 4,
                         1, 4, 4, 0, 1, 1, 8, 1, 1, 2, 0, 8, 8, 0, 0, 0, 2, 2, 16, 16, 4, 4, 4]


def raw_state(Flow flow not None) -> tuple:
    """Every attribute the entry has, as (number, bytes) pairs, and the message nfct_nlmsg_build() makes
    of it (which holds what no attribute reads: the reply's ICMP fields, the helper's data). For tests:
    two entries with the same raw_state() are the same to the library."""
    cdef const nf_conntrack *ct = flow.ct
    cdef const void *p
    cdef const nfct_bitmask *b
    cdef char *buf
    cdef size_t size
    cdef nlmsghdr *nlh
    cdef int a
    out = []
    for a in range(min(<int>ATTR_MAX, len(_ATTR_SIZES))):
        if not _set(ct, a) or a == ATTR_HELPER_INFO:
            continue
        p = nfct_get_attr(ct, <nf_conntrack_attr>a)
        if p == NULL:
            out.append((a, None))
        elif a == ATTR_CONNLABELS or a == ATTR_CONNLABELS_MASK:
            b = <const nfct_bitmask *>p
            out.append((a, tuple([i for i in range(nfct_bitmask_maxbit(b) + 1) if nfct_bitmask_test_bit(b, i)]),
                        nfct_bitmask_maxbit(b)))
        elif _ATTR_SIZES[a] == 0:
            out.append((a, (<const char *>p)[:strlen(<const char *>p)]))
        else:
            out.append((a, (<const char *>p)[:<int>_ATTR_SIZES[a]]))
    built = None
    if _set(ct, ATTR_ORIG_L3PROTO):
        size = _message_bound(ct)
        buf = <char *>malloc(size)
        if buf == NULL:
            raise MemoryError()
        try:
            memset(buf, 0, size)
            nlh = mnl_nlmsg_put_header(buf)
            mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg))
            if nfct_nlmsg_build(nlh, ct) == 0:
                built = buf[:nlh.nlmsg_len]
        finally:
            free(buf)
    return tuple(out), built


# --- Flow.from_dict: the as_dict() object back into an entry ---------------------------------------------

# The -o json status names, bit by bit (format.pyx's table; tests check that they agree).
_STATUS_NAMES = ("EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT", "SEQ_ADJUST",
                 "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT", "TEMPLATE", "UNTRACKED", "HELPER",
                 "OFFLOAD", "HW_OFFLOAD")
cdef dict _STATUS_BITS = {name: i for i, name in enumerate(_STATUS_NAMES)}
cdef dict _PROTO_NUMS = {name: num for num, name in _PROTO_NAMES.items()}
cdef dict _STATES = None


cdef dict _state_numbers():
    """{protocol number: {state name: number}} as -o json names the kernel's states. Built on first use:
    format.pyx's tables may not be filled yet while this module is imported (the two cimport each other)."""
    global _STATES
    cdef int l4, n
    if _STATES is None:
        _STATES = {l4: {state_name(l4, n).decode(): n for n in range(10) if state_name(l4, n) != NULL}
                   for l4 in (6, 132, 33)}
    return _STATES


# The ICMP types the kernel tracks and the type of the answer to each (the reply tuple's).
cdef dict _ICMP_REPLY = {1: {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17},
                         58: {128: 129, 129: 128, 139: 140, 140: 139}}
cdef frozenset _KEYS = frozenset(("family", "proto", "protonum", "timeout", "state", "role", "orig", "reply",
                                  "status", "mark", "secmark", "secctx", "zone", "use", "id", "helper", "start",
                                  "stop", "labels"))
cdef frozenset _TUPLE_KEYS = frozenset(("src", "dst", "sport", "dport", "type", "code", "id", "srckey", "dstkey",
                                        "vtag", "zone", "packets", "bytes"))
cdef unsigned int LABEL_BITS = 128      # the kernel keeps 128 label bits per entry


cdef object _int(dict d, str name, str where, unsigned long long maxv):
    """d[name] as an int in 0..maxv, or None when absent."""
    v = d.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{where}{name}: expected an int, got {type(v).__name__}")
    if v < 0 or v > maxv:
        raise ValueError(f"{where}{name}: {v} is out of range 0..{maxv}")
    return int(v)


cdef object _str_(dict d, str name, str where):
    v = d.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise TypeError(f"{where}{name}: expected a str, got {type(v).__name__}")
    if "\0" in v:
        raise ValueError(f"{where}{name}: contains a NUL character")
    return v


cdef bytes _address(dict t, str name, str where, int l3):
    cdef unsigned char buf[16]
    v = _str_(t, name, where)
    if v is None:
        raise ValueError(f"{where}{name}: missing")
    b = v.encode("utf-8")
    if inet_pton(l3, b, buf) != 1:
        raise ValueError(f"{where}{name}: {v!r} is not an {'IPv4' if l3 == AF_INET else 'IPv6'} address")
    return buf[:4] if l3 == AF_INET else buf[:16]


cdef dict _tuple_spec(object t, str where, int l3, int l4, str proto):
    """A tuple of the dict, checked: {src, dst, p1, p2, type, code, id, vtag, zone, packets, bytes}."""
    if t is None:
        raise ValueError(f"{where.rstrip(".")}: missing")
    if not isinstance(t, dict):
        raise TypeError(f"{where.rstrip(".")}: expected a dict, got {type(t).__name__}")
    cdef dict d = <dict>t
    icmp = l4 == 1 or l4 == 58
    if icmp:
        allowed = ("src", "dst", "type", "code", "id", "zone", "packets", "bytes") if where == "orig." \
            else ("src", "dst", "id", "zone", "packets", "bytes")
    elif l4 == 47:
        allowed = ("src", "dst", "srckey", "dstkey", "zone", "packets", "bytes")
    elif l4 == 132:
        allowed = ("src", "dst", "sport", "dport", "vtag", "zone", "packets", "bytes")
    else:
        allowed = ("src", "dst", "sport", "dport", "zone", "packets", "bytes")
    for k in d:
        if k not in allowed:
            if k in _TUPLE_KEYS:
                if icmp and k in ("type", "code"):
                    raise ValueError(f"{where}{k}: the reply's ICMP {k} follows from orig.{k}")
                raise ValueError(f"{where}{k}: not a field of {proto} entries")
            raise ValueError(f"{where}{k}: unknown key")
    spec = dict(src=_address(d, "src", where, l3), dst=_address(d, "dst", where, l3))
    if l4 == 47:
        spec["p1"], spec["p2"] = _int(d, "srckey", where, 0xffff), _int(d, "dstkey", where, 0xffff)
    elif not icmp:
        spec["p1"], spec["p2"] = _int(d, "sport", where, 0xffff), _int(d, "dport", where, 0xffff)
    spec["type"] = _int(d, "type", where, 0xff)
    spec["code"] = _int(d, "code", where, 0xff)
    spec["id"] = _int(d, "id", where, 0xffff)
    spec["vtag"] = _int(d, "vtag", where, 0xffffffff)
    spec["zone"] = _int(d, "zone", where, 0xffff)
    spec["packets"] = _int(d, "packets", where, 0xffffffffffffffff)
    spec["bytes"] = _int(d, "bytes", where, 0xffffffffffffffff)
    if (spec["packets"] is None) != (spec["bytes"] is None):
        missing = "bytes" if spec["bytes"] is None else "packets"
        raise ValueError(f"{where}{missing}: missing (packets and bytes come together)")
    return spec


cdef void _put_spec_tuple(nlmsghdr *nlh, uint16_t kind, int l3, int l4, dict t, object icmp_type,
                          object icmp_code, object icmp_id):
    cdef nlattr *nest = mnl_attr_nest_start(nlh, kind)
    cdef nlattr *inner = mnl_attr_nest_start(nlh, CTA_TUPLE_IP)
    cdef bytes src = t["src"], dst = t["dst"]
    cdef bint v6 = l4 == 58
    mnl_attr_put(nlh, CTA_IP_V4_SRC if l3 == AF_INET else CTA_IP_V6_SRC, len(src), <const char *>src)
    mnl_attr_put(nlh, CTA_IP_V4_DST if l3 == AF_INET else CTA_IP_V6_DST, len(dst), <const char *>dst)
    mnl_attr_nest_end(nlh, inner)
    inner = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO)
    mnl_attr_put_u8(nlh, CTA_PROTO_NUM, l4)
    if t.get("p1") is not None:
        mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(t["p1"]))
    if t.get("p2") is not None:
        mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(t["p2"]))
    if icmp_type is not None:
        mnl_attr_put_u8(nlh, CTA_PROTO_ICMPV6_TYPE if v6 else CTA_PROTO_ICMP_TYPE, icmp_type)
    if icmp_code is not None:
        mnl_attr_put_u8(nlh, CTA_PROTO_ICMPV6_CODE if v6 else CTA_PROTO_ICMP_CODE, icmp_code)
    if icmp_id is not None:
        mnl_attr_put_u16(nlh, CTA_PROTO_ICMPV6_ID if v6 else CTA_PROTO_ICMP_ID, htons(icmp_id))
    mnl_attr_nest_end(nlh, inner)
    if t["zone"] is not None:
        mnl_attr_put_u16(nlh, CTA_TUPLE_ZONE, htons(t["zone"]))
    mnl_attr_nest_end(nlh, nest)


cdef Flow flow_from_dict(object obj, object labelmap):
    if not isinstance(obj, dict):
        raise TypeError(f"Flow.from_dict() takes a dict, not {type(obj).__name__}")
    cdef dict d = <dict>obj
    for k in d:
        if k not in _KEYS:
            raise ValueError(f"{k}: unknown key" if isinstance(k, str) else f"{k!r}: keys are strings")
    family = _str_(d, "family", "")
    if family is None:
        raise ValueError("family: missing")
    if family not in ("ipv4", "ipv6"):
        raise ValueError(f"family: {family!r} is neither 'ipv4' nor 'ipv6'")
    cdef int l3 = AF_INET if family == "ipv4" else AF_INET6
    protonum = _int(d, "protonum", "", 0xff)
    proto = _str_(d, "proto", "")
    if proto is not None:
        if proto != "unknown" and proto not in _PROTO_NUMS:
            raise ValueError(f"proto: unknown protocol {proto!r}")
        if protonum is None:
            if proto == "unknown":
                raise ValueError("protonum: missing (proto 'unknown' has no number)")
            protonum = _PROTO_NUMS[proto]
        elif _PROTO_NAMES.get(protonum, "unknown") != proto:
            raise ValueError(f"proto: {proto!r} is not protocol number {protonum}")
    elif protonum is None:
        raise ValueError("protonum: missing")
    cdef int l4 = protonum
    pname = _PROTO_NAMES.get(l4, "unknown")
    orig = _tuple_spec(d.get("orig"), "orig.", l3, l4, pname)
    reply = _tuple_spec(d.get("reply"), "reply.", l3, l4, pname)

    # ICMP: one type, code and id per entry as -o json shows it; the reply tuple holds the answer's type.
    itype, icode, iid = orig["type"], orig["code"], orig["id"]
    rtype = None
    if reply["id"] is not None:
        if iid is None:
            iid = reply["id"]
        elif reply["id"] != iid:
            raise ValueError(f"reply.id: {reply['id']} differs from orig.id {iid} (an entry has one ICMP id)")
    if itype is not None:
        rtype = (<dict>_ICMP_REPLY[l4]).get(itype)
        if rtype is None:
            raise ValueError(f"orig.type: ICMP type {itype} has no reply type (not a type the kernel tracks)")

    state = _str_(d, "state", "")
    state_num = None
    if state is not None:
        states = _state_numbers()
        if l4 not in states:
            raise ValueError(f"state: {pname} entries have no state")
        state_num = (<dict>states[l4]).get(state)
        if state_num is None:
            raise ValueError(f"state: unknown {pname} state {state!r}")
    role = _str_(d, "role", "")
    if role is not None:
        if l4 != 33:
            raise ValueError(f"role: {pname} entries have no DCCP role")
        if role not in _DCCP_ROLES:
            raise ValueError(f"role: {role!r} is neither 'client' nor 'server'")

    status = d.get("status")
    status_bits = None
    if status is not None:
        if not isinstance(status, (list, tuple)):
            raise TypeError(f"status: expected a list of names, got {type(status).__name__}")
        status_bits = 0
        for name in status:
            if not isinstance(name, str):
                raise TypeError(f"status: expected names (str), got {type(name).__name__}")
            if name not in _STATUS_BITS:
                raise ValueError(f"status: unknown flag {name!r}")
            status_bits |= 1 << _STATUS_BITS[name]

    labels = d.get("labels")
    label_bits = None
    if labels is not None:
        if not isinstance(labels, (list, tuple)):
            raise TypeError(f"labels: expected a list, got {type(labels).__name__}")
        label_bits = set()
        for lab in labels:
            if isinstance(lab, str):
                if labelmap is None:
                    raise ValueError(f"labels: {lab!r} is a name; give a labelmap to read names")
                bit = labelmap.bit(lab)
                if bit < 0:
                    raise ValueError(f"labels: {lab!r} is not in the label map")
            elif isinstance(lab, bool) or not isinstance(lab, int):
                raise TypeError(f"labels: expected bit numbers or names, got {type(lab).__name__}")
            else:
                bit = lab
            if bit < 0 or bit >= LABEL_BITS:
                raise ValueError(f"labels: bit {bit} is out of range 0..{LABEL_BITS - 1}")
            label_bits.add(bit)

    timeout = _int(d, "timeout", "", 0xffffffff)
    mark = _int(d, "mark", "", 0xffffffff)
    secmark = _int(d, "secmark", "", 0xffffffff)
    zone = _int(d, "zone", "", 0xffff)
    use = _int(d, "use", "", 0xffffffff)
    ident = _int(d, "id", "", 0xffffffff)
    start = _int(d, "start", "", 0xffffffffffffffff)
    stop = _int(d, "stop", "", 0xffffffffffffffff)
    helper = _str_(d, "helper", "")
    helper_b = helper.encode() if helper is not None else None
    if helper_b is not None and len(helper_b) >= NFCT_HELPER_NAME_MAX:
        raise ValueError(f"helper: {helper!r} is longer than {NFCT_HELPER_NAME_MAX - 1} bytes")
    secctx = _str_(d, "secctx", "")
    secctx_b = secctx.encode() if secctx is not None else None

    # The message the kernel would send for such an entry, parsed like a dump's.
    cdef size_t size = 4096 + (len(secctx_b) if secctx_b is not None else 0)
    cdef char *buf = <char *>malloc(size)
    cdef nlmsghdr *nlh
    cdef nlattr *nest
    cdef nlattr *inner
    cdef uint32_t words[4]
    cdef nf_conntrack *ct
    if buf == NULL:
        raise MemoryError()
    try:
        memset(buf, 0, size)
        nlh = _put_msg_header(buf, l3)
        _put_spec_tuple(nlh, CTA_TUPLE_ORIG, l3, l4, orig, itype, icode, iid)
        _put_spec_tuple(nlh, CTA_TUPLE_REPLY, l3, l4, reply, rtype, icode, iid)
        if status_bits is not None:
            mnl_attr_put_u32(nlh, CTA_STATUS, htonl(status_bits))
        if state_num is not None or role is not None or orig["vtag"] is not None or reply["vtag"] is not None:
            nest = mnl_attr_nest_start(nlh, CTA_PROTOINFO)
            if l4 == 6:
                inner = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP)
                mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, state_num)
            elif l4 == 132:
                inner = mnl_attr_nest_start(nlh, CTA_PROTOINFO_SCTP)
                if state_num is not None:
                    mnl_attr_put_u8(nlh, CTA_PROTOINFO_SCTP_STATE, state_num)
                # The library keeps ntohl() of the attribute and Flow.vtag reads ntohl() of that (the
                # number conntrack's --orig-vtag takes), so the attribute carries the number as it is.
                if orig["vtag"] is not None:
                    mnl_attr_put_u32(nlh, CTA_PROTOINFO_SCTP_VTAG_ORIGINAL, <uint32_t>orig["vtag"])
                if reply["vtag"] is not None:
                    mnl_attr_put_u32(nlh, CTA_PROTOINFO_SCTP_VTAG_REPLY, <uint32_t>reply["vtag"])
            else:
                inner = mnl_attr_nest_start(nlh, CTA_PROTOINFO_DCCP)
                if state_num is not None:
                    mnl_attr_put_u8(nlh, CTA_PROTOINFO_DCCP_STATE, state_num)
                if role is not None:
                    mnl_attr_put_u8(nlh, CTA_PROTOINFO_DCCP_ROLE, _DCCP_ROLES.index(role))
            mnl_attr_nest_end(nlh, inner)
            mnl_attr_nest_end(nlh, nest)
        if timeout is not None:
            mnl_attr_put_u32(nlh, CTA_TIMEOUT, htonl(timeout))
        if mark is not None:
            mnl_attr_put_u32(nlh, CTA_MARK, htonl(mark))
        if secmark is not None:
            mnl_attr_put_u32(nlh, CTA_SECMARK, htonl(secmark))
        for kind, t in ((CTA_COUNTERS_ORIG, orig), (CTA_COUNTERS_REPLY, reply)):
            if t["packets"] is not None:
                nest = mnl_attr_nest_start(nlh, kind)
                _put_be64(nlh, CTA_COUNTERS_PACKETS, t["packets"])
                _put_be64(nlh, CTA_COUNTERS_BYTES, t["bytes"])
                mnl_attr_nest_end(nlh, nest)
        if use is not None:
            mnl_attr_put_u32(nlh, CTA_USE, htonl(use))
        if ident is not None:
            mnl_attr_put_u32(nlh, CTA_ID, htonl(ident))
        if helper_b is not None:
            nest = mnl_attr_nest_start(nlh, CTA_HELP)
            mnl_attr_put(nlh, CTA_HELP_NAME, len(helper_b) + 1, <const char *>helper_b)
            mnl_attr_nest_end(nlh, nest)
        if zone is not None:
            mnl_attr_put_u16(nlh, CTA_ZONE, htons(zone))
        if secctx_b is not None:
            nest = mnl_attr_nest_start(nlh, CTA_SECCTX)
            mnl_attr_put(nlh, CTA_SECCTX_NAME, len(secctx_b) + 1, <const char *>secctx_b)
            mnl_attr_nest_end(nlh, nest)
        if start is not None or stop is not None:
            nest = mnl_attr_nest_start(nlh, CTA_TIMESTAMP)
            if start is not None:
                _put_be64(nlh, CTA_TIMESTAMP_START, start)
            if stop is not None:
                _put_be64(nlh, CTA_TIMESTAMP_STOP, stop)
            mnl_attr_nest_end(nlh, nest)
        if label_bits is not None:
            memset(words, 0, sizeof(words))
            for bit in label_bits:
                words[bit // 32] |= (<uint32_t>1) << (bit % 32)
            mnl_attr_put(nlh, CTA_LABELS, sizeof(words), words)
        ct = nfct_new()
        if ct == NULL:
            raise MemoryError()
        nfct_nlmsg_parse(nlh, ct)
        return Flow.adopt(ct)
    finally:
        free(buf)
