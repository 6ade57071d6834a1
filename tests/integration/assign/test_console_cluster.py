"""The console of one of two managers sharing a private Redis: both members, every host's owner
from the shared store beside the sessions this instance holds, and a host owned by the other
instance named with its owner."""

from __future__ import annotations

import json

import pytest_twisted

from tests.support.eventually import eventually
from tests.support.sse_reader import SseReader

from .test_cluster_http import HOSTS, IDS, know_codes, owner, pair, redis_url  # noqa: F401


def frames(body: bytes) -> dict[str, dict]:
    out = {}
    for block in body.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in lines:
            out[lines["event"]] = json.loads(lines["data"])["data"]
    return out


@pytest_twisted.ensureDeferred
async def test_the_console_shows_the_cluster_and_who_owns_each_host(redis_url):  # noqa: F811
    a, b = await pair(redis_url)
    try:
        know_codes(a, b)
        for h in HOSTS:
            await a.parts.assign.place(h)
        elsewhere = next(h for h in HOSTS if owner(h) == "mgr-b")

        async def placed():  # both have started the sessions of the hosts they own
            r = await a.call("GET", f"/ui/stream?once=1&host={elsewhere}")
            got = frames(r.body)
            view = got["view"]
            rows = {x["host_session_id"]: x for x in view["hosts"]}
            here = {h for h, x in rows.items() if x["here"]}
            return (len(rows) == len(HOSTS) and here == {h for h in HOSTS if owner(h) == "mgr-a"}
                    and (view, rows, got["host"]))

        view, rows, detail = await eventually(placed, timeout=15, what="every host in A's console")
        assert [m["id"] for m in view["members"]] == IDS and all(m["live"] for m in view["members"])
        assert view["this_instance"] == "mgr-a" and view["instance"]["id"] == "mgr-a"
        assert {h: x["owner"] for h, x in rows.items()} == {h: owner(h) for h in HOSTS}
        mine = [x for x in rows.values() if x["here"]]
        assert mine and all(x["status"] in ("attaching", "backoff") for x in mine)  # (no Road)
        assert all(x["epoch"] >= 1 for x in rows.values())
        assert "status" not in rows[elsewhere]  # no session here: the owner has it
        assert detail == {"host_session_id": elsewhere, "here": False, "owner": "mgr-b",
                          "message": f"host {elsewhere} has no session on this instance; "
                                     "mgr-b owns it"}

        # live: B's console sees the move when A releases one of its hosts
        reader = await SseReader.open(b.base, "/ui/stream")
        try:
            await eventually(reader.views, timeout=10, what="B's first view")
            moved = next(h for h in HOSTS if owner(h) == "mgr-a")
            await a.parts.assign.release(moved)
            await eventually(lambda: any(m["host_session_id"] == moved and
                                         m["manager_instance_id"] is None
                                         for v in reader.views() for m in v["moves"]),
                             timeout=10, what="the release among B's recent moves")
        finally:
            await reader.close()
    finally:
        await b.stop()
        await a.stop()
