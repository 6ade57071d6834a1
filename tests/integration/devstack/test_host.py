"""The development host against the test answerer (aiortc + protocol modules) over a real Road.

Real PTYs, real WebRTC over the machine's interface, secure and insecure paths.
"""

from __future__ import annotations

import json
import os

import pytest
import pytest_twisted
from twisted.internet import defer

from beachmanager.devstack.host.host import start_host
from beachmanager.protocol import frames
from beachmanager.protocol.crypto import InsecureOverrides
from beachmanager.protocol.extensions import (
    NAMESPACE,
    TOPIC_ACK,
    TOPIC_ACTION,
    TOPIC_HEALTH,
    TOPIC_STATE,
)
from tests.support.answerer import TestAnswerer
from tests.support.eventually import eventually

SHELL_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PS1": "$ ", "HOME": "/tmp", "TERM": "xterm"}
# Prints a line, waits for one input line, prints it back, then idles.
ECHO_ONCE = ("/bin/sh", "-c", "echo first-line; read x; echo second-$x; exec sleep 60")


@pytest.fixture
def hosts(road):
    started = []

    async def start(**kw):
        kw.setdefault("command", ("/bin/sh",))
        kw.setdefault("env", SHELL_ENV)
        host = await start_host(road.url, **kw)
        started.append(host)
        return host

    yield start
    for h in started:
        pytest_twisted.blockon(h.stop())


@pytest.fixture
def peers():
    joined = []

    async def join(road, host, label="beach-manager", **kw):
        peer = await TestAnswerer.join(road.url, host.session_id, host.join_code, label=label, **kw)
        joined.append(peer)
        return peer

    yield join
    for p in joined:
        pytest_twisted.blockon(defer.ensureDeferred(p.close()))


def text_of(update) -> str:
    cells = getattr(update, "cells", None)
    if cells is None and isinstance(update, frames.Cell):
        cells = (update.cell,)
    return "".join(" " if c >> 32 == 0 else chr(c >> 32) for c in (cells or ()))


def frame_text(frame) -> str:
    return "\n".join(text_of(u) for u in getattr(frame, "updates", ()))


async def wait_delta_with(peer, needle: str, since: int = 0, timeout: float = 10.0):
    return await peer.wait_frame(frames.Delta, timeout, since, where=lambda f: needle in frame_text(f))


def handshake_kinds(peer):
    return [i if isinstance(i, str) else type(i).__name__ for i in peer.received[:8]]


@pytest_twisted.ensureDeferred
async def test_secure_peer_offer_ready_snapshot_delta_and_input(road, hosts, peers):
    host = await hosts(command=ECHO_ONCE)
    peer = await peers(road, host, label="beach-manager")
    await peer.wait_text("__offer_ready__")
    assert peer.secure and peer.offer_sealed and len(peer.secure_code) == 6
    await peer.wait_frame(frames.SnapshotComplete, where=lambda f: f.lane == frames.Lane.HISTORY)
    assert peer.received[0] == "__offer_ready__"
    assert handshake_kinds(peer)[1:4] == ["Heartbeat", "Hello", "Grid"]
    hello, grid = peer.frames(frames.Hello)[0], peer.frames(frames.Grid)[0]
    assert hello.subscription == 1 and (grid.cols, grid.viewport_rows) == (80, 24)
    snaps = peer.frames(frames.Snapshot)
    assert snaps[0].lane == frames.Lane.FOREGROUND and snaps[0].cursor is not None
    assert "first-line" in "".join(frame_text(s) for s in snaps)
    assert [f.lane for f in peer.frames(frames.SnapshotComplete)] == [0, 1, 2]
    # Input reaches the PTY; the program's answer comes back as a Delta
    since = len(peer.received)
    peer.send_frame(frames.Input(seq=1, data=b"go\r"))
    delta = await wait_delta_with(peer, "second-go", since)
    assert all(getattr(u, "seq", hello.max_seq + 1) > hello.max_seq for u in delta.updates)
    [served] = host.host.serving_peers()
    assert served.secure and served.inputs == 1


@pytest_twisted.ensureDeferred
async def test_insecure_peer_plain_transport(road, hosts, peers):
    host = await hosts(command=ECHO_ONCE)
    peer = await peers(road, host, label="viewer")
    await peer.wait_text("__offer_ready__")
    assert not peer.secure and peer.crypto is None and peer.offer_sealed  # signaling is still sealed
    await peer.wait_frame(frames.Hello)
    since = len(peer.received)
    peer.send_frame(frames.Input(seq=1, data=b"plain\r"))
    await wait_delta_with(peer, "second-plain", since)


