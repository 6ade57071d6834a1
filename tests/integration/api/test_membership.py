"""Membership on every route of the table, over real HTTP with real JWTs: a member (with the
route's role), a non-member (403 not_a_member), a member whose role is too low (403
insufficient_role) and a token bound to another beach (403 wrong_private_beach, or 404 for a
session it cannot see); each refusal counted in auth_failure_total{reason}."""

import re
import uuid

import pytest_twisted

from beachmanager.api import route_table as rt
from beachmanager.auth.principal import REASONS
from tests.support.api_client import start_manager
from tests.support.auth_fixtures import auth_settings

PB, HOST = "pb-m", "h-m"
VALUES = {"private_beach_id": PB, "session_id": HOST, "host_session_id": HOST,
          "action_id": "a-1", "account_id": "acct-new", "name": "console.js"}
ACTION = {"id": "a-1", "action_type": "terminal_write", "payload": {"bytes": "x"}}


def path_of(row: rt.Route) -> str:
    path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: VALUES[m.group(1)], row.path)
    return path + "?once=1" if row.endpoint == "ui.stream" else path  # a live stream never ends


def body_of(row: rt.Route):
    return {
        "sessions.register": {"session_id": HOST, "private_beach_id": PB},
        "sessions.attach_by_code": {"session_id": "h-code", "code": "NOPE"},
        "leases.release": {"controller_token": str(uuid.uuid4())},
        "actions.submit": {"controller_token": str(uuid.uuid4()), "actions": [ACTION]},
        "beaches.put_member": {"role": "viewer"},
        "beaches.create": {"id": PB},
    }.get(row.endpoint, {} if row.method in ("POST", "PUT", "DELETE") else None)


def let_through(r) -> bool:
    """Past the guard: no auth refusal, no server error (a handler's own 4xx is fine)."""
    return r.error_code not in REASONS and r.status < 500


async def setup(gate, jwks, road):
    m = await start_manager(road_url=road.url, **auth_settings(jwks))
    owner = gate.token(sub="owner", account_id="acct-owner")
    r = await m.call("POST", "/private-beaches", token=owner, body={"id": PB, "name": "M"})
    assert (r.status, r.body["owner_account_id"]) == (201, "acct-owner"), r.body
    r = await m.call("POST", "/sessions/register", token=owner,
                     body={"session_id": HOST, "private_beach_id": PB})
    assert r.status == 200, r.body
    for account, role in (("acct-viewer", "viewer"), ("acct-contrib", "contributor"),
                          ("acct-admin", "admin")):
        r = await m.call("PUT", f"/private-beaches/{PB}/members/{account}", token=owner,
                         body={"role": role})
        assert (r.status, r.body["role"]) == (200, role), r.body
    return m


