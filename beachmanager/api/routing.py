"""Reads about a host that another manager instance owns: redirected to the owner.

The route table says where each route naming a host is answered (``answered_by``):

* ``ANYWHERE``: shared stores (leases, controller events, assignments, the action queue:
  a non-owner enqueues into the host's shared stream and its owner delivers);
* ``OWNER``: state that lives with the transport (an action's live status, the latest
  state and health, the transport and mirror views).  When another live instance owns the
  host, the guard (after authenticating the caller and checking its scope, once) answers
  ``307`` with ``Location`` on the owner and a JSON body naming it (``error_code``
  ``owned_elsewhere``).  A host held here, unowned, or owned by an instance that is not
  live is answered here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.web.http import Request

from .responses import json_body
from .route_table import OWNER, Route

if TYPE_CHECKING:
    from ..assign.service import AssignmentService

#: The instance that owns (answers for, delivers to) the host of a request.
OWNED_BY = b"x-beach-owned-by"


class OwnerRedirect:
    log = Logger()

    def __init__(self, assign: AssignmentService | None):
        self.assign = assign

    async def elsewhere(self, request: Request, row: Route, kwargs: dict[str, Any]) -> bytes | None:
        """The ``307`` answer when *row* is answered by the owner and that is another
        instance; None when the request is answered here."""
        svc = self.assign
        param = row.host_param
        if row.answered_by != OWNER or param is None or svc is None or svc.single_instance:
            return None
        host = kwargs.get(param)
        if not isinstance(host, str) or svc.owns(host):
            return None
        try:
            found = await svc.lookup(host)
            owner = found.owner if found is not None else None
            endpoint = await svc.endpoint_of(owner) if owner and owner != svc.instance_id else None
        except Exception as e:
            self.log.warn("routing: owner lookup for {host_session_id} failed ({error}); "
                          "answering here", host_session_id=host, error=str(e) or type(e).__name__)
            return None
        if not owner or owner == svc.instance_id or not endpoint:
            return None
        location = endpoint + request.uri.decode("utf-8", "replace")
        request.setHeader(b"location", location.encode())
        request.setHeader(OWNED_BY, owner.encode())
        return json_body(request, {
            "error": "temporary_redirect", "error_code": "owned_elsewhere",
            "message": f"host {host} is managed by {owner}; repeat the request there",
            "host_session_id": host, "manager_instance_id": owner, "endpoint": endpoint,
            "location": location}, 307)
