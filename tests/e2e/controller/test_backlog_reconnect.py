"""Reconnect with a backlog: the actions waiting when a host's transport drops go out as soon
as the redone transport is announced ready; no send is refused and nothing is dropped as
``not_connected`` (the session attaches its bus sender before it announces ``ready``).

Real parts: devstack Road, a devstack host (real shell on a PTY), the whole manager, REST.
"""

import pytest
import pytest_twisted
from twisted.internet import reactor

from beachmanager.transport.events import SessionState, ready_of

from .stack import acked, attach, host_lines, manager, marks, post, write

pytestmark = pytest.mark.slow


def dropped_not_connected(mgr) -> float:
    reg = mgr.metrics.registry
    return sum(s.value for m in reg.collect() if m.name == "extension_dropped"
               for s in m.samples if s.name == "extension_dropped_total"
               and s.labels.get("reason") == "not_connected")


@pytest_twisted.ensureDeferred
async def test_a_backlog_flows_on_reconnect_without_a_refused_send(road, start_host):
    host = await start_host()
    # one action in flight at a time and a long ack wait, so that most of them are waiting in
    # the lane (not in flight) when the transport drops
    mgr = await manager(road.url, action_inflight_window=1, action_ack_timeout=30.0)
    try:
        token = await attach(mgr, host)
        hid = host.session_id
        events = mgr.parts.events
        engine = mgr.parts.controller.engine
        changes = []
        events.subscribe(lambda c: changes.append(c.new) if c.host_session_id == hid else None)

        ids = [f"B-{i}" for i in range(40)]
        r = await post(mgr, hid, token, [write(i, "B") for i in range(40)])
        assert r.status == 200 and r.body["enqueued"] == ids
        assert engine.lanes[hid].waiting  # a backlog exists

        lost = events.wait_for(lambda c: c.host_session_id == hid and c.was_ready, current=False)
        (peer,) = host.host.serving_peers()
        await peer.close("test: the host drops the manager's transport")
        await lost.addTimeout(10, reactor)
        back = events.wait_for(ready_of(hid), current=False)
        await back.addTimeout(30, reactor)

        views = await acked(mgr, hid, ids, timeout=60)
        assert {v["ack_status"] for v in views.values()} == {"ok"}
        assert dropped_not_connected(mgr) == 0  # the announcement found the sender in place
        assert engine.counters["backpressure"] == 0
        assert changes.count(SessionState.READY) == 1  # the redo: ready once, not flapping
        seen = marks(host_lines(host), "B")
        assert all(seen[i] == 1 for i in range(40)), seen  # each applied once
    finally:
        await mgr.stop()
