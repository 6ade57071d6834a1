"""Signed association messages for tests (the manager cluster's key is a fixed seed here)."""

from __future__ import annotations

from beachmanager.auth.bridge import AssociationAuthority
from beachmanager.protocol.association import Association

AUTHORITY = AssociationAuthority(b"\x01" * 32)
OTHER = AssociationAuthority(b"\x02" * 32)


def signed(manager: str, epoch: int, host: str = "host-1",
           authority: AssociationAuthority = AUTHORITY, now: float = 1000.0,
           ttl: float = 900.0, **fields) -> bytes:
    """The wire bytes of an association from *manager* at *epoch*, signed by *authority*."""
    token, expires_ms = authority.issue(host, fields.get("private_beach_id"), now, ttl, manager)
    a = Association(host_session_id=host, manager_instance_id=manager, epoch=epoch,
                    bridge_token=token, bridge_token_expires_at_ms=expires_ms,
                    issued_at_ms=int(now * 1000), **fields)
    return a.signed(authority.authority, authority.sign).to_json()
