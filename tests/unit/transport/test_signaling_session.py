"""SignalingSession on a fake clock and a fake socket: join, host detection, keepalive and
loss detection, ICE buffering by handshake id, offer hints."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from beachmanager.protocol import signaling as sig
from beachmanager.transport.errors import AttachError
from beachmanager.transport.road import LABEL, ROAD_PEER_TIMEOUT, SignalingSession, ws_url

ME, HOST = "peer-me", "peer-host"


class FakeProto:
    def __init__(self):
        self.sent: list[dict] = []
        self.closed = False
        self.is_closed = Deferred()

    def sendMessage(self, payload, isBinary=False):
        assert not isBinary
        self.sent.append(json.loads(payload))

    def sendClose(self):
        self.closed = True


def make(clock=None):
    clock = clock or Clock()
    proto = FakeProto()
    session = SignalingSession(reactor=clock, clock=clock, road_url="http://road:4132",
                               host_session_id="host-1", join_code="ABC123",
                               peer_session_id="ps-1", ping_interval=20.0, pong_timeout=10.0,
                               connect=lambda factory: succeed(None))
    return session, proto, clock


def server_says(session, msg):
    session._message(sig.encode_server(msg).encode())


def peer(pid, role):
    return sig.PeerInfo(id=pid, role=role)


async def joined(peers=(peer(ME, "client"), peer(HOST, "server"))):
    session, proto, clock = make()
    d = Deferred.fromCoroutine(session.open())
    session._opened(proto)
    server_says(session, sig.JoinSuccess("host-1", ME, tuple(peers)))
    await d
    return session, proto, clock


def test_ws_url_is_built_from_the_road_base_and_the_host_id():
    assert ws_url("http://road:4132", "h/1") == "ws://road:4132/ws/h%2F1"
    assert ws_url("https://road.example", "h") == "wss://road.example/ws/h"


@pytest_twisted.ensureDeferred
async def test_join_message_finds_the_host_and_starts_pinging():
    session, proto, clock = await joined()
    join = proto.sent[0]
    assert join["type"] == "join" and join["label"] == LABEL and join["passphrase"] == "ABC123"
    assert join["supported_transports"] == ["webrtc"]
    assert join["metadata"]["role"] == "answerer" and join["metadata"]["peer_session_id"] == "ps-1"
    assert session.my_id == ME and await session.wait_host() == HOST
    assert proto.sent[1] == {"type": "ping"}  # right away, then every interval
    clock.advance(5)
    server_says(session, sig.Pong())
    clock.advance(15)
    assert [m["type"] for m in proto.sent].count("ping") == 2


@pytest_twisted.ensureDeferred
async def test_joining_an_empty_room_as_server_means_the_host_is_not_connected():
    with pytest.raises(AttachError) as err:
        await joined(peers=(peer(ME, "server"),))
    assert err.value.code == "host_not_connected"


@pytest_twisted.ensureDeferred
async def test_a_bad_join_code_is_permanent():
    session, proto, _ = make()
    d = Deferred.fromCoroutine(session.open())
    session._opened(proto)
    server_says(session, sig.JoinError(sig.JOIN_ERROR_BAD_PASSPHRASE))
    with pytest.raises(AttachError) as err:
        await d
    assert err.value.permanent and err.value.code == "bad_join_code"


@pytest_twisted.ensureDeferred
async def test_the_host_may_join_after_us():
    session, _, _ = await joined(peers=(peer(ME, "client"),))
    waiting = Deferred.fromCoroutine(session.wait_host())
    server_says(session, sig.PeerJoined(peer("someone-else", "client")))
    assert not waiting.called
    server_says(session, sig.PeerJoined(peer(HOST, "server")))
    assert await waiting == HOST


@pytest_twisted.ensureDeferred
async def test_a_missing_pong_is_a_loss():
    session, _, clock = await joined()
    clock.advance(10)
    assert session.lost.called and session.lost_code == "no_pong"


@pytest_twisted.ensureDeferred
async def test_a_stall_longer_than_roads_eviction_timeout_is_detected():
    session, _, clock = await joined()
    server_says(session, sig.Pong())
    clock.advance(ROAD_PEER_TIMEOUT + 5)  # the next ping runs 65 s late
    assert session.lost_code == "evicted" and "evicted" in session.lost_reason


@pytest_twisted.ensureDeferred
async def test_the_host_leaving_the_room_and_the_socket_closing_are_losses():
    session, _, _ = await joined()
    server_says(session, sig.PeerLeft("someone-else"))
    assert not session.lost.called
    server_says(session, sig.PeerLeft(HOST))
    assert session.lost_code == "host_left"
    other, _, _ = await joined()
    other._closed("WebSocket closed (code 1006, connection lost)")
    assert other.lost_code == "ws_closed"


def candidate(hid, n):
    return sig.IceCandidateSignal.plain(hid, sig.IceCandidate(f"candidate:{n} 1 udp 1 10.0.0.1 {n} typ host",
                                                               "", 0)).to_json()


@pytest_twisted.ensureDeferred
async def test_ice_signals_are_buffered_per_handshake_and_hint_the_offer():
    session, _, _ = await joined()
    hint = session.next_offer_hint()
    server_says(session, sig.RelayedSignal(HOST, candidate("hs-old", 1)))
    assert hint.called  # a new handshake's first candidate: its offer is being posted
    server_says(session, sig.RelayedSignal(HOST, candidate("hs-1", 2)))
    server_says(session, sig.RelayedSignal(HOST, candidate("hs-1", 3)))
    server_says(session, sig.RelayedSignal("intruder", candidate("hs-1", 4)))  # not the host
    server_says(session, sig.RelayedSignal(HOST, {"transport": "webrtc", "signal": {"x": 1}}))
    later = []
    buffered = session.take_candidates("hs-1", later.append)
    assert [c.candidate.split()[0] for c in buffered] == ["candidate:2", "candidate:3"]
    server_says(session, sig.RelayedSignal(HOST, candidate("hs-1", 5)))
    server_says(session, sig.RelayedSignal(HOST, candidate("hs-2", 6)))  # another handshake
    assert [c.candidate.split()[0] for c in later] == ["candidate:5"]


@pytest_twisted.ensureDeferred
async def test_buffers_are_bounded():
    from beachmanager.transport import road

    session, _, _ = await joined()
    for i in range(road.MAX_BUFFERED_HANDSHAKES + 5):
        for j in range(road.MAX_SIGNALS_PER_HANDSHAKE + 3):
            server_says(session, sig.RelayedSignal(HOST, candidate(f"hs-{i}", j)))
    assert len(session._signals) == road.MAX_BUFFERED_HANDSHAKES
    assert all(len(q) == road.MAX_SIGNALS_PER_HANDSHAKE for q in session._signals.values())
    assert session.signals_dropped > 0


@pytest_twisted.ensureDeferred
async def test_close_leaves_the_room_and_stops_the_timers():
    session, proto, clock = await joined()
    session.close()
    assert proto.closed and session.lost_code == "closed"
    sent = len(proto.sent)
    clock.advance(100)
    assert len(proto.sent) == sent
    assert not [c for c in clock.getDelayedCalls() if c.active()]
