"""Which requests may be routed to another instance, and the 503 capacity answer."""

from __future__ import annotations

import json

from twisted.web.test.requesthelper import DummyRequest

from beachmanager.api.assignments import capacity_refusal
from beachmanager.api.route_table import ANYWHERE, OWNER, ROUTES, lookup, unclassified_routes
from beachmanager.assign.model import CapacityExhausted


def test_every_route_naming_a_host_says_where_it_is_answered():
    assert unclassified_routes() == []
    for row in ROUTES:
        assert row.answered_by in (None, ANYWHERE, OWNER)
        if row.answered_by is not None:
            assert row.host_param is not None, row.path


def test_reads_of_transport_state_go_to_the_owner_and_shared_stores_are_read_anywhere():
    assert lookup("GET", "/sessions/<session_id>/state").answered_by == OWNER
    assert lookup("HEAD", "/debug/hosts/<host_session_id>/cache").answered_by == OWNER
    assert lookup("GET", "/sessions/<session_id>/actions/<action_id>").host_param == "session_id"
    # actions go into the host's shared queue stream: any instance takes them
    assert lookup("POST", "/sessions/<session_id>/actions").answered_by == ANYWHERE
    assert lookup("GET", "/sessions/<session_id>/controller-events").answered_by == ANYWHERE
    assert lookup("POST", "/sessions/register").host_param is None


def test_capacity_refusal_is_a_clear_503():
    request = DummyRequest([b""])
    body = json.loads(capacity_refusal(request, CapacityExhausted("h-7", 3, 2)))
    assert request.responseCode == 503
    assert request.responseHeaders.getRawHeaders(b"retry-after") == [b"30"]
    assert body["error_code"] == "capacity_exhausted" and body["host_session_id"] == "h-7"
    assert "2 serving instance(s) of 3 live, all at capacity" in body["message"]