@pytest_twisted.ensureDeferred
async def test_unsealed_signaling_override(road, hosts, peers):
    host = await hosts(overrides=InsecureOverrides(signaling=True, transport=True))
    peer = await peers(road, host, label="beach-manager")
    await peer.wait_text("__offer_ready__")
    assert peer.offer_sealed is False and not peer.secure
    await peer.wait_frame(frames.Hello)


@pytest_twisted.ensureDeferred
async def test_two_peers_at_once(road, hosts, peers):
    host = await hosts()
    a, b = await defer.gatherResults([
        defer.ensureDeferred(peers(road, host, label="beach-manager")),
        defer.ensureDeferred(peers(road, host, label=None))])
    for p in (a, b):
        await p.wait_frame(frames.SnapshotComplete, where=lambda f: f.lane == frames.Lane.HISTORY)
    assert a.secure and not b.secure
    since_a, since_b = len(a.received), len(b.received)
    b.send_frame(frames.Input(seq=1, data=b"echo both-$((40+2))\r"))
    await wait_delta_with(a, "both-42", since_a)
    await wait_delta_with(b, "both-42", since_b)
    assert len(host.host.serving_peers()) == 2


@pytest_twisted.ensureDeferred
async def test_peer_reconnects(road, hosts, peers):
    host = await hosts()
    first = await peers(road, host)
    await first.wait_frame(frames.Hello)
    await first.close()
    await eventually(lambda: not host.host.peers, what="the host to drop the closed peer")
    second = await peers(road, host)
    await second.wait_frame(frames.SnapshotComplete, where=lambda f: f.lane == frames.Lane.HISTORY)
    since = len(second.received)
    second.send_frame(frames.Input(seq=1, data=b"echo again-$((1+1))\r"))
    await wait_delta_with(second, "again-2", since)
    assert host.host.served_total == 2 and second.peer_id != first.peer_id


def action_frame(action_id: str, text: str) -> frames.Extension:
    body = {"type": "action", "payload": {"id": action_id, "action_type": "terminal_write",
                                          "payload": {"bytes": text}, "expires_at": None}}
    return frames.Extension(NAMESPACE, TOPIC_ACTION, json.dumps(body).encode())


def is_topic(topic):
    return lambda f: f.kind == topic


@pytest.mark.parametrize("header", [0x44, 0x4A])
@pytest_twisted.ensureDeferred
async def test_bus_action_ack_state_health(road, hosts, peers, header):
    host = await hosts(extension_header=header, health_interval=0.5)
    peer = await peers(road, host)
    await peer.wait_frame(frames.Hello)
    since = len(peer.received)
    peer.send_frame(action_frame("act-1", "echo bus-$((3*3))\r"))
    ack = await peer.wait_frame(frames.Extension, since=since, where=is_topic(TOPIC_ACK))
    body = json.loads(ack.payload)
    assert body["type"] == "ack" and body["payload"]["id"] == "act-1" and body["payload"]["status"] == "ok"
    await wait_delta_with(peer, "bus-9", since)
    state = await peer.wait_frame(frames.Extension, since=since,
                                  where=lambda f: f.kind == TOPIC_STATE and b"bus-9" in f.payload)
    payload = json.loads(state.payload)["payload"]
    assert payload["payload"]["type"] == "terminal_full" and payload["sequence"] >= 1
    health = await peer.wait_frame(frames.Extension, where=is_topic(TOPIC_HEALTH))
    assert set(json.loads(health.payload)["payload"]) >= {"queue_depth", "degraded", "warnings"}
    ext_headers = {h for h, f in zip(peer.headers, peer.frames(), strict=True) if isinstance(f, frames.Extension)}
    assert ext_headers == {header}
    # a replayed action is acked again, not applied again
    since = len(peer.received)
    peer.send_frame(action_frame("act-1", "echo bus-$((3*3))\r"))
    again = await peer.wait_frame(frames.Extension, since=since, where=is_topic(TOPIC_ACK))
    assert json.loads(again.payload) == body
    assert host.host.harness.subscriber.applied == 1


