# The loop itself is C only (evloop.pxd); events.pyx re-exports this.
ENOBUFS_WARNING: bytes
