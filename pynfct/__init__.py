"""pynfct: fast Linux connection tracking for Python."""
__version__ = "0.1.0"
