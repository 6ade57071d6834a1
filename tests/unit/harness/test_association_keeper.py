"""The harness's end of the association handshake: trust, the fence, renewal, the agent's token."""

from __future__ import annotations

import json

from twisted.internet.task import Clock

from beachmanager.harness.buggy import Harness
from beachmanager.protocol import association as pa
from beachmanager.protocol.extensions import TOPIC_ASSOCIATION
from tests.support.associations import OTHER, signed
from tests.unit.harness.test_harness import FakeBus, FakeTerminal


def rig(**kw):
    clock = Clock()
    clock.advance(1_700_000_000)
    bus = FakeBus()
    h = Harness(bus, FakeTerminal(), clock, host_session_id="host-1", **kw)
    h.start()
    return clock, bus, h


def renewals(bus):
    return [(peer, p) for peer, t, p in bus.to_peer if t == TOPIC_ASSOCIATION]


def test_an_association_names_the_active_manager_and_brings_the_hints_and_a_token():
    clock, bus, h = rig()
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 3, private_beach_id="pb-1",
                                          idle_snapshot_interval_ms=20_000), "peer-a")
    fence = h.subscriber.fence
    assert (fence.manager, fence.epoch, fence.peer) == ("mgr-a", 3, "peer-a")
    keeper = h.association
    assert keeper.bridge_token and keeper.current.private_beach_id == "pb-1"
    assert h.publisher.idle_snapshot_interval == 20.0
    status = h.status()["association"]
    assert status["authority"] == keeper.pin.key_id and "bridge_token" not in status["association"]
    assert bus.audience() == {"peer-a"}  # manager frames go to it only from now on


def test_an_association_signed_by_another_authority_is_refused_and_changes_nothing():
    clock, bus, h = rig()
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 3), "peer-a")
    token = h.association.bridge_token
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-evil", 99, authority=OTHER), "peer-viewer")
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-evil", 99, host="host-9"), "peer-viewer")
    bus.deliver(TOPIC_ASSOCIATION, b"{junk", "peer-viewer")
    fence = h.subscriber.fence
    assert (fence.manager, fence.epoch, fence.peer) == ("mgr-a", 3, "peer-a")
    assert h.association.bridge_token == token
    assert h.association.pin.counts == {pa.ACCEPTED: 1, pa.OTHER_AUTHORITY: 1, pa.OTHER_HOST: 1}
    assert h.association.unparsable == 1
    # the same cluster's new owner (a failover) is accepted on its own transport
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-b", 4), "peer-b")
    assert (fence.manager, fence.epoch, fence.peer) == ("mgr-b", 4, "peer-b")
    # a former owner's (older epoch), even well signed, moves nothing
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 3), "peer-a")
    assert (fence.manager, fence.peer) == ("mgr-b", "peer-b")


def test_a_host_given_the_authority_refuses_even_a_first_association_signed_otherwise():
    from tests.support.associations import AUTHORITY

    clock, bus, h = rig(authority=AUTHORITY.authority.public_key)
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-x", 1, authority=OTHER), "peer-x")
    assert h.subscriber.fence.manager is None and bus.audience() is None
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 1), "peer-a")
    assert h.subscriber.fence.manager == "mgr-a"


def test_the_harness_asks_its_active_manager_for_a_new_token_at_two_thirds_of_its_life():
    clock, bus, h = rig()
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 3, ttl=90), "peer-a")
    first = h.association.bridge_token
    clock.advance(59)
    assert renewals(bus) == []
    clock.advance(1)
    [(peer, request)] = renewals(bus)
    assert peer == "peer-a" and request == {"type": "association_renew",
                                            "payload": {"bridge_token": first}}
    clock.advance(5)  # no answer yet: asked again
    assert len(renewals(bus)) == 2
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 3, ttl=90, now=1065), "peer-a")
    assert h.association.bridge_token != first
    clock.advance(30)
    assert len(renewals(bus)) == 2  # the fresh one is good for another 60 s
    h.stop()
    clock.advance(600)
    assert len(renewals(bus)) == 2


def test_an_agent_sends_its_hosts_bridge_token_and_waits_for_it():
    from beachmanager.harness.agent import AgentSettings
    from beachmanager.protocol import agent as ag

    class Idle:
        def started(self, agent): pass

        def on_state(self, agent, state): pass

        def on_ack(self, agent, ack): pass

    clock, bus, h = rig(agent=AgentSettings("target", "jwt"), driver=Idle())
    clock.advance(3)
    assert not [t for _, t, _ in bus.to_peer if t == ag.TOPIC_LEASE]  # no association yet
    bus.deliver(TOPIC_ASSOCIATION, signed("mgr-a", 1), "peer-a")
    clock.advance(1)
    [request] = [p for _, t, p in bus.to_peer if t == ag.TOPIC_LEASE]
    assert request["payload"]["bridge_token"] == h.association.bridge_token
    assert json.dumps(request).count("jwt") == 1
