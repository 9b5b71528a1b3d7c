# C only: port_name() is cimported by the event loop (progname.pxd).
