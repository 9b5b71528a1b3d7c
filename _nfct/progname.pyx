# cython: language_level=3
"""Who sent a change: the program owning a netlink port (conntrack's get_progname).

An event caused by a program's request carries that program's netlink port id. The port's socket
inode comes from /proc/net/netlink, the process holding that socket from /proc/*/fd, and its name
from /proc/PID/stat. Plain C without the GIL: the event loop calls it for each such event.
"""
from libc.stdint cimport uint32_t
from libc.stdio cimport snprintf, sscanf, FILE, fopen, fclose, fgets
from libc.stdlib cimport malloc, free, strtoul
from libc.string cimport memcpy
from posix.unistd cimport readlink

from _nfct.netlink cimport NETLINK_NETFILTER
from _nfct.sysapi cimport DIR, dirent, opendir, readdir, closedir, DT_DIR, DT_LNK


cdef int load_owners(names_t *nm) noexcept nogil:
    cdef FILE *fp = fopen("/proc/net/netlink", "r")
    cdef char line[256]
    cdef int ret, prot
    cdef uint32_t portid
    cdef unsigned long inode
    cdef owner_t *grown
    nm.n = 0
    nm.loaded = True
    if fp == NULL:
        return -1
    while fgets(line, 256, fp) != NULL:
        # sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
        ret = sscanf(line, "%*x %d %u %*x %*d %*d %*x %*d %*u %lu", &prot, &portid, &inode)
        if ret == -1:
            break
        if ret != 3 or prot != NETLINK_NETFILTER:
            continue
        if nm.n == nm.cap:
            grown = <owner_t *>malloc((nm.cap * 2 + 16) * sizeof(owner_t))
            if grown == NULL:
                break
            if nm.owners != NULL:
                memcpy(grown, nm.owners, nm.n * sizeof(owner_t))
                free(nm.owners)
            nm.owners = grown
            nm.cap = nm.cap * 2 + 16
        nm.owners[nm.n].portid = portid
        nm.owners[nm.n].inode = inode
        nm.n += 1
    fclose(fp)
    return 0


cdef bint pid_name(unsigned long pid, char *out) noexcept nogil:
    """The command name in /proc/PID/stat ("PID (name) ..."), cut at the first ')'."""
    cdef char path[64]
    cdef char line[512]
    cdef FILE *fp
    cdef bint ok = False
    snprintf(path, 64, "/proc/%lu/stat", pid)
    fp = fopen(path, "r")
    if fp == NULL:
        return False
    if fgets(line, 512, fp) != NULL and sscanf(line, "%*u (%63[^)]", out) == 1:
        ok = True
    fclose(fp)
    return ok


cdef bint pid_has_socket(unsigned long pid, unsigned long inode, char *out) noexcept nogil:
    """Does process `pid` hold socket `inode`? Then `out` gets its name."""
    cdef char path[300]
    cdef char link[128]
    cdef DIR *d
    cdef dirent *ent
    cdef ssize_t rl
    cdef unsigned long ino
    snprintf(path, 300, "/proc/%lu/fd/", pid)
    d = opendir(path)
    if d == NULL:
        return False
    while True:
        ent = readdir(d)
        if ent == NULL:
            break
        if ent.d_type != DT_LNK:
            continue
        snprintf(path, 300, "/proc/%lu/fd/%s", pid, ent.d_name)
        rl = readlink(path, link, 127)
        if rl <= 0:
            continue
        link[rl] = 0
        if sscanf(link, "socket:[%lu]", &ino) == 1 and ino == inode:
            closedir(d)
            return pid_name(pid, out)
    closedir(d)
    return False


cdef bint find_owner_name(uint32_t portid, unsigned long inode, char *out) noexcept nogil:
    """Most netlink users get their pid as first port id: try that process, then all of them."""
    cdef DIR *d
    cdef dirent *ent
    cdef unsigned long pid
    cdef char *end
    cdef bint found = False
    if pid_has_socket(portid, inode, out):
        return True
    d = opendir("/proc")
    if d == NULL:
        return False
    while not found:
        ent = readdir(d)
        if ent == NULL:
            break
        if ent.d_type != DT_DIR:
            continue
        pid = strtoul(ent.d_name, &end, 10)
        if pid <= 1 or end[0] != 0 or pid == portid:
            continue
        found = pid_has_socket(pid, inode, out)
    closedir(d)
    return found


cdef const char *port_name(names_t *nm, uint32_t portid) noexcept nogil:
    """The program owning netlink port `portid` now, or NULL (as conntrack -E's progname=)."""
    cdef int i
    cdef unsigned long inode = 0
    cdef bint have = False
    cdef name_entry *e
    if not nm.loaded:
        load_owners(nm)
    for i in range(nm.n):
        if nm.owners[i].portid == portid:
            inode = nm.owners[i].inode
            have = True
            break
    if not have:
        return NULL
    for i in range(NAME_CACHE):
        e = &nm.cache[i]
        if e.used and e.portid == portid and e.inode == inode:
            return e.name if e.found else NULL
    e = &nm.cache[nm.next]
    nm.next = (nm.next + 1) % NAME_CACHE
    e.used = True
    e.portid = portid
    e.inode = inode
    e.name[0] = 0
    e.found = find_owner_name(portid, inode, e.name)
    return e.name if e.found else NULL

