"""What the console shows, as JSON: built from the manager's parts, bounded in size.

:func:`cluster_part` reads the shared assignment store (members, owners, moves; the body of
``/debug/assignments``); :func:`local_part` reads this instance's memory only (transports,
queues, last acks, the session stream's recent changes, refusal counts); :func:`merge` joins
them into one row per host.  :func:`host_detail` is one host's phase timeline and mirrored terminal.

Bounds: at most :data:`HOSTS_IN_VIEW` host rows (``truncated`` says when more exist),
:data:`CHANGES_IN_VIEW` session changes, the store's 50 latest moves, and a terminal of at
most :data:`TERMINAL_ROWS` rows of :data:`TERMINAL_COLS` characters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...assign.model import AssignmentUnavailable
from ..assignments import cluster_view

if TYPE_CHECKING:
    from ...assign.service import AssignmentService
    from ...context import ManagerContext
    from ...controller.delivery import FinalAck
    from ...controller.service import ControllerService
    from ...transport.events import SessionChange, SessionEvents
    from ...transport.hosts import HostManager
    from ...transport.session import HostSession

HOSTS_IN_VIEW = 500
CHANGES_IN_VIEW = 50
TERMINAL_ROWS = 200
TERMINAL_COLS = 512


@dataclass(frozen=True)
class ConsoleSource:
    """The parts the console reads (any but *ctx* and *events* may be absent in a test)."""

    ctx: ManagerContext
    events: SessionEvents
    hosts: HostManager | None = None
    controller: ControllerService | None = None
    assign: AssignmentService | None = None


def ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def ack_view(final: FinalAck) -> dict[str, Any]:
    """A host's last finished action, as the host table shows it."""
    return {"action_id": final.action.action_id, "status": final.status,
            "at_ms": ms(final.acked_at), "latency_ms": round(final.latency * 1000, 1),
            "error_code": final.error_code}


def change_view(c: SessionChange) -> dict[str, Any]:
    return {"seq": c.seq, "host_session_id": c.host_session_id,
            "old": c.old.value if c.old else None, "new": c.new.value, "role": c.role.value,
            "at_ms": ms(c.at), "reason": c.reason, "removed": c.removed}


async def cluster_part(src: ConsoleSource) -> dict[str, Any]:
    """Members, owners and moves from the shared store; ``{"error": ...}`` when it is away."""
    svc = src.assign
    if svc is None or svc.store is None:
        return {"error": "the assignment service is not running yet"}
    try:
        return await cluster_view(svc, HOSTS_IN_VIEW, read=HOSTS_IN_VIEW + 1)
    except AssignmentUnavailable as e:
        return {"error": str(e) or "the assignment store did not answer"}


def rtc_ready_seconds(m: HostSession) -> float | None:
    """The attach-to-ready time of the host's latest ready transport (from its timeline)."""
    for entry in reversed(m.timeline):
        if entry.get("phase") == "ready" and entry.get("status") == "ok":
            value = entry.get("rtc_ready_seconds")
            return value if isinstance(value, int | float) else None
    return None


