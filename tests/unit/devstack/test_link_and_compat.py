"""The host's ``beach`` link codec (framing, envelope, extension header, encryption) and the
aiortc candidate helpers shared with the manager."""

from __future__ import annotations

import os

import pytest

from beachmanager.devstack.host.link import EXT_HEADER_HOST, BeachLink, Frame, Text
from beachmanager.protocol import channel, framing, wire
from beachmanager.protocol import frames as f
from beachmanager.protocol.crypto import SecureChannel
from beachmanager.transport import rtc_compat


def make_link(**kw):
    sent = []
    return BeachLink(sent.append, lambda: 0.0, **kw), sent


def read_all(chunks, crypto=None):
    inbound = channel.Inbound(lambda: 0.0)
    out = []
    for c in chunks:
        msg = inbound.feed(crypto.open(c) if crypto else c)
        if msg is not None:
            out.append(msg)
    return out


def test_one_counter_for_text_and_binary_and_extension_headers():
    link, sent = make_link()
    link.send_text("__offer_ready__")
    link.send_frame(f.Heartbeat(seq=0, timestamp_ms=5))
    link.send_frame(f.Extension("manager", "beach.manager.ack", b"{}"))
    msgs = read_all(sent)
    assert [(m.kind, m.seq) for m in msgs] == [("text", 0), ("binary", 1), ("binary", 2)]
    assert msgs[0].text == "__offer_ready__" and msgs[2].data[0] == 0x44
    assert wire.decode_from_host(msgs[2].data) == f.Extension("manager", "beach.manager.ack", b"{}")
    host_layout, sent2 = make_link(extension_header=EXT_HEADER_HOST)
    host_layout.send_frame(f.Extension("manager", "t", b"x"))
    assert read_all(sent2)[0].data[0] == 0x4A
    with pytest.raises(ValueError):
        make_link(extension_header=0x45)


def test_receive_decodes_client_frames_and_drops_bad_bytes():
    link, _ = make_link()
    out = channel.Outbound()
    got = []
    for chunk in out.text("__ready__") + out.client_frame(f.Input(seq=1, data=b"ls\r")):
        got.extend(link.receive(chunk))
    assert got == [Text("__ready__"), Frame(f.Input(seq=1, data=b"ls\r"))]
    assert link.receive(b"\x00garbage") == [] and link.stats.dropped_bad == 1
    for chunk in out.namespaced("controller", "input", b"{}"):
        assert link.receive(chunk) == []
    assert link.stats.dropped_other_namespace == 1
    for chunk in out.binary(b"\x7f"):  # not a client frame
        assert link.receive(chunk) == []
    assert link.stats.dropped_bad == 2


def test_large_frames_are_chunked():
    link, sent = make_link()
    link.send_frame(f.Delta(subscription=1, watermark=1, has_more=False,
                            updates=[f.Row(row=0, seq=1, cells=[0x41 << 32] * 5000)]))
    assert len(sent) > 1 and all(len(c) <= framing.DEFAULT_CHUNK_SIZE + 64 for c in sent)
    [msg] = read_all(sent)
    assert len(wire.decode_host(msg.data).updates[0].cells) == 5000


def test_encryption_holds_early_frames_then_encrypts():
    a, b = os.urandom(32), os.urandom(32)
    link, sent = make_link()
    link.expect_encryption()
    peer = SecureChannel(send_key=b, recv_key=a)  # the answerer's view
    out = channel.Outbound()
    early = [peer.seal(c) for c in out.text("__ready__")]
    assert link.receive(early[0]) == []  # looks encrypted: held until the keys exist
    assert link.install(SecureChannel(send_key=a, recv_key=b)) == [Text("__ready__")]
    link.send_text("__offer_ready__")
    assert sent[0][0] == 0x01  # the encrypted frame version
    assert read_all(sent, peer)[0].text == "__offer_ready__"
    assert link.receive(peer.seal(out.client_frame(f.Input(seq=2, data=b"x"))[0])) == [
        Frame(f.Input(seq=2, data=b"x"))]


SDP = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
    "m=audio 9 UDP/TLS/RTP/SAVPF 0", "a=candidate:1 1 udp 100 10.0.0.1 5000 typ host", "a=mid:a0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=candidate:2 1 udp 2130706431 192.0.2.2 40000 typ host", "a=mid:7", "a=end-of-candidates", ""])


def test_sdp_candidates_and_strip():
    assert rtc_compat.sdp_candidates(SDP) == [
        ("candidate:1 1 udp 100 10.0.0.1 5000 typ host", "a0", 0),
        ("candidate:2 1 udp 2130706431 192.0.2.2 40000 typ host", "7", 1)]
    stripped = rtc_compat.strip_candidates(SDP)
    assert "a=candidate" not in stripped and "end-of-candidates" not in stripped and "a=mid:7" in stripped


def test_to_aiortc_rewrites_mid_and_rejects_garbage():
    cand = rtc_compat.to_aiortc("candidate:2 1 udp 2130706431 192.0.2.2 40000 typ host", "0", 0)
    assert (cand.ip, cand.port, cand.sdpMid, cand.sdpMLineIndex) == ("192.0.2.2", 40000, "0", 0)
    assert rtc_compat.to_aiortc("a=candidate:2 1 udp 1 1.2.3.4 9 typ host", "x", 1).sdpMid == "x"
    for bad in ("", "candidate:", "candidate:zzz"):
        with pytest.raises(ValueError):
            rtc_compat.to_aiortc(bad, "0", 0)
