"""Liveness over the data channel: the bus heartbeat between a manager and a host's harness.

aiortc notices a dead peer only after about 30 s (consent freshness) and its SCTP not at all
on an idle channel, so hot failover needs an application heartbeat.  On topic
``beach.manager.heartbeat`` (namespace ``manager``):

* manager -> harness, every interval (default 250 ms), from the active session and from every
  standby session: ``{"type": "heartbeat", "payload": {"seq", "manager_instance_id", "role",
  "epoch"}}`` (:class:`Ping`);
* harness -> that manager only: ``{"type": "heartbeat_reply", "payload": {"seq", "active",
  "epoch", "active_silent_ms"}}`` (:class:`Pong`): which manager the harness takes as active,
  at which epoch, and how long ago it last heard from it.

A manager whose host stops answering drops the transport after the timeout (default 1 s).  A
standby whose host reports the active manager silent past the timeout asks the assignment
store to take the host over (a compare-and-set that bumps the epoch): the host, not a guess,
tells the standby that the active one is gone, which also covers a partition between the
active manager and the host while both still reach Redis.

A host that never answers (an upstream Beach host without this harness) keeps the traffic
timeout of the attach machine; nothing here is required of it.

Sans-I/O: bytes and numbers in, values out.  :class:`ActiveWatch` is the harness's state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PING = "heartbeat"
PONG = "heartbeat_reply"
ROLES = ("active", "standby")
MAX_BYTES = 1024
MAX_SEQ = 2**63 - 1


class LivenessError(ValueError):
    """A heartbeat message that does not have the documented shape."""


@dataclass(frozen=True)
class Ping:
    seq: int
    manager_instance_id: str
    role: str
    epoch: int

    def to_json(self) -> bytes:
        return _dump(PING, {"seq": self.seq, "manager_instance_id": self.manager_instance_id,
                            "role": self.role, "epoch": self.epoch})


@dataclass(frozen=True)
class Pong:
    seq: int
    active: str | None  # the manager the harness takes as active (None: none yet)
    epoch: int
    active_silent_ms: int | None  # since the active manager was last heard (None: never)

    def to_json(self) -> bytes:
        return _dump(PONG, {"seq": self.seq, "active": self.active, "epoch": self.epoch,
                            "active_silent_ms": self.active_silent_ms})

    def reports_silent(self, owner: str, timeout: float) -> bool:
        """Whether this answer says that *owner*, the host's active manager, has been silent
        for at least *timeout* seconds."""
        return (self.active == owner and self.active_silent_ms is not None
                and self.active_silent_ms >= timeout * 1000)


def _dump(kind: str, payload: dict) -> bytes:
    return json.dumps({"type": kind, "payload": payload}, separators=(",", ":")).encode()


def _load(data: bytes, kind: str) -> dict:
    if len(data) > MAX_BYTES:
        raise LivenessError(f"{kind} message of {len(data)} bytes (at most {MAX_BYTES})")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise LivenessError(f"not JSON: {e}") from None
    if not isinstance(body, dict) or body.get("type") != kind:
        raise LivenessError(f"not a {kind} envelope")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise LivenessError(f"{kind} payload must be an object")
    return payload


def _uint(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_SEQ:
        raise LivenessError(f"{what} must be an unsigned integer, got {value!r}")
    return value


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise LivenessError(f"{what} must be a string of 1 to 256 characters")
    return value


def read_ping(data: bytes) -> Ping:
    p = _load(data, PING)
    role = p.get("role")
    if role not in ROLES:
        raise LivenessError(f"role must be one of {ROLES}, got {role!r}")
    return Ping(_uint(p.get("seq"), "seq"), _name(p.get("manager_instance_id"),
                                                   "manager_instance_id"), role,
                _uint(p.get("epoch"), "epoch"))


def read_pong(data: bytes) -> Pong:
    p = _load(data, PONG)
    active = p.get("active")
    silent = p.get("active_silent_ms")
    return Pong(_uint(p.get("seq"), "seq"),
                None if active is None else _name(active, "active"),
                _uint(p.get("epoch"), "epoch"),
                None if silent is None else _uint(silent, "active_silent_ms"))


def kind_of(data: bytes) -> str | None:
    """``heartbeat`` or ``heartbeat_reply`` (cheaply, for routing; None when neither)."""
    if b'"type":"heartbeat_reply"' in data[:64]:
        return PONG
    if b'"type":"heartbeat"' in data[:64]:
        return PING
    return None


class ActiveWatch:
    """The harness's view of its managers: when each peer was last heard, and the answer to a
    ping.  The active manager is the one the fence names (association or newest epoch);
    *peer* is the transport it speaks over.  At most *max_peers* peers are remembered."""

    def __init__(self, max_peers: int = 64) -> None:
        self.max_peers = max_peers
        self.heard: dict[str, float] = {}  # peer id -> seconds
        self.roles: dict[str, str] = {}  # peer id -> the role its last ping named
        self.active_peer: str | None = None
        self.pings = 0

    def heard_from(self, peer: str, now: float) -> None:
        if peer not in self.heard and len(self.heard) >= self.max_peers:
            oldest = min(self.heard, key=self.heard.__getitem__)
            del self.heard[oldest]
            self.roles.pop(oldest, None)
        self.heard[peer] = now

    def forget(self, peer: str) -> None:
        self.heard.pop(peer, None)
        self.roles.pop(peer, None)

    def manager_peers(self) -> set[str]:
        """Peers that ping as managers (active or standby)."""
        return set(self.roles)

    def answer(self, ping: Ping, peer: str, now: float, *, active: str | None,
               epoch: int) -> Pong:
        """Note the ping and answer it (the caller sends the answer to *peer* only)."""
        self.pings += 1
        self.heard_from(peer, now)
        self.roles[peer] = ping.role
        if ping.role == "active" and active == ping.manager_instance_id:
            self.active_peer = peer
        silent = None
        if self.active_peer is not None and self.active_peer in self.heard:
            silent = int((now - self.heard[self.active_peer]) * 1000)
        elif self.active_peer is not None:
            silent = MAX_SEQ  # its transport is gone and forgotten: silent for good
        return Pong(ping.seq, active, epoch, silent)


__all__ = ["ActiveWatch", "LivenessError", "Ping", "Pong", "kind_of", "read_ping", "read_pong"]
