"""HostLink: the layers between data-channel bytes and wire frames, both directions."""

from __future__ import annotations

import os

import pytest

from beachmanager.protocol import extensions, frames, wire
from beachmanager.protocol.channel import Inbound, Outbound
from beachmanager.protocol.crypto import SecureChannel
from beachmanager.transport.link import READY, ForbiddenFrame, HostLink


class Pair:
    """A manager link plus a host-side codec, with optional encryption."""

    def __init__(self, secure: bool, buffered: int = 0):
        self.to_host: list[bytes] = []
        self.texts: list[str] = []
        self.frames: list = []
        self.link = HostLink(self.to_host.append, lambda: 0.0, on_text=self.texts.append,
                             on_frame=self.frames.append, buffered=lambda: buffered,
                             max_buffered=1000)
        self.host_out = Outbound()
        self.host_in = Inbound(lambda: 0.0)
        self.host_secure = None
        if secure:
            a, b = os.urandom(32), os.urandom(32)
            self.link.install_secure(SecureChannel(a, b))
            self.host_secure = SecureChannel(b, a)

    def host_sends(self, chunks):
        for chunk in chunks:
            self.link.receive(self.host_secure.seal(chunk) if self.host_secure else chunk)

    def host_receives(self):
        out = []
        for raw in self.to_host:
            chunk = self.host_secure.open(raw) if self.host_secure else raw
            msg = self.host_in.feed(chunk)
            if msg is not None:
                out.append(msg)
        self.to_host.clear()
        return out


@pytest.mark.parametrize("secure", [False, True])
def test_round_trip_text_frames_and_extensions(secure):
    p = Pair(secure)
    assert p.link.send_text(READY)
    assert p.link.send_extension("manager", extensions.TOPIC_ACTION, b'{"type":"action"}')
    got = p.host_receives()
    assert [(m.kind, m.seq) for m in got] == [("text", 0), ("binary", 1)]
    assert got[0].text == READY
    assert got[1].client_frame() == frames.Extension("manager", extensions.TOPIC_ACTION,
                                                     b'{"type":"action"}')
    p.host_sends(p.host_out.text("__offer_ready__"))
    p.host_sends(p.host_out.host_frame(frames.Heartbeat(0, 1733300000000)))
    # HEAD hosts send their extensions with the client header 0x44, fixed ones with 0x4A.
    p.host_sends(p.host_out.binary(extensions.encode_from_host(extensions.TOPIC_ACK, b"{}")))
    p.host_sends(p.host_out.binary(extensions.encode_from_host(extensions.TOPIC_STATE, b"[]",
                                                               head_layout=False)))
    big = frames.Snapshot(1, frames.Lane.FOREGROUND, 1, False,
                          tuple(frames.Row(r, 1, (0x41 << 32,) * 200) for r in range(40)))
    p.host_sends(p.host_out.host_frame(big))  # several chunks
    assert p.texts == ["__offer_ready__"]
    assert p.frames == [frames.Heartbeat(0, 1733300000000),
                        frames.Extension("manager", extensions.TOPIC_ACK, b"{}"),
                        frames.Extension("manager", extensions.TOPIC_STATE, b"[]"), big]
    assert p.link.stats()["secure"] is secure


def test_never_sends_resize():
    p = Pair(False)
    with pytest.raises(ForbiddenFrame):
        p.link.send_frame(frames.Resize(80, 24))
    assert p.to_host == []


def test_refuses_to_send_while_the_channel_is_backed_up():
    p = Pair(False, buffered=5000)
    assert not p.link.send_text("x")
    assert p.to_host == [] and p.link.refused == 1


def test_bad_bytes_are_counted_per_layer_never_raised():
    p = Pair(True)
    p.link.receive(b"\x01" + b"\x00" * 40)  # looks encrypted, does not authenticate
    p.link.receive(p.host_secure.seal(b"\xa1garbage"))  # decrypts, bad framing
    p.link.receive(p.host_secure.seal(p.host_out.binary(b"\x5e\x00")[0]))  # unknown wire kind
    assert p.link.errors == {"decrypt": 1, "FramingError": 1, "WireError": 1}
    assert p.frames == [] and p.texts == []


def test_frames_held_before_keys_are_processed_after_install():
    p = Pair(False)
    a, b = os.urandom(32), os.urandom(32)
    host = SecureChannel(b, a)
    for chunk in Outbound().text("__offer_ready__"):
        p.link.receive(host.seal(chunk))
    assert p.texts == []  # held: it looks encrypted and there are no keys yet
    p.link.install_secure(SecureChannel(a, b))
    assert p.texts == ["__offer_ready__"]


def test_wire_decoder_errors_are_the_documented_type():
    with pytest.raises(wire.WireError):
        wire.decode_from_host(b"\x00")
