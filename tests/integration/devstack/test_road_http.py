"""The development Road over real HTTP: every route, status code and JSON shape."""

from __future__ import annotations

import hashlib
import json
import re
import time

import jwt
import pytest
import pytest_twisted
import treq
from cryptography.hazmat.primitives.asymmetric import ec

from beachmanager.devstack.road.service import start_road
from beachmanager.devstack.road.settings import RoadSettings
from beachmanager.devstack.road.viewer import viewer_mac


def _decode(r, text):
    if "application/json" in (r.headers.getRawHeaders("content-type") or [""])[0]:
        return json.loads(text)
    return text


async def post(url, body, **kw):
    r = await treq.post(url, json=body, **kw) if not isinstance(body, bytes) else await treq.post(url, data=body, **kw)
    return r.code, _decode(r, await r.text())


async def get(url):
    r = await treq.get(url)
    return r.code, _decode(r, await r.text())


async def register(road, session_id="host-1", passphrase="ABC123"):
    code, body = await post(road.url + "/sessions", {"session_id": session_id, "passphrase": passphrase})
    assert code == 200 and body["success"] is True
    return body


@pytest_twisted.ensureDeferred
async def test_health(road):
    assert await get(road.url + "/health") == (200, {"status": "ok", "fallback_paused": False})


@pytest_twisted.ensureDeferred
async def test_register_shapes_and_generated_code(road):
    body = await register(road, "h1", None)
    assert re.fullmatch(r"[A-Z0-9]{6}", body["join_code"])
    base, ws = road.url, road.ws_url
    assert body == {
        "success": True, "session_url": f"{base}/sessions/h1", "message": None, "session_id": "h1",
        "join_code": body["join_code"],
        "transports": [{"kind": "web_rtc", "metadata": {"signaling_url": f"{base}/sessions/h1/webrtc",
                                                        "role": "offerer", "poll_interval_ms": 250}},
                       {"kind": "web_socket", "url": f"{ws}/ws/h1"}],
        "websocket_url": f"{ws}/ws/h1",
    }
    blank = await register(road, "h2", "   ")
    assert re.fullmatch(r"[A-Z0-9]{6}", blank["join_code"])
    assert (await register(road, "h3", "mycode"))["join_code"] == "mycode"
    code, again = await post(road.url + "/sessions", {"session_id": "h1", "passphrase": "x"})
    assert code == 200 and again == {"success": False, "session_url": "", "message": "Session already exists",
                                     "transports": []}


@pytest_twisted.ensureDeferred
async def test_body_rules(road_small_bounds):
    road = road_small_bounds  # the bound under test: 4 KiB bodies
    url = road.url + "/sessions"
    assert (await post(url, b'{"session_id":"a"}'))[0] == 415  # no content type
    headers = {"content-type": "application/json"}
    assert (await post(url, b"{not json", headers=headers))[0] == 400
    assert (await post(url, {"passphrase": "x"}))[0] == 422
    assert (await post(url, {"session_id": 5}))[0] == 422
    assert (await post(url, {"session_id": "x" * 200}))[0] == 422
    assert (await post(url, b'{"session_id":"' + b"a" * 5000 + b'"}', headers=headers))[0] == 413
    assert (await get(road.url + "/sessions"))[0] == 405


@pytest_twisted.ensureDeferred
async def test_get_session(road):
    assert await get(road.url + "/sessions/nope") == (200, {"exists": False, "created_at": None})
    await register(road, "h1")
    code, body = await get(road.url + "/sessions/h1")
    assert code == 200 and body["exists"] is True and abs(body["created_at"] - time.time()) < 60


