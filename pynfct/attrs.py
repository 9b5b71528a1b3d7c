"""libnetfilter_conntrack attribute numbers (enum nf_conntrack_attr in libnetfilter_conntrack.h).

A template is a set of (Attr, value) pairs, the same calls conntrack makes with nfct_set_attr_*().
``ATTR_KIND`` says how each value is passed to C. Both are defined in ``_nfct.constants``, from the C
declarations; these are the same objects.
"""
from _nfct.constants import ATTR_KIND, Attr

__all__ = ["Attr", "ATTR_KIND"]
