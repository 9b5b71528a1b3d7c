# cython: language_level=3
"""Single requests: get one entry, count, per-cpu statistics."""
