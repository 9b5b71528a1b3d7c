from _nfct.libnfct cimport nf_conntrack


cdef class Flow:
    cdef nf_conntrack *ct

    @staticmethod
    cdef Flow adopt(nf_conntrack *ct)


cdef class Tuple:
    cdef Flow flow
    cdef bint reply
