# Kernel UAPI: <linux/netlink.h>, <linux/netfilter/nfnetlink.h>, <linux/netfilter/nfnetlink_conntrack.h>.
from libc.stdint cimport uint8_t, uint16_t, uint32_t


cdef extern from "<linux/netlink.h>" nogil:
    struct nlmsghdr:
        uint32_t nlmsg_len
        uint16_t nlmsg_type
        uint16_t nlmsg_flags
        uint32_t nlmsg_seq
        uint32_t nlmsg_pid

    struct nlattr:
        uint16_t nla_len
        uint16_t nla_type

    struct nlmsgerr:
        int error
        nlmsghdr msg

    int NETLINK_NETFILTER
    int NETLINK_NO_ENOBUFS
    int NETLINK_BROADCAST_ERROR
    int NETLINK_EXT_ACK
    int NETLINK_CAP_ACK
    int SOL_NETLINK
    int NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP, NLM_F_CREATE, NLM_F_EXCL, NLM_F_DUMP_INTR
    int NLMSG_ERROR, NLMSG_DONE, NLMSG_NOOP, NLMSG_OVERRUN
    int NLA_F_NESTED


cdef extern from "<linux/netfilter/nfnetlink.h>" nogil:
    struct nfgenmsg:
        uint8_t nfgen_family
        uint8_t version
        uint16_t res_id

    int NFNETLINK_V0
    int NFNL_SUBSYS_CTNETLINK
    int NFNL_SUBSYS_CTNETLINK_EXP


cdef extern from "<linux/netfilter/nfnetlink_conntrack.h>" nogil:
    enum cntl_msg_types:
        IPCTNL_MSG_CT_NEW
        IPCTNL_MSG_CT_GET
        IPCTNL_MSG_CT_DELETE
        IPCTNL_MSG_CT_GET_CTRZERO
        IPCTNL_MSG_CT_GET_STATS_CPU
        IPCTNL_MSG_CT_GET_STATS
        IPCTNL_MSG_CT_GET_DYING
        IPCTNL_MSG_CT_GET_UNCONFIRMED

    enum ctnl_exp_msg_types:
        IPCTNL_MSG_EXP_NEW
        IPCTNL_MSG_EXP_GET
        IPCTNL_MSG_EXP_DELETE
        IPCTNL_MSG_EXP_GET_STATS_CPU

    enum ctattr_type:
        CTA_TUPLE_ORIG
        CTA_TUPLE_REPLY
        CTA_STATUS
        CTA_MARK
        CTA_ZONE
        CTA_ID
        CTA_MARK_MASK
        CTA_FILTER
        CTA_STATUS_MASK

    enum ctattr_tuple:
        CTA_TUPLE_IP
        CTA_TUPLE_PROTO
        CTA_TUPLE_ZONE

    enum ctattr_ip:
        CTA_IP_V4_SRC
        CTA_IP_V4_DST
        CTA_IP_V6_SRC
        CTA_IP_V6_DST

    enum ctattr_l4proto:
        CTA_PROTO_NUM
        CTA_PROTO_SRC_PORT
        CTA_PROTO_DST_PORT
        CTA_PROTO_ICMP_ID
        CTA_PROTO_ICMP_TYPE
        CTA_PROTO_ICMP_CODE
        CTA_PROTO_ICMPV6_ID
        CTA_PROTO_ICMPV6_TYPE
        CTA_PROTO_ICMPV6_CODE

    enum ctattr_filter:
        CTA_FILTER_ORIG_FLAGS
        CTA_FILTER_REPLY_FLAGS

    enum ctattr_stats_global:
        CTA_STATS_GLOBAL_ENTRIES


cdef extern from "<linux/netfilter/nf_conntrack_common.h>" nogil:
    # The status bits of an entry (CTA_STATUS).
    enum ip_conntrack_status:
        IPS_EXPECTED
        IPS_SEEN_REPLY
        IPS_ASSURED
        IPS_CONFIRMED
        IPS_SRC_NAT
        IPS_DST_NAT
        IPS_SEQ_ADJUST
        IPS_SRC_NAT_DONE
        IPS_DST_NAT_DONE
        IPS_DYING
        IPS_FIXED_TIMEOUT
        IPS_TEMPLATE
        IPS_UNTRACKED
        IPS_HELPER
        IPS_OFFLOAD
        IPS_HW_OFFLOAD


