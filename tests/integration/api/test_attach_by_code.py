"""Attach-by-code against the development Road: verified and rejected codes, Road failures,
and the hand-off to the host sessions (the registry's attach state follows the session stream)."""

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor

from beachmanager.api.road_verify import RoadError, RoadTimeout, RoadVerifier
from beachmanager.registry.store import Tenant
from tests.support.api_client import start_manager as start_bare
from tests.support.auth_fixtures import auth_settings
from tests.support.eventually import eventually
from tests.support.servers import free_port

URL = "/private-beaches/pb-1/sessions/attach-by-code"


async def start_manager(**settings):
    """A manager where acct-1 (the test issuer's default account) owns private beach pb-1."""
    return await start_bare(owners={"pb-1": "acct-1"}, **settings)


async def host_session(road, session_id, passphrase):
    r = await treq.post(road.url + "/sessions", json={"session_id": session_id, "passphrase": passphrase})
    body = await r.json()
    assert r.code == 200 and body["success"], body
    return body


@pytest_twisted.ensureDeferred
async def test_verified_code_is_recorded_and_the_host_session_starts(road, jwks, gate):
    await host_session(road, "host-ok", "JOINME")
    m = await start_manager(road_url=road.url, webrtc_disable_stun=True, **auth_settings(jwks))
    try:
        r = await m.call("POST", URL, token=gate.token(), body={"session_id": "host-ok", "code": "JOINME"})
        assert r.status == 200, r.body
        assert (r.body["ok"], r.body["attach_method"]) == (True, "code")
        s = r.body["session"]
        assert (s["session_id"], s["private_beach_id"], s["attach_state"]) == ("host-ok", "pb-1", "attaching")
        assert "JOINME" not in str(r.body)
        store = m.parts.registry.store
        assert await store.join_code(Tenant("pb-1"), "host-ok") == "JOINME"
        assert m.parts.events.managed("host-ok")  # its session runs (no host answers in this room)
        events = (await m.call("GET", "/sessions/host-ok/controller-events", token=gate.token())).body
        assert [(e["event_type"], e["reason"]) for e in events] == [("registered", "attach_by_code")]
    finally:
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_rejected_codes_and_unknown_sessions_are_refused(road, jwks, gate):
    await host_session(road, "host-ok", "JOINME")
    m = await start_manager(road_url=road.url, **auth_settings(jwks))
    try:
        for body in ({"session_id": "host-ok", "code": "WRONG"}, {"session_id": "host-ok", "code": "joinme"},
                     {"session_id": "no-such-host", "code": "JOINME"}):
            r = await m.call("POST", URL, token=gate.token(), body=body)
            assert (r.status, r.error_code) == (403, "invalid_join_code"), (body, r.body)
        r = await m.call("GET", "/private-beaches/pb-1/sessions", token=gate.token())
        assert r.body == []  # nothing recorded for a refused code
    finally:
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_a_real_host_attached_by_code_is_recorded_attached(road, jwks, gate):
    from beachmanager.devstack.host.host import start_host
    from beachmanager.transport.events import ready_of

    host = await start_host(road.url, reactor)
    m = await start_manager(road_url=road.url, webrtc_disable_stun=True, **auth_settings(jwks))
    try:
        body = {"session_id": host.session_id, "code": host.join_code}
        r = await m.call("POST", URL, token=gate.token(), body=body)
        assert (r.status, r.body["session"]["attach_state"]) == (200, "attaching"), r.body
        await m.parts.events.wait_for(ready_of(host.session_id)).addTimeout(30, reactor)
        tenant = Tenant("pb-1")

        async def recorded():
            session = await m.parts.registry.store.get_session(tenant, host.session_id)
            return session is not None and session.attach_state == "attached"

        await eventually(recorded, timeout=10, what="the registry's attach state follows the stream")
        r = await m.call("GET", "/private-beaches/pb-1/sessions", token=gate.token())
        assert [(x["session_id"], x["attach_state"]) for x in r.body] == [(host.session_id, "attached")]
    finally:
        await m.stop()
        await host.stop()


