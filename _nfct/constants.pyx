# cython: language_level=3
"""The numbers of a command that the C layer and pynfct share: the single definition.

* ``Attr`` -- libnetfilter_conntrack's enum nf_conntrack_attr, and :data:`ATTR_KIND`, how a template
  value of each attribute is passed to ``nfct_set_attr_*``;
* ``Cmd``, ``Opt``, ``Out``, ``Table`` and ``CT_COMPARISON`` -- conntrack-tools' own command, option and
  output bits, which no installed header declares (see constants.pxd).

The values come from the C declarations (libnfct.pxd, constants.pxd), so C and Python cannot disagree.
Each table below is the one list of (name, C value) pairs that both forms are made from:

* the Python enums ``Attr`` (IntEnum), ``Cmd``, ``Opt``, ``Out`` (IntFlag), ``Table`` (IntEnum) and
  ``CT_COMPARISON`` (an ``Opt``), built on first use (module ``__getattr__``), for the library and its
  type checkers: ``import enum`` and building the classes take about 3 ms, which a ``pynfct`` call that
  does not use them should not pay;
* plain-int namespaces (``_ATTR_INTS``, ...; pynfct._ints gives them the enums' names), made from the
  same tables at import, for what the command line uses.

``ATTR_KIND`` is keyed by the attribute numbers as plain ints (an ``Attr`` member is equal to its int and
hashes the same, so ``ATTR_KIND[Attr.MARK]`` works). pynfct re-exports these objects (pynfct.attrs,
pynfct.template); this module imports nothing from pynfct. What entries and events carry (Status,
EventType) is in _nfct.flags.
"""
from _nfct.libnfct cimport *
# constants.pxd (conntrack-tools' bits) is this module's own: its names are in scope here.

__all__ = ["Attr", "ATTR_KIND", "Cmd", "Opt", "Out", "Table", "CT_COMPARISON"]

