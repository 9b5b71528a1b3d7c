# Declarations from <libnetfilter_conntrack/libnetfilter_conntrack.h> (1.0.9): only what pynfct uses.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from _nfct.netlink cimport nlmsghdr


cdef extern from "libnetfilter_conntrack/libnetfilter_conntrack.h" nogil:
    struct nf_conntrack:
        pass
    struct nf_expect:
        pass
    struct nfct_bitmask:
        pass
    struct nfct_labelmap:
        pass
    struct nfct_filter_dump:
        pass

    struct nfct_filter_dump_mark:
        uint32_t val
        uint32_t mask

    enum nf_conntrack_msg_type:
        NFCT_T_UNKNOWN
        NFCT_T_NEW
        NFCT_T_UPDATE
        NFCT_T_DESTROY
        NFCT_T_ALL

    # enum nf_conntrack_attr, every member (aliases left out): _nfct.constants.Attr takes its numbers from here.
    enum nf_conntrack_attr:
        ATTR_ORIG_IPV4_SRC
        ATTR_ORIG_IPV4_DST
        ATTR_REPL_IPV4_SRC
        ATTR_REPL_IPV4_DST
        ATTR_ORIG_IPV6_SRC
        ATTR_ORIG_IPV6_DST
        ATTR_REPL_IPV6_SRC
        ATTR_REPL_IPV6_DST
        ATTR_ORIG_PORT_SRC
        ATTR_ORIG_PORT_DST
        ATTR_REPL_PORT_SRC
        ATTR_REPL_PORT_DST
        ATTR_ICMP_TYPE
        ATTR_ICMP_CODE
        ATTR_ICMP_ID
        ATTR_ORIG_L3PROTO
        ATTR_REPL_L3PROTO
        ATTR_ORIG_L4PROTO
        ATTR_REPL_L4PROTO
        ATTR_TCP_STATE
        ATTR_SNAT_IPV4
        ATTR_DNAT_IPV4
        ATTR_SNAT_PORT
        ATTR_DNAT_PORT
        ATTR_TIMEOUT
        ATTR_MARK
        ATTR_ORIG_COUNTER_PACKETS
        ATTR_REPL_COUNTER_PACKETS
        ATTR_ORIG_COUNTER_BYTES
        ATTR_REPL_COUNTER_BYTES
        ATTR_USE
        ATTR_ID
        ATTR_STATUS
        ATTR_TCP_FLAGS_ORIG
        ATTR_TCP_FLAGS_REPL
        ATTR_TCP_MASK_ORIG
        ATTR_TCP_MASK_REPL
        ATTR_MASTER_IPV4_SRC
        ATTR_MASTER_IPV4_DST
        ATTR_MASTER_IPV6_SRC
        ATTR_MASTER_IPV6_DST
        ATTR_MASTER_PORT_SRC
        ATTR_MASTER_PORT_DST
        ATTR_MASTER_L3PROTO
        ATTR_MASTER_L4PROTO
        ATTR_SECMARK
        ATTR_ORIG_NAT_SEQ_CORRECTION_POS
        ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE
        ATTR_ORIG_NAT_SEQ_OFFSET_AFTER
        ATTR_REPL_NAT_SEQ_CORRECTION_POS
        ATTR_REPL_NAT_SEQ_OFFSET_BEFORE
        ATTR_REPL_NAT_SEQ_OFFSET_AFTER
        ATTR_SCTP_STATE
        ATTR_SCTP_VTAG_ORIG
        ATTR_SCTP_VTAG_REPL
        ATTR_HELPER_NAME
        ATTR_DCCP_STATE
        ATTR_DCCP_ROLE
        ATTR_DCCP_HANDSHAKE_SEQ
        ATTR_TCP_WSCALE_ORIG
        ATTR_TCP_WSCALE_REPL
        ATTR_ZONE
        ATTR_SECCTX
        ATTR_TIMESTAMP_START
        ATTR_TIMESTAMP_STOP
        ATTR_HELPER_INFO
        ATTR_CONNLABELS
        ATTR_CONNLABELS_MASK
        ATTR_ORIG_ZONE
        ATTR_REPL_ZONE
        ATTR_SNAT_IPV6
        ATTR_DNAT_IPV6
        ATTR_SYNPROXY_ISN
        ATTR_SYNPROXY_ITS
        ATTR_SYNPROXY_TSOFF
        ATTR_MAX

    enum:
        NFCT_HELPER_NAME_MAX

    enum:
        NFCT_O_PLAIN
        NFCT_O_DEFAULT
        NFCT_O_XML
        NFCT_OF_SHOW_LAYER3
        NFCT_OF_TIME
        NFCT_OF_ID
        NFCT_OF_TIMESTAMP

    enum:
        NFCT_CMP_ALL
        NFCT_CMP_ORIG
        NFCT_CMP_REPL
        NFCT_CMP_MASK
        NFCT_CMP_STRICT

    enum nf_conntrack_getobjopt:
        NFCT_GOPT_IS_SNAT
        NFCT_GOPT_IS_DNAT
        NFCT_GOPT_IS_SPAT
        NFCT_GOPT_IS_DPAT

    enum nf_conntrack_setobjopt:
        NFCT_SOPT_UNDO_SNAT
        NFCT_SOPT_UNDO_DNAT
        NFCT_SOPT_UNDO_SPAT
        NFCT_SOPT_UNDO_DPAT
        NFCT_SOPT_SETUP_ORIGINAL
        NFCT_SOPT_SETUP_REPLY

    enum nfct_filter_dump_attr:
        NFCT_FILTER_DUMP_MARK
        NFCT_FILTER_DUMP_L3NUM
        NFCT_FILTER_DUMP_STATUS

    nf_conntrack *nfct_new()
    void nfct_destroy(nf_conntrack *ct)
    nf_conntrack *nfct_clone(const nf_conntrack *ct)
    size_t nfct_maxsize()

    void nfct_set_attr(nf_conntrack *ct, const nf_conntrack_attr type, const void *value)
    void nfct_set_attr_u8(nf_conntrack *ct, const nf_conntrack_attr type, uint8_t value)
    void nfct_set_attr_u16(nf_conntrack *ct, const nf_conntrack_attr type, uint16_t value)
    void nfct_set_attr_u32(nf_conntrack *ct, const nf_conntrack_attr type, uint32_t value)
    void nfct_set_attr_u64(nf_conntrack *ct, const nf_conntrack_attr type, uint64_t value)
    void nfct_set_attr_l(nf_conntrack *ct, const nf_conntrack_attr type, const void *value, size_t len)
    const void *nfct_get_attr(const nf_conntrack *ct, const nf_conntrack_attr type)
    uint8_t nfct_get_attr_u8(const nf_conntrack *ct, const nf_conntrack_attr type)
    uint16_t nfct_get_attr_u16(const nf_conntrack *ct, const nf_conntrack_attr type)
    uint32_t nfct_get_attr_u32(const nf_conntrack *ct, const nf_conntrack_attr type)
    uint64_t nfct_get_attr_u64(const nf_conntrack *ct, const nf_conntrack_attr type)
    int nfct_attr_is_set(const nf_conntrack *ct, const nf_conntrack_attr type)
    int nfct_attr_unset(nf_conntrack *ct, const nf_conntrack_attr type)
    int nfct_setobjopt(nf_conntrack *ct, unsigned int option)
    int nfct_getobjopt(const nf_conntrack *ct, unsigned int option)

    int nfct_snprintf_labels(char *buf, unsigned int size, const nf_conntrack *ct,
                             const unsigned int msg_type, const unsigned int out_type,
                             const unsigned int out_flags, nfct_labelmap *map)
    int nfct_cmp(const nf_conntrack *ct1, const nf_conntrack *ct2, unsigned int flags)

    # write path: -U copies the entry's tuple and the template's meta attributes into a new object
    enum:
        NFCT_CP_ALL
        NFCT_CP_ORIG
        NFCT_CP_REPL
        NFCT_CP_META
    void nfct_copy(nf_conntrack *dest, const nf_conntrack *source, unsigned int flags)
    void nfct_copy_attr(nf_conntrack *ct1, const nf_conntrack *ct2, const nf_conntrack_attr type)

    nfct_bitmask *nfct_bitmask_new(unsigned int maxbit)
    nfct_bitmask *nfct_bitmask_clone(const nfct_bitmask *)
    unsigned int nfct_bitmask_maxbit(const nfct_bitmask *)
    void nfct_bitmask_set_bit(nfct_bitmask *, unsigned int bit)
    int nfct_bitmask_test_bit(const nfct_bitmask *, unsigned int bit)
    void nfct_bitmask_destroy(nfct_bitmask *)
    void nfct_bitmask_unset_bit(nfct_bitmask *, unsigned int bit)

    nfct_labelmap *nfct_labelmap_new(const char *mapfile)
    void nfct_labelmap_destroy(nfct_labelmap *map)
    const char *nfct_labelmap_get_name(nfct_labelmap *m, unsigned int bit)
    int nfct_labelmap_get_bit(nfct_labelmap *m, const char *name)

    nfct_filter_dump *nfct_filter_dump_create()
    void nfct_filter_dump_destroy(nfct_filter_dump *filter)
    void nfct_filter_dump_set_attr(nfct_filter_dump *filter_dump, const nfct_filter_dump_attr type,
                                   const void *data)
    void nfct_filter_dump_set_attr_u8(nfct_filter_dump *filter_dump, const nfct_filter_dump_attr type,
                                      uint8_t data)

    int nfct_nlmsg_build(nlmsghdr *nlh, const nf_conntrack *ct)
    int nfct_nlmsg_build_filter(nlmsghdr *nlh, const nfct_filter_dump *filter_dump)
    int nfct_nlmsg_parse(const nlmsghdr *nlh, nf_conntrack *ct)

    # expectations
    nf_expect *nfexp_new()
    void nfexp_destroy(nf_expect *exp)
    int nfexp_nlmsg_parse(const nlmsghdr *nlh, nf_expect *exp)
    int nfexp_nlmsg_build(nlmsghdr *nlh, const nf_expect *exp)
    void nfexp_set_attr(nf_expect *exp, const int type, const void *value)
    void nfexp_set_attr_u32(nf_expect *exp, const int type, uint32_t value)
    void nfexp_set_attr_u8(nf_expect *exp, const int type, uint8_t value)
    void nfexp_set_attr_u16(nf_expect *exp, const int type, uint16_t value)
    const void *nfexp_get_attr(const nf_expect *exp, const int type)
    int nfexp_attr_is_set(const nf_expect *exp, const int type)
    uint16_t nfexp_get_attr_u16(const nf_expect *exp, const int type)
    uint32_t nfexp_get_attr_u32(const nf_expect *exp, const int type)
    nf_expect *nfexp_clone(const nf_expect *exp)
    enum nf_expect_attr:
        ATTR_EXP_MASTER
        ATTR_EXP_EXPECTED
        ATTR_EXP_MASK
        ATTR_EXP_TIMEOUT
        ATTR_EXP_ZONE
        ATTR_EXP_FLAGS
        ATTR_EXP_HELPER_NAME
        ATTR_EXP_CLASS
        ATTR_EXP_NAT_TUPLE
        ATTR_EXP_NAT_DIR
        ATTR_EXP_FN
    int nfexp_snprintf(char *buf, unsigned int size, const nf_expect *exp,
                       const unsigned int msg_type, const unsigned int out_type,
                       const unsigned int out_flags)

    # event socket filter (a BPF program the library compiles; attached with SO_ATTACH_FILTER)
    struct nfct_filter:
        pass
    struct nfct_filter_proto:
        uint16_t proto
        uint16_t state
    struct nfct_filter_ipv4:
        uint32_t addr          # host byte order
        uint32_t mask
    struct nfct_filter_ipv6:
        uint32_t addr[4]       # each word in host byte order
        uint32_t mask[4]
    enum nfct_filter_attr:
        NFCT_FILTER_L4PROTO
        NFCT_FILTER_L4PROTO_STATE
        NFCT_FILTER_SRC_IPV4
        NFCT_FILTER_DST_IPV4
        NFCT_FILTER_SRC_IPV6
        NFCT_FILTER_DST_IPV6
        NFCT_FILTER_MARK
    enum nfct_filter_logic:
        NFCT_FILTER_LOGIC_POSITIVE
        NFCT_FILTER_LOGIC_NEGATIVE
    nfct_filter *nfct_filter_create()
    void nfct_filter_destroy(nfct_filter *filter)
    void nfct_filter_add_attr(nfct_filter *filter, const nfct_filter_attr attr, const void *value)
    void nfct_filter_add_attr_u32(nfct_filter *filter, const nfct_filter_attr attr, const uint32_t value)
    int nfct_filter_set_logic(nfct_filter *filter, const nfct_filter_attr attr, const nfct_filter_logic logic)
    int nfct_filter_attach(int fd, nfct_filter *filter)
    int nfct_filter_detach(int fd)

    # multicast groups of the event sockets (bit masks for bind())
    unsigned int NF_NETLINK_CONNTRACK_NEW
    unsigned int NF_NETLINK_CONNTRACK_UPDATE
    unsigned int NF_NETLINK_CONNTRACK_DESTROY
    unsigned int NF_NETLINK_CONNTRACK_EXP_NEW
    unsigned int NF_NETLINK_CONNTRACK_EXP_UPDATE
    unsigned int NF_NETLINK_CONNTRACK_EXP_DESTROY