@pytest_twisted.ensureDeferred
async def test_http_join(road):
    url = road.url + "/sessions/h1/join"
    assert await post(url, {"passphrase": "ABC123"}) == (200, {"success": False, "message": "Session not found"})
    await register(road, "h1", "ABC123")
    assert (await post(url, {}))[1] == {"success": False, "message": "Passphrase required"}
    assert (await post(url, {"passphrase": "  "}))[1]["message"] == "Passphrase required"
    assert (await post(url, {"passphrase": "WRONG1"}))[1] == {"success": False, "message": "Invalid passphrase"}
    code, body = await post(url, {"passphrase": " ABC123 ", "label": "beach-manager", "mcp": True})
    offer = {"signaling_url": f"{road.url}/sessions/h1/webrtc", "role": "answerer", "poll_interval_ms": 250,
             "label": "beach-manager"}
    assert code == 200 and body == {
        "success": True, "message": None, "webrtc_offer": offer, "session_url": f"{road.url}/sessions/h1",
        "transports": [{"kind": "web_rtc", "metadata": offer}, {"kind": "web_socket", "url": f"{road.ws_url}/ws/h1"}],
        "websocket_url": f"{road.ws_url}/ws/h1"}
    assert "label" not in (await post(url, {"passphrase": "ABC123"}))[1]["webrtc_offer"]
    # a viewer token without a configured verifier: 503
    assert (await post(url, {"passphrase": "ABC123", "viewer_token": "t"}))[0] == 503


@pytest_twisted.ensureDeferred
async def test_verify_code(road):
    url = road.url + "/sessions/h1/verify-code"
    assert await post(url, {"code": "ABC123"}) == (200, {"verified": False, "owner_account_id": None})
    await post(road.url + "/sessions", {"session_id": "h1", "passphrase": "ABC123"},
               headers={"x-account-id": "acct-7"})
    assert await post(url, {"code": "ABC123"}) == (200, {"verified": True, "owner_account_id": "acct-7"})
    assert (await post(url, {"code": "abc123"}))[1]["verified"] is False
    assert (await post(url, {"code": " ABC123"}))[1]["verified"] is False  # no trimming
    assert (await post(url, {}))[0] == 422


@pytest_twisted.ensureDeferred
async def test_attach(road):
    url = road.url + "/peer-sessions/attach"
    assert (await post(url, {"host_session_id": "h1", "passphrase": "ABC123"}))[0] == 404
    await register(road, "h1", "ABC123")
    assert (await post(url, {"host_session_id": "h1"}))[0] == 401
    assert (await post(url, {"host_session_id": "h1", "passphrase": " "}))[0] == 401
    assert (await post(url, {"host_session_id": "h1", "passphrase": "abc123"}))[0] == 401
    assert (await post(url, {"passphrase": "ABC123"}))[0] == 422
    code, first = await post(url, {"host_session_id": "h1", "passphrase": "ABC123", "role": "offerer",
                                   "peer_id": "x"})
    assert code == 200 and set(first) == {"peer_session_id", "host_session_id"}
    assert first["host_session_id"] == "h1"
    code, second = await post(url, {"host_session_id": "h1", "passphrase": " ABC123 ", "role": "answerer"})
    assert second == first  # one peer session per host


def sdp(kind, hid="hs-1", frm="host", to="client", **extra):
    return {"sdp": f"v=0 {kind}", "type": kind, "handshake_id": hid, "from_peer": frm, "to_peer": to, **extra}