# ATTR_* of libnetfilter_conntrack 1.0.9, with how a template value is passed to C: u8/u16/u32/u64 are
# ints exactly as conntrack passes them to nfct_set_attr_uN (so ports and vtags are already in network
# byte order, as conntrack stores them); ip4/ip6 are 4/16 bytes in network order; str is a Python str;
# bitmask is a set of label bit numbers; bytes is raw bytes.
_ATTRS = (
    ("ORIG_IPV4_SRC", ATTR_ORIG_IPV4_SRC, "ip4"),
    ("ORIG_IPV4_DST", ATTR_ORIG_IPV4_DST, "ip4"),
    ("REPL_IPV4_SRC", ATTR_REPL_IPV4_SRC, "ip4"),
    ("REPL_IPV4_DST", ATTR_REPL_IPV4_DST, "ip4"),
    ("ORIG_IPV6_SRC", ATTR_ORIG_IPV6_SRC, "ip6"),
    ("ORIG_IPV6_DST", ATTR_ORIG_IPV6_DST, "ip6"),
    ("REPL_IPV6_SRC", ATTR_REPL_IPV6_SRC, "ip6"),
    ("REPL_IPV6_DST", ATTR_REPL_IPV6_DST, "ip6"),
    ("ORIG_PORT_SRC", ATTR_ORIG_PORT_SRC, "u16"),
    ("ORIG_PORT_DST", ATTR_ORIG_PORT_DST, "u16"),
    ("REPL_PORT_SRC", ATTR_REPL_PORT_SRC, "u16"),
    ("REPL_PORT_DST", ATTR_REPL_PORT_DST, "u16"),
    ("ICMP_TYPE", ATTR_ICMP_TYPE, "u8"),
    ("ICMP_CODE", ATTR_ICMP_CODE, "u8"),
    ("ICMP_ID", ATTR_ICMP_ID, "u16"),
    ("ORIG_L3PROTO", ATTR_ORIG_L3PROTO, "u8"),
    ("REPL_L3PROTO", ATTR_REPL_L3PROTO, "u8"),
    ("ORIG_L4PROTO", ATTR_ORIG_L4PROTO, "u8"),
    ("REPL_L4PROTO", ATTR_REPL_L4PROTO, "u8"),
    ("TCP_STATE", ATTR_TCP_STATE, "u8"),
    ("SNAT_IPV4", ATTR_SNAT_IPV4, "ip4"),
    ("DNAT_IPV4", ATTR_DNAT_IPV4, "ip4"),
    ("SNAT_PORT", ATTR_SNAT_PORT, "u16"),
    ("DNAT_PORT", ATTR_DNAT_PORT, "u16"),
    ("TIMEOUT", ATTR_TIMEOUT, "u32"),
    ("MARK", ATTR_MARK, "u32"),
    ("ORIG_COUNTER_PACKETS", ATTR_ORIG_COUNTER_PACKETS, "u64"),
    ("REPL_COUNTER_PACKETS", ATTR_REPL_COUNTER_PACKETS, "u64"),
    ("ORIG_COUNTER_BYTES", ATTR_ORIG_COUNTER_BYTES, "u64"),
    ("REPL_COUNTER_BYTES", ATTR_REPL_COUNTER_BYTES, "u64"),
    ("USE", ATTR_USE, "u32"),
    ("ID", ATTR_ID, "u32"),
    ("STATUS", ATTR_STATUS, "u32"),
    ("TCP_FLAGS_ORIG", ATTR_TCP_FLAGS_ORIG, "u8"),
    ("TCP_FLAGS_REPL", ATTR_TCP_FLAGS_REPL, "u8"),
    ("TCP_MASK_ORIG", ATTR_TCP_MASK_ORIG, "u8"),
    ("TCP_MASK_REPL", ATTR_TCP_MASK_REPL, "u8"),
    ("MASTER_IPV4_SRC", ATTR_MASTER_IPV4_SRC, "ip4"),
    ("MASTER_IPV4_DST", ATTR_MASTER_IPV4_DST, "ip4"),
    ("MASTER_IPV6_SRC", ATTR_MASTER_IPV6_SRC, "ip6"),
    ("MASTER_IPV6_DST", ATTR_MASTER_IPV6_DST, "ip6"),
    ("MASTER_PORT_SRC", ATTR_MASTER_PORT_SRC, "u16"),
    ("MASTER_PORT_DST", ATTR_MASTER_PORT_DST, "u16"),
    ("MASTER_L3PROTO", ATTR_MASTER_L3PROTO, "u8"),
    ("MASTER_L4PROTO", ATTR_MASTER_L4PROTO, "u8"),
    ("SECMARK", ATTR_SECMARK, "u32"),
    ("ORIG_NAT_SEQ_CORRECTION_POS", ATTR_ORIG_NAT_SEQ_CORRECTION_POS, "u32"),
    ("ORIG_NAT_SEQ_OFFSET_BEFORE", ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE, "u32"),
    ("ORIG_NAT_SEQ_OFFSET_AFTER", ATTR_ORIG_NAT_SEQ_OFFSET_AFTER, "u32"),
    ("REPL_NAT_SEQ_CORRECTION_POS", ATTR_REPL_NAT_SEQ_CORRECTION_POS, "u32"),
    ("REPL_NAT_SEQ_OFFSET_BEFORE", ATTR_REPL_NAT_SEQ_OFFSET_BEFORE, "u32"),
    ("REPL_NAT_SEQ_OFFSET_AFTER", ATTR_REPL_NAT_SEQ_OFFSET_AFTER, "u32"),
    ("SCTP_STATE", ATTR_SCTP_STATE, "u8"),
    ("SCTP_VTAG_ORIG", ATTR_SCTP_VTAG_ORIG, "u32"),
    ("SCTP_VTAG_REPL", ATTR_SCTP_VTAG_REPL, "u32"),
    ("HELPER_NAME", ATTR_HELPER_NAME, "str"),
    ("DCCP_STATE", ATTR_DCCP_STATE, "u8"),
    ("DCCP_ROLE", ATTR_DCCP_ROLE, "u8"),
    ("DCCP_HANDSHAKE_SEQ", ATTR_DCCP_HANDSHAKE_SEQ, "u64"),
    ("TCP_WSCALE_ORIG", ATTR_TCP_WSCALE_ORIG, "u8"),
    ("TCP_WSCALE_REPL", ATTR_TCP_WSCALE_REPL, "u8"),
    ("ZONE", ATTR_ZONE, "u16"),
    ("SECCTX", ATTR_SECCTX, "str"),
    ("TIMESTAMP_START", ATTR_TIMESTAMP_START, "u64"),
    ("TIMESTAMP_STOP", ATTR_TIMESTAMP_STOP, "u64"),
    ("HELPER_INFO", ATTR_HELPER_INFO, "bytes"),
    ("CONNLABELS", ATTR_CONNLABELS, "bitmask"),
    ("CONNLABELS_MASK", ATTR_CONNLABELS_MASK, "bitmask"),
    ("ORIG_ZONE", ATTR_ORIG_ZONE, "u16"),
    ("REPL_ZONE", ATTR_REPL_ZONE, "u16"),
    ("SNAT_IPV6", ATTR_SNAT_IPV6, "ip6"),
    ("DNAT_IPV6", ATTR_DNAT_IPV6, "ip6"),
    ("SYNPROXY_ISN", ATTR_SYNPROXY_ISN, "u32"),
    ("SYNPROXY_ITS", ATTR_SYNPROXY_ITS, "u32"),
    ("SYNPROXY_TSOFF", ATTR_SYNPROXY_TSOFF, "u32"),
)

