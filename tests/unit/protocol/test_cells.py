"""Packed cells, colours, attributes and the style table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beachmanager.protocol import cells as c
from beachmanager.protocol.cells import Attr, Color, ColorKind, StyleDef, StyleTable
from beachmanager.protocol.frames import Style


def test_pack_and_unpack():
    assert c.pack_cell("h") == 0x68 << 32
    assert c.pack_cell("h", 7) == 0x68 << 32 | 7
    assert c.pack_cell(0x1F600, 2) == 0x1F600 << 32 | 2
    assert c.unpack_cell(c.pack_cell("é", 3)) == ("é", 3)
    assert c.BLANK == c.pack_cell(" ")
    with pytest.raises(ValueError):
        c.pack_cell("x", 1 << 32)
    with pytest.raises(ValueError):
        c.pack_cell(-1)


# surrogates are not characters a terminal shows: they unpack as U+FFFD (test_display_rules)
@given(st.characters(blacklist_categories=("Cs",)), st.integers(0, (1 << 32) - 1))
def test_pack_round_trip(ch, style):
    cell = c.pack_cell(ch, style)
    assert c.unpack_cell(cell) == (ch, style)
    assert c.cell_style(cell) == style


def test_display_rules():
    assert c.cell_char(0) == " "  # NUL padding
    assert c.cell_char(0xD800 << 32) == "\ufffd"  # surrogate
    assert c.cell_char(0x110000 << 32) == "\ufffd"  # beyond Unicode
    assert c.unpack_cell(0x110000 << 32 | 5) == ("\ufffd", 5)
    row = [c.pack_cell(ch) for ch in "hi"] + [0, c.BLANK]
    assert c.row_text(row) == "hi  "
    assert c.row_text(row, rstrip=True) == "hi"


def test_colours():
    assert c.pack_color_default() == 0
    assert c.pack_color_indexed(12) == 0x0100000C
    assert c.pack_color_rgb(1, 2, 3) == 0x02010203
    assert c.unpack_color(0x0100000C) == Color(ColorKind.INDEXED, 12)
    assert c.unpack_color(0x0100000C).index == 12
    assert c.unpack_color(0x02010203).rgb == (1, 2, 3)
    assert c.unpack_color(0x02010203).index is None
    assert c.unpack_color(0).rgb is None
    assert c.unpack_color(0x07FFFFFF) == Color()  # unknown kind -> default
    assert c.unpack_color(0x02010203).pack() == 0x02010203
    with pytest.raises(ValueError):
        c.pack_color_indexed(256)
    with pytest.raises(ValueError):
        c.pack_color_rgb(0, 256, 0)


def test_attribute_bits():
    bits = [Attr.BOLD, Attr.ITALIC, Attr.UNDERLINE, Attr.STRIKETHROUGH, Attr.REVERSE]
    bits += [Attr.BLINK, Attr.DIM, Attr.HIDDEN]
    assert [int(b) for b in bits] == [1 << i for i in range(8)]
    style = StyleDef(c.pack_color_rgb(255, 0, 0), 0, 0b0100_0101)
    assert style.attr_flags == Attr.BOLD | Attr.UNDERLINE | Attr.DIM
    assert style.fg_color.rgb == (255, 0, 0) and style.bg_color.kind is ColorKind.DEFAULT


def test_style_table():
    table = StyleTable(max_entries=3)
    assert table.get(0) == StyleDef() and len(table) == 1
    table.apply(Style(1, 0, 5, 6, 1))
    table.apply(Style(2, 0, 7, 8, 2))
    table.apply(Style(3, 0, 9, 9, 3))  # over the cap: ignored
    assert table.get(1) == StyleDef(5, 6, 1) and 2 in table and 3 not in table
    assert table.dropped == 1
    assert table.get(99) == StyleDef()  # unknown ids fall back to the default
    table.apply(Style(1, 5, 1, 1, 0))  # redefining an id is always allowed
    assert table.get(1) == StyleDef(1, 1, 0)
    table.reset()
    assert len(table) == 1
