# The kernel-side event filter: what the kernel can check of conntrack's filter, as a BPF socket filter.
from _nfct.filter cimport ct_filter


# Attach it to event socket `fd`: 1 if attached, 0 if the kernel can check nothing of it, -1 on error.
cdef int attach_filter(int fd, const ct_filter *f) noexcept nogil
