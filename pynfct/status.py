"""Status flags of a conntrack entry (enum ip_conntrack_status in linux/netfilter/nf_conntrack_common.h)."""
import enum


class Status(enum.IntFlag):
    EXPECTED = 1 << 0       # IPS_EXPECTED
    SEEN_REPLY = 1 << 1     # IPS_SEEN_REPLY
    ASSURED = 1 << 2        # IPS_ASSURED
    CONFIRMED = 1 << 3      # IPS_CONFIRMED
    SRC_NAT = 1 << 4        # IPS_SRC_NAT
    DST_NAT = 1 << 5        # IPS_DST_NAT
    SEQ_ADJUST = 1 << 6     # IPS_SEQ_ADJUST
    SRC_NAT_DONE = 1 << 7   # IPS_SRC_NAT_DONE
    DST_NAT_DONE = 1 << 8   # IPS_DST_NAT_DONE
    DYING = 1 << 9          # IPS_DYING
    FIXED_TIMEOUT = 1 << 10  # IPS_FIXED_TIMEOUT
    TEMPLATE = 1 << 11      # IPS_TEMPLATE
    UNTRACKED = 1 << 12     # IPS_UNTRACKED
    HELPER = 1 << 13        # IPS_HELPER
    OFFLOAD = 1 << 14       # IPS_OFFLOAD
    HW_OFFLOAD = 1 << 15    # IPS_HW_OFFLOAD
