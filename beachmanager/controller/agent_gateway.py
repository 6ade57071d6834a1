"""Controller agents on the bus: the manager's end (:mod:`beachmanager.protocol.agent`).

An agent host's harness asks for a controller lease on a target host and publishes actions
for it over its own transport; :class:`AgentGateway` checks each message exactly as the REST
API checks a request and sends it down the same path:

* the JWT in the message is verified by the auth service and must carry ``pb:control.write``;
  the target's private beach is found as for ``/sessions/<id>/...`` (a token bound to another
  beach does not see the target);
* the bridge token in the message must be the cluster's, issued to the agent host the message
  came from (its association gave it); an agent host linked to a private beach drives hosts
  of that beach only (``wrong_private_beach``);
* a lease is taken with :class:`~beachmanager.controller.leases.Leases` (PostgreSQL or its
  twin), actions are checked against the lease and parsed by the REST parser, then submitted
  to the controller (the host's queue: backpressure, expiry, exactly-once all apply);
* every refusal is an ``error`` message to the agent naming the request, with the same codes
  as the API (``missing_scope``, ``session_not_found``, ``lease_expired``, ``invalid_action``,
  ``too_many_requests``...), counted in ``agent_messages_total{outcome}``.

The target's acks of the agent's actions and the target's states are forwarded to the agent
while its lease lives (acks only to the agent that sent the action).  Bounded: at most
:data:`MAX_INFLIGHT` messages of one agent in work at once (beyond: ``busy``), at most
:data:`MAX_WATCHERS` agents per target, :data:`MAX_IDS` remembered action ids.  A bad message
from one agent costs only that agent an error.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .._aio import background
from ..auth.bridge import BridgeClaims, BridgeTokenError
from ..auth.principal import AuthFailure, Principal
from ..bus.bus import BusMessage, HostBus
from ..protocol import agent as ag
from ..protocol import harness as hj
from ..protocol.extensions import NAMESPACE
from ..ratelimit import RateLimited, RateLimits
from ..registry.store import SessionNotFound, Tenant
from ..service import ReadyService
from .commands import CommandError, parse_command
from .leases import LeaseError, Leases
from .queue import QueueFull, QueueUnavailable

SCOPE = "pb:control.write"
MAX_INFLIGHT = 32
MAX_WATCHERS = 8
MAX_IDS = 8192

Authenticate = Callable[[str], Awaitable[Principal]]
TenantOf = Callable[[Principal, str, str | None], Awaitable[Tenant]]
Submit = Callable[..., Awaitable[Any]]
Send = Callable[[str, str, bytes], bool]
#: ``describe(target, action_id)``: the controller's view of one action (``GET
#: /sessions/:id/actions/:id``), or None.
Describe = Callable[[str, str], Awaitable[dict[str, Any] | None]]


class AgentGateway(ReadyService):
    log = Logger()

    def __init__(self, clock: IReactorTime, *, authenticate: Authenticate,
                 authorize: Callable[[Principal, str], None], tenant_of: TenantOf,
                 leases: Leases, submit: Submit, send: Send,
                 check_bridge_token: Callable[[str, str], BridgeClaims], metrics=None,
                 relay_factory: Callable[[], Any] | None = None,
                 describe: Describe | None = None, limits: RateLimits | None = None):
        """*relay_factory* makes the cross-instance relay (``agent_relay.py``) once the
        stores run; without it (one instance) events are forwarded locally only."""
        super().__init__("agents", clock)
        self._authenticate = authenticate
        self._authorize = authorize
        self._tenant_of = tenant_of
        self.leases = leases
        self._submit = submit
        self._describe = describe
        self._send = send
        self._check_bridge = check_bridge_token
        self.limits = limits
        self.metrics = metrics
        #: target -> agent host -> (controller token, lease expiry in ms)
        self.watchers: dict[str, OrderedDict[str, tuple[str, int]]] = {}
        #: (target, action id) -> the agent host that sent it
        self._ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._inflight: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._relay_factory = relay_factory
        self.relay: Any = None
        self._renew: LoopingCall | None = None

    def start(self) -> Deferred | None:
        if self._relay_factory is not None:
            self.relay = self._relay_factory()
            self.relay.start(self.remote_event)
            self._renew = LoopingCall(self._renew_watches)
            self._renew.clock = self.clock
            background(self._renew.start(1.0, now=False), "agent watch renewal", self.log)
        return None

    def stop(self) -> Deferred | None:
        if self._renew is not None and self._renew.running:
            self._renew.stop()
        if self.relay is not None:
            self.relay.stop()
        return None

    def _renew_watches(self) -> None:
        """Keep asking the owners of our agents' targets for their events (they expire)."""
        now = self._now_ms()
        for target, watchers in list(self.watchers.items()):
            if any(expires > now for _, expires in watchers.values()):
                self.relay.watch(target)

    # -- wiring ------------------------------------------------------------------------------
    def watch(self, bus: HostBus) -> None:
        """Hear agent messages on one host's bus (any host may be an agent)."""
        for topic in ag.FROM_AGENT:
            bus.subscribe(NAMESPACE, topic, self._message)

    def target_ack(self, target: str, ack: Any) -> None:
        """An ack of a target owned here (local agents get it; the relay, remote ones)."""
        remote = self.relay is not None and self.relay.watches(target)
        if not remote and not self._ids:
            return
        value = hj.to_value(ack)
        self._ack_to_agent(target, value)
        if remote:
            self.relay.relay(target, "ack", value)

    def target_state(self, target: str, state: Any) -> None:
        """A state of a target owned here (local agents get it; the relay, remote ones)."""
        remote = self.relay is not None and self.relay.watches(target)
        if not self.watchers.get(target) and not remote:
            return  # nobody watches this host: the common case costs a lookup or two
        value = hj.to_value(state)
        self._state_to_agents(target, value)
        if remote:
            self.relay.relay(target, "state", value)

    def remote_event(self, target: str, kind: str, value: Any) -> None:
        """An ack or state relayed from the target's owner (another instance)."""
        if kind == "ack":
            self._ack_to_agent(target, value)
        else:
            self._state_to_agents(target, value)

    def _ack_to_agent(self, target: str, value: Any) -> None:
        action_id = value.get("id") if isinstance(value, dict) else None
        agent = self._ids.pop((target, action_id), None) if isinstance(action_id, str) else None
        if agent is not None:
            self._forward(agent, ag.Forwarded("ack", target, value), ag.TOPIC_ACKS)

    def _state_to_agents(self, target: str, value: Any) -> None:
        watchers = self.watchers.get(target)
        if not watchers:
            return
        now = self._now_ms()
        payload = None
        for agent, (_, expires) in list(watchers.items()):
            if expires <= now:
                del watchers[agent]
                continue
            if payload is None:
                payload = ag.forwarded(ag.Forwarded("state", target, value))
            self._send(agent, ag.TOPIC_STATES, payload)
        if not watchers:
            self.watchers.pop(target, None)

    # -- messages ----------------------------------------------------------------------------
    def _message(self, m: BusMessage) -> None:
        agent = m.host_session_id
        if self._inflight.get(agent, 0) >= MAX_INFLIGHT:
            self._refuse(agent, ag.Refusal("busy", f"more than {MAX_INFLIGHT} requests of this "
                                           f"agent are in work; wait for their answers"))
            return
        self._inflight[agent] = self._inflight.get(agent, 0) + 1
        handle = self._lease if m.topic == ag.TOPIC_LEASE else self._actions
        d = ensureDeferred(self._guarded(agent, handle, m.payload))
        background(d, "agent message", self.log, host_session_id=agent)

    async def _guarded(self, agent: str, handle, payload: bytes) -> None:
        try:
            await handle(agent, payload)
            self._count("ok")
        except ag.AgentError as e:
            self._refuse(agent, ag.Refusal(e.code, str(e), e.request_id))
        except Refused as e:
            self._refuse(agent, e.refusal)
        except Exception as e:  # a store's refusal (unknown session...) or a fault: say so
            code = getattr(e, "code", None)
            if not isinstance(code, str):
                self.log.failure("agent {agent}: a request failed", agent=agent)
                code = "internal_error"
            self._refuse(agent, ag.Refusal(code, str(e) or type(e).__name__))
        finally:
            left = self._inflight.get(agent, 1) - 1
            if left > 0:
                self._inflight[agent] = left
            else:
                self._inflight.pop(agent, None)

    async def _checked(self, agent: str, r: ag.LeaseRequest | ag.ActionsRequest
                       ) -> tuple[Principal, Tenant]:
        target, rid, beach = r.target_session_id, r.request_id, r.private_beach_id
        beach = self._bridged_beach(agent, r.bridge_token, beach, target, rid)
        limits, who = self.limits, f"bus:{agent}"  # an agent's bad tokens spend its host's budget
        try:
            if limits is not None:
                limits.before_auth(who)
            try:
                principal = await self._authenticate(r.token)
            except AuthFailure as e:
                if limits is not None and e.status == 401:
                    limits.auth_failed(who)
                raise
            self._authorize(principal, SCOPE)
            tenant = await self._tenant_of(principal, target, beach)
            if limits is not None:
                limits.write(principal, tenant.private_beach_id)
        except RateLimited as e:
            raise Refused(ag.Refusal("rate_limited", str(e), rid, target,
                                     {"retry_after_seconds": e.retry_after})) from None
        except AuthFailure as e:
            raise Refused(ag.Refusal(e.reason, str(e), rid, target)) from None
        except Exception as e:  # the API's refusals (invalid id, unknown session...)
            code = getattr(e, "code", None) or getattr(e, "error_code", None)
            if code is None:
                raise
            raise Refused(ag.Refusal(str(code), getattr(e, "message", str(e)), rid,
                                     target)) from None
        return principal, tenant

    def _bridged_beach(self, agent: str, token: str | None, wanted: str | None, target: str,
                       rid: str) -> str | None:
        """The private beach the agent may act in: its bridge token's (if it names one)."""
        if token is None:
            raise Refused(ag.Refusal("missing_bridge_token", "agent messages carry the bridge "
                                     "token of the agent host's association", rid, target))
        try:
            claims = self._check_bridge(token, agent)
        except BridgeTokenError as e:
            raise Refused(ag.Refusal(e.code, e.message, rid, target)) from None
        bound = claims.private_beach_id
        if bound is None:
            return wanted
        if wanted not in (None, bound):
            raise Refused(ag.Refusal("wrong_private_beach", f"this agent's host is linked to "
                                     f"private beach {bound}; it drives hosts there only",
                                     rid, target))
        return bound

    async def _lease(self, agent: str, payload: bytes) -> None:
        r = ag.read_lease_request(payload)
        principal, tenant = await self._checked(agent, r)
        try:
            lease = await self.leases.acquire(tenant, r.target_session_id, principal.account_id,
                                              f"agent {agent}", r.ttl_ms)
        except SessionNotFound:
            raise Refused(ag.Refusal("session_not_found", "no such session", r.request_id,
                                     r.target_session_id)) from None
        self._watch(r.target_session_id, agent, lease.token, lease.expires_at_ms)
        self._send(agent, ag.TOPIC_LEASE, ag.lease(ag.Lease(
            r.request_id, r.target_session_id, lease.token, lease.expires_at_ms)))
        self.log.info("agent {agent} holds a controller lease on {target} until {expires}",
                      agent=agent, target=r.target_session_id, expires=lease.expires_at_ms)

    async def _actions(self, agent: str, payload: bytes) -> None:
        r = ag.read_actions(payload)
        target, rid = r.target_session_id, r.request_id
        _, tenant = await self._checked(agent, r)
        try:
            lease = await self.leases.check(tenant, target, r.controller_token)
        except LeaseError as e:
            raise Refused(ag.Refusal(e.code, e.message, rid, target)) from None
        try:
            commands = [parse_command(a, i) for i, a in enumerate(r.actions)]
        except CommandError as e:
            raise Refused(ag.Refusal("invalid_action", str(e), rid, target)) from None
        ids = [c["id"] for c in commands]
        if len(set(ids)) != len(ids):
            raise Refused(ag.Refusal("duplicate_action_id", "an action id appears twice in the "
                                     "message", rid, target))
        for action_id in ids:  # before the submit: an ack may come back at once
            self._remember(target, action_id, agent)
        try:
            done = await self._submit(target, commands, controller_token=r.controller_token,
                                      beach=tenant.private_beach_id)
        except QueueFull as e:
            raise Refused(ag.Refusal("too_many_requests", f"the target's action queue is full "
                                     f"({e.depth} of {e.bound})", rid, target,
                                     {"retry_after_seconds": e.retry_after})) from None
        except QueueUnavailable as e:
            raise Refused(ag.Refusal("queue_unavailable", str(e), rid, target)) from None
        self._watch(target, agent, r.controller_token, lease.expires_at_ms)
        for action_id in getattr(done, "duplicates", ()):
            await self._answer_repeat(target, action_id)

    async def _answer_repeat(self, target: str, action_id: str) -> None:
        """An id sent again (its ack never reached the agent: lost with a failed-over manager,
        say) whose action already finished: the agent gets that ack now, from the stored
        view, since no new one will come.  One still in work is acked when it finishes."""
        view = await self._describe(target, action_id) if self._describe is not None else None
        if view is None or view.get("status") != "acked":
            return
        acked_at = view.get("acked_at_ms")
        try:
            status = hj.AckStatus(view.get("ack_status") or "ok")
        except ValueError:
            status = hj.AckStatus.OK
        ack = hj.ActionAck(action_id, status,
                           hj.Timestamp.from_seconds((acked_at or self._now_ms()) / 1000),
                           view.get("host_latency_ms"), view.get("error_code"),
                           view.get("error_message"))
        self._ack_to_agent(target, hj.to_value(ack))

    # -- bookkeeping -------------------------------------------------------------------------
    def _watch(self, target: str, agent: str, token: str, expires_at_ms: int) -> None:
        watchers = self.watchers.setdefault(target, OrderedDict())
        watchers[agent] = (token, expires_at_ms)
        watchers.move_to_end(agent)
        while len(watchers) > MAX_WATCHERS:
            watchers.popitem(last=False)
        if self.relay is not None:
            self.relay.watch(target)

    def _remember(self, target: str, action_id: str, agent: str) -> None:
        self._ids[(target, action_id)] = agent
        self._ids.move_to_end((target, action_id))
        while len(self._ids) > MAX_IDS:
            self._ids.popitem(last=False)

    def _forward(self, agent: str, f: ag.Forwarded, topic: str) -> None:
        self._send(agent, topic, ag.forwarded(f))

    def _refuse(self, agent: str, r: ag.Refusal) -> None:
        self._count(r.code)
        self.log.info("agent {agent}: refused ({code}): {message}", agent=agent, code=r.code,
                      message=r.message)
        self._send(agent, ag.TOPIC_ERROR, ag.refusal(r))

    def _count(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if self.metrics is not None:
            self.metrics.agent_messages_total.labels(outcome=_metric_outcome(outcome)).inc()

    def _now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def status(self) -> dict[str, Any]:
        out = {**super().status(), "targets_watched": len(self.watchers),
               "remembered_ids": len(self._ids), "counts": dict(self.counts)}
        if self.relay is not None:
            out["relay"] = self.relay.status()
        return out


class Refused(Exception):
    def __init__(self, refusal: ag.Refusal):
        super().__init__(refusal.message)
        self.refusal = refusal


#: outcomes with a metric label of their own (others count as "refused")
_OUTCOMES = frozenset({"ok", "busy", "bad_message", "too_large", "missing_scope", "missing_token",
                       "malformed_token", "bad_signature", "expired", "unknown_kid",
                       "wrong_private_beach", "not_a_member", "insufficient_role",
                       "session_not_found", "missing_lease", "lease_expired",
                       "lease_revoked", "controller_mismatch", "invalid_action",
                       "too_many_requests", "rate_limited", "missing_bridge_token", "invalid_bridge_token",
                       "bridge_token_expired"})


def _metric_outcome(code: str) -> str:
    return code if code in _OUTCOMES else "refused"


__all__ = ["AgentGateway"]
