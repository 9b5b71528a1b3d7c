from _nfct.libnfct cimport nf_conntrack

# What Dump.feed() calls for every kept entry (the callee owns `ct`); a negative return stops the dump.
ctypedef int (*entry_cb_t)(nf_conntrack *ct, void *data) noexcept nogil
