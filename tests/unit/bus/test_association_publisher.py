"""The manager's end of the association handshake: when it is sent, what it says, renewals."""

from __future__ import annotations

import json

from twisted.internet.task import Clock

from beachmanager.bus.association import AssociationPublisher
from beachmanager.bus.bus import HostBus, TopicTable
from beachmanager.bus.publisher import PUBLISHES
from beachmanager.protocol import association as pa
from beachmanager.protocol.extensions import TOPIC_ASSOCIATION
from beachmanager.protocol.session import SessionState
from beachmanager.transport.events import Role, SessionEvents
from tests.support.associations import AUTHORITY, OTHER


class Rig:
    def __init__(self):
        self.clock = Clock()
        self.clock.advance(5000)
        self.events = SessionEvents(self.clock.seconds)
        self.epochs: dict[str, int] = {}
        self.standby: dict[str, str] = {}
        self.beaches: dict[str, list[str]] = {}
        self.sent: list[tuple[str, pa.Association]] = []

        async def beaches_of(host):
            return self.beaches.get(host, [])

        def send(host, topic, payload):
            assert topic == TOPIC_ASSOCIATION
            self.sent.append((host, pa.read_association(payload)))
            return True

        self.pub = AssociationPublisher(
            self.clock, AUTHORITY, instance_id="mgr-a", manager_url=lambda: "http://mgr-a:8081",
            bridge_ttl=600, idle_snapshot_interval_ms=30000, events=self.events,
            beaches_of=beaches_of, epoch_of=self.epochs.get, code_hint_of=lambda h: "****7Q",
            standby_of=self.standby.get, send=send)

    def renew(self, host, token):
        bus = HostBus(host, TopicTable.merge(PUBLISHES))
        self.pub.watch(bus)
        bus.deliver("manager", TOPIC_ASSOCIATION, pa.renew_request(token))


def test_it_is_sent_when_the_active_session_is_ready_with_everything_the_harness_needs():
    r = Rig()
    r.epochs["h1"] = 4
    r.beaches["h1"] = ["pb-1"]
    r.standby["h1"] = "mgr-b"
    r.events.publish("h1", SessionState.READY, role=Role.STANDBY)
    assert r.sent == []  # a standby never associates
    r.events.publish("h1", SessionState.READY)  # promoted
    [(host, a)] = r.sent
    assert host == "h1" and pa.verify(a, AUTHORITY.authority.public_key)
    assert (a.manager_instance_id, a.epoch, a.private_beach_id, a.standby) == (
        "mgr-a", 4, "pb-1", ("mgr-b",))
    assert a.manager_url == "http://mgr-a:8081" and a.attach_code_hint == "****7Q"
    assert a.idle_snapshot_interval_ms == 30000 and a.bridge_token_expires_at_ms == 5_600_000
    claims = r.pub.check_bridge_token(a.bridge_token, "h1")
    assert claims.private_beach_id == "pb-1" and claims.issued_by == "mgr-a"


def test_changes_are_told_again_only_while_the_host_is_ready_here_and_held_at_an_epoch():
    r = Rig()
    r.pub.associate("h1")  # not ready, no epoch
    r.events.publish("h1", SessionState.READY)  # ready, but no epoch yet
    assert r.sent == []
    r.epochs["h1"] = 2
    r.pub.associate("h1")  # the epoch came (the hosts service calls this)
    r.beaches["h1"] = ["pb-9"]
    r.pub.associate("h1")  # linked to a private beach
    assert [(a.epoch, a.private_beach_id) for _, a in r.sent] == [(2, None), (2, "pb-9")]


def test_a_valid_renewal_over_the_hosts_own_transport_gets_a_fresh_association():
    r = Rig()
    r.epochs["h1"] = 1
    r.events.publish("h1", SessionState.READY)
    token = r.sent[-1][1].bridge_token
    r.clock.advance(400)
    r.renew("h1", token)
    assert len(r.sent) == 2 and r.sent[-1][1].bridge_token != token
    r.renew("h2", token)  # another host's token over this transport
    r.renew("h1", OTHER.issue("h1", None, r.clock.seconds(), 60, "mgr-x")[0])
    r.clock.advance(600)
    r.renew("h1", token)  # expired
    assert len(r.sent) == 2
    assert r.pub.counts == {"sent": 2, "renewed": 1, "invalid_bridge_token": 2,
                            "bridge_token_expired": 1}
    r.epochs.pop("h1")  # a standby session heard it: the owner answers, not this instance
    r.renew("h1", r.sent[-1][1].bridge_token)
    assert r.pub.counts["not_owner"] == 1 and len(r.sent) == 2
    assert json.loads(json.dumps(r.pub.status()))["authority"] == AUTHORITY.authority.key_id