@pytest_twisted.ensureDeferred
async def test_every_route_with_a_member_a_non_member_and_another_beachs_token(gate, jwks, road):
    m = await setup(gate, jwks, road)
    member = {role: gate.token(sub=role, account_id=f"acct-{role}")
              for role in ("viewer", "contrib", "admin")}
    by_role = {"viewer": member["viewer"], "contributor": member["contrib"],
               "admin": member["admin"]}
    below = {"contributor": member["viewer"], "admin": member["contrib"]}
    stranger = gate.token(sub="stranger", account_id="acct-stranger")
    other = gate.token(sub="other", account_id="acct-other", private_beach_id="pb-other")
    walked = set()
    try:
        for row in rt.ROUTES:
            if row.public:
                continue
            walked.add(row.endpoint)
            path, body = path_of(row), body_of(row)
            where = (row.method, row.path)
            if row.beach in (rt.MANAGER, rt.NEW):  # names no existing beach: scope only
                r = await m.call(row.method, path, token=stranger,
                                 body={"id": f"pb-{uuid.uuid4().hex[:6]}"} if body == {"id": PB} else body)
                assert let_through(r), (where, r.body)
                if row.beach == rt.NEW:
                    before = m.failures("wrong_private_beach")
                    r = await m.call(row.method, path, token=other, body=body)
                    assert (r.status, r.error_code) == (403, "wrong_private_beach"), where
                    assert m.failures("wrong_private_beach") == before + 1
                continue
            before = m.failures("not_a_member")
            r = await m.call(row.method, path, token=stranger, body=body)
            assert (r.status, r.error_code) == (403, "not_a_member"), (where, r.body)
            assert m.failures("not_a_member") == before + 1, where

            r = await m.call(row.method, path, token=other, body=body)
            expected = (404, "session_not_found") if row.beach == rt.SESSION else (403, "wrong_private_beach")
            assert (r.status, r.error_code) == expected, (where, r.body)

            if row.role in below:
                before = m.failures("insufficient_role")
                r = await m.call(row.method, path, token=below[row.role], body=body)
                assert (r.status, r.error_code) == (403, "insufficient_role"), (where, r.body)
                assert m.failures("insufficient_role") == before + 1

            r = await m.call(row.method, path, token=by_role[row.role], body=body)
            assert let_through(r), (where, r.body)
            bound = gate.token(sub="bound", account_id="acct-bound", private_beach_id=PB)
            r = await m.call(row.method, path, token=bound, body=body)
            assert let_through(r), (where, r.body)
        assert walked == {r.endpoint for r in rt.ROUTES if not r.public}
        assert rt.unscoped_routes() == []
    finally:
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_a_membership_change_takes_effect_at_once_on_this_instance(gate, jwks, road):
    m = await setup(gate, jwks, road)
    owner = gate.token(sub="owner", account_id="acct-owner")
    newcomer = gate.token(sub="new", account_id="acct-new")
    lists = f"/private-beaches/{PB}/sessions"
    try:
        assert (await m.call("GET", lists, token=newcomer)).error_code == "not_a_member"
        r = await m.call("PUT", f"/private-beaches/{PB}/members/acct-new", token=owner,
                         body={"role": "viewer"})
        assert r.status == 200
        r = await m.call("GET", lists, token=newcomer)
        assert (r.status, [s["session_id"] for s in r.body]) == (200, [HOST])
        lease = f"/sessions/{HOST}/controller/lease"
        assert (await m.call("POST", lease, token=newcomer, body={})).error_code == "insufficient_role"
        await m.call("PUT", f"/private-beaches/{PB}/members/acct-new", token=owner,
                     body={"role": "viewer", "status": "suspended"})
        assert (await m.call("GET", lists, token=newcomer)).error_code == "not_a_member"
        await m.call("PUT", f"/private-beaches/{PB}/members/acct-new", token=owner,
                     body={"role": "contributor"})
        assert (await m.call("POST", lease, token=newcomer, body={})).status == 200
        r = await m.call("DELETE", f"/private-beaches/{PB}/members/acct-new", token=owner)
        assert r.body == {"removed": True}
        assert (await m.call("POST", lease, token=newcomer, body={})).error_code == "not_a_member"
        # the owner stays owner; only an owner hands out the owner role
        admin = gate.token(sub="admin", account_id="acct-admin")
        r = await m.call("DELETE", f"/private-beaches/{PB}/members/acct-owner", token=owner)
        assert (r.status, r.error_code) == (409, "owner_required")
        r = await m.call("PUT", f"/private-beaches/{PB}/members/acct-x", token=admin,
                         body={"role": "owner"})
        assert (r.status, r.error_code) == (403, "insufficient_role")
        r = await m.call("GET", f"/private-beaches/{PB}/members", token=admin)
        assert r.body["owner_account_id"] == "acct-owner"
        assert {x["account_id"]: x["role"] for x in r.body["members"]} == {
            "acct-viewer": "viewer", "acct-contrib": "contributor", "acct-admin": "admin"}
        r = await m.call("POST", "/private-beaches", token=admin, body={"id": PB})
        assert (r.status, r.error_code) == (409, "private_beach_exists")
    finally:
        await m.stop()