ATTR_KIND = {value: kind for _, value, kind in _ATTRS}

# enum ct_command of conntrack-tools (one bit per command and table)
_CMDS = (
    ("NONE", CT_NONE),
    ("CT_LIST", CT_LIST),
    ("CT_CREATE", CT_CREATE),
    ("CT_UPDATE", CT_UPDATE),
    ("CT_DELETE", CT_DELETE),
    ("CT_GET", CT_GET),
    ("CT_FLUSH", CT_FLUSH),
    ("CT_EVENT", CT_EVENT),
    ("CT_VERSION", CT_VERSION),
    ("CT_HELP", CT_HELP),
    ("EXP_LIST", EXP_LIST),
    ("EXP_CREATE", EXP_CREATE),
    ("EXP_DELETE", EXP_DELETE),
    ("EXP_GET", EXP_GET),
    ("EXP_FLUSH", EXP_FLUSH),
    ("EXP_EVENT", EXP_EVENT),
    ("CT_COUNT", CT_COUNT),
    ("EXP_COUNT", EXP_COUNT),
    ("CT_STATS", CT_STATS),
    ("EXP_STATS", EXP_STATS),
    ("CT_ADD", CT_ADD),
)

# enum ct_options of conntrack-tools: which options were given (ORIG and REPL are the address pairs)
_OPTS = (
    ("ORIG_SRC", O_ORIG_SRC),
    ("ORIG_DST", O_ORIG_DST),
    ("REPL_SRC", O_REPL_SRC),
    ("REPL_DST", O_REPL_DST),
    ("PROTO", O_PROTO),
    ("TIMEOUT", O_TIMEOUT),
    ("STATUS", O_STATUS),
    ("ZERO", O_ZERO),
    ("EVENT_MASK", O_EVENT_MASK),
    ("EXP_SRC", O_EXP_SRC),
    ("EXP_DST", O_EXP_DST),
    ("MASK_SRC", O_MASK_SRC),
    ("MASK_DST", O_MASK_DST),
    ("NATRANGE", O_NATRANGE),
    ("MARK", O_MARK),
    ("ID", O_ID),
    ("FAMILY", O_FAMILY),
    ("SRC_NAT", O_SRC_NAT),
    ("DST_NAT", O_DST_NAT),
    ("OUTPUT", O_OUTPUT),
    ("SECMARK", O_SECMARK),
    ("BUFFERSIZE", O_BUFFERSIZE),
    ("ANY_NAT", O_ANY_NAT),
    ("ZONE", O_ZONE),
    ("LABEL", O_LABEL),
    ("ADD_LABEL", O_ADD_LABEL),
    ("DEL_LABEL", O_DEL_LABEL),
    ("ORIG_ZONE", O_ORIG_ZONE),
    ("REPL_ZONE", O_REPL_ZONE),
    ("ORIG", O_ORIG),
    ("REPL", O_REPL),
)

