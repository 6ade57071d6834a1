"""The manager joins a real devstack host (real shell on a PTY) through a real devstack Road."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from beachmanager.protocol import harness as hj
from beachmanager.transport.errors import AttachError
from beachmanager.transport.events import SessionState
from tests.support.eventually import eventually


def lost(hosts, host_id):
    """Waits for the host's session to leave READY, from the session stream."""
    return hosts.events.wait_for(lambda c: c.host_session_id == host_id and c.was_ready,
                                 current=False).addTimeout(20, reactor)  # a bound, not a speed claim


def screen(hosts, host_id) -> str:
    return "\n".join(hosts.mirror(host_id).text_rows())


@pytest_twisted.ensureDeferred
async def test_attach_mirror_bus_round_trip_and_graceful_detach(start_host, hosts_service):
    host = await start_host()
    hosts = await hosts_service()
    changes = []
    hosts.events.subscribe(lambda c: changes.append((c.host_session_id, c.new.value)))
    machine = hosts.attach(host.session_id, host.join_code)
    assert hosts.attach(host.session_id, host.join_code) is machine  # idempotent
    await machine.when_ready().addTimeout(20, reactor)

    state = hosts.transport_state(host.session_id, detail=True)
    assert state["status"] == "ready" and state["secure"] is True
    phases = [(e["phase"], e["status"]) for e in state["timeline"]]
    for phase in ("attach", "offer", "answer", "ice", "dc_open", "handshake", "ready"):
        assert (phase, "pending") in phases and (phase, "ok") in phases
    assert state["peer_session_id"] and state["host_peer_id"]
    assert hosts.ctx.metrics.registry.get_sample_value("transport_rtc_ready_seconds_count") == 1
    assert changes == [(host.session_id, "idle"), (host.session_id, "attaching"),
                       (host.session_id, "ready")]

    # The mirror syncs the shell's screen, and follows a change made through the bus.
    mirror = hosts.mirror(host.session_id)
    await eventually(lambda: mirror.in_sync, what="the mirror to be in sync")
    acks = []
    first_ack = Deferred()

    def on_ack(h, ack):
        acks.append((h, ack))
        if not first_ack.called:
            first_ack.callback(None)

    hosts.subscriber.on("ack", on_ack)
    cmd = hj.ActionCommand("a-1", "terminal_write", {"bytes": "echo MARK-$((40+2))\r"})
    assert hosts.publisher.publish_command(host.session_id, cmd)
    await eventually(lambda: "MARK-42" in screen(hosts, host.session_id), what="the echo in the mirror")
    await first_ack.addTimeout(15, reactor)
    assert acks[0][0] == host.session_id and acks[0][1].id == "a-1"
    assert acks[0][1].status == hj.AckStatus.OK
    await eventually(lambda: mirror.heartbeats.count >= 1, what="a heartbeat")

    # Detach closes the transport; the host sees its peer go.
    await hosts.detach(host.session_id)
    assert hosts.get(host.session_id) is None
    assert changes[-1] == (host.session_id, "stopped") and not hosts.events.managed(host.session_id)
    await eventually(lambda: not host.host.serving_peers(), what="the host to drop the peer")


@pytest_twisted.ensureDeferred
async def test_a_wrong_join_code_is_rejected_permanently(start_host, hosts_service):
    host = await start_host()
    hosts = await hosts_service()
    machine = hosts.attach(host.session_id, "WRONG1")
    with pytest.raises(AttachError) as err:
        await machine.when_ready().addTimeout(10, reactor)
    assert err.value.code == "bad_join_code" and err.value.phase == "attach"
    assert machine.state is SessionState.REJECTED
    assert hosts.events.state(host.session_id) is SessionState.REJECTED
    assert hosts.ctx.metrics.registry.get_sample_value("attach_failure_total",
                                                       {"phase": "attach"}) == 1


