from _nfct.libnfct cimport nf_conntrack


cdef class Flow:
    cdef nf_conntrack *ct

    @staticmethod
    cdef Flow adopt(nf_conntrack *ct)

    cdef bytes _value(self)      # the -o json text: what equality and the hash compare


cdef class Tuple:
    cdef Flow flow
    cdef bint reply
