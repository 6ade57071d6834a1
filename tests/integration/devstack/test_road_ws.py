"""The development Road's WebSocket over real sockets: join rules, relay, room resolution, eviction."""

from __future__ import annotations

import json

import pytest_twisted
import treq
from twisted.internet import defer, reactor
from twisted.internet.task import Clock, deferLater

from beachmanager.devstack.road.service import start_road
from beachmanager.devstack.road.settings import RoadSettings
from beachmanager.protocol import signaling as sig
from tests.support.ws_peer import WsPeer

from .test_road_http import viewer_keys, viewer_token  # noqa: F401  (fixture re-export)


async def setup_session(road, session_id="h1", code="ABC123") -> str:
    r = await treq.post(road.url + "/sessions", json={"session_id": session_id, "passphrase": code})
    assert (await r.json())["success"]
    r = await treq.post(road.url + "/peer-sessions/attach", json={"host_session_id": session_id, "passphrase": code})
    return (await r.json())["peer_session_id"]


@pytest_twisted.ensureDeferred
async def test_join_errors(road):
    peer = await WsPeer.connect(f"{road.ws_url}/ws/h1")
    try:
        assert await peer.join("ABC123") == sig.JoinError("Session not found")
        await setup_session(road)
        assert await peer.join(None) == sig.JoinError("Passphrase required")
        assert await peer.join("   ") == sig.JoinError("Passphrase required")
        assert await peer.join("WRONG1") == sig.JoinError("Invalid passphrase")
        assert await peer.join("ABC123", viewer_token="jwt") == sig.JoinError("viewer tokens unavailable")
        # the socket stays open after a join error and can still join
        ok = await peer.join(" ABC123 ")
        assert isinstance(ok, sig.JoinSuccess) and ok.session_id == "h1"
    finally:
        await peer.close()


@pytest_twisted.ensureDeferred
async def test_internal_error_reason(road, monkeypatch):
    await setup_session(road)

    def broken(_session_id):
        raise RuntimeError("store down")

    monkeypatch.setattr(road.store, "session", broken)
    peer = await WsPeer.connect(f"{road.ws_url}/ws/h1")
    try:
        assert await peer.join("ABC123") == sig.JoinError("Internal error")
    finally:
        await peer.close()


@pytest_twisted.ensureDeferred
async def test_viewer_token_join_reasons(viewer_keys, tmp_path):  # noqa: F811
    key, jwks = viewer_keys
    road = await start_road(settings=RoadSettings(viewer_token_secret=b"s3cret", viewer_jwks_path=jwks))
    broken = await start_road(settings=RoadSettings(viewer_token_secret=b"s3cret",
                                                    viewer_jwks_path=str(tmp_path / "gone.json")))
    peers = []
    try:
        for r in (road, broken):
            await setup_session(r)
        a = await WsPeer.connect(f"{road.ws_url}/ws/h1")
        b = await WsPeer.connect(f"{broken.ws_url}/ws/h1")
        peers += [a, b]
        bad = viewer_token(key, "h1", "ABC123", token_type="owner")
        assert await a.join(None, viewer_token=bad) == sig.JoinError("viewer credential invalid")
        good = viewer_token(key, "h1", "ABC123")
        assert await b.join("ABC123", viewer_token=good) == sig.JoinError("viewer token verification failed")
        # on the WebSocket a valid viewer token replaces the passphrase
        assert isinstance(await a.join(None, viewer_token=good), sig.JoinSuccess)
    finally:
        for p in peers:
            await p.close()
        await road.stop()
        await broken.stop()