@pytest_twisted.ensureDeferred
async def test_offer_mailbox(road_small_bounds):
    road = road_small_bounds  # the bound under test: 2 offers per peer
    await register(road, "h1", "ABC123")
    psid = (await post(road.url + "/peer-sessions/attach", {"host_session_id": "h1", "passphrase": "ABC123"}))[1][
        "peer_session_id"]
    offers = f"{road.url}/peer-sessions/{psid}/webrtc/offer"
    assert (await post(f"{road.url}/peer-sessions/nope/webrtc/offer", sdp("offer")))[0] == 409
    for blank in ("handshake_id", "from_peer", "to_peer"):
        assert (await post(offers, {**sdp("offer"), blank: " "}))[0] == 400
    assert (await post(offers, {"sdp": "x"}))[0] == 422
    assert (await get(offers))[0] == 400
    assert (await get(offers + "?peer_id="))[0] == 400
    assert (await get(offers + "?peer_id=client"))[0] == 409
    assert (await get(f"{road.url}/peer-sessions/nope/webrtc/offer?peer_id=client"))[0] == 409
    sealed = {"version": 1, "nonce": "AAAAAAAAAAAAAAAA", "ciphertext": "A" * 24}
    assert await post(offers, sdp("offer", "hs-1", sealed=sealed)) == (204, "")
    assert (await post(offers, sdp("offer", "hs-2")))[0] == 204
    assert (await post(offers, sdp("offer", "hs-3")))[0] == 429  # bounded per peer
    assert (await post(offers, sdp("offer", "hs-9", to="other")))[0] == 204
    assert await get(offers + "?peer_id=client") == (200, sdp("offer", "hs-1", sealed=sealed))
    assert (await get(offers + "?peer_id=client"))[1]["handshake_id"] == "hs-2"
    assert (await get(offers + "?peer_id=client"))[0] == 409  # consumed
    assert (await get(offers + "?peer_id=other"))[1]["to_peer"] == "other"


@pytest_twisted.ensureDeferred
async def test_answer_mailbox(road):
    await register(road, "h1", "ABC123")
    psid = (await post(road.url + "/peer-sessions/attach", {"host_session_id": "h1", "passphrase": "ABC123"}))[1][
        "peer_session_id"]
    answers = f"{road.url}/peer-sessions/{psid}/webrtc/answer"
    assert (await post(f"{road.url}/peer-sessions/nope/webrtc/answer", sdp("answer")))[0] == 409
    assert (await post(answers, {**sdp("answer"), "handshake_id": ""}))[0] == 400
    assert (await get(answers))[0] == 400
    assert (await get(answers + "?handshake_id=hs-1"))[0] == 409
    assert (await post(answers, sdp("answer", frm="client", to="host")))[0] == 204
    assert await get(answers + "?handshake_id=hs-1") == (200, sdp("answer", frm="client", to="host"))
    assert (await get(answers + "?handshake_id=hs-1"))[0] == 409
    assert (await get(f"{road.url}/peer-sessions/nope/webrtc/answer?handshake_id=hs-1"))[0] == 409


@pytest_twisted.ensureDeferred
async def test_debug_peers_empty_room(road):
    assert (await get(road.url + "/debug/sessions/h1/peers"))[0] == 404


# -- viewer tokens ------------------------------------------------------------------------------

@pytest.fixture
def viewer_keys(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk["kid"] = "k1"
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return key, str(path)


def viewer_token(key, session_id, code, secret=b"s3cret", **over):
    claims = {"sub": session_id, "aud": "beach-road", "exp": int(time.time()) + 60, "token_type": "viewer",
              "mac": viewer_mac(secret, session_id, code), **over}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})


@pytest_twisted.ensureDeferred
async def test_http_join_viewer_tokens(viewer_keys, tmp_path):
    key, jwks = viewer_keys
    road = await start_road(settings=RoadSettings(viewer_token_secret=b"s3cret", viewer_jwks_path=jwks))
    broken = await start_road(settings=RoadSettings(viewer_token_secret=b"s3cret",
                                                    viewer_jwks_path=str(tmp_path / "missing.json")))
    try:
        for r in (road, broken):
            await register(r, "h1", "ABC123")
        url = road.url + "/sessions/h1/join"
        good = viewer_token(key, "h1", "ABC123")
        bad = viewer_token(key, "h1", "OTHER1")
        assert (await post(url, {"viewer_token": bad, "passphrase": "ABC123"}))[1] == {
            "success": False, "message": "viewer credential invalid"}
        # a valid viewer token does not replace the passphrase over HTTP
        assert (await post(url, {"viewer_token": good}))[1]["message"] == "Passphrase required"
        assert (await post(url, {"viewer_token": good, "passphrase": "ABC123"}))[1]["success"] is True
        assert (await post(broken.url + "/sessions/h1/join", {"viewer_token": good, "passphrase": "ABC123"}))[0] == 502
    finally:
        await road.stop()
        await broken.stop()


