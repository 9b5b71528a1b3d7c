"""pynfct.record: the value classes of the option table and the parse state (what they used of
dataclasses, without importing it on every start of the command line; see test_cli_imports)."""
import copy

import pytest

from pynfct.record import Factory, Record
from pynfct.template import Command, Cmd, Template


class Point(Record):
    x: int
    y: int = 0
    tags: list = Factory(list)


class Point3(Point):
    z: int = 5


class Key(Record, frozen=True):
    name: str
    size: int = 1


def test_fields_defaults_and_factories():
    p = Point(1)
    assert (p.x, p.y, p.tags) == (1, 0, [])
    assert Point(1).tags is not Point(1).tags          # a fresh default per instance
    assert Point(2, 3, ["a"]) == Point(x=2, y=3, tags=["a"])
    assert Point(1) != Point(2)
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"


def test_argument_errors():
    with pytest.raises(TypeError, match="missing argument 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        Point(1, w=2)
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)
    with pytest.raises(TypeError, match="takes 3 arguments, 4 given"):
        Point(1, 2, [], 4)


def test_subclass_fields_come_after_the_base_ones():
    assert Point3._fields == ("x", "y", "tags", "z")
    assert Point3(1, 2, [], 3).z == 3
    assert Point3(1) != Point(1)                        # a different class is never equal


def test_frozen_records_are_read_only_and_hashable():
    k = Key("a")
    with pytest.raises(AttributeError, match="frozen Key"):
        k.size = 2
    assert {k: 1}[Key("a", 1)] == 1
    with pytest.raises(TypeError):
        hash(Point(1))                                  # mutable ones are not hashable


def test_command_copies_are_independent():
    # modify.pyx copies a Command and its Template to drop the kernel-only filters
    c = Command(command=Cmd.CT_LIST)
    d = copy.copy(c)
    d.tmpl = copy.copy(c.tmpl)
    d.tmpl.mark = (1, 2)
    assert c.tmpl.mark == (0, 0) and d.tmpl.mark == (1, 2)
    assert c == Command(command=Cmd.CT_LIST)
    assert Template().ct is not Template().ct
