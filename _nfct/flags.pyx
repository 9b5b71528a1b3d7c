# cython: language_level=3
"""The flag sets an entry and an event carry, as Python enums with the C headers' values.

* :class:`Status` -- the kernel's IPS_* status bits (linux/netfilter/nf_conntrack_common.h), Flow.status;
* :class:`EventType` -- libnetfilter_conntrack's NFCT_T_NEW/UPDATE/DESTROY, Event.type.

Apart from _nfct.constants because the command line's start needs neither (creating enums takes time).
pynfct re-exports these objects (pynfct.status, pynfct.events, pynfct.Status, pynfct.EventType); this
module imports nothing from pynfct.
"""
import enum

from _nfct.libnfct cimport NFCT_T_NEW, NFCT_T_UPDATE, NFCT_T_DESTROY, NFCT_T_ALL
from _nfct.netlink cimport *

__all__ = ["Status", "EventType"]


class Status(enum.IntFlag):
    """Status flags of a conntrack entry (enum ip_conntrack_status in linux/netfilter/nf_conntrack_common.h)."""

    EXPECTED = IPS_EXPECTED
    SEEN_REPLY = IPS_SEEN_REPLY
    ASSURED = IPS_ASSURED
    CONFIRMED = IPS_CONFIRMED
    SRC_NAT = IPS_SRC_NAT
    DST_NAT = IPS_DST_NAT
    SEQ_ADJUST = IPS_SEQ_ADJUST
    SRC_NAT_DONE = IPS_SRC_NAT_DONE
    DST_NAT_DONE = IPS_DST_NAT_DONE
    DYING = IPS_DYING
    FIXED_TIMEOUT = IPS_FIXED_TIMEOUT
    TEMPLATE = IPS_TEMPLATE
    UNTRACKED = IPS_UNTRACKED
    HELPER = IPS_HELPER
    OFFLOAD = IPS_OFFLOAD
    HW_OFFLOAD = IPS_HW_OFFLOAD


class EventType(enum.IntFlag):
    """What happened to an entry (libnetfilter_conntrack's NFCT_T_* values)."""

    NEW = NFCT_T_NEW
    UPDATE = NFCT_T_UPDATE
    DESTROY = NFCT_T_DESTROY
    ALL = NFCT_T_ALL
