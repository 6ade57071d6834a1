"""Membership, one contract for both stores: owner, roles, statuses, tenancy."""

import pytest
import pytest_twisted

from beachmanager.registry.members import BeachExists
from beachmanager.registry.store import Op, SessionRegistration, Tenant

NOW = 1_700_000_000_000


@pytest_twisted.ensureDeferred
async def test_the_creator_owns_a_new_beach_and_the_id_is_taken_once(store):
    beach = await store.create_beach(Tenant("pb-m", "acct-owner"), "Lab", NOW)
    assert (beach.id, beach.name, beach.owner_account_id, beach.created_at_ms) == (
        "pb-m", "Lab", "acct-owner", NOW)
    assert await store.get_beach(Tenant("pb-m")) == beach
    with pytest.raises(BeachExists):
        await store.create_beach(Tenant("pb-m", "acct-other"), None, NOW + 1)
    assert await store.member_role(Tenant("pb-m", "acct-owner")) == "owner"
    assert await store.member_role(Tenant("pb-m", "acct-other")) is None
    assert await store.member_role(Tenant("pb-none", "acct-owner")) is None
    assert await store.get_beach(Tenant("pb-none")) is None


@pytest_twisted.ensureDeferred
async def test_only_active_memberships_give_their_role(store):
    t = Tenant("pb-r", "acct-admin")
    await store.create_beach(Tenant("pb-r", "acct-owner"), None, NOW)
    m = await store.put_member(t, "acct-v", "viewer", "active", NOW + 1)
    assert (m.role, m.status, m.invited_by_account_id, m.created_at_ms) == ("viewer", "active", "acct-admin", NOW + 1)
    assert await store.member_role(Tenant("pb-r", "acct-v")) == "viewer"
    m = await store.put_member(t, "acct-v", "contributor", "active", NOW + 2)
    assert (m.role, m.created_at_ms, m.updated_at_ms) == ("contributor", NOW + 1, NOW + 2)
    assert await store.member_role(Tenant("pb-r", "acct-v")) == "contributor"
    for status in ("invited", "suspended", "revoked"):
        await store.put_member(t, "acct-v", "admin", status, NOW + 3)
        assert await store.member_role(Tenant("pb-r", "acct-v")) is None, status
    assert [x.account_id for x in await store.list_members(Tenant("pb-r"))] == ["acct-v"]
    assert await store.remove_member(t, "acct-v") is True
    assert await store.remove_member(t, "acct-v") is False
    assert await store.list_members(Tenant("pb-r")) == []


@pytest_twisted.ensureDeferred
async def test_membership_is_per_beach(store):
    await store.put_member(Tenant("pb-1", "x"), "acct-a", "admin", "active", NOW)
    assert await store.member_role(Tenant("pb-1", "acct-a")) == "admin"
    assert await store.member_role(Tenant("pb-2", "acct-a")) is None
    assert await store.list_members(Tenant("pb-2")) == []
    assert await store.remove_member(Tenant("pb-2", "x"), "acct-a") is False
    assert await store.member_role(Tenant("pb-1", "acct-a")) == "admin"


@pytest_twisted.ensureDeferred
async def test_a_beach_made_by_a_registration_has_no_owner(store):
    await store.register_session(Tenant("pb-reg", "acct-h"), SessionRegistration("h-1"), Op.new(), NOW)
    beach = await store.get_beach(Tenant("pb-reg"))
    assert beach is not None and beach.owner_account_id is None
    assert await store.member_role(Tenant("pb-reg", "acct-h")) is None
    with pytest.raises(BeachExists):
        await store.create_beach(Tenant("pb-reg", "acct-h"), None, NOW)
