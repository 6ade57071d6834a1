"""Packed terminal cells, colours and style attributes, as Beach hosts encode them.

* **Cell** (u64): high 32 bits are the Unicode code point, low 32 bits the style id.
  Style 0 is the default style.  A code point that is not a Unicode scalar value reads as
  U+FFFD.  Code point 0 (padding) reads as a space.  A blank cell is ``0x20 << 32``.
* **Colour** (u32): ``kind << 24 | value``.  Kind 0 is the default colour, kind 1 an indexed
  colour (palette index in the low byte), kind 2 RGB (``r << 16 | g << 8 | b``).  Unknown
  kinds read as the default colour, as upstream does.
* **Attributes** (u8): bit 0 bold, 1 italic, 2 underline, 3 strikethrough, 4 reverse,
  5 blink, 6 dim, 7 hidden.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from beachmanager.protocol.frames import Style as StyleUpdate

__all__ = [
    "BLANK",
    "DEFAULT_STYLE_ID",
    "Attr",
    "Color",
    "ColorKind",
    "StyleDef",
    "StyleTable",
    "cell_char",
    "cell_style",
    "pack_cell",
    "pack_color_default",
    "pack_color_indexed",
    "pack_color_rgb",
    "row_text",
    "unpack_cell",
    "unpack_color",
]

BLANK = 0x20 << 32
DEFAULT_STYLE_ID = 0
_REPLACEMENT = "\ufffd"
_MAX_U32 = (1 << 32) - 1


def _is_scalar(code: int) -> bool:
    return code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF


def pack_cell(ch: str | int, style_id: int = DEFAULT_STYLE_ID) -> int:
    """Pack one character (a 1-char string or a code point) with a style id."""
    code = ord(ch) if isinstance(ch, str) else ch
    if not 0 <= code <= _MAX_U32 or not 0 <= style_id <= _MAX_U32:
        raise ValueError(f"code point and style id must be u32: {code}, {style_id}")
    return code << 32 | style_id


def unpack_cell(cell: int) -> tuple[str, int]:
    """``(character, style_id)``; invalid code points become U+FFFD (code point 0 stays NUL)."""
    code = cell >> 32
    return (chr(code) if _is_scalar(code) else _REPLACEMENT), cell & _MAX_U32


def cell_char(cell: int) -> str:
    """The character to display: NUL padding is a space, invalid code points are U+FFFD."""
    code = cell >> 32
    if code == 0:
        return " "
    return chr(code) if _is_scalar(code) else _REPLACEMENT


def cell_style(cell: int) -> int:
    return cell & _MAX_U32


def row_text(cells: Iterable[int], *, rstrip: bool = False) -> str:
    """The text of a row of packed cells."""
    text = "".join(map(cell_char, cells))
    return text.rstrip(" ") if rstrip else text


class ColorKind(enum.IntEnum):
    DEFAULT = 0
    INDEXED = 1
    RGB = 2


@dataclass(frozen=True, slots=True)
class Color:
    """An unpacked colour; ``value`` is the palette index or ``r << 16 | g << 8 | b``."""

    kind: ColorKind = ColorKind.DEFAULT
    value: int = 0

    @property
    def index(self) -> int | None:
        return self.value if self.kind is ColorKind.INDEXED else None

    @property
    def rgb(self) -> tuple[int, int, int] | None:
        if self.kind is not ColorKind.RGB:
            return None
        return (self.value >> 16) & 0xFF, (self.value >> 8) & 0xFF, self.value & 0xFF

    def pack(self) -> int:
        return self.kind << 24 | self.value


def pack_color_default() -> int:
    return 0


def pack_color_indexed(index: int) -> int:
    if not 0 <= index <= 0xFF:
        raise ValueError(f"palette index must be 0..255, got {index}")
    return 1 << 24 | index


def pack_color_rgb(r: int, g: int, b: int) -> int:
    if not all(0 <= c <= 0xFF for c in (r, g, b)):
        raise ValueError(f"RGB components must be 0..255, got {(r, g, b)}")
    return 2 << 24 | r << 16 | g << 8 | b


def unpack_color(packed: int) -> Color:
    kind = (packed >> 24) & 0xFF
    if kind == ColorKind.INDEXED:
        return Color(ColorKind.INDEXED, packed & 0xFF)
    if kind == ColorKind.RGB:
        return Color(ColorKind.RGB, packed & 0xFFFFFF)
    return Color()


class Attr(enum.IntFlag):
    BOLD = 1 << 0
    ITALIC = 1 << 1
    UNDERLINE = 1 << 2
    STRIKETHROUGH = 1 << 3
    REVERSE = 1 << 4
    BLINK = 1 << 5
    DIM = 1 << 6
    HIDDEN = 1 << 7


@dataclass(frozen=True, slots=True)
class StyleDef:
    """One style table entry: packed fg and bg colours and attribute bits."""

    fg: int = 0
    bg: int = 0
    attrs: int = 0

    @property
    def fg_color(self) -> Color:
        return unpack_color(self.fg)

    @property
    def bg_color(self) -> Color:
        return unpack_color(self.bg)

    @property
    def attr_flags(self) -> Attr:
        return Attr(self.attrs & 0xFF)


class StyleTable:
    """Style id -> :class:`StyleDef`, fed by ``Style`` updates; id 0 is the default style.

    ``max_entries`` bounds the table; a ``Style`` update for a new id beyond it is ignored and
    counted in ``dropped``.
    """

    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        self.dropped = 0
        self._styles: dict[int, StyleDef] = {DEFAULT_STYLE_ID: StyleDef()}

    def apply(self, update: StyleUpdate) -> None:
        if update.id not in self._styles and len(self._styles) >= self.max_entries:
            self.dropped += 1
            return
        self._styles[update.id] = StyleDef(update.fg, update.bg, update.attrs)

    def get(self, style_id: int) -> StyleDef:
        """The style, or the default style for an unknown id (upstream behaviour)."""
        return self._styles.get(style_id) or self._styles[DEFAULT_STYLE_ID]

    def __len__(self) -> int:
        return len(self._styles)

    def __contains__(self, style_id: object) -> bool:
        return style_id in self._styles

    def reset(self) -> None:
        """Forget every style but the default (a client does this on every Hello)."""
        self._styles = {DEFAULT_STYLE_ID: StyleDef()}