@pytest_twisted.ensureDeferred
async def test_once_a_manager_associates_viewers_get_no_manager_frames_and_cannot_act(road, hosts,
                                                                                      peers):
    """Namespace ACL: after the association, the viewer sees the terminal but no ``manager``
    frame, and the action it injects is dropped (counted); the manager's action is applied and
    acked to the manager."""
    from beachmanager.protocol.extensions import TOPIC_ASSOCIATION
    from tests.support.associations import OTHER, signed

    host = await hosts(health_interval=0.3)
    manager = await peers(road, host)
    viewer = await peers(road, host, label="viewer")
    await manager.wait_frame(frames.Hello)
    await viewer.wait_frame(frames.Hello)
    manager.send_frame(frames.Extension(NAMESPACE, TOPIC_ASSOCIATION,
                                        signed("mgr-x", 1, host=host.session_id)))
    harness = host.host.harness
    await eventually(lambda: harness.subscriber.fence.peer is not None, what="the association")
    # the viewer tries to become the manager: an association signed by another key is refused
    viewer.send_frame(frames.Extension(NAMESPACE, TOPIC_ASSOCIATION,
                                       signed("mgr-evil", 9, host=host.session_id, authority=OTHER)))
    await eventually(lambda: harness.association.pin.counts.get("other_authority") == 1,
                     what="the forged association refused")
    assert (harness.subscriber.fence.manager, harness.subscriber.fence.epoch) == ("mgr-x", 1)
    seen_by_viewer = len(viewer.received)
    viewer.send_frame(action_frame("v-1", "echo viewer-$((2*2))\r"))
    body = json.loads(action_frame("m-1", "echo mgr-$((5*5))\r").payload)
    manager.send_frame(frames.Extension(NAMESPACE, TOPIC_ACTION,
                                        json.dumps({**body, "epoch": 1}).encode()))
    ack = await manager.wait_frame(frames.Extension, where=lambda f: f.kind == TOPIC_ACK
                                   and b"m-1" in f.payload)
    assert json.loads(ack.payload)["payload"]["status"] == "ok"
    await wait_delta_with(viewer, "mgr-25", seen_by_viewer)  # the terminal is the viewer's too
    await manager.wait_frame(frames.Extension, where=is_topic(TOPIC_HEALTH),
                             since=len(manager.received))  # a periodic frame, sent since
    since_association = [i for i in viewer.received[seen_by_viewer:] if not isinstance(i, str)]
    assert any(isinstance(f, frames.Delta) for f in since_association)  # it did hear the host
    assert [f for f in since_association
            if isinstance(f, frames.Extension) and f.namespace == NAMESPACE] == []
    assert harness.subscriber.applied == 1 and harness.subscriber.fence.foreign_dropped == 1
    assert host.host.bus.withheld > 0


@pytest_twisted.ensureDeferred
async def test_resize_ignored_by_default(road, hosts, peers):
    host = await hosts()
    peer = await peers(road, host)
    await peer.wait_frame(frames.SnapshotComplete, where=lambda f: f.lane == frames.Lane.HISTORY)
    peer.send_frame(frames.Resize(cols=100, rows=30))
    await eventually(lambda: host.host.peers and next(iter(host.host.peers.values())).resizes == 1,
                     what="the host to see the resize")
    assert len(peer.frames(frames.Hello)) == 1 and host.host.model.cols == 80


@pytest_twisted.ensureDeferred
async def test_resize_honoured_replays_from_hello(road, hosts, peers):
    host = await hosts(honour_resize=True)
    peer = await peers(road, host)
    await peer.wait_frame(frames.SnapshotComplete, where=lambda f: f.lane == frames.Lane.HISTORY)
    since = len(peer.received)
    peer.send_frame(frames.Resize(cols=100, rows=30))
    await peer.wait_frame(frames.Hello, since=since)
    grid = await peer.wait_frame(frames.Grid, since=since)
    assert (grid.cols, grid.viewport_rows) == (100, 30)
    await peer.wait_frame(frames.SnapshotComplete, since=since, where=lambda f: f.lane == frames.Lane.HISTORY)
    since = len(peer.received)
    peer.send_frame(frames.Input(seq=1, data=b"stty size\r"))
    await wait_delta_with(peer, "30 100", since)


@pytest_twisted.ensureDeferred
async def test_heartbeats_at_the_interval(road, hosts, peers):
    host = await hosts(heartbeat_interval=0.3)
    peer = await peers(road, host)
    await peer.wait_frame(frames.Heartbeat, where=lambda f: f.seq == 2, timeout=5)
    beats = peer.frames(frames.Heartbeat)
    assert [b.seq for b in beats[:3]] == [0, 1, 2]
    assert beats[0].timestamp_ms <= beats[1].timestamp_ms <= beats[2].timestamp_ms


