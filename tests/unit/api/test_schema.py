"""Request bodies: bounded, strict JSON, validated by the schemas that also document the API."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beachmanager.api import models as m
from beachmanager.api.errors import ApiError
from beachmanager.api.schema import MAX_BODY_BYTES, parse_json, path_id, read_json, validate


class FakeRequest:
    def __init__(self, body: bytes, content_type: bytes | None = b"application/json"):
        self.content = io.BytesIO(body)
        self.headers = {b"content-type": content_type} if content_type else {}

    def getHeader(self, name):
        return self.headers.get(name)


def refused(body: bytes, schema=m.LEASE_REQUEST, content_type=b"application/json") -> ApiError:
    with pytest.raises(ApiError) as info:
        read_json(FakeRequest(body, content_type), schema)
    return info.value


def test_valid_bodies():
    assert read_json(FakeRequest(b'{"ttl_ms": 5000, "reason": "ui", "extra": [1]}'), m.LEASE_REQUEST) == {
        "ttl_ms": 5000, "reason": "ui", "extra": [1]}
    assert read_json(FakeRequest(b"  ", None), m.LEASE_REQUEST) == {}  # every field optional
    assert read_json(FakeRequest(b'{"controller_token": "t"}', b"application/merge-patch+json"),
                     m.RELEASE_REQUEST) == {"controller_token": "t"}


@pytest.mark.parametrize("body, status, code, words", [
    (b"{", 400, "malformed_json", "not valid JSON"),
    (b'{"ttl_ms": NaN}', 400, "malformed_json", "not valid JSON"),
    (b"\xff\xfe", 400, "malformed_json", "not valid JSON"),
    (b"[" * 100_00 + b"]" * 100_00, 400, "malformed_json", "not valid JSON"),
    (b"[1]", 400, "invalid_body", "must be an object"),
    (b'{"ttl_ms": "30"}', 400, "invalid_body", "'ttl_ms' must be a whole number or null"),
    (b'{"ttl_ms": 1.5}', 400, "invalid_body", "'ttl_ms' must be a whole number"),
    (b'{"ttl_ms": true}', 400, "invalid_body", "'ttl_ms' must be a whole number"),
    (b'{"ttl_ms": -1}', 400, "invalid_body", "at least 0"),
    (b'{"reason": "' + b"r" * 200 + b'"}', 400, "invalid_body", "at most 128 characters"),
])
def test_bad_bodies_are_4xx_with_a_clear_message(body, status, code, words):
    e = refused(body)
    assert (e.status, e.error_code) == (status, code)
    assert words in e.message


def test_oversize_wrong_type_and_missing_required():
    e = refused(b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert (e.status, e.error_code) == (413, "payload_too_large")
    e = refused(b"ttl_ms=5", content_type=b"application/x-www-form-urlencoded")
    assert (e.status, e.error_code) == (415, "unsupported_media_type")
    e = refused(b"", m.RELEASE_REQUEST)
    assert e.status == 400 and "required" in e.message
    e = refused(b'{"controller_token": null}', m.RELEASE_REQUEST)
    assert "needs field 'controller_token'" in e.message
    e = refused(b'{"session_id": "../etc", "private_beach_id": "pb"}', m.REGISTER_REQUEST)
    assert "'session_id'" in e.message
    e = refused(b'{"session_id": "s", "private_beach_id": "pb", "capabilities": ["a", 3]}', m.REGISTER_REQUEST)
    assert "'capabilities'[1] must be a string" in e.message


@pytest.mark.parametrize("value, ok", [("a", True), ("3f2c-aa.b_c:d", True), ("", False), ("..", False),
                                       (".a", False), ("a/b", False), ("a" * 129, False), ("é", False)])
def test_ids(value, ok):
    if ok:
        assert path_id(value, "id") == value
    else:
        with pytest.raises(ApiError):
            path_id(value, "id")


@settings(max_examples=300)
@given(st.binary(max_size=512))
def test_any_bytes_parse_or_raise_400(raw):
    try:
        parse_json(raw)
    except ApiError as e:
        assert e.status == 400


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4),
                           max_leaves=20)


@settings(max_examples=300)
@given(json_values, st.sampled_from([m.REGISTER_REQUEST, m.LEASE_REQUEST, m.RELEASE_REQUEST,
                                     m.ATTACH_BY_CODE_REQUEST]))
def test_any_json_validates_or_raises_400(value, schema):
    try:
        validate(schema, value)
    except ApiError as e:
        assert e.status == 400 and e.message


@pytest.mark.parametrize("body", [b'{"reason": "a\\u0000b"}', b'{"a\\u0000": 1}',
                                  b'{"reason": "\\ud800"}', b'{"x": [{"y": ["\\udfff"]}]}'])
def test_text_no_field_can_store_is_a_clear_400(body):
    """Found by schemathesis: NUL and unpaired surrogates reached PostgreSQL (a 500)."""
    e = refused(body)
    assert (e.status, e.error_code) == (400, "malformed_json") and "NUL" in e.message


def test_whole_floats_are_integers_as_json_schema_says():
    """Found by schemathesis: ttl_ms 8055.0 is an integer to JSON Schema."""
    body = read_json(FakeRequest(b'{"ttl_ms": 8055.0}'), m.LEASE_REQUEST)
    assert body == {"ttl_ms": 8055} and type(body["ttl_ms"]) is int
    assert refused(b'{"ttl_ms": 8055.5}').error_code == "invalid_body"
    assert refused(b'{"ttl_ms": 1e300}').error_code == "invalid_body"  # past the maximum
