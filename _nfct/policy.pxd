# The kernel's attribute policy for conntrack and expectation messages (policy.pyx): what the bytes
# entry points check before libnetfilter_conntrack parses bytes that did not come from the kernel.
from _nfct.netlink cimport nlmsghdr

# Is this message (nlmsg_len within the buffer) what the kernel sends for an entry (an expectation)?
cdef bint message_ok(const nlmsghdr *nlh, bint expect) noexcept nogil
# The index of the first message of a batch whose length runs past the end or that message_ok() refuses
# (data messages); -1 when none is.
cdef long batch_bad(const char *buf, size_t len, bint expect) noexcept nogil
# data as one message (its nlmsg_len within data, message_ok()); ValueError otherwise.
cdef const nlmsghdr *checked_message(bytes data, bint expect) except NULL
