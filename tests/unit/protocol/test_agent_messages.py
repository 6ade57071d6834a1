"""The controller-agent messages: shapes, round trips, clear errors, and a fuzz."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beachmanager.protocol import agent as ag


def test_requests_round_trip():
    r = ag.LeaseRequest("r1", "target-1", "jwt", "pb-1", 30_000)
    assert ag.read_lease_request(ag.lease_request(r)) == r
    a = ag.ActionsRequest("r2", "target-1", "jwt", "ctl", ({"id": "a1"},), None)
    assert ag.read_actions(ag.actions_request(a)) == a


def test_what_the_agent_hears_round_trips():
    lease = ag.Lease("r1", "t", "ctl", 123)
    assert ag.read_from_manager(ag.lease(lease)) == lease
    ack = ag.Forwarded("ack", "t", {"id": "a1", "status": "ok"})
    assert ag.read_from_manager(ag.forwarded(ack)) == ack
    state = ag.Forwarded("state", "t", {"sequence": 4})
    assert ag.read_from_manager(ag.forwarded(state)) == state
    refusal = ag.Refusal("missing_scope", "needs pb:control.write", "r2", "t")
    assert ag.read_from_manager(ag.refusal(refusal)) == refusal


def msg(kind, **payload):
    return json.dumps({"type": kind, "payload": payload}).encode()


@pytest.mark.parametrize("data, error", [
    (b"{", "not JSON"),
    (b"[]", "an agent message is"),
    (msg("actions", request_id="r"), "carries lease_request"),
    (msg("lease_request"), "request_id must be"),
    (msg("lease_request", request_id="r", target_session_id="", token="t"), "target_session_id"),
    (msg("lease_request", request_id="r", target_session_id="t", token="t", ttl_ms=0), "ttl_ms"),
    (b"x" * (ag.MAX_BYTES + 1), "at most"),
])
def test_a_bad_lease_request_is_refused_clearly(data, error):
    with pytest.raises(ag.AgentError, match=error):
        ag.read_lease_request(data)


def test_a_bad_actions_message_names_its_request():
    bad = msg("actions", request_id="r9", target_session_id="t", token="j", controller_token="c",
              actions=[])
    with pytest.raises(ag.AgentError, match="actions must be a list") as e:
        ag.read_actions(bad)
    assert e.value.request_id == "r9" and e.value.code == "bad_message"
    too_many = msg("actions", request_id="r", target_session_id="t", token="j",
                   controller_token="c", actions=[{}] * (ag.MAX_ACTIONS + 1))
    with pytest.raises(ag.AgentError):
        ag.read_actions(too_many)


def test_agent_topics_are_not_mistaken_for_harness_topics():
    from beachmanager.protocol.extensions import envelope_type_for_topic

    for topic in (*ag.FROM_AGENT, *ag.TO_AGENT):
        assert envelope_type_for_topic(topic) is None, topic


@given(st.binary(max_size=400))
def test_the_decoders_raise_only_their_error(data):
    for read in (ag.read_lease_request, ag.read_actions, ag.read_from_manager):
        try:
            read(data)
        except ag.AgentError:
            pass
