# C only: message_ok() and batch_bad() are cimported by the bytes entry points (policy.pxd).