def local_part(src: ConsoleSource, last_acks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """This instance's view of the hosts it holds a session to (active or standby)."""
    rows: dict[str, dict[str, Any]] = {}
    hosts, controller = src.hosts, src.controller
    engine = controller.engine if controller is not None else None
    if hosts is not None:
        for host_id, m in list(hosts.machines.items()):
            error = m.last_error or {}
            rows[host_id] = {
                "status": m.state.value, "role": m.role.value, "phase": m.phase,
                "attempts": m.attempts, "reconnects": m.reconnects,
                "ready_since_ms": ms(m.ready_at) if m.state.value == "ready" else None,
                "rtc_ready_seconds": rtc_ready_seconds(m),
                "last_error": ({"phase": error.get("phase"), "reason": error.get("reason")}
                               if error else None),
                "queue_depth": engine.depth(host_id) if engine is not None else None,
                "epoch_here": hosts.epoch_of(host_id),
                "last_ack": last_acks.get(host_id),
            }
    changes = [change_view(c) for c in reversed(src.events.recent(CHANGES_IN_VIEW))]
    return {"hosts": rows, "counts": src.events.counts(), "changes": changes}


def instance_part(src: ConsoleSource) -> dict[str, Any]:
    cfg = src.ctx.config
    return {"id": cfg.instance_id, "impl": cfg.impl, "version": src.ctx.version,
            "capacity": cfg.capacity, "started_at_ms": ms(src.ctx.started_at),
            "stores": cfg.stores}


def refusals(src: ConsoleSource) -> dict[str, int]:
    """What this instance refused since it started (non-zero counts only): hosts refused at
    capacity, actions refused for a stale epoch or by load shedding, requests refused by
    reason."""
    registry = src.ctx.metrics.registry
    out: dict[str, int] = {}
    for name, label in (("assignment_refused_total", "hosts refused (every instance full)"),
                        ("fenced_actions_total", "actions fenced (stale epoch)")):
        value = registry.get_sample_value(name) or 0
        if value:
            out[label] = int(value)
    for metric in registry.collect():
        if metric.name == "auth_failure":
            for sample in metric.samples:
                if sample.name == "auth_failure_total" and sample.value:
                    out[f"requests refused: {sample.labels['reason']}"] = int(sample.value)
        elif metric.name == "actions_refused":  # load shedding
            for sample in metric.samples:
                if sample.name == "actions_refused_total" and sample.value:
                    out[f"actions refused: {sample.labels['reason']}"] = int(sample.value)
    return out


def merge(src: ConsoleSource, cluster: dict[str, Any], local: dict[str, Any]) -> dict[str, Any]:
    """One row per host: the owner's record from the store beside this instance's session."""
    me = src.ctx.config.instance_id
    here: dict[str, dict[str, Any]] = local["hosts"]
    rows: dict[str, dict[str, Any]] = {}
    for item in cluster.get("hosts", []):
        host_id = item["host_session_id"]
        rows[host_id] = {"host_session_id": host_id, "owner": item.get("manager_instance_id"),
                         "standby": item.get("standby"), "epoch": item.get("epoch"),
                         "assigned_ready": item.get("ready"), "reason": item.get("reason"),
                         "assigned_at_ms": item.get("assigned_at_ms")}
    for host_id, session in here.items():
        row = rows.setdefault(host_id, {"host_session_id": host_id, "owner": None,
                                        "standby": None, "epoch": None})
        row.update(session, here=True)
        if row["epoch"] is None:
            row["epoch"] = session["epoch_here"]
    hosts = [rows[h] for h in sorted(rows)][:HOSTS_IN_VIEW]
    for row in hosts:
        row.setdefault("here", False)
        row.pop("epoch_here", None)
    instance = instance_part(src)
    instance.update({k: cluster.get(k) for k in ("state", "owned", "store", "standby_for")})
    return {
        "instance": instance,
        "members": cluster.get("members", []),
        "hosts": hosts,
        "hosts_total": max(len(rows), cluster.get("hosts_total", 0)),
        "truncated": len(rows) > HOSTS_IN_VIEW or bool(cluster.get("truncated")),
        "counts": local["counts"],
        "moves": cluster.get("recent_moves", []),
        "failovers": cluster.get("recent_failovers", []),
        "changes": local["changes"],
        "refusals": refusals(src),
        "cluster_error": cluster.get("error"),
        "this_instance": me,
    }


def host_detail(src: ConsoleSource, host_id: str, owner: str | None) -> dict[str, Any]:
    """One host's transport, phase timeline and terminal mirror (never payloads).  For a host
    without a session here, who owns it (its console is at the owner's endpoint)."""
    m = src.hosts.get(host_id) if src.hosts is not None else None
    if m is None:
        return {"host_session_id": host_id, "here": False, "owner": owner,
                "message": f"host {host_id} has no session on this instance"
                           + (f"; {owner} owns it" if owner else "")}
    a = m.current
    mirror = m.mirror
    rows = [r[:TERMINAL_COLS] for r in mirror.viewport()[-TERMINAL_ROWS:]]
    cursor = mirror.cursor
    end = mirror.last_row
    first = (end - len(rows) + 1) if end is not None else 0
    cursor_at = None
    if cursor is not None and cursor.visible and first <= cursor.row <= first + len(rows) - 1:
        cursor_at = {"line": cursor.row - first, "col": cursor.col}
    return {
        "host_session_id": host_id, "here": True, "owner": owner,
        "status": m.state.value, "role": m.role.value, "phase": m.phase,
        "attempts": m.attempts, "reconnects": m.reconnects,
        "transport_id": a.transport_id if a else None,
        "peer_session_id": a.peer_session_id if a else None,
        "ready_since_ms": ms(m.ready_at) if m.state.value == "ready" else None,
        "last_error": m.last_error,
        "ice_pair": a.peer.selected_pair() if a and a.peer else None,
        "timeline": list(m.timeline),
        "terminal": {"rows": rows, "cols": mirror.cols, "in_sync": mirror.in_sync,
                     "version": mirror.version, "cursor": cursor_at},
    }
