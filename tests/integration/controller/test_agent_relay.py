"""The agent relay on real Redis: an instance that watches a target gets its owner's acks and
states through its inbox stream; nobody else does, and an owner never relays to itself."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor

from beachmanager.controller.agent_relay import AgentRelay
from beachmanager.registry.redis_conn import connect
from tests.support.eventually import eventually
from tests.support.servers import MACHINE_REDIS, redis_prefix


@pytest_twisted.ensureDeferred
async def test_a_watching_instance_gets_the_owners_events_and_nobody_else_does():
    prefix = redis_prefix()
    conns = [connect(MACHINE_REDIS) for _ in range(6)]
    heard: dict[str, list] = {"agent-side": [], "owner": [], "bystander": []}
    relays = {}
    for i, name in enumerate(heard):
        relay = AgentRelay(conns[2 * i], connect(MACHINE_REDIS, blocking=True), reactor, name,
                           prefix=prefix)
        relays[name] = relay
        relay.start(lambda t, k, v, name=name: heard[name].append((t, k, v)))
    try:
        relays["agent-side"].watch("target-1")
        owner = relays["owner"]
        await eventually(lambda: owner.watches("target-1"), what="the watch seen by the owner")
        owner.relay("target-1", "ack", {"id": "a1", "status": "ok"})
        owner.relay("target-1", "state", {"sequence": 3})
        owner.relay("target-2", "state", {"sequence": 9})  # nobody watches it: not relayed
        await eventually(lambda: len(heard["agent-side"]) == 2, what="the relayed events")
        assert heard["agent-side"] == [("target-1", "ack", {"id": "a1", "status": "ok"}),
                                       ("target-1", "state", {"sequence": 3})]
        # the agent's own instance owning the target would not relay to itself
        relays["agent-side"].relay("target-1", "state", {"sequence": 4})
        assert heard["owner"] == [] and heard["bystander"] == []
        assert owner.status()["relayed"] == 2
    finally:
        for relay in relays.values():
            relay.stop()
        keys = await conns[0].keys(prefix + "*")
        if keys:
            await conns[0].delete(keys)
        for relay in relays.values():
            await relay.blocking.disconnect()
        for c in conns:
            await c.disconnect()