@pytest_twisted.ensureDeferred
async def test_shutdown_when_the_program_exits(road, hosts, peers):
    host = await hosts(command=("/bin/sh", "-c", "read x; exit 3"))
    peer = await peers(road, host)
    await peer.wait_frame(frames.Hello)
    peer.send_frame(frames.Input(seq=1, data=b"\r"))
    await peer.wait_frame(frames.Shutdown)
    assert host.host.pty.exit_code == 3


@pytest_twisted.ensureDeferred
async def test_registration_join_code_and_room(road, hosts):
    host = await hosts(join_code="SMOKEP")
    assert host.join_code == "SMOKEP"
    info = host.host.info()
    assert info["session_id"] == host.session_id and info["join_code"] == "SMOKEP"
    assert info["session_server"] == road.url
    # the host joined through its peer-session id and holds the server slot of its own room
    [member] = road.rooms.peers(host.session_id)
    assert member.role == "server" and member.conn.path_id == host.host.peer_session_id


@pytest_twisted.ensureDeferred
async def test_backfill_and_viewport_clear(road, hosts, peers):
    host = await hosts(command=("/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 "
                                                 "21 22 23 24 25 26 27 28 29 30; do echo row-$i; done; exec sleep 60"))
    peer = await peers(road, host, label=None)
    await peer.wait_frame(frames.SnapshotComplete, where=lambda f: f.lane == frames.Lane.HISTORY)
    peer.send_frame(frames.RequestBackfill(subscription=1, request_id=9, start_row=0, count=100))
    backfill = await peer.wait_frame(frames.HistoryBackfill, where=lambda f: not f.more)
    assert backfill.request_id == 9 and "row-1" in frame_text(backfill)
    since = len(peer.received)
    peer.send_frame(frames.ViewportCommand())
    await peer.wait_frame(frames.Hello, since=since)
    await peer.wait_frame(frames.SnapshotComplete, since=since, where=lambda f: f.lane == frames.Lane.HISTORY)


@pytest_twisted.ensureDeferred
async def test_peer_without_ready_is_dropped_after_the_timeout(road, hosts, peers):
    host = await hosts(ready_timeout=1.0)
    peer = await peers(road, host, send_ready=False)
    assert peer.secure  # the handshake ran; only the sentinel is missing
    [pending] = host.host.peers.values()
    await eventually(lambda: not host.host.peers, timeout=5, what="the host to drop the silent peer")
    assert "timed out" in pending.close_reason and pending.phase.value == "closed"
    assert "__offer_ready__" not in peer.received
    # the same client may try again on a new connection
    again = await peers(road, host)
    await again.wait_text("__offer_ready__")


@pytest_twisted.ensureDeferred
async def test_peer_leaving_mid_negotiation_is_cleaned_up(road, hosts):
    from tests.support.ws_peer import WsPeer

    host = await hosts()
    ws = await WsPeer.connect(f"{road.ws_url}/ws/{host.session_id}")
    await ws.join(host.join_code, label="beach-manager")  # joins, never answers the offer
    await eventually(lambda: any(p.phase.value == "answer" for p in host.host.peers.values()),
                     what="a peer waiting for its answer")
    [pending] = host.host.peers.values()
    await ws.close()
    await eventually(lambda: not host.host.peers, what="the host to drop the peer that left")
    assert pending.close_reason == "left the room"


@pytest_twisted.ensureDeferred
async def test_host_rejoins_road_after_losing_its_websocket(road, hosts, peers):
    host = await hosts()
    first = await peers(road, host)
    await first.wait_frame(frames.SnapshotComplete, where=lambda f: f.lane == frames.Lane.HISTORY)
    old_id = host.host.own_peer_id
    road.service._ws_factory.close_all()  # every signaling socket drops; WebRTC stays up
    await eventually(lambda: host.host.own_peer_id not in (None, old_id) and road.rooms.peers(host.session_id),
                     timeout=10, what="the host to rejoin its room")
    [member] = road.rooms.peers(host.session_id)
    assert member.role == "server" and member.conn.peer_id == host.host.own_peer_id
    since = len(first.received)
    first.send_frame(frames.Input(seq=1, data=b"echo still-$((2+3))\r"))
    await wait_delta_with(first, "still-5", since)
    second = await peers(road, host)
    await second.wait_text("__offer_ready__")
    assert len(host.host.serving_peers()) == 2