@pytest_twisted.ensureDeferred
async def test_roles_peer_lists_relay_and_ping(road):
    psid = await setup_session(road)
    host = await WsPeer.connect(f"{road.ws_url}/ws/{psid}")  # the upstream host joins via its psid
    client = await WsPeer.connect(f"{road.ws_url}/ws/h1")
    try:
        hj = await host.join("ABC123", metadata={"role": "offerer", "peer_session_id": psid})
        assert hj.session_id == "h1"  # resolved host id
        assert [p.role for p in hj.peers] == ["server"] and hj.peers[0].id == hj.peer_id
        assert hj.me().metadata["role"] == "server"  # client metadata is not listed in join_success

        cj = await client.join("ABC123", label=" beach-manager ", metadata={"k": "v", "label": "ignored"})
        assert cj.me().role == "client" and cj.server_peer().id == hj.peer_id
        assert cj.available_transports == ("webrtc",)
        assert cj.me().metadata == {"label": "beach-manager", "remote_addr": cj.me().metadata["remote_addr"],
                                    "session_id": "h1", "role": "client"}
        joined = await host.next()
        assert isinstance(joined, sig.PeerJoined) and joined.peer.id == cj.peer_id
        assert joined.peer.metadata["k"] == "v" and joined.peer.label == "beach-manager"
        assert joined.peer.metadata["remote_addr"].startswith("127.0.0.1:")

        payload = {"transport": "webrtc", "signal": {"signal_type": "ice_candidate", "handshake_id": "x"}}
        host.send(sig.Signal(cj.peer_id, payload))
        assert await client.next() == sig.RelayedSignal(hj.peer_id, payload)
        client.send(sig.Signal("no-such-peer", {}))
        assert await client.next() == sig.ErrorMessage("Failed to process message: Peer not found")
        client.send(sig.NegotiateTransport(hj.peer_id, "webrtc"))
        assert await host.next() == sig.TransportProposal(cj.peer_id, "webrtc")
        host.send(sig.AcceptTransport(cj.peer_id, "webrtc"))
        assert await client.next() == sig.TransportAccepted(hj.peer_id, "webrtc")

        client.send(sig.Ping())
        assert await client.next() == sig.Pong()
        client.send_raw("{nope")
        err = await client.next()
        assert isinstance(err, sig.ErrorMessage) and err.message.startswith("Invalid message format")
        client.send_json({"type": "jump"})
        assert (await client.next()).message.startswith("Invalid message format")

        r = await treq.get(f"{road.url}/debug/sessions/h1/peers")
        listed = await r.json()
        assert [p["id"] for p in listed] == [hj.peer_id, cj.peer_id]
        assert listed[1]["joined_at"] == 0 and listed[1]["metadata"]["label"] == "beach-manager"
        assert set(listed[0]["metadata"]) == {"remote_addr"}
    finally:
        await host.close()
        await client.close()


@pytest_twisted.ensureDeferred
async def test_disconnect_cleans_up_resolved_room(road):
    psid = await setup_session(road)
    host = await WsPeer.connect(f"{road.ws_url}/ws/h1")
    client = await WsPeer.connect(f"{road.ws_url}/ws/{psid}")
    hj = await host.join("ABC123")
    cj = await client.join("ABC123")
    await host.next_of(sig.PeerJoined)
    # an offer waiting for the client is dropped when it leaves
    r = await treq.post(f"{road.url}/peer-sessions/{psid}/webrtc/offer",
                        json={"sdp": "", "type": "offer", "handshake_id": "h", "from_peer": hj.peer_id,
                              "to_peer": cj.peer_id})
    assert r.code == 204
    await client.close()
    assert await host.next() == sig.PeerLeft(cj.peer_id)  # promptly, although it joined via the psid
    r = await treq.get(f"{road.url}/peer-sessions/{psid}/webrtc/offer?peer_id={cj.peer_id}")
    assert r.code == 409
    # a new client gets a new id and is a client again
    again = await WsPeer.connect(f"{road.ws_url}/ws/{psid}")
    aj = await again.join("ABC123")
    assert aj.peer_id != cj.peer_id and aj.me().role == "client"
    await host.close()
    assert await again.next() == sig.PeerLeft(hj.peer_id)
    await again.close()
    assert road.rooms.rooms == {}


