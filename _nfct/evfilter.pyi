# C only: attach_filter() is cimported by events.pyx (evfilter.pxd).
