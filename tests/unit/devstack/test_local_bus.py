"""The devstack host's bus: per-peer sends, the namespace ACL, detach listeners."""

from __future__ import annotations

from beachmanager.devstack.host.bus import LocalBus


def test_published_frames_reach_only_the_audience_and_the_rest_is_counted():
    bus = LocalBus()
    got: dict[str, list] = {"mgr": [], "viewer": []}
    for peer in got:
        bus.attach(peer, got[peer].append)
    bus.publish("beach.manager.state", b"{}")
    assert len(got["mgr"]) == 1 and len(got["viewer"]) == 1  # no ACL yet: everyone
    bus.restrict_to(lambda: {"mgr"})
    bus.publish("beach.manager.state", b"{}")
    assert len(got["mgr"]) == 2 and len(got["viewer"]) == 1 and bus.withheld == 1
    assert bus.send_to("viewer", "beach.manager.heartbeat", b"{}")  # an answer to one peer
    assert not bus.send_to("nobody", "beach.manager.heartbeat", b"{}")
    gone = []
    bus.on_detach(gone.append)
    bus.detach("viewer")
    bus.detach("viewer")  # once
    assert gone == ["viewer"] and bus.peers == ["mgr"]
