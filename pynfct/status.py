"""Status flags of a conntrack entry (enum ip_conntrack_status in linux/netfilter/nf_conntrack_common.h).

Defined in ``_nfct.flags`` from the kernel header; this is the same object.
"""
from _nfct.flags import Status

__all__ = ["Status"]
