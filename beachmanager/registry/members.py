"""Private-beach membership records: roles, statuses and their order.

An account acts in a private beach as its owner (``private_beach.owner_account_id``) or
through an *active* membership; the role must reach the route's need.  The names are the
legacy manager's ``membership_role`` and ``membership_status`` values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Lowest to highest: each role may do what the ones before it may.
ROLES = ("viewer", "contributor", "admin", "owner")
VIEWER, CONTRIBUTOR, ADMIN, OWNER = ROLES
STATUSES = ("active", "invited", "suspended", "revoked")
ACTIVE = "active"


def rank(role: str | None) -> int:
    """0 for no role; 1 (viewer) to 4 (owner)."""
    return ROLES.index(role) + 1 if role in ROLES else 0


def reaches(role: str | None, need: str) -> bool:
    return rank(role) >= rank(need)


class BeachExists(Exception):
    """``create_beach`` of an id that is taken."""


@dataclass(frozen=True)
class Beach:
    id: str
    name: str | None
    owner_account_id: str | None
    created_by_account_id: str | None
    created_at_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "owner_account_id": self.owner_account_id,
                "created_at_ms": self.created_at_ms}


@dataclass(frozen=True)
class Member:
    private_beach_id: str
    account_id: str
    role: str
    status: str
    invited_by_account_id: str | None
    created_at_ms: int
    updated_at_ms: int

    def as_json(self) -> dict[str, Any]:
        return {"private_beach_id": self.private_beach_id, "account_id": self.account_id,
                "role": self.role, "status": self.status,
                "invited_by_account_id": self.invited_by_account_id,
                "created_at_ms": self.created_at_ms, "updated_at_ms": self.updated_at_ms}
