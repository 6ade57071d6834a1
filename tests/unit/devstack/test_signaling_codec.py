"""The Road signaling codec: exact JSON shapes, round trips, and one error type on bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beachmanager.protocol import signaling as s

ids = st.text(min_size=1, max_size=40)
meta = st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4)
transports = st.sampled_from(["webrtc", "web_transport", "direct"]) | st.builds(s.CustomTransport, st.text(max_size=8))


def test_join_matches_reference_shape():
    text = s.encode_client(s.Join(peer_id="p", passphrase="ABC123", label="beach-manager",
                                  metadata={"role": "answerer"}))
    assert json.loads(text) == {
        "type": "join", "peer_id": "p", "passphrase": "ABC123", "supported_transports": ["webrtc"],
        "preferred_transport": "webrtc", "label": "beach-manager", "mcp": False,
        "metadata": {"role": "answerer"},
    }


def test_join_requires_supported_transports_and_peer_id():
    with pytest.raises(s.SignalingError, match="supported_transports"):
        s.decode_client('{"type":"join","peer_id":"x"}')
    with pytest.raises(s.SignalingError, match="peer_id"):
        s.decode_client('{"type":"join","supported_transports":["webrtc"]}')
    with pytest.raises(s.SignalingError, match="metadata"):
        s.decode_client('{"type":"join","peer_id":"x","supported_transports":[],"metadata":{"a":1}}')


def test_custom_transport_round_trips():
    msg = s.decode_client('{"type":"join","peer_id":"x","supported_transports":["webrtc",{"custom":"q"}]}')
    assert msg.supported_transports == ("webrtc", s.CustomTransport("q"))
    assert msg.preferred_transport is None and msg.passphrase is None and msg.mcp is False


def test_server_messages_shapes():
    peer = s.PeerInfo(id="a", role="server", joined_at=5, metadata={"label": "x"})
    assert json.loads(s.encode_server(s.JoinSuccess("h", "a", (peer,)))) == {
        "type": "join_success", "session_id": "h", "peer_id": "a", "available_transports": ["webrtc"],
        "peers": [{"id": "a", "role": "server", "joined_at": 5, "supported_transports": ["webrtc"],
                   "preferred_transport": None, "metadata": {"label": "x"}}],
    }
    assert json.loads(s.encode_server(s.RelayedSignal("a", {"k": [1]}))) == {
        "type": "signal", "from_peer": "a", "signal": {"k": [1]}}
    assert s.encode_server(s.Pong()) == '{"type":"pong"}'
    assert s.decode_server('{"type":"error","message":"m"}') == s.ErrorMessage("m")
    assert s.decode_server('{"type":"peer_left","peer_id":"z"}') == s.PeerLeft("z")


def test_join_success_helpers():
    me = s.PeerInfo("me", "client")
    host = s.PeerInfo("h", "server")
    js = s.JoinSuccess("sess", "me", (host, me))
    assert js.server_peer() == host and js.me() == me
    assert s.JoinSuccess("sess", "me", (s.PeerInfo("me", "server"),)).server_peer() is None


def test_sdp_payload_sealed_and_blank_ids():
    box = s.SealedBox(nonce=b"\x01" * 12, ciphertext=b"\x02" * 20)
    p = s.WebRtcSdpPayload("", "offer", "hid", "a", " ", sealed=box)
    again = s.WebRtcSdpPayload.decode(p.encode())
    assert again == p and again.sealed.nonce == b"\x01" * 12
    assert p.blank_ids() == ["to_peer"]
    assert "sealed" not in json.loads(s.WebRtcSdpPayload("v=0", "answer", "h", "a", "b").encode())
    with pytest.raises(s.SignalingError, match="offer or answer"):
        s.WebRtcSdpPayload.decode('{"sdp":"","type":"pranswer","handshake_id":"h","from_peer":"a","to_peer":"b"}')
    with pytest.raises(s.SignalingError, match="12 bytes"):
        s.SealedBox.from_json({"version": 1, "nonce": "AAAA", "ciphertext": "A" * 24})
    with pytest.raises(s.SignalingError, match="version"):
        s.SealedBox.from_json({"version": 2, "nonce": "AAAA", "ciphertext": "A" * 24})


def test_ice_signal_nested_shape():
    sig = s.IceCandidateSignal.plain("hid", s.IceCandidate("candidate:1 1 udp 1 1.2.3.4 5 typ host", "0", 0))
    assert sig.to_json() == {"transport": "webrtc", "signal": {
        "signal_type": "ice_candidate", "candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host",
        "sdp_mid": "0", "sdp_mline_index": 0, "handshake_id": "hid"}}
    assert s.IceCandidateSignal.from_json(sig.to_json()) == sig
    sealed = s.IceCandidateSignal("hid", sealed=s.SealedBox(b"\0" * 12, b"\0" * 16))
    assert sealed.to_json()["signal"]["candidate"] == "" and sealed.to_json()["signal"]["sdp_mid"] is None
    with pytest.raises(s.SignalingError, match="sealed"):
        sealed.plain_candidate()
    with pytest.raises(s.SignalingError, match="ICE"):
        s.IceCandidateSignal.from_json({"transport": "webrtc", "signal": {"signal_type": "offer"}})
    assert s.IceCandidate.decode(s.IceCandidate("c", None, None).encode()) == s.IceCandidate("c")


def test_secure_labels():
    assert s.is_secure_label("beach-manager") and s.is_secure_label(" mgr-state ")
    assert not s.is_secure_label(None) and not s.is_secure_label("viewer")


def test_size_bound():
    with pytest.raises(s.SignalingError, match="longer|bytes"):
        s.decode_client('{"type":"ping","x":"' + "a" * s.MAX_MESSAGE_BYTES + '"}')


@given(st.builds(s.Join, peer_id=ids, passphrase=st.none() | st.text(max_size=8),
                 supported_transports=st.lists(transports, max_size=3).map(tuple),
                 preferred_transport=st.none() | transports, label=st.none() | st.text(max_size=8),
                 mcp=st.booleans(), metadata=meta, viewer_token=st.none() | st.text(max_size=8)))
def test_client_round_trip(msg):
    assert s.decode_client(s.encode_client(msg)) == msg


@given(st.builds(s.PeerInfo, id=ids, role=st.sampled_from(s.ROLES), joined_at=st.integers(0, 2**40),
                 supported_transports=st.lists(transports, max_size=3).map(tuple),
                 preferred_transport=st.none() | transports, metadata=meta))
def test_server_round_trip(peer):
    for msg in (s.JoinSuccess("h", peer.id, (peer,)), s.PeerJoined(peer), s.PeerLeft(peer.id),
                s.JoinError(peer.id), s.RelayedSignal(peer.id, {"x": peer.joined_at})):
        assert s.decode_server(s.encode_server(msg)) == msg


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_decoders_raise_only_signaling_error(data):
    for decode in (s.decode_client, s.decode_server, s.WebRtcSdpPayload.decode, s.IceCandidate.decode):
        try:
            decode(data)
        except s.SignalingError:
            pass


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=12),
       st.sampled_from(["join", "signal", "join_success", "peer_joined", "error", "negotiate_transport"]))
def test_structured_garbage_raises_only_signaling_error(value, kind):
    obj = {"type": kind, "peer_id": value, "to_peer": value, "signal": value, "peers": value,
           "peer": value, "supported_transports": value, "message": value, "proposed_transport": value}
    text = json.dumps(obj)
    for decode in (s.decode_client, s.decode_server):
        try:
            decode(text)
        except s.SignalingError:
            pass
    for parse in (s.IceCandidateSignal.from_json, s.WebRtcSdpPayload.from_json, s.PeerInfo.from_json):
        try:
            parse(value)
        except s.SignalingError:
            pass
