"""The beach association message: signed, read back, tampering caught, the harness's pin rule;
the reader raises only its own error on any bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.protocol import association as pa
from tests.support.associations import AUTHORITY, OTHER, signed


def test_a_signed_association_reads_back_with_every_field_and_verifies():
    raw = signed("mgr-a", 7, host="h-1", private_beach_id="pb-1", manager_url="http://m:8081",
                 attach_code_hint=pa.attach_code_hint("ABCDEF12"), idle_snapshot_interval_ms=30000,
                 stale_session_idle_secs=60, viewer_health_interval_secs=15, standby=("mgr-b",))
    a = pa.read_association(raw)
    assert (a.host_session_id, a.manager_instance_id, a.epoch) == ("h-1", "mgr-a", 7)
    assert a.private_beach_id == "pb-1" and a.manager_url == "http://m:8081"
    assert a.attach_code_hint == "****12" and a.standby == ("mgr-b",)
    body = json.loads(raw)["payload"]
    assert body["managers"] == {"active": "mgr-a", "standby": ["mgr-b"]}
    assert a.authority == AUTHORITY.authority and pa.verify(a, AUTHORITY.authority.public_key)
    assert not pa.verify(a, OTHER.authority.public_key)
    assert "bridge_token" not in a.describe()


@pytest.mark.parametrize("field,value", [("epoch", 8), ("manager_instance_id", "mgr-evil"),
                                         ("private_beach_id", "pb-2"), ("bridge_token", "x.y.z")])
def test_any_change_to_a_signed_field_breaks_the_signature(field, value):
    body = json.loads(signed("mgr-a", 7, private_beach_id="pb-1"))
    body["payload"][field] = value
    a = pa.read_association(json.dumps(body).encode())
    assert not pa.verify(a, AUTHORITY.authority.public_key)
    assert pa.AuthorityPin(AUTHORITY.authority.public_key).check(a) == pa.BAD_SIGNATURE


def test_the_pin_trusts_the_first_valid_signer_and_refuses_every_other_after_it():
    pin = pa.AuthorityPin(host_session_id="host-1")
    assert pin.check(pa.read_association(signed("mgr-a", 1))) == pa.ACCEPTED
    assert pin.key_id == AUTHORITY.authority.key_id
    assert pin.check(pa.read_association(signed("mgr-x", 9, authority=OTHER))) == pa.OTHER_AUTHORITY
    assert pin.check(pa.read_association(signed("mgr-b", 2))) == pa.ACCEPTED  # same cluster
    assert pin.check(pa.read_association(signed("mgr-b", 3, host="host-2"))) == pa.OTHER_HOST
    unsigned = json.loads(signed("mgr-a", 4))
    del unsigned["payload"]["signature"]
    assert pin.check(pa.read_association(json.dumps(unsigned).encode())) == pa.UNSIGNED
    assert pin.counts == {pa.ACCEPTED: 2, pa.OTHER_AUTHORITY: 1, pa.OTHER_HOST: 1, pa.UNSIGNED: 1}


def test_a_configured_pin_refuses_even_the_first_association_of_another_authority():
    pin = pa.AuthorityPin(OTHER.authority.public_key)
    assert pin.check(pa.read_association(signed("mgr-a", 1))) == pa.OTHER_AUTHORITY
    assert pin.check(pa.read_association(signed("mgr-a", 1, authority=OTHER))) == pa.ACCEPTED


def test_renewal_requests_and_bad_messages():
    assert pa.read_renew_request(pa.renew_request("tok")) == "tok"
    assert pa.kind_of(pa.renew_request("tok")) == pa.RENEW
    assert pa.kind_of(b"junk") is None
    for bad in (b"nope", b"[]", b'{"type": "association", "payload": []}',
                b'{"type": "association", "payload": {"host_session_id": "h", '
                b'"manager_instance_id": "m"}}',  # no epoch
                b'{"type": "association", "payload": {"host_session_id": "h", '
                b'"manager_instance_id": "m", "epoch": -1}}',
                b'{"type": "association", "payload": {"host_session_id": "h", '
                b'"manager_instance_id": "m", "epoch": 1, "signature": "!!"}}',
                b"x" * (pa.MAX_BYTES + 1)):
        with pytest.raises(pa.AssociationError):
            pa.read_association(bad)
    body = json.loads(signed("mgr-a", 1))
    body["payload"]["authority"]["key_id"] = "0" * 16  # a key id that is not its key's
    with pytest.raises(pa.AssociationError, match="key_id"):
        pa.read_association(json.dumps(body).encode())
    with pytest.raises(pa.AssociationError):
        pa.read_renew_request(b'{"type": "association_renew", "payload": {}}')


def test_the_code_hint_never_shows_more_than_two_characters():
    assert pa.attach_code_hint("123456") == "****56"
    assert pa.attach_code_hint("short") is None and pa.attach_code_hint(None) is None


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=600), st.builds(
    lambda d: json.dumps({"type": "association", "payload": d}).encode(),
    st.dictionaries(st.sampled_from(["host_session_id", "manager_instance_id", "epoch", "managers",
                                     "authority", "signature", "bridge_token", "issued_at_ms"]),
                    st.one_of(st.none(), st.integers(), st.text(max_size=20),
                              st.lists(st.text(max_size=5), max_size=3),
                              st.dictionaries(st.text(max_size=8), st.text(max_size=8),
                                              max_size=3))))))
def test_the_reader_raises_only_its_own_error(data):
    try:
        a = pa.read_association(data)
    except pa.AssociationError:
        return
    assert isinstance(a.epoch, int)
    pa.AuthorityPin().check(a)  # never raises either
