"""Transport envelope: layout, strictness, sequences."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beachmanager.protocol import envelope
from beachmanager.protocol.envelope import EnvelopeError, TransportMessage
from tests.unit.protocol.support import h


def test_text_layout():
    assert (
        envelope.encode("text", 0, "__ready__")
        == h("00 | 00 00 00 00 00 00 00 00 | 00 00 00 09") + b"__ready__"
    )


def test_binary_layout_and_decode():
    raw = envelope.encode("binary", 0x0102030405060708, b"\x00\xff")
    assert raw == h("01 | 01 02 03 04 05 06 07 08 | 00 00 00 02 | 00 ff")
    msg = envelope.decode(raw)
    assert msg == TransportMessage("binary", 0x0102030405060708, b"\x00\xff")
    assert not msg.is_text


def test_text_decode_exposes_bytes_and_text():
    msg = envelope.decode(envelope.encode("text", 3, "héllo"))
    assert (msg.kind, msg.seq, msg.data, msg.text, msg.is_text) == (
        "text",
        3,
        "héllo".encode(),
        "héllo",
        True,
    )


def test_trailing_bytes_are_ignored():
    raw = envelope.encode("binary", 1, b"abc") + b"junk"
    assert envelope.decode(raw).data == b"abc"


def test_empty_data():
    assert envelope.decode(envelope.encode("binary", 0, b"")).data == b""
    assert len(envelope.encode("text", 0, "")) == 13


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"", "shorter"),
        (h("01 00 00 00 00 00 00 00 00 00 00 00"), "shorter"),
        (h("02 00 00 00 00 00 00 00 00 00 00 00 00"), "type"),
        (h("ff 00 00 00 00 00 00 00 00 00 00 00 00"), "type"),
        (h("01 00 00 00 00 00 00 00 00 00 00 00 05") + b"abcd", "declares"),
        (h("01 00 00 00 00 00 00 00 00 ff ff ff ff"), "declares"),
        (h("00 00 00 00 00 00 00 00 00 00 00 00 02 c3 28"), "UTF-8"),
    ],
)
def test_bad_envelopes(raw, match):
    with pytest.raises(EnvelopeError, match=match):
        envelope.decode(raw)


def test_decode_rejects_non_bytes():
    with pytest.raises(EnvelopeError):
        envelope.decode("text")  # type: ignore[arg-type]
    assert envelope.decode(bytearray(envelope.encode("binary", 1, b"x"))).data == b"x"


@pytest.mark.parametrize(
    "args",
    [
        ("json", 0, b""),
        (None, 0, b""),
        ("text", -1, b""),
        ("text", 1 << 64, b""),
        ("text", 0, b"\xff"),
        ("binary", 0, 12),
        ("text", 0, "\ud800"),
    ],
)
def test_encode_rejects_bad_arguments(args):
    with pytest.raises(EnvelopeError):
        envelope.encode(*args)


messages = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=200).map(str.encode)),
        st.tuples(st.just("binary"), st.binary(max_size=200)),
    ),
    max_size=30,
)


@given(messages, st.integers(0, (1 << 64) - 1000))
def test_sequences_round_trip_with_one_shared_counter(items, start):
    raws = [envelope.encode(kind, start + i, data) for i, (kind, data) in enumerate(items)]
    decoded = [envelope.decode(raw) for raw in raws]
    assert [(m.kind, m.data) for m in decoded] == items
    assert [m.seq for m in decoded] == list(range(start, start + len(items)))


@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_envelope_error(raw):
    try:
        msg = envelope.decode(raw)
    except EnvelopeError:
        return
    assert envelope.encode(msg.kind, msg.seq, msg.data) == raw[: 13 + len(msg.data)]