@pytest_twisted.ensureDeferred
async def test_the_real_host_manager_takes_the_host(road, jwks, gate):
    await host_session(road, "host-real", "JOINME")
    m = await start_manager(road_url=road.url, webrtc_disable_stun=True, **auth_settings(jwks))
    try:
        hosts = m.parts.hosts
        r = await m.call("POST", URL, token=gate.token(), body={"session_id": "host-real", "code": "JOINME"})
        assert (r.status, r.body["session"]["attach_state"]) == (200, "attaching")
        assert hosts.get("host-real") is not None  # an attach machine now manages it
    finally:
        await m.stop()


@pytest_twisted.ensureDeferred
async def test_road_down_is_502_and_a_silent_road_times_out(jwks, gate):
    dead = f"http://127.0.0.1:{free_port()}"
    m = await start_manager(road_url=dead, **auth_settings(jwks))
    try:
        r = await m.call("POST", URL, token=gate.token(), body={"session_id": "h", "code": "c"})
        assert (r.status, r.error_code, r.body["error"]) == (502, "road_error", "upstream_error")
    finally:
        await m.stop()

    from twisted.internet.protocol import Factory, Protocol

    class Silent(Protocol):
        def dataReceived(self, data):
            pass

    port = reactor.listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")
    try:
        verifier = RoadVerifier(reactor, reactor, f"http://127.0.0.1:{port.getHost().port}", timeout=0.3)
        with pytest.raises(RoadTimeout):
            await verifier.verify("h", "c")
        assert verifier.url("a b/../c").endswith("/sessions/a%20b%2F..%2Fc/verify-code")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_road_answers_that_are_not_usable(road):
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET, Site

    class Odd(Resource):
        isLeaf = True
        replies = {b"/sessions/a/verify-code": (200, b"not json"), b"/sessions/b/verify-code": (200, b'{"x": 1}'),
                   b"/sessions/c/verify-code": (500, b"{}")}

        held = []

        def render_POST(self, request):
            if request.path == b"/sessions/d/verify-code":  # headers, then the body never ends
                request.setResponseCode(200)
                request.write(b'{"verified": ')
                self.held.append(request)
                return NOT_DONE_YET
            code, body = self.replies[request.path]
            request.setResponseCode(code)
            return body

    port = reactor.listenTCP(0, Site(Odd()), interface="127.0.0.1")
    try:
        verifier = RoadVerifier(reactor, reactor, f"http://127.0.0.1:{port.getHost().port}")
        for sid in "abc":
            with pytest.raises(RoadError):
                await verifier.verify(sid, "code")
        verifier.timeout = 0.3
        with pytest.raises(RoadTimeout):
            await verifier.verify("d", "code")
        for request in Odd.held:
            if not request.finished:
                request.finish()
        real = RoadVerifier(reactor, reactor, road.url)
        assert (await real.verify("nobody", "x")).verified is False
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_full_instance_refuses_with_503_and_queues_nothing(road, jwks, gate):
    await host_session(road, "host-a", "CODEAA")
    await host_session(road, "host-b", "CODEBB")
    m = await start_manager(road_url=road.url, capacity=1, webrtc_disable_stun=True,
                            **auth_settings(jwks))
    hosts = m.parts.hosts
    try:
        await m.parts.assign.whenReady()
        r = await m.call("POST", URL, token=gate.token(), body={"session_id": "host-a", "code": "CODEAA"})
        assert r.status == 200, r.body
        assert r.body["assignment"] == {"manager_instance_id": m.ctx.config.instance_id,
                                        "status": "assigned", "attaching_here": True}
        r = await m.call("POST", URL, token=gate.token(), body={"session_id": "host-b", "code": "CODEBB"})
        assert (r.status, r.error_code) == (503, "capacity_exhausted"), r.body
        assert r.body["host_session_id"] == "host-b"
        assert list(hosts.machines) == ["host-a"]  # host-b was refused, not queued
        sessions = (await m.call("GET", "/private-beaches/pb-1/sessions", token=gate.token())).body
        assert {s["session_id"]: s["attach_state"] for s in sessions}["host-b"] == "attach_failed"
    finally:
        await m.stop()
