from libc.stdint cimport uint8_t

from _nfct.libnfct cimport nf_conntrack, nfct_labelmap
from _nfct.fdio cimport outbuf_t, outbuf_flush


cdef enum:
    ENTRY_MAX = 4096      # conntrack formats each entry into a 4096-byte buffer


cdef struct fmt_t:
    unsigned int out_type      # NFCT_O_DEFAULT or NFCT_O_XML
    unsigned int out_flags     # NFCT_OF_*
    bint save                  # -o save: conntrack's command-line form
    bint json                  # -o json: one object per line
    nfct_labelmap *labelmap    # label names for -o labels (NULL: not shown)


cdef const char *state_name(uint8_t l4, uint8_t state) noexcept nogil


# Format one entry into buf (at most size-1 bytes, always NUL-terminated); returns the length written.
cdef size_t format_ct(char *buf, size_t size, const nf_conntrack *ct, const fmt_t *fmt,
                      unsigned int msg_type) noexcept nogil


# s as a JSON string (quoted, escaped, U+FFFD for bytes that are not UTF-8) into buf (at most size-1
# bytes, NUL-terminated, size >= 1); returns the length written.
cdef size_t json_string(char *buf, size_t size, const char *s) noexcept nogil


cdef inline int outbuf_entry(outbuf_t *o, const nf_conntrack *ct, const fmt_t *fmt,
                             unsigned int msg_type) noexcept nogil:
    """Append the entry's line, writing the buffer out first when the line might not fit; 0, or -1
    with o.err set."""
    if o.len + ENTRY_MAX + 2 > o.cap and outbuf_flush(o) < 0:
        return -1
    o.len += format_ct(o.buf + o.len, ENTRY_MAX, ct, fmt, msg_type)
    o.buf[o.len] = b'\n'
    o.len += 1
    return 0


cdef class Format:
    cdef fmt_t f
    cdef readonly bytes header   # written before the first entry (xml)
    cdef readonly bytes footer   # written after the last one, if the header was
    cdef object labelmap_ref     # keeps the LabelMap (and its C map) alive