def test_join_code_hash_is_sha256():
    from beachmanager.devstack.road.store import hash_code

    assert hash_code("ABC123") == hashlib.sha256(b"ABC123").hexdigest()


# -- CORS (permissive, as upstream; reference §1.1) ----------------------------------------------

ORIGIN = "http://surfer.example:5173"


def _header(r, name):
    values = r.headers.getRawHeaders(name)
    return values[0] if values else None


@pytest_twisted.ensureDeferred
async def test_cors_preflight_on_any_path(road):
    for path in ("/sessions/h1/join", "/peer-sessions/attach", "/peer-sessions/p/webrtc/answer", "/no/such/route"):
        r = await treq.request("OPTIONS", road.url + path, headers={
            "origin": ORIGIN, "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, x-beach-trace"})
        assert r.code == 204, path
        assert await r.content() == b""
        assert _header(r, "access-control-allow-origin") == ORIGIN
        assert "POST" in _header(r, "access-control-allow-methods")
        assert "GET" in _header(r, "access-control-allow-methods")
        assert _header(r, "access-control-allow-headers") == "content-type, x-beach-trace"
        assert int(_header(r, "access-control-max-age")) > 0
    # without an Origin (or with one that cannot be echoed): the wildcard and the default headers
    r = await treq.request("OPTIONS", road.url + "/sessions", headers={"origin": "x" * 2000})
    assert r.code == 204 and _header(r, "access-control-allow-origin") == "*"
    assert "content-type" in _header(r, "access-control-allow-headers")
    await r.content()


@pytest_twisted.ensureDeferred
async def test_cors_cross_origin_post_and_errors_carry_allow_origin(road):
    r = await treq.post(road.url + "/sessions", json={"session_id": "h1", "passphrase": "ABC123"},
                        headers={"origin": ORIGIN})
    assert r.code == 200 and (await r.json())["success"] is True
    assert _header(r, "access-control-allow-origin") == ORIGIN
    r = await treq.post(road.url + "/sessions/h1/join", json={"passphrase": "ABC123", "label": "beach-surfer"},
                        headers={"origin": ORIGIN})
    assert r.code == 200 and (await r.json())["success"] is True
    assert _header(r, "access-control-allow-origin") == ORIGIN
    # error answers: the app's own (401, 415, 409), the router's (404, 405), the size bound (413)
    errors = [
        treq.post(road.url + "/peer-sessions/attach", json={"host_session_id": "h1", "passphrase": "NOPE00"},
                  headers={"origin": ORIGIN}),
        treq.post(road.url + "/sessions", data=b"{}", headers={"origin": ORIGIN}),
        treq.get(road.url + "/peer-sessions/nope/webrtc/offer?peer_id=a", headers={"origin": ORIGIN}),
        treq.get(road.url + "/no/such/route", headers={"origin": ORIGIN}),
        treq.get(road.url + "/sessions", headers={"origin": ORIGIN}),
        treq.post(road.url + "/sessions", data=b'{"session_id":"' + b"a" * (300 * 1024) + b'"}',
                  headers={"origin": ORIGIN, "content-type": "application/json"}),
    ]
    codes = []
    for pending in errors:
        r = await pending
        await r.content()
        codes.append(r.code)
        assert _header(r, "access-control-allow-origin") == ORIGIN, r.code
    assert codes == [401, 415, 409, 404, 405, 413]
    # a request without an Origin gets the wildcard
    r = await treq.get(road.url + "/health")
    assert r.code == 200 and _header(r, "access-control-allow-origin") == "*"
    await r.content()
