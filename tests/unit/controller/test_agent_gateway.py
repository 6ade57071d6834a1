"""The manager's end of the agent topics, with fakes for auth, tenancy, leases and the queue."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from beachmanager.auth.bridge import AssociationAuthority
from beachmanager.auth.principal import AuthFailure, Principal
from beachmanager.bus.bus import BusMessage
from beachmanager.controller.agent_gateway import MAX_INFLIGHT, AgentGateway
from beachmanager.controller.leases import LeaseError
from beachmanager.controller.queue import QueueFull
from beachmanager.controller.service import Submitted
from beachmanager.protocol import agent as ag
from beachmanager.protocol import harness as hj
from beachmanager.registry.store import Tenant


class FakeLease:
    def __init__(self, token="ctl-1", expires_at_ms=10_000_000):
        self.token, self.expires_at_ms = token, expires_at_ms


class FakeLeases:
    def __init__(self):
        self.acquired, self.refuse = [], None

    def acquire(self, tenant, host, account, reason, ttl):
        self.acquired.append((tenant, host, account, reason, ttl))
        return succeed(FakeLease())

    def check(self, tenant, host, token):
        if self.refuse:
            raise LeaseError(self.refuse, "the lease expired")
        return succeed(FakeLease(token))


class Rig:
    def __init__(self, scopes=frozenset({"pb:control.write"})):
        self.clock = Clock()
        self.sent: list[tuple[str, str, dict]] = []
        self.submitted: list[tuple[str, list, dict]] = []
        self.leases = FakeLeases()
        self.hold: Deferred | None = None
        self.submit_error: Exception | None = None
        principal = Principal("user", "acct-1", scopes, "beach-gate")

        async def authenticate(token):
            if token == "bad":
                raise AuthFailure("bad_signature", "the token does not verify")
            return principal

        def authorize(p, scope):
            if not p.allows(scope):
                raise AuthFailure("missing_scope", f"needs {scope}", scope=scope)

        self.wanted: list[str | None] = []

        async def tenant_of(p, session, wanted):
            self.wanted.append(wanted)
            return Tenant("pb-1", p.account_id)

        self.done: dict[str, dict] = {}  # action id -> its finished view (a repeat)

        async def submit(target, commands, *, controller_token, beach):
            if self.hold is not None:
                await self.hold
            if self.submit_error is not None:
                raise self.submit_error
            self.submitted.append((target, commands, {"controller_token": controller_token,
                                                      "beach": beach}))
            return Submitted([c["id"] for c in commands],
                             [c["id"] for c in commands if c["id"] not in self.done],
                             [c["id"] for c in commands if c["id"] in self.done], 0)

        async def describe(target, action_id):
            return self.done.get(action_id)

        def send(host, topic, payload):
            self.sent.append((host, topic, json.loads(payload)))
            return True

        self.gw = AgentGateway(self.clock, authenticate=authenticate, authorize=authorize,
                               tenant_of=tenant_of, leases=self.leases, submit=submit, send=send,
                               check_bridge_token=lambda token, host: AUTHORITY.check(
                                   token, host, self.clock.seconds()), describe=describe)

    def hear(self, agent, topic, payload):
        self.gw._message(BusMessage(agent, "manager", topic, payload, "control_ordered"))

    def errors(self):
        return [p["payload"] for _, t, p in self.sent if t == ag.TOPIC_ERROR]


AUTHORITY = AssociationAuthority(b"\x07" * 32)


def bridge(host="agent-1", beach=None, authority=AUTHORITY, ttl=900.0):
    """The bridge token an association gave *host* (issued at clock time 0)."""
    return authority.issue(host, beach, 0.0, ttl, "mgr-a")[0]


def lease_req(token="jwt", rid="l1", bridge_token=None, beach=None):
    return ag.lease_request(ag.LeaseRequest(rid, "target", token, beach,
                                            bridge_token=bridge_token or bridge()))


def actions(ids, token="jwt", rid="a1", agent="agent-1"):
    acts = tuple({"id": i, "action_type": "terminal_write", "payload": {"bytes": "x"}} for i in ids)
    return ag.actions_request(ag.ActionsRequest(rid, "target", token, "ctl-1", acts,
                                                bridge_token=bridge(agent)))


def test_a_lease_then_actions_go_down_the_controllers_path_and_acks_come_back_to_the_sender():
    r = Rig()
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req())
    [(host, topic, lease)] = r.sent
    assert (host, topic, lease["type"]) == ("agent-1", ag.TOPIC_LEASE, "lease")
    assert lease["payload"]["controller_token"] == "ctl-1"
    assert r.leases.acquired[0][1:4] == ("target", "acct-1", "agent agent-1")
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["x1", "x2"]))
    [(target, commands, kw)] = r.submitted
    assert target == "target" and [c["id"] for c in commands] == ["x1", "x2"]
    assert kw == {"controller_token": "ctl-1", "beach": "pb-1"}
    ack = hj.ActionAck(id="x1", status=hj.AckStatus.OK, applied_at=hj.Timestamp(1, 0))
    r.gw.target_ack("target", ack)
    r.gw.target_ack("target", hj.ActionAck(id="someone-else", status=hj.AckStatus.OK,
                                           applied_at=hj.Timestamp(1, 0)))
    acks = [p for h, t, p in r.sent if t == ag.TOPIC_ACKS]
    assert len(acks) == 1 and acks[0]["payload"]["ack"]["id"] == "x1"
    r.gw.target_state("target", hj.StateDiff(sequence=3, emitted_at=hj.Timestamp(1, 0),
                                             payload={"type": "terminal_full"}))
    states = [(h, p) for h, t, p in r.sent if t == ag.TOPIC_STATES]
    assert states and states[0][0] == "agent-1"
    assert r.gw.counts == {"ok": 2}


def test_refusals_name_their_request_with_the_apis_codes():
    r = Rig(scopes=frozenset({"pb:control.read"}))
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l-scope"))
    assert r.errors()[-1]["code"] == "missing_scope" and r.errors()[-1]["request_id"] == "l-scope"
    r = Rig()
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(token="bad"))
    assert r.errors()[-1]["code"] == "bad_signature"
    r.leases.refuse = "lease_expired"
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["y"]))
    assert r.errors()[-1]["code"] == "lease_expired" and not r.submitted
    r.leases.refuse = None
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["dup", "dup"]))
    assert r.errors()[-1]["code"] == "duplicate_action_id"
    bad = ag.actions_request(ag.ActionsRequest("a9", "target", "jwt", "ctl-1", ({"id": "z"},),
                                               bridge_token=bridge()))
    r.hear("agent-1", ag.TOPIC_ACTIONS, bad)
    assert r.errors()[-1]["code"] == "invalid_action"
    r.submit_error = QueueFull("target", 500, 500, 1, retry_after=2.0)
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["q"]))
    assert r.errors()[-1]["code"] == "too_many_requests"
    assert r.errors()[-1]["retry_after_seconds"] == 2.0
    r.hear("agent-1", ag.TOPIC_LEASE, b"{junk")
    assert r.errors()[-1]["code"] == "bad_message"


def test_one_agent_cannot_hold_more_than_its_share_of_work():
    r = Rig()
    r.hold = Deferred()
    for i in range(MAX_INFLIGHT + 3):
        r.hear("greedy", ag.TOPIC_ACTIONS, actions([f"g{i}"], rid=f"r{i}", agent="greedy"))
    assert [e["code"] for e in r.errors()] == ["busy"] * 3
    r.hear("polite", ag.TOPIC_ACTIONS, actions(["p1"], agent="polite"))  # another agent is not affected
    assert len(r.errors()) == 3
    r.hold.callback(None)
    assert len(r.submitted) == MAX_INFLIGHT + 1


def test_the_bridge_token_names_the_agent_host_and_binds_it_to_its_private_beach():
    r = Rig()
    r.hear("agent-1", ag.TOPIC_LEASE,
           ag.lease_request(ag.LeaseRequest("l-none", "target", "jwt")))  # no bridge token
    assert r.errors()[-1]["code"] == "missing_bridge_token"
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l-other", bridge_token=bridge("agent-2")))
    assert r.errors()[-1]["code"] == "invalid_bridge_token"  # another host's token
    other = AssociationAuthority(b"\x08" * 32)
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l-key", bridge_token=bridge(authority=other)))
    assert r.errors()[-1]["code"] == "invalid_bridge_token"  # not this cluster's
    r.clock.advance(120)
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l-old", bridge_token=bridge(ttl=60)))
    assert r.errors()[-1]["code"] == "bridge_token_expired"
    assert not r.leases.acquired and r.wanted == []  # none of them reached auth or tenancy
    # an agent host linked to a private beach drives hosts of that beach only
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l-pb", bridge_token=bridge(beach="pb-9"),
                                                beach="pb-1"))
    assert r.errors()[-1]["code"] == "wrong_private_beach"
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l-ok", bridge_token=bridge(beach="pb-9")))
    assert r.wanted == ["pb-9"] and len(r.leases.acquired) == 1


def test_an_id_sent_again_after_its_action_finished_gets_that_ack_from_the_stored_view():
    """The ack of a finished action was lost (its manager died before forwarding it); the
    agent sends the id again: a duplicate, and no new ack will ever come, so the gateway
    answers from the controller's view of the action."""
    r = Rig()
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req())
    r.done["x1"] = {"action_id": "x1", "status": "acked", "ack_status": "ok",
                    "acked_at_ms": 1_700_000_000_000}
    r.done["x3"] = {"action_id": "x3", "status": "delivered"}  # still in work: acked later
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["x1", "x2", "x3"]))
    acks = [p["payload"]["ack"] for h, t, p in r.sent if t == ag.TOPIC_ACKS]
    assert [a["id"] for a in acks] == ["x1"] and acks[0]["status"] == "ok"
    assert acks[0]["applied_at"]["secs_since_epoch"] == 1_700_000_000
    r.gw.target_ack("target", hj.ActionAck(id="x3", status=hj.AckStatus.OK,
                                           applied_at=hj.Timestamp(1, 0)))
    assert [p["payload"]["ack"]["id"] for h, t, p in r.sent if t == ag.TOPIC_ACKS] == ["x1", "x3"]


