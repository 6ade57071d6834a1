"""The beach association handshake: what the active manager tells a host's harness.

When a host's active session becomes ready (or is promoted, or the host is linked to a private
beach, or its standby changes), the manager publishes one message on
``beach.manager.association`` (namespace ``manager``) with everything the harness needs to
interact, signed by the manager cluster's *authority* (an Ed25519 key every instance shares)::

    {"type": "association", "payload": {
        "host_session_id", "manager_instance_id", "epoch",
        "manager_url", "private_beach_id",          # null when the host is in no private beach
        "bridge_token", "bridge_token_expires_at_ms",
        "attach_code_hint",                          # never the code itself
        "idle_snapshot_interval_ms", "stale_session_idle_secs", "viewer_health_interval_secs",
        "managers": {"active": id, "standby": [id, ...]},
        "issued_at_ms",
        "authority": {"key_id", "public_key"},       # base64 of the raw 32-byte key
        "signature"}}                                # base64 Ed25519 over the canonical payload

The harness asks for a fresh bridge token before it expires, on the same topic and to its active
manager only: ``{"type": "association_renew", "payload": {"bridge_token"}}``; the manager checks
the token and answers with a new association.

:class:`AuthorityPin` is the harness's rule: it accepts an association only if it is signed by
the pinned authority (given at start, or the first valid association's: trust on first use) and
names this host; a second association signed by anyone else is refused and counted.

Sans-I/O: bytes and numbers in, values out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from . import fencing

ASSOCIATION = "association"
RENEW = "association_renew"
MAX_BYTES = 16 * 1024
MAX_ID = 256
MAX_TOKEN = 8192
MAX_EPOCH = fencing.MAX_EPOCH
MAX_STANDBYS = 8


class AssociationError(ValueError):
    """An association message that does not have the documented shape or signature."""


def key_id(public_key: bytes) -> str:
    """A short, stable name for an authority's public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def attach_code_hint(join_code: str | None) -> str | None:
    """What the harness may show of the join code it was attached with: its last two
    characters, never more (the code is a secret)."""
    if not join_code or len(join_code) < 6:
        return None
    return "*" * 4 + join_code[-2:]


@dataclass(frozen=True)
class Authority:
    key_id: str
    public_key: bytes  # raw 32 bytes

    def to_value(self) -> dict[str, str]:
        return {"key_id": self.key_id, "public_key": base64.b64encode(self.public_key).decode()}


