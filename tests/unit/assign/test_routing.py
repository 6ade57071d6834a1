"""Which requests may be routed to another instance, and the 503 capacity answer."""

from __future__ import annotations

import json

from twisted.web.test.requesthelper import DummyRequest

from beachmanager.api.assignments import capacity_refusal
from beachmanager.api.route_table import ROUTES
from beachmanager.api.routing import FORWARD, LOCAL, REDIRECT, match, unclassified_routes
from beachmanager.assign.model import CapacityExhausted


def test_every_route_naming_a_host_is_classified_once():
    assert unclassified_routes() == []
    assert not (FORWARD & REDIRECT) and not (FORWARD & LOCAL) and not (REDIRECT & LOCAL)
    table = {(r.method, r.path) for r in ROUTES}
    assert FORWARD | REDIRECT | LOCAL <= table


def test_matching_extracts_the_host_and_ignores_other_paths():
    assert match("POST", "/sessions/h-1/actions") == ("forward", "/sessions/<session_id>/actions", "h-1")
    assert match("GET", "/sessions/h-1/actions/a-9")[2] == "h-1"
    assert match("HEAD", "/debug/hosts/h.2/cache") == ("redirect", "/debug/hosts/<host_session_id>/cache", "h.2")
    assert match("GET", "/sessions/h-1/actions") is None  # no such GET route
    assert match("POST", "/sessions/register") is None
    assert match("GET", "/sessions/h-1/controller-events") is None  # shared store: answered anywhere
    assert match("GET", "/sessions/a/b/state") is None


def test_capacity_refusal_is_a_clear_503():
    request = DummyRequest([b""])
    body = json.loads(capacity_refusal(request, CapacityExhausted("h-7", 3, 2)))
    assert request.responseCode == 503
    assert request.responseHeaders.getRawHeaders(b"retry-after") == [b"30"]
    assert body["error_code"] == "capacity_exhausted" and body["host_session_id"] == "h-7"
    assert "2 serving instance(s) of 3 live, all at capacity" in body["message"]