#: Options that make -L/-D/-U/-E compare each entry with the template (conntrack's CT_COMPARISON).
_COMPARISON = O_COMPARISON

# -o output flags (conntrack's _O_* bits), plus pynfct's JSON. US (userspace): conntrack accepts it and
# sets no bit; kept so -E can print portids. TMS is timestamp, KTMS ktimestamp, CL labels.
_OUTS = (
    ("XML", OUT_XML),
    ("EXT", OUT_EXT),
    ("TMS", OUT_TMS),
    ("ID", OUT_ID),
    ("KTMS", OUT_KTMS),
    ("CL", OUT_CL),
    ("SAVE", OUT_SAVE),
    ("US", OUT_US),
    ("JSON", OUT_JSON),
)

# The table a command works on.
_TABLES = (
    ("CONNTRACK", TABLE_CONNTRACK),
    ("EXPECT", TABLE_EXPECT),
    ("DYING", TABLE_DYING),
    ("UNCONFIRMED", TABLE_UNCONFIRMED),
)



cdef class _Ints:
    """A namespace of plain ints, the members of one table as attributes (pynfct._ints uses these).

    Calling it returns ``int(value)``, the way calling the enum returns a member. An instance of an
    extension type, not a class of its own: making a Python class costs a start about 0.1 ms each.
    """

    cdef dict __dict__
    cdef readonly str enum_name

    def __init__(self, str enum_name, pairs):
        self.enum_name = enum_name
        for pair in pairs:
            setattr(self, pair[0], pair[1])

    def __call__(self, value=0):
        return int(value)

    def __repr__(self):
        return f"<{self.enum_name}'s members as plain ints>"


_ATTR_INTS = _Ints("Attr", _ATTRS)
_CMD_INTS = _Ints("Cmd", _CMDS)
_OPT_INTS = _Ints("Opt", _OPTS)
_OUT_INTS = _Ints("Out", _OUTS)
_TABLE_INTS = _Ints("Table", _TABLES)

_ENUMS = ("Attr", "Cmd", "Opt", "Out", "Table", "CT_COMPARISON")


def _make_enums():
    """The enum classes, from the tables above (module, qualname: they pickle by name)."""
    import enum
    made = {
        "Attr": enum.IntEnum("Attr", [(n, v) for n, v, _ in _ATTRS], module=__name__, qualname="Attr"),
        "Cmd": enum.IntFlag("Cmd", list(_CMDS), module=__name__, qualname="Cmd"),
        "Opt": enum.IntFlag("Opt", list(_OPTS), module=__name__, qualname="Opt"),
        "Out": enum.IntFlag("Out", list(_OUTS), module=__name__, qualname="Out"),
        "Table": enum.IntEnum("Table", list(_TABLES), module=__name__, qualname="Table"),
    }
    made["Attr"].__doc__ = "ATTR_* of libnetfilter_conntrack 1.0.9; values are the C enum values."
    made["Cmd"].__doc__ = "enum ct_command of conntrack-tools (one bit per command and table)."
    made["Opt"].__doc__ = "enum ct_options of conntrack-tools: which options were given."
    made["Out"].__doc__ = "-o output flags (conntrack's _O_* bits), plus pynfct's JSON."
    made["Table"].__doc__ = "The table a command works on."
    made["CT_COMPARISON"] = made["Opt"](_COMPARISON)
    return made


def __getattr__(name):
    """The enums are made on the first access to any of them, all at once."""
    if name not in _ENUMS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made = _make_enums()
    names = globals()
    if "Attr" not in names:      # not made meanwhile by another thread (no Python code runs in between)
        names.update(made)
    return names[name]


def __dir__():
    return sorted(set(globals()) | set(_ENUMS))
