# The C parser of plain -I/-A lines that _nfct.load runs on the lines of a -R file; see fastparse.pyx.
from libc.stdint cimport uint8_t, uint16_t, uint32_t

from _nfct.libnfct cimport nf_conntrack


cdef enum:
    LINE_MAX = 10240        # conntrack's fgets() buffer
    MAX_ARGC = 255
    FAST_CREATE = 1
    FAST_ADD = 2


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


# Parse one line into f (cutting `line` into words, pointed to by argv[MAX_ARGC]): 0, or -1 for a line
# the full parser must read.
cdef int fast_parse(fast_t *f, char *line, size_t len, char **argv) noexcept nogil
# The object conntrack builds for the line (NULL: out of memory).
cdef nf_conntrack *fast_build(const fast_t *f) noexcept nogil