# -- browser-client behaviours (issue 19) --------------------------------------------------------

CONTINUED_USE_SECONDS = 10.0


@pytest_twisted.ensureDeferred
async def test_closed_handshake_channel_after_the_handshake_keeps_the_peer(road, hosts, peers):
    import time

    host = await hosts()
    peer = await peers(road, host, label="beach-manager", handshake_channel="close_after")
    await peer.wait_text("__offer_ready__")
    assert peer.secure and peer.crypto is not None
    await eventually(lambda: peer.channels["beach-secure-handshake"].readyState == "closed",
                     what="the answerer's handshake channel to close")
    [served] = host.host.serving_peers()
    await eventually(lambda: served.rtc.channels["beach-secure-handshake"].readyState == "closed",
                     what="the host to see the handshake channel closed")
    # the deliberate 10 s of continued use: type, and each line comes back as a Delta
    rounds, started = 0, time.monotonic()
    while time.monotonic() - started < CONTINUED_USE_SECONDS:
        rounds += 1
        since = len(peer.received)
        peer.send_frame(frames.Input(seq=rounds, data=f"echo kept-$(({rounds}*7))\r".encode()))
        await wait_delta_with(peer, f"kept-{rounds * 7}", since)
    assert rounds >= 5
    assert host.host.serving_peers() == [served] and served.close_reason is None
    assert served.inputs == rounds and served.rtc.lost_reason is None


@pytest_twisted.ensureDeferred
async def test_handshake_channel_closed_before_the_handshake_fails_that_peer(road, hosts, peers):
    host = await hosts()
    peer = await peers(road, host, label="beach-manager", handshake_channel="close_before", send_ready=False)
    [pending] = list(host.host.peers.values())
    await eventually(lambda: pending.closed, what="the host to fail the peer's handshake")
    assert "before the secure handshake" in pending.close_reason, pending.close_reason
    assert "beach-secure-handshake" in pending.close_reason
    assert not host.host.peers and "__offer_ready__" not in peer.received


@pytest.fixture
def host_log():
    """Every event logged while the test runs (twisted.logger), as a list."""
    from twisted.logger import globalLogPublisher

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def label_policy_warnings(events, peer_id):
    from twisted.logger import LogLevel

    return [e for e in events if e.get("label_policy") and e.get("peer") == peer_id
            and e.get("log_level") == LogLevel.warn]


@pytest.mark.parametrize("own_channel", [False, True], ids=["waits-for-the-channel", "opens-its-own-channel"])
@pytest_twisted.ensureDeferred
async def test_browser_label_running_the_handshake_gets_one_clear_warning(road, hosts, peers, host_log, own_channel):
    from twisted.logger import formatEvent

    from beachmanager.protocol.crypto import SECURE_PEER_LABELS
    from tests.support.answerer import AnswererError

    host = await hosts(ready_timeout=1.5)
    # control: a plain-label viewer that becomes ready and a secure-label peer get no warning
    viewer = await peers(road, host, label="viewer")
    manager = await peers(road, host, label="beach-manager")
    await viewer.wait_text("__offer_ready__")
    await manager.wait_text("__offer_ready__")
    # the browser client runs Noise whenever it has a passphrase, whatever its label
    with pytest.raises(AnswererError, match="no 'beach-secure-handshake' channel"):
        await peers(road, host, label="beach-surfer", require_secure=True, handshake_wait=4.0,
                    open_handshake_channel=own_channel)
    await eventually(lambda: len(host.host.peers) == 2, what="the host to drop the browser peer")
    [browser_id] = [e["peer"] for e in host_log if e.get("log_format", "").startswith("negotiating with")
                    and e.get("label") == "beach-surfer"]
    [warning] = label_policy_warnings(host_log, browser_id)
    text = formatEvent(warning)
    assert "'beach-surfer'" in text and "beach-secure-handshake" in text
    assert all(label in text for label in SECURE_PEER_LABELS)
    assert ("opened a 'beach-secure-handshake' channel itself" in text) == own_channel
    assert ("never became ready" in text) != own_channel
    for other in (viewer, manager):
        assert label_policy_warnings(host_log, other.peer_id) == []
    assert {p.label for p in host.host.serving_peers()} == {"viewer", "beach-manager"}
