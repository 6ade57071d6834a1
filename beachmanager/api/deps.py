"""What the HTTP API is handed: every collaborator of the route modules, typed, built once.

``manager.build_manager`` constructs one :class:`ApiDeps` after the parts exist and passes
it to ``api.app.build_site``; each route module's ``install(app, deps)`` takes what it
needs from it.  Nothing is looked up by name at run time: a route that needs a part reads
the attribute, and a part that is absent in some wiring (no assignment service in a
single-part test) is ``None`` in the type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..assign.intake import HostIntake
    from ..assign.service import AssignmentService
    from ..auth.service import AuthService
    from ..context import ManagerContext
    from ..controller.leases import Leases
    from ..controller.service import ControllerService
    from ..ratelimit import RateLimits
    from ..registry.store import RegistryStore
    from ..transport.events import SessionEvents
    from ..transport.hosts import HostManager
    from .access import BeachAccess
    from .tenancy import SessionBeaches
    from .ui.hub import ConsoleHub


@dataclass(frozen=True)
class ApiDeps:
    ctx: ManagerContext
    #: ``(ready, {part name: status})`` of the whole service tree, for ``/readyz``.
    readiness: Callable[[], tuple[bool, dict[str, Any]]]
    auth: AuthService
    registry: RegistryStore
    leases: Leases
    session_beaches: SessionBeaches
    #: The membership check (the guard's and the agent gateway's).
    access: BeachAccess
    #: Token buckets of the write paths and of bad tokens (the guard's and the gateway's).
    limits: RateLimits
    hosts: HostManager | None = None
    events: SessionEvents | None = None
    controller: ControllerService | None = None
    assign: AssignmentService | None = None
    intake: HostIntake | None = None
    #: The operator console's live feed (``/ui/stream``).
    console: ConsoleHub | None = None
    #: ``{name: status}`` of each store connection (``/debug/info``).
    stores: Callable[[], dict[str, Any]] = dict