@dataclass(frozen=True)
class Association:
    host_session_id: str
    manager_instance_id: str
    epoch: int
    manager_url: str | None = None
    private_beach_id: str | None = None
    bridge_token: str | None = None
    bridge_token_expires_at_ms: int | None = None
    attach_code_hint: str | None = None
    idle_snapshot_interval_ms: int | None = None
    stale_session_idle_secs: int | None = None
    viewer_health_interval_secs: int | None = None
    standby: tuple[str, ...] = ()
    issued_at_ms: int = 0
    authority: Authority | None = None
    signature: bytes = field(default=b"", repr=False)

    def body(self) -> dict[str, Any]:
        """The signed payload (every field but the signature)."""
        return {
            "host_session_id": self.host_session_id,
            "manager_instance_id": self.manager_instance_id, "epoch": self.epoch,
            "manager_url": self.manager_url, "private_beach_id": self.private_beach_id,
            "bridge_token": self.bridge_token,
            "bridge_token_expires_at_ms": self.bridge_token_expires_at_ms,
            "attach_code_hint": self.attach_code_hint,
            "idle_snapshot_interval_ms": self.idle_snapshot_interval_ms,
            "stale_session_idle_secs": self.stale_session_idle_secs,
            "viewer_health_interval_secs": self.viewer_health_interval_secs,
            "managers": {"active": self.manager_instance_id, "standby": list(self.standby)},
            "issued_at_ms": self.issued_at_ms,
            "authority": self.authority.to_value() if self.authority else None,
        }

    def signed_bytes(self) -> bytes:
        return canonical(self.body())

    def signed(self, authority: Authority, sign: Callable[[bytes], bytes]) -> Association:
        unsigned = replace(self, authority=authority, signature=b"")
        return replace(unsigned, signature=sign(unsigned.signed_bytes()))

    def to_json(self) -> bytes:
        payload = self.body()
        payload["signature"] = base64.b64encode(self.signature).decode()
        return json.dumps({"type": ASSOCIATION, "payload": payload},
                          separators=(",", ":")).encode()

    def describe(self) -> dict[str, Any]:
        """For status views and logs: no token, no signature."""
        out = self.body()
        out.pop("bridge_token")
        return out


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def verify(a: Association, public_key: bytes) -> bool:
    """Whether *a* is signed by *public_key* (and names that key as its authority)."""
    if a.authority is None or a.authority.public_key != public_key:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(a.signature, a.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


# -- reading ---------------------------------------------------------------------------------
def _load(data: bytes) -> tuple[str, dict[str, Any]]:
    if len(data) > MAX_BYTES:
        raise AssociationError(f"association message of {len(data)} bytes (at most {MAX_BYTES})")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise AssociationError(f"not JSON: {e}") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise AssociationError('an association message is {"type": ..., "payload": {...}}')
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise AssociationError("association payload must be an object")
    return body["type"], payload


def kind_of(data: bytes) -> str | None:
    """The envelope type of a message on the association topic (None: not one)."""
    try:
        return _load(data)[0]
    except AssociationError:
        return None


def _text(p: dict[str, Any], key: str, limit: int = MAX_ID, required: bool = False) -> str | None:
    value = p.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise AssociationError(f"{key} must be a string of 1 to {limit} characters")
    return value


def _count(p: dict[str, Any], key: str, maximum: int = MAX_EPOCH) -> int | None:
    value = p.get(key)
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= maximum:
        raise AssociationError(f"{key} must be a whole number of 0 to {maximum}")
    return value


def _b64(raw: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(raw, str) or len(raw) > 256:
        raise AssociationError(f"{what} must be base64 text")
    try:
        out = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise AssociationError(f"{what} is not base64") from None
    if size is not None and len(out) != size:
        raise AssociationError(f"{what} must be {size} bytes, got {len(out)}")
    return out


def read_association(data: bytes) -> Association:
    kind, p = _load(data)
    if kind != ASSOCIATION:
        raise AssociationError(f"not an association envelope ({kind!r})")
    epoch = _count(p, "epoch")
    if epoch is None:
        raise AssociationError("epoch is required")
    managers = p.get("managers")
    standby: tuple[str, ...] = ()
    if managers is not None:
        if not isinstance(managers, dict):
            raise AssociationError("managers must be an object")
        raw = managers.get("standby", [])
        if not isinstance(raw, list) or len(raw) > MAX_STANDBYS or not all(
                isinstance(s, str) and 0 < len(s) <= MAX_ID for s in raw):
            raise AssociationError(f"managers.standby must be a list of at most {MAX_STANDBYS} ids")
        standby = tuple(raw)
    authority = None
    if p.get("authority") is not None:
        a = p["authority"]
        if not isinstance(a, dict):
            raise AssociationError("authority must be an object")
        public = _b64(a.get("public_key"), "authority.public_key", 32)
        kid = _text(a, "key_id", 64, required=True)
        if kid != key_id(public):
            raise AssociationError("authority.key_id does not name its public key")
        authority = Authority(str(kid), public)
    signature = _b64(p.get("signature"), "signature", 64) if p.get("signature") else b""
    return Association(
        host_session_id=str(_text(p, "host_session_id", required=True)),
        manager_instance_id=str(_text(p, "manager_instance_id", required=True)),
        epoch=epoch, manager_url=_text(p, "manager_url", 2048),
        private_beach_id=_text(p, "private_beach_id"),
        bridge_token=_text(p, "bridge_token", MAX_TOKEN),
        bridge_token_expires_at_ms=_count(p, "bridge_token_expires_at_ms"),
        attach_code_hint=_text(p, "attach_code_hint", 64),
        idle_snapshot_interval_ms=_count(p, "idle_snapshot_interval_ms", 86_400_000),
        stale_session_idle_secs=_count(p, "stale_session_idle_secs", 86_400),
        viewer_health_interval_secs=_count(p, "viewer_health_interval_secs", 86_400),
        standby=standby, issued_at_ms=_count(p, "issued_at_ms") or 0, authority=authority,
        signature=signature)


def renew_request(bridge_token: str) -> bytes:
    return json.dumps({"type": RENEW, "payload": {"bridge_token": bridge_token}},
                      separators=(",", ":")).encode()


def read_renew_request(data: bytes) -> str:
    """The bridge token of a renewal request."""
    kind, p = _load(data)
    if kind != RENEW:
        raise AssociationError(f"not a renewal request ({kind!r})")
    return str(_text(p, "bridge_token", MAX_TOKEN, required=True))


# -- the harness's rule ------------------------------------------------------------------------
ACCEPTED = "accepted"
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad_signature"
OTHER_AUTHORITY = "other_authority"
OTHER_HOST = "other_host"


class AuthorityPin:
    """Which authority the harness trusts: the one given at start, else the first that signs a
    valid association (trust on first use).  Every later association must carry its
    signature; the outcome of each is counted by reason."""

    def __init__(self, pinned: bytes | None = None, host_session_id: str | None = None):
        self.pinned = pinned
        self.configured = pinned is not None
        self.host_session_id = host_session_id
        self.counts: dict[str, int] = {}

    def check(self, a: Association) -> str:
        """``accepted`` or the reason *a* is refused."""
        verdict = self._verdict(a)
        self.counts[verdict] = self.counts.get(verdict, 0) + 1
        return verdict

    def _verdict(self, a: Association) -> str:
        if a.authority is None or not a.signature:
            return UNSIGNED
        if self.host_session_id is not None and a.host_session_id != self.host_session_id:
            return OTHER_HOST
        if self.pinned is not None and a.authority.public_key != self.pinned:
            return OTHER_AUTHORITY
        if not verify(a, a.authority.public_key):
            return BAD_SIGNATURE
        self.pinned = a.authority.public_key
        return ACCEPTED

    @property
    def key_id(self) -> str | None:
        return key_id(self.pinned) if self.pinned is not None else None


__all__ = ["ACCEPTED", "ASSOCIATION", "BAD_SIGNATURE", "OTHER_AUTHORITY", "OTHER_HOST", "RENEW",
           "UNSIGNED", "Association", "AssociationError", "Authority", "AuthorityPin",
           "attach_code_hint", "canonical", "key_id", "kind_of", "read_association",
           "read_renew_request", "renew_request", "verify"]
