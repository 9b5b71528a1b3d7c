# Who sent a change: the program owning a netlink port, as conntrack -E prints it (progname=).
from libc.stdint cimport uint32_t

cdef enum:
    NAME_CACHE = 16          # ports whose owner was looked up, remembered (the lookup walks /proc)
    NAME_MAX = 64            # room for a name, with its NUL

cdef struct owner_t:
    uint32_t portid
    unsigned long inode

cdef struct name_entry:
    uint32_t portid
    unsigned long inode
    bint used
    bint found
    char name[NAME_MAX]

# All zeros is a valid empty state; the owner clears `loaded` when the table may be stale (each batch)
# and frees `owners`.
cdef struct names_t:
    owner_t *owners          # NETLINK_NETFILTER sockets of /proc/net/netlink, read once per batch
    int n
    int cap
    bint loaded
    name_entry cache[NAME_CACHE]
    int next


# The program owning netlink port `portid` now, or NULL; the name lives in nm's cache.
cdef const char *port_name(names_t *nm, uint32_t portid) noexcept nogil
