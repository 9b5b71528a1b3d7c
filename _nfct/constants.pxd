# conntrack-tools' own bits, which no installed header declares: they are the values of conntrack's
# struct ct_cmd (enum ct_command, enum ct_options, the _O_* output flags, CT_COMPARISON) in
# conntrack-tools 1.4.7 (include/conntrack.h and src/conntrack.c). The C code cimports them from here;
# _nfct.constants builds the Python enums (Cmd, Opt, Out, Table) from the same numbers.

# enum ct_command: one bit per command and table.
cdef enum:
    CT_NONE = 0
    CT_LIST = 1 << 0
    CT_CREATE = 1 << 1
    CT_UPDATE = 1 << 2
    CT_DELETE = 1 << 3
    CT_GET = 1 << 4
    CT_FLUSH = 1 << 5
    CT_EVENT = 1 << 6
    CT_VERSION = 1 << 7
    CT_HELP = 1 << 8
    EXP_LIST = 1 << 9
    EXP_CREATE = 1 << 10
    EXP_DELETE = 1 << 11
    EXP_GET = 1 << 12
    EXP_FLUSH = 1 << 13
    EXP_EVENT = 1 << 14
    CT_COUNT = 1 << 15
    EXP_COUNT = 1 << 16
    CT_STATS = 1 << 17
    EXP_STATS = 1 << 18
    CT_ADD = 1 << 19

# enum ct_options (conntrack's CT_OPT_*): which options were given.
cdef enum:
    O_ORIG_SRC = 1 << 0
    O_ORIG_DST = 1 << 1
    O_REPL_SRC = 1 << 2
    O_REPL_DST = 1 << 3
    O_PROTO = 1 << 4
    O_TIMEOUT = 1 << 5
    O_STATUS = 1 << 6
    O_ZERO = 1 << 7
    O_EVENT_MASK = 1 << 8
    O_EXP_SRC = 1 << 9
    O_EXP_DST = 1 << 10
    O_MASK_SRC = 1 << 11
    O_MASK_DST = 1 << 12
    O_NATRANGE = 1 << 13
    O_MARK = 1 << 14
    O_ID = 1 << 15
    O_FAMILY = 1 << 16
    O_SRC_NAT = 1 << 17
    O_DST_NAT = 1 << 18
    O_OUTPUT = 1 << 19
    O_SECMARK = 1 << 20
    O_BUFFERSIZE = 1 << 21
    O_ANY_NAT = 1 << 22
    O_ZONE = 1 << 23
    O_LABEL = 1 << 24
    O_ADD_LABEL = 1 << 25
    O_DEL_LABEL = 1 << 26
    O_ORIG_ZONE = 1 << 27
    O_REPL_ZONE = 1 << 28

    O_ORIG = O_ORIG_SRC | O_ORIG_DST
    O_REPL = O_REPL_SRC | O_REPL_DST
    # CT_COMPARISON: the options that make -L/-D/-U/-E compare each entry with the template.
    O_COMPARISON = (O_PROTO | O_ORIG | O_REPL | O_MARK | O_SECMARK | O_STATUS | O_ID | O_ZONE | O_LABEL
                    | O_ORIG_ZONE | O_REPL_ZONE)

# The -o output flags (conntrack's _O_* bits), plus pynfct's own US and JSON.
cdef enum:
    OUT_XML = 1 << 0
    OUT_EXT = 1 << 1
    OUT_TMS = 1 << 2        # timestamp
    OUT_ID = 1 << 3
    OUT_KTMS = 1 << 4       # ktimestamp
    OUT_CL = 1 << 5         # labels
    OUT_SAVE = 1 << 6
    OUT_US = 1 << 15        # userspace: conntrack accepts it and sets no bit; kept so -E can print portids
    OUT_JSON = 1 << 16      # pynfct's own

# The table a command works on (the words after -L/-D/-E...: conntrack, expect, dying, unconfirmed).
cdef enum:
    TABLE_CONNTRACK = 0
    TABLE_EXPECT = 1
    TABLE_DYING = 2
    TABLE_UNCONFIRMED = 3
