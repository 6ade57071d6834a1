"""The devstack as real child processes (``twist beach-road-dev`` / ``beach-host-dev``)."""

from __future__ import annotations

import pytest_twisted
import treq

from beachmanager.devstack.process import DevProcessError, spawn_host, spawn_road
from beachmanager.protocol import frames
from tests.support.answerer import TestAnswerer


@pytest_twisted.ensureDeferred
async def test_road_and_host_processes_serve_a_peer():
    road = await spawn_road()
    host = peer = None
    try:
        assert road.url.startswith("http://127.0.0.1:")
        host = await spawn_host(road.url, command="/bin/sh -c 'echo proc-ok; exec cat'",
                                args=["--join-code", "PROC01", "--heartbeat-interval", "1"])
        info = host.info
        assert info["join_code"] == "PROC01" and info["road_url"] == road.url and info["schema"] == 2
        r = await treq.get(f"{road.url}/debug/sessions/{info['session_id']}/peers")
        assert [p["role"] for p in await r.json()] == ["server"]
        peer = await TestAnswerer.join(road.url, info["session_id"], "PROC01")
        await peer.wait_text("__offer_ready__")
        snap = await peer.wait_frame(frames.Snapshot)
        assert any("proc-ok" in "".join(chr(c >> 32) for c in getattr(u, "cells", ())) for u in snap.updates)
        await peer.wait_frame(frames.Heartbeat, where=lambda f: f.seq == 1, timeout=5)
    finally:
        if peer is not None:
            await peer.close()
        for proc in (host, road):
            if proc is not None:
                await proc.stop()
    assert not road.running and (host is None or not host.running)


@pytest_twisted.ensureDeferred
async def test_a_host_that_cannot_start_reports_why():
    try:
        await spawn_host("http://127.0.0.1:1", command="/bin/true")
    except DevProcessError as e:
        assert "beach-host-dev exited" in str(e)
    else:
        raise AssertionError("the host started without a Road")