# The rest of the entry's attributes (nested ones too): what a pickled Flow and Flow.from_dict() write.
cdef extern from "<linux/netfilter/nfnetlink_conntrack.h>" nogil:
    enum:
        CTA_PROTOINFO
        CTA_HELP
        CTA_TIMEOUT
        CTA_COUNTERS_ORIG
        CTA_COUNTERS_REPLY
        CTA_USE
        CTA_TUPLE_MASTER
        CTA_NAT_SEQ_ADJ_ORIG
        CTA_NAT_SEQ_ADJ_REPLY
        CTA_SECMARK
        CTA_SECCTX
        CTA_TIMESTAMP
        CTA_LABELS
        CTA_SYNPROXY
        CTA_PROTOINFO_TCP
        CTA_PROTOINFO_DCCP
        CTA_PROTOINFO_SCTP
        CTA_PROTOINFO_TCP_STATE
        CTA_PROTOINFO_TCP_WSCALE_ORIGINAL
        CTA_PROTOINFO_TCP_WSCALE_REPLY
        CTA_PROTOINFO_TCP_FLAGS_ORIGINAL
        CTA_PROTOINFO_TCP_FLAGS_REPLY
        CTA_PROTOINFO_DCCP_STATE
        CTA_PROTOINFO_DCCP_ROLE
        CTA_PROTOINFO_DCCP_HANDSHAKE_SEQ
        CTA_PROTOINFO_SCTP_STATE
        CTA_PROTOINFO_SCTP_VTAG_ORIGINAL
        CTA_PROTOINFO_SCTP_VTAG_REPLY
        CTA_COUNTERS_PACKETS
        CTA_COUNTERS_BYTES
        CTA_NAT_SEQ_CORRECTION_POS
        CTA_NAT_SEQ_OFFSET_BEFORE
        CTA_NAT_SEQ_OFFSET_AFTER
        CTA_SECCTX_NAME
        CTA_TIMESTAMP_START
        CTA_TIMESTAMP_STOP
        CTA_SYNPROXY_ISN
        CTA_SYNPROXY_ITS
        CTA_SYNPROXY_TSOFF
        CTA_HELP_NAME


# What the attribute policy (policy.pyx) checks besides the above: each level's highest type, the
# attributes libnetfilter_conntrack reads without a check of its own, and the expectation's.
cdef extern from "<linux/netlink.h>" nogil:
    int NLA_TYPE_MASK
    int NLA_HDRLEN

cdef extern from "<linux/netfilter/nfnetlink_conntrack.h>" nogil:
    enum:
        CTA_MAX
        CTA_TUPLE_MAX
        CTA_IP_MAX
        CTA_PROTO_MAX
        CTA_PROTOINFO_MAX
        CTA_PROTOINFO_TCP_MAX
        CTA_PROTOINFO_DCCP_MAX
        CTA_PROTOINFO_SCTP_MAX
        CTA_COUNTERS_MAX
        CTA_TIMESTAMP_MAX
        CTA_NAT_SEQ_MAX
        CTA_SYNPROXY_MAX
        CTA_HELP_MAX
        CTA_SECCTX_MAX
        CTA_EXPECT_MAX
        CTA_EXPECT_NAT_MAX
        CTA_NAT_SRC
        CTA_NAT_DST
        CTA_LABELS_MASK
        CTA_COUNTERS32_PACKETS
        CTA_COUNTERS32_BYTES
        CTA_HELP_INFO
        CTA_EXPECT_MASTER
        CTA_EXPECT_TUPLE
        CTA_EXPECT_MASK
        CTA_EXPECT_TIMEOUT
        CTA_EXPECT_ID
        CTA_EXPECT_HELP_NAME
        CTA_EXPECT_ZONE
        CTA_EXPECT_FLAGS
        CTA_EXPECT_CLASS
        CTA_EXPECT_NAT
        CTA_EXPECT_FN
        CTA_EXPECT_NAT_DIR
        CTA_EXPECT_NAT_TUPLE