@pytest_twisted.ensureDeferred
async def test_a_dropped_peer_connection_is_detected_and_redone(start_host, hosts_service):
    host = await start_host()
    hosts = await hosts_service()
    machine = hosts.attach(host.session_id, host.join_code)
    await machine.when_ready().addTimeout(20, reactor)
    first_transport = machine.current.transport_id

    # The host drops our peer connection but stays up: a full redo gets a new transport.
    (peer,) = host.host.serving_peers()
    gone = lost(hosts, host.session_id)
    await peer.close("test: dropped by the host")
    await gone
    assert machine.last_error["phase"] == "ready"
    await machine.when_ready().addTimeout(20, reactor)
    assert machine.current.transport_id != first_transport
    assert machine.reconnects == 1
    assert hosts.ctx.metrics.registry.get_sample_value("transport_reconnect_total") == 1
    mirror = hosts.mirror(host.session_id)
    await eventually(lambda: mirror.in_sync, what="the mirror to resync after the redo")


@pytest_twisted.ensureDeferred
async def test_a_vanished_host_is_retried_with_backoff_not_stormed(start_host, hosts_service):
    host = await start_host()
    hosts = await hosts_service(reconnect_max_delay=2.0)
    machine = hosts.attach(host.session_id, host.join_code)
    await machine.when_ready().addTimeout(20, reactor)

    gone = lost(hosts, host.session_id)
    await host.stop()
    await gone
    lost_at = reactor.seconds()
    attempts_at_loss = machine.attempts
    await deferLater(reactor, 6.0)  # a stretch of time (the point): count the attempts in it
    # Backoff 0.5, 1, 2, 2... (+ up to 50% jitter): a handful of attempts in 6 s, not hundreds.
    tried = machine.attempts - attempts_at_loss
    assert 1 <= tried <= 8, tried
    assert machine.state in (SessionState.ATTACHING, SessionState.BACKOFF)
    # Road still knows the session but nobody serves its room: the attempt fails in "attach".
    assert machine.last_error["phase"] == "attach"
    assert machine.last_error["code"] in ("host_not_connected", "timeout")
    assert reactor.seconds() - lost_at >= 6.0


@pytest_twisted.ensureDeferred
async def test_the_hosts_handshake_channel_decides_whether_transport_is_secure(start_host,
                                                                               hosts_service,
                                                                               monkeypatch):
    from beachmanager.protocol.crypto import InsecureOverrides, InsecureOverrideWarning

    # A host that runs no Noise for us (BEACH_INSECURE_TRANSPORT on its side): plaintext beach.
    plain_host = await start_host(overrides=InsecureOverrides(transport=True))
    hosts = await hosts_service()
    machine = hosts.attach(plain_host.session_id, plain_host.join_code)
    await machine.when_ready().addTimeout(20, reactor)
    assert machine.status()["secure"] is False
    await eventually(lambda: hosts.mirror(plain_host.session_id).in_sync, what="the plaintext mirror")

    # The manager's own override does not stop it from following a secure host.
    monkeypatch.setenv("BEACH_INSECURE_TRANSPORT", "I_KNOW_THIS_IS_UNSAFE")
    secure_host = await start_host()
    with pytest.warns(InsecureOverrideWarning):
        insecure_manager = await hosts_service()
    machine = insecure_manager.attach(secure_host.session_id, secure_host.join_code)
    await machine.when_ready().addTimeout(20, reactor)
    assert machine.status()["secure"] is True


@pytest_twisted.ensureDeferred
async def test_attach_is_bounded_by_capacity_and_refuses_a_second_join_code(hosts_service):
    from beachmanager.transport.hosts import CapacityExceeded, HostAlreadyAttached

    hosts = await hosts_service(capacity=1)
    first = hosts.attach("host-aaaa", "AAA111")
    with pytest.raises(HostAlreadyAttached):
        hosts.attach("host-aaaa", "BBB222")
    with pytest.raises(CapacityExceeded):
        hosts.attach("host-bbbb", "BBB222")
    await hosts.detach("host-aaaa")
    assert first.state is SessionState.STOPPED and hosts.get("host-aaaa") is None
    assert hosts.attach("host-bbbb", "BBB222") is hosts.get("host-bbbb")
