"""Secrets hygiene: no join code, JWT, controller token, viewer passcode or bridge token is
logged or returned by a debug route.  A whole manager (its dev Road, a dev host attached by
join code over WebRTC, real JWTs) is driven through registration, leases, actions, refused
tokens and codes; every log event (formatted and every field) and every debug and probe
answer is then scanned for each secret."""

from __future__ import annotations

import json
import uuid

import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.logger import formatEvent, globalLogPublisher

from beachmanager import config
from beachmanager.manager import build_manager
from beachmanager.telemetry.metrics import Metrics
from tests.support.api_client import Running
from tests.support.auth_fixtures import auth_settings
from tests.support.servers import free_port

DEBUG_SCOPES = "pb:manager.debug pb:manager.read"


def every_field(event: dict) -> str:
    text = formatEvent(event) if "log_format" in event else ""
    fields = {k: v for k, v in event.items() if k not in ("log_logger", "log_source")}
    failure = event.get("log_failure")
    if failure is not None:
        text += failure.getTraceback()
    return text + json.dumps(fields, default=repr)


@pytest_twisted.ensureDeferred
async def test_no_secret_is_logged_or_shown_by_a_debug_route(jwks, gate):
    events: list[str] = []
    globalLogPublisher.addObserver(lambda e: events.append(every_field(e)))
    port = free_port()
    cfg = config.defaults(http_endpoint=f"tcp:{port}:interface=127.0.0.1", dev_road=free_port(),
                          dev_hosts=1, webrtc_disable_stun=True, **auth_settings(jwks))
    metrics = Metrics(CollectorRegistry())
    root = build_manager(cfg, reactor, metrics=metrics, on_fatal=list().append)
    bridge_tokens: list[str] = []
    send = root.parts.associations._send

    def keep_bridge_tokens(host, topic, payload):  # what the harness is told, seen on its way
        body = json.loads(payload)
        token = (body.get("payload") or {}).get("bridge_token") if isinstance(body, dict) else None
        if token:
            bridge_tokens.append(token)
        return send(host, topic, payload)

    root.parts.associations._send = keep_bridge_tokens
    root.startService()
    m = Running(root, f"http://127.0.0.1:{port}", metrics)
    try:
        dev = root.parts.dev_hosts
        await dev.whenReady()
        [host] = dev.started
        assert dev.attached == [host.session_id]
        bound = gate.token(private_beach_id="dev")
        debug = gate.token(scope=DEBUG_SCOPES, private_beach_id="dev")
        viewer_passcode = "VP-" + uuid.uuid4().hex
        wrong_code = "WRONG-" + uuid.uuid4().hex[:8]
        r = await m.call("POST", "/sessions/register", token=bound,
                         body={"session_id": "h-secret", "private_beach_id": "dev",
                               "viewer_passcode": viewer_passcode})
        assert r.status == 200
        controller_tokens = [r.body["controller_token"]]
        r = await m.call("POST", f"/sessions/{host.session_id}/controller/lease", token=bound, body={})
        assert r.status == 200
        controller_tokens.append(r.body["controller_token"])
        r = await m.call("POST", f"/sessions/{host.session_id}/actions", token=bound, body={
            "controller_token": controller_tokens[-1],
            "actions": [{"id": "a-1", "action_type": "terminal_write", "payload": {"bytes": "true\r"}}]})
        assert r.status == 200, r.body
        r = await m.call("POST", "/private-beaches/dev/sessions/attach-by-code", token=bound,
                         body={"session_id": host.session_id, "code": wrong_code})
        assert r.error_code == "invalid_join_code"
        tampered = gate.tampered()
        assert (await m.call("GET", "/debug/info", token=tampered)).status == 401
        r = await m.call("DELETE", f"/sessions/{host.session_id}/controller/lease", token=bound,
                         body={"controller_token": str(uuid.uuid4())})
        assert r.error_code == "controller_mismatch"
        assert bridge_tokens, "the dev host's harness was sent an association"

        answers = []
        for path in ("/debug/info", "/debug/transports", f"/debug/transports/{host.session_id}",
                     f"/debug/hosts/{host.session_id}/cache", "/debug/assignments",
                     f"/debug/assignments/{host.session_id}", "/readyz", "/metrics", "/healthz",
                     "/openapi.json"):
            r = await m.call("GET", path, token=debug)
            assert r.status == 200, (path, r.body)
            answers.append((path, r.body if isinstance(r.body, bytes) else json.dumps(r.body)))
        secrets = {"join code": host.join_code, "wrong join code": wrong_code,
                   "viewer passcode": viewer_passcode, "bearer token": bound,
                   "debug token": debug, "tampered token": tampered,
                   **{f"controller token {i}": t for i, t in enumerate(controller_tokens)},
                   **{f"bridge token {i}": t for i, t in enumerate(bridge_tokens)}}
        for name, secret in secrets.items():
            for path, body in answers:
                text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
                assert secret not in text, f"{name} in the answer of {path}"
        assert len(events) > 50 and any(host.session_id in e for e in events)  # scanned
        for name, secret in secrets.items():
            leaked = [e for e in events if secret in e]
            assert not leaked, f"{name} logged: {leaked[0][:500]}"
        # the log still says what happened, without the secrets
        assert any("auth failure bad_signature" in e for e in events)
        assert any("did not verify the code" in e for e in events)
    finally:
        await root.stopService()
