"""Rendezvous hashing: the documented hash, determinism, balance, minimal movement, capacity.

Balance bound used below: with H hosts over n equally weighted instances, each instance's
count of first choices is Binomial(H, 1/n); we require every count within
``6 * sqrt(H * (1/n) * (1 - 1/n)) + 1`` of H/n (a false failure has odds below 1e-8 per
instance).  Movement bound: adding one instance to n moves Binomial(H, 1/(n+1)) first
choices, checked with the same 6-sigma band; removing one moves exactly the hosts it had.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.assign.rendezvous import (
    DRAINING,
    BadIdentifier,
    Candidate,
    choose,
    place,
    rank,
    score,
)

ids = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
              min_size=1, max_size=24)
instance_sets = st.lists(ids, min_size=1, max_size=12, unique=True)


def hosts(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-host-{i}" for i in range(count)]


def band(total: int, p: float) -> float:
    return 6 * math.sqrt(total * p * (1 - p)) + 1


def test_score_is_sha1_of_the_documented_bytes():
    # Digests from coreutils: printf 'mgr-a\0host-1' | sha1sum
    assert score("mgr-a", "host-1") == 0x397FBEA889BC333C373350F3ACDB86B4983CF609
    assert score("mgr-b", "host-1") == 0x707301B11B6B9BB06057FA6DF3D3CFDD6C3AB683
    assert score("mgr-c", "host-1") == 0x3DF332549B3C7F76666E3421EF54B20773209B34
    assert rank("host-1", ["mgr-a", "mgr-b", "mgr-c"]) == ["mgr-b", "mgr-c", "mgr-a"]


@pytest.mark.parametrize("bad", ["", "a\x00b", "x" * 257, None, b"bytes"])
def test_bad_ids_are_refused(bad):
    with pytest.raises(BadIdentifier):
        score(bad, "host")
    with pytest.raises(BadIdentifier):
        score("mgr", bad)


@given(instance_sets, ids)
def test_ranking_is_deterministic_and_order_independent(instances, host):
    first = rank(host, instances)
    assert first == rank(host, list(reversed(instances)))
    assert first == rank(host, instances + instances)
    assert sorted(first) == sorted(instances)


@settings(max_examples=40, deadline=None)
@given(st.lists(ids, min_size=2, max_size=8, unique=True), st.integers(200, 3000), ids)
def test_first_choices_are_balanced(instances, count, prefix):
    n = len(instances)
    counts = dict.fromkeys(instances, 0)
    for h in hosts(prefix, count):
        counts[rank(h, instances)[0]] += 1
    limit = band(count, 1 / n)
    for c in counts.values():
        assert abs(c - count / n) <= limit, (counts, limit)


@settings(max_examples=40, deadline=None)
@given(st.lists(ids, min_size=2, max_size=8, unique=True), st.integers(200, 2000), ids, st.data())
def test_removing_one_instance_moves_only_its_hosts(instances, count, prefix, data):
    gone = data.draw(st.sampled_from(instances))
    rest = [i for i in instances if i != gone]
    before = {h: rank(h, instances)[0] for h in hosts(prefix, count)}
    after = {h: rank(h, rest)[0] for h in before}
    moved = {h for h in before if before[h] != after[h]}
    assert moved == {h for h, owner in before.items() if owner == gone}
    assert abs(len(moved) - count / len(instances)) <= band(count, 1 / len(instances))


@settings(max_examples=40, deadline=None)
@given(st.lists(ids, min_size=2, max_size=8, unique=True), ids, st.integers(200, 2000), ids)
def test_adding_one_instance_moves_about_one_in_n_plus_one(instances, new, count, prefix):
    if new in instances:
        return
    grown = instances + [new]
    before = {h: rank(h, instances)[0] for h in hosts(prefix, count)}
    after = {h: rank(h, grown)[0] for h in before}
    moved = [h for h in before if before[h] != after[h]]
    # Every host that moves, moves to the newcomer, and about 1/(n+1) of them do.
    assert all(after[h] == new for h in moved)
    assert abs(len(moved) - count / len(grown)) <= band(count, 1 / len(grown))


caps = st.lists(st.tuples(ids, st.integers(0, 30), st.booleans()), min_size=1, max_size=8,
                unique_by=lambda t: t[0])


@settings(max_examples=100, deadline=None)
@given(caps, st.integers(0, 300), ids)
def test_placement_respects_capacity_and_refuses_only_when_all_are_full(spec, count, prefix):
    candidates = [Candidate(i, cap, 0, DRAINING if draining else "SERVING") for i, cap, draining in spec]
    room = sum(c.capacity for c in candidates if c.state == "SERVING")
    placed = place(hosts(prefix, count), candidates)
    loads: dict[str, int] = {}
    for owner in placed.values():
        if owner is not None:
            loads[owner] = loads.get(owner, 0) + 1
    by_id = {c.id: c for c in candidates}
    for owner, load in loads.items():
        assert by_id[owner].state == "SERVING"
        assert load <= by_id[owner].capacity
    refused = sum(1 for o in placed.values() if o is None)
    assert refused == max(0, count - room)


@given(st.lists(ids, min_size=2, max_size=8, unique=True), ids, st.data())
def test_a_full_first_choice_spills_to_the_next_in_rank(instances, host, data):
    order = rank(host, instances)
    full = data.draw(st.integers(1, len(order) - 1))
    candidates = [Candidate(i, 1, 1 if pos < full else 0) for pos, i in enumerate(order)]
    assert choose(host, candidates).id == order[full]
    assert choose(host, [Candidate(i, 1, 1) for i in order]) is None
    assert choose(host, candidates, exclude=[order[full]]) == (
        Candidate(order[full + 1], 1, 0) if full + 1 < len(order) else None)
