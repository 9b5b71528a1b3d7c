"""The flag sets an entry and an event carry (see flags.pyx)."""
import enum

__all__ = ["Status", "EventType"]


class Status(enum.IntFlag):
    EXPECTED = 1
    SEEN_REPLY = 2
    ASSURED = 4
    CONFIRMED = 8
    SRC_NAT = 16
    DST_NAT = 32
    SEQ_ADJUST = 64
    SRC_NAT_DONE = 128
    DST_NAT_DONE = 256
    DYING = 512
    FIXED_TIMEOUT = 1024
    TEMPLATE = 2048
    UNTRACKED = 4096
    HELPER = 8192
    OFFLOAD = 16384
    HW_OFFLOAD = 32768


class EventType(enum.IntFlag):
    NEW = 1
    UPDATE = 2
    DESTROY = 4
    ALL = 7
