"""Who keeps the standby session to each host: the next live, serving instance with room
after the owner, in the host's rendezvous ranking."""

from beachmanager.assign.model import Member
from beachmanager.assign.rendezvous import SERVING, rank
from beachmanager.assign.standby import plan, standby_of


def member(i, live=True, load=0, capacity=10, state=SERVING):
    return Member(i, f"http://{i}", capacity, load, state, 0, live, 0)


def test_the_standby_is_the_next_in_rank_after_the_owner_skipping_dead_full_and_draining():
    hosts = [f"h{n}" for n in range(50)]
    ids = ["a", "b", "c"]
    members = {i: member(i) for i in ids}
    for h in hosts:
        order = rank(h, ids)
        assert standby_of(h, order[0], members) == order[1]
        assert standby_of(h, order[1], members) == order[0]  # not the owner itself
    h = hosts[0]
    order = rank(h, ids)
    for skipped in (member(order[1], live=False), member(order[1], load=10),
                    member(order[1], state="DRAINING")):
        assert standby_of(h, order[0], {**members, order[1]: skipped}) == order[2]
    alone = {order[0]: members[order[0]]}
    assert standby_of(h, order[0], alone) is None  # one live instance: no standby


def test_plan_opens_and_closes_a_few_at_a_time_and_never_for_own_hosts():
    ids = ["a", "b"]
    members = [member(i) for i in ids]
    hosts = [f"h{n}" for n in range(40)]
    owners = {h: rank(h, ids)[0] for h in hosts}
    mine_as_standby = {h for h, o in owners.items() if o == "a"}  # b stands by for a's hosts
    p = plan("b", members, owners, held=(), budget=5)
    assert p.wanted == mine_as_standby and len(p.start) == min(5, len(mine_as_standby))
    assert set(p.start) <= mine_as_standby and p.stop == ()
    # a third instance joins: b stops standing by where c now comes next, three at a time
    three = [member(i) for i in ("a", "b", "c")]
    p = plan("b", three, owners, held=sorted(mine_as_standby), budget=3)
    still = {h for h in mine_as_standby if standby_of(h, "a", {m.id: m for m in three}) == "b"}
    assert p.wanted == still and set(p.stop) <= mine_as_standby - still
    assert len(p.stop) == min(3, len(mine_as_standby - still)) and p.start == ()
    # the owner died (not yet swept): the only one left stands by for all it will take over
    assert plan("b", [member("b")], owners, held=(), budget=100).wanted == mine_as_standby
