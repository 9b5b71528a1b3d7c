# The create request of a FlowSpec built from its checked values (see spec.pyx).
from _nfct.libnfct cimport nf_conntrack

cdef int spec_ct(dict v, object labelmap, nf_conntrack **out, int *family) except -1
