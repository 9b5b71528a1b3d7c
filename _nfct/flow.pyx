# cython: language_level=3
"""Flow and Tuple: one conntrack entry, decoded field by field only when Python reads it."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from _nfct.libnfct cimport *
from _nfct.netlink cimport nlmsghdr
from _nfct.sysapi cimport ntohs, ntohl, inet_ntop
from _nfct.format cimport state_name
from _nfct.constants cimport OUT_JSON


cdef enum:
    AF_INET = 2
    AF_INET6 = 10

_PROTO_NAMES = {6: "tcp", 17: "udp", 136: "udplite", 1: "icmp", 58: "icmpv6", 132: "sctp", 33: "dccp",
                47: "gre"}
cdef object _Status = None


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


cdef class Flow:
    """One conntrack entry. Read-only; fields are decoded when read.

    ``orig`` and ``reply`` are the two tuples; ``status`` is a :class:`pynfct.Status` flag set.
    Fields the kernel did not send (counters without nf_conntrack_acct, say) read as None.
    """

    def __cinit__(self):
        self.ct = NULL

    def __init__(self):
        raise TypeError("Flow objects come from Conntrack.dump()/get(); build new ones with pynfct.FlowSpec")

    def __dealloc__(self):
        if self.ct != NULL:
            nfct_destroy(self.ct)

    @staticmethod
    cdef Flow adopt(nf_conntrack *ct):
        cdef Flow f = Flow.__new__(Flow)
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
        cdef Tuple t = Tuple.__new__(Tuple)
        t.flow = self
        t.reply = False
        return t

    @property
    def reply(self) -> "Tuple":
        cdef Tuple t = Tuple.__new__(Tuple)
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

    def __str__(self):
        cdef char buf[4096]
        cdef int n = nfct_snprintf_labels(buf, 4096, self.ct, NFCT_T_UNKNOWN, NFCT_O_DEFAULT, 0, NULL)
        return buf[:min(max(n, 0), 4095)].decode("utf-8", "replace")

    def __repr__(self):
        return f"<Flow {self}>"

    def __reduce__(self):
        raise TypeError("Flow objects cannot be pickled; use Flow.as_dict()")

    def as_dict(self) -> dict:
        """The JSON schema of `-o json` as a dict (docs/json.md)."""
        import json
        from _nfct.format import Format
        return json.loads(Format(OUT_JSON).format(self))


cdef class Tuple:
    """One direction of a flow: addresses, ports (or ICMP fields, GRE keys), counters, zone."""

    def __init__(self):
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


def parse_message(bytes data) -> Flow:
    """A Flow from one raw ctnetlink message (nlmsghdr included), as the dump path parses it.

    For tests that feed crafted bytes to the parser; a message whose length field does not fit the
    buffer is refused.
    """
    cdef const nlmsghdr *nlh = <const nlmsghdr *><const char *>data
    cdef nf_conntrack *ct
    if len(data) < sizeof(nlmsghdr) + 4 or nlh.nlmsg_len < sizeof(nlmsghdr) + 4 or nlh.nlmsg_len > len(data):
        raise ValueError("not one whole netlink message")
    ct = nfct_new()
    if ct == NULL:
        raise MemoryError()
    nfct_nlmsg_parse(nlh, ct)
    return Flow.adopt(ct)