@pytest_twisted.ensureDeferred
async def test_room_bound(road_small_bounds):
    road = road_small_bounds  # the bound under test: 3 peers per room
    await setup_session(road)
    peers = [await WsPeer.connect(f"{road.ws_url}/ws/h1") for _ in range(4)]
    try:
        results = [await p.join("ABC123") for p in peers]
        assert all(isinstance(r, sig.JoinSuccess) for r in results[:3])
        assert isinstance(results[3], sig.JoinError) and "Room full" in results[3].reason
    finally:
        for p in peers:
            await p.close()


@pytest_twisted.ensureDeferred
async def test_binary_frames_skip_peer_session_resolution(road):
    psid = await setup_session(road)
    peer = await WsPeer.connect(f"{road.ws_url}/ws/{psid}")
    try:
        peer.send_raw(sig.encode_client(sig.Join("x", "ABC123")).encode(), binary=True)
        assert await peer.next() == sig.JoinError("Session not found")
        peer.send_raw(sig.encode_client(sig.Join("x", "ABC123")).encode(), binary=False)
        assert isinstance(await peer.next(), sig.JoinSuccess)
    finally:
        await peer.close()


@pytest_twisted.ensureDeferred
async def test_eviction_without_ping():
    clock = Clock()
    road = await start_road(settings=RoadSettings(peer_timeout=60, sweep_interval=30), clock=clock)
    a = b = None
    try:
        await setup_session(road)
        a = await WsPeer.connect(f"{road.ws_url}/ws/h1")
        b = await WsPeer.connect(f"{road.ws_url}/ws/h1")
        aj = await a.join("ABC123")
        bj = await b.join("ABC123")
        await a.next_of(sig.PeerJoined)
        clock.advance(30)
        clock.advance(10)
        b.send(sig.Ping())  # b pings at t=40; a never pings
        assert await b.next() == sig.Pong()
        clock.advance(20)  # t=60: sweep, nobody is older than 60 s yet
        await b.expect_silence(0.2)
        clock.advance(30)  # t=90: a is evicted, b is not
        assert await b.next() == sig.PeerLeft(aj.peer_id)
        assert [m.conn.peer_id for m in road.rooms.peers("h1")] == [bj.peer_id]
        # the evicted socket stays open but is deaf: signals to it fail, it gets nothing
        b.send(sig.Signal(aj.peer_id, {"x": 1}))
        assert await b.next() == sig.ErrorMessage("Failed to process message: Peer not found")
        await a.expect_silence(0.2)
        a.send(sig.Ping())
        assert await a.next() == sig.Pong()
    finally:
        for p in (a, b):
            if p is not None:
                await p.close()
        await road.stop()


def test_messages_are_json_objects():
    assert json.loads(sig.encode_server(sig.PeerLeft("x"))) == {"type": "peer_left", "peer_id": "x"}


@pytest_twisted.ensureDeferred
async def test_a_peer_that_stops_reading_is_dropped():
    road = await start_road(settings=RoadSettings(max_ws_backlog_bytes=512 * 1024))
    slow = fast = None
    try:
        await setup_session(road)
        fast = await WsPeer.connect(f"{road.ws_url}/ws/h1")
        slow = await WsPeer.connect(f"{road.ws_url}/ws/h1")
        await fast.join("ABC123")
        sj = await slow.join("ABC123")
        await fast.next_of(sig.PeerJoined)
        slow.proto.transport.pauseProducing()  # stop reading the socket
        left = defer.ensureDeferred(fast.next_of(sig.PeerLeft, timeout=30))
        blob = "x" * 200_000
        for _ in range(200):  # 40 MB: more than the kernel buffers plus the backlog bound
            if left.called:  # the road dropped the slow peer: stop flooding
                break
            fast.send(sig.Signal(sj.peer_id, {"blob": blob}))
            await deferLater(reactor, 0.01, lambda: None)  # pace the flood: let the reactor write it
        assert await left == sig.PeerLeft(sj.peer_id)
        assert [m.conn.peer_id for m in road.rooms.peers("h1")] != [sj.peer_id]
    finally:
        for p in (fast, slow):
            if p is not None:
                if p.proto is not None:
                    p.proto.transport.resumeProducing()
                await p.close()
        await road.stop()