def test_an_agent_acts_only_where_its_account_is_a_contributor():
    """The bus takes the REST path's membership check (api/access.py), not a fake."""
    from prometheus_client import CollectorRegistry

    from beachmanager import config
    from beachmanager.api.access import BeachAccess, MemberRoles
    from beachmanager.api.tenancy import SessionBeaches
    from beachmanager.auth.service import AuthService
    from beachmanager.registry.join_codes import JoinCodeCipher, JoinCodeKeys
    from beachmanager.registry.memory import MemoryStore
    from beachmanager.registry.store import Op, SessionRegistration
    from beachmanager.telemetry.metrics import Metrics

    r = Rig()
    store = MemoryStore(JoinCodeCipher(JoinCodeKeys.generate()))
    store.create_beach(Tenant("pb-1", "acct-owner"), None, 0)
    store.register_session(Tenant("pb-1", "acct-owner"), SessionRegistration("target"), Op.new(), 0)
    metrics = Metrics(CollectorRegistry())
    auth = AuthService(config.defaults(), None, r.clock, metrics, fetch=lambda url: None)
    access = BeachAccess(auth, SessionBeaches(store, r.clock), MemberRoles(store, r.clock))
    r.gw._tenant_of = lambda p, s, w: access.in_session(p, s, w, "contributor", "bus:agent")

    def refused(reason):
        return metrics.registry.get_sample_value("auth_failure_total", {"reason": reason})

    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l-stranger"))
    assert (r.errors()[-1]["code"], r.errors()[-1]["request_id"]) == ("not_a_member", "l-stranger")
    assert refused("not_a_member") == 1 and not r.leases.acquired
    store.put_member(Tenant("pb-1", "acct-owner"), "acct-1", "viewer", "active", 1)
    access.roles.forget("pb-1", "acct-1")
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l-viewer"))
    assert r.errors()[-1]["code"] == "insufficient_role" and refused("insufficient_role") == 1
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["v1"]))
    assert r.errors()[-1]["code"] == "insufficient_role" and not r.submitted
    store.put_member(Tenant("pb-1", "acct-owner"), "acct-1", "contributor", "active", 2)
    access.roles.forget("pb-1", "acct-1")
    errors = len(r.errors())
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l-member"))
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["c1"]))
    assert len(r.errors()) == errors and [c["id"] for c in r.submitted[0][1]] == ["c1"]
    assert r.leases.acquired[0][0] == Tenant("pb-1", "acct-1")


def test_agent_messages_spend_the_accounts_write_budget():
    from beachmanager import config
    from beachmanager.ratelimit import RateLimits

    r = Rig()
    r.gw.limits = RateLimits(r.clock, config.defaults(rate_limit_account=1.0,
                                                     rate_limit_account_burst=2))
    r.hear("agent-1", ag.TOPIC_LEASE, lease_req(rid="l1"))
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["z1"]))
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["z2"], rid="a-over"))
    error = r.errors()[-1]
    assert (error["code"], error["request_id"]) == ("rate_limited", "a-over")
    assert error["retry_after_seconds"] == 1 and len(r.submitted) == 1
    r.clock.advance(1)
    r.hear("agent-1", ag.TOPIC_ACTIONS, actions(["z3"]))
    assert len(r.submitted) == 2
