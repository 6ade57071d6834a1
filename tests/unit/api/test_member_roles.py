"""The membership cache on a fake clock: kept for its TTL, bounded, dropped on change."""

import pytest_twisted
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from beachmanager.api.access import ROLE_TTL, MemberRoles


class CountingStore:
    def __init__(self):
        self.roles: dict[tuple[str, str], str] = {}
        self.calls = 0

    def member_role(self, tenant):
        self.calls += 1
        return succeed(self.roles.get((tenant.private_beach_id, tenant.account_id)))


@pytest_twisted.ensureDeferred
async def test_roles_are_kept_for_the_ttl_and_a_change_here_drops_them():
    clock, store = Clock(), CountingStore()
    roles = MemberRoles(store, clock)
    assert await roles.role("pb", "a") is None and await roles.role("pb", "a") is None
    assert store.calls == 1  # "no role" is kept too: a flood of non-members costs one lookup
    store.roles[("pb", "a")] = "viewer"
    assert await roles.role("pb", "a") is None  # another instance's change: not yet seen
    clock.advance(ROLE_TTL)
    assert await roles.role("pb", "a") == "viewer" and store.calls == 2
    store.roles[("pb", "a")] = "admin"
    roles.forget("pb", "a")  # a change made through this instance
    assert await roles.role("pb", "a") == "admin" and store.calls == 3
    store.roles[("pb", "a")] = "contributor"
    roles.forget("pb")  # every account of the beach
    assert await roles.role("pb", "a") == "contributor"
    assert await roles.role("pb", None) is None and store.calls == 4  # no account: no lookup


@pytest_twisted.ensureDeferred
async def test_the_cache_is_bounded():
    clock, store = Clock(), CountingStore()
    roles = MemberRoles(store, clock, bound=100)
    for i in range(1000):
        await roles.role("pb", f"acct-{i}")
    assert len(roles.kept) == 100
