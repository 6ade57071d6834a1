"""Road's HTTP API (reference §1.2-1.3): status codes and JSON shapes as upstream.

Body rules as upstream's framework: a JSON body needs ``Content-Type:
application/json`` (415 otherwise), must parse (400) and must have the right
fields (422).  Bodies over the configured size get 413; a full mailbox or store
gets 429/503 with a JSON ``{error, message}``.  Klein is imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from ...protocol.signaling import SignalingError, WebRtcSdpPayload
from .rooms import Rooms
from .settings import RoadSettings
from .store import RoadStore, StoreFull, hash_code
from .viewer import ViewerTokenError, ViewerTokenUnavailable, ViewerVerifier


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def ws_base(base: str) -> str:
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):]
    if base.startswith("http://"):
        return "ws://" + base[len("http://"):]
    return "ws://" + base


def normalize_base(base: str) -> str:
    base = base.strip().rstrip("/")
    return base if "://" in base else "http://" + base


class RoadHttp:
    log = Logger()

    def __init__(self, store: RoadStore, rooms: Rooms, settings: RoadSettings, base_url: Callable[[], str],
                 viewer: ViewerVerifier | None = None):
        self.store = store
        self.rooms = rooms
        self.settings = settings
        self._base_url = base_url
        self.viewer = viewer

    # -- helpers -----------------------------------------------------------------------------
    def base(self) -> str:
        return normalize_base(self.settings.public_url or self._base_url())

    @staticmethod
    def _json(request, value: Any, status: int = 200) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value, separators=(",", ":")).encode()

    def _error(self, request, status: int, message: str) -> bytes:
        return self._json(request, {"error": message, "message": message}, status)

    def _body(self, request) -> dict[str, Any]:
        ctype = (request.getHeader(b"content-type") or b"").decode("latin-1").lower()
        if "application/json" not in ctype:
            raise HttpError(415, "Expected request with `Content-Type: application/json`")
        raw = request.content.read(self.settings.max_body_bytes + 1)
        if len(raw) > self.settings.max_body_bytes:
            raise HttpError(413, f"body larger than {self.settings.max_body_bytes} bytes")
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise HttpError(400, f"Failed to parse the request body as JSON: {e}") from None
        if not isinstance(value, dict):
            raise HttpError(422, "body must be a JSON object")
        return value

    def _field(self, body: dict, key: str, *, required: bool = False, kind: type = str) -> Any:
        value = body.get(key)
        if value is None:
            if required:
                raise HttpError(422, f"missing field `{key}`")
            return None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise HttpError(422, f"invalid type for field `{key}`")
        if kind is str and isinstance(value, str) and len(value) > self.settings.max_body_bytes:
            raise HttpError(422, f"field `{key}` too long")
        return value

    def _id(self, value: str, what: str) -> str:
        if len(value) > self.settings.max_id_length:
            raise HttpError(422, f"{what} longer than {self.settings.max_id_length} characters")
        return value

    @staticmethod
    def _query(request, key: str) -> str | None:
        values = request.args.get(key.encode())
        return values[0].decode("utf-8", "replace") if values else None

    def _urls(self, session_id: str, label: str | None = None, role: str = "offerer") -> dict[str, Any]:
        base = self.base()
        ws_url = f"{ws_base(base)}/ws/{session_id}"
        offer = {"signaling_url": f"{base}/sessions/{session_id}/webrtc", "role": role,
                 "poll_interval_ms": self.settings.poll_interval_ms}
        if label is not None:
            offer["label"] = label
        return {"offer": offer, "ws": ws_url, "session_url": f"{base}/sessions/{session_id}",
                "transports": [{"kind": "web_rtc", "metadata": offer}, {"kind": "web_socket", "url": ws_url}]}

    def _route(self, fn):
        """Wrap a handler: :class:`HttpError` and store bounds become JSON error answers."""

        def handler(request, **kw):
            try:
                return fn(request, **kw)
            except HttpError as e:
                return self._error(request, e.status, e.message)
            except StoreFull as e:
                return self._error(request, 429 if "mailbox" in str(e) else 503, str(e))

        handler.__name__ = fn.__name__
        return handler

    # -- handlers ----------------------------------------------------------------------------
    def health(self, request):
        return self._json(request, {"status": "ok", "fallback_paused": False})

    def register(self, request):
        body = self._body(request)
        session_id = self._id(self._field(body, "session_id", required=True), "session_id")
        passphrase = self._field(body, "passphrase")
        owner = (request.getHeader(b"x-account-id") or b"").decode("utf-8", "replace") or None
        rec = self.store.register(session_id, passphrase, owner)
        if rec is None:
            return self._json(request, {"success": False, "session_url": "", "message": "Session already exists",
                                        "transports": []})
        urls = self._urls(session_id)
        self.log.info("registered session {session_id}", session_id=session_id)
        return self._json(request, {"success": True, "session_url": urls["session_url"], "message": None,
                                    "session_id": session_id, "join_code": rec.join_code,
                                    "transports": urls["transports"], "websocket_url": urls["ws"]})

    def get_session(self, request, session_id: str):
        rec = self.store.session(session_id)
        return self._json(request, {"exists": rec is not None, "created_at": rec.created_at if rec else None})

    def join(self, request, session_id: str):
        body = self._body(request)
        passphrase = self._field(body, "passphrase")
        viewer_token = self._field(body, "viewer_token")
        label = self._field(body, "label")
        self._field(body, "mcp", kind=bool)
        rec = self.store.session(session_id)
        if rec is None:
            return self._json(request, {"success": False, "message": "Session not found"})
        if viewer_token is not None and viewer_token.strip():
            if self.viewer is None:
                raise HttpError(503, "viewer tokens unavailable")
            try:
                self.viewer.verify(viewer_token, session_id, rec.join_code)
            except ViewerTokenUnavailable:
                raise HttpError(502, "viewer token verification failed") from None
            except ViewerTokenError:
                return self._json(request, {"success": False, "message": "viewer credential invalid"})
        if passphrase is None or not passphrase.strip():
            return self._json(request, {"success": False, "message": "Passphrase required"})
        if not rec.code_matches_trimmed(passphrase):
            return self._json(request, {"success": False, "message": "Invalid passphrase"})
        self.store.touch_session(rec)
        urls = self._urls(session_id, label=label, role="answerer")
        return self._json(request, {"success": True, "message": None, "webrtc_offer": urls["offer"],
                                    "session_url": urls["session_url"], "transports": urls["transports"],
                                    "websocket_url": urls["ws"]})

    def verify_code(self, request, session_id: str):
        body = self._body(request)
        code = self._field(body, "code", required=True)
        rec = self.store.session(session_id)
        verified = rec is not None and (hash_code(code) == rec.passphrase_hash or code == rec.join_code)
        return self._json(request, {"verified": verified,
                                    "owner_account_id": rec.owner_account_id if rec is not None else None})

    def attach(self, request):
        body = self._body(request)
        host_id = self._field(body, "host_session_id", required=True)
        passphrase = self._field(body, "passphrase")
        role = self._field(body, "role")
        peer_id = self._field(body, "peer_id")
        host = self.store.session(host_id)
        if host is None:
            raise HttpError(404, "host session not found")
        if not host.code_matches_trimmed(passphrase) or not (passphrase or "").strip():
            raise HttpError(401, "invalid passphrase")
        rec = self.store.attach(host, role, peer_id)
        return self._json(request, {"peer_session_id": rec.peer_session_id, "host_session_id": host_id})

    def _sdp_body(self, request) -> WebRtcSdpPayload:
        body = self._body(request)
        try:
            payload = WebRtcSdpPayload.from_json(body)
        except SignalingError as e:
            raise HttpError(422, str(e)) from None
        blank = payload.blank_ids()
        if blank:
            raise HttpError(400, f"blank {', '.join(blank)}")
        for key in ("handshake_id", "from_peer", "to_peer"):
            self._id(getattr(payload, key), key)
        return payload

    def post_offer(self, request, psid: str):
        payload = self._sdp_body(request)
        rec = self.store.peer_session(psid)
        if rec is None:
            raise HttpError(409, "peer session not found")
        self.store.post_offer(rec, payload)
        request.setResponseCode(204)
        return b""

    def get_offer(self, request, psid: str):
        peer_id = self._query(request, "peer_id")
        if peer_id is None or not peer_id.strip():
            raise HttpError(400, "missing peer_id")
        rec = self.store.peer_session(psid)
        if rec is None:
            raise HttpError(409, "peer session not found")
        payload = self.store.take_offer(rec, peer_id)
        if payload is None:
            raise HttpError(409, "no offer")
        return self._json(request, payload.to_json())

    def post_answer(self, request, psid: str):
        payload = self._sdp_body(request)
        rec = self.store.peer_session(psid)
        if rec is None:
            raise HttpError(409, "peer session not found")
        self.store.post_answer(rec, payload)
        request.setResponseCode(204)
        return b""

    def get_answer(self, request, psid: str):
        handshake_id = self._query(request, "handshake_id")
        if handshake_id is None or not handshake_id.strip():
            raise HttpError(400, "missing handshake_id")
        rec = self.store.peer_session(psid)
        payload = self.store.take_answer(rec, handshake_id) if rec is not None else None
        if payload is None:
            raise HttpError(409, "no answer")
        return self._json(request, payload.to_json())

    def debug_peers(self, request, session_id: str):
        members = self.rooms.peers(session_id)
        if not members:
            raise HttpError(404, "no peers")
        out = []
        for m in members:
            meta = {"remote_addr": m.conn.link.remote_addr}
            if "label" in m.summary:
                meta["label"] = m.summary["label"]
            out.append(m.info(meta, joined_at=0).to_json())
        return self._json(request, out)

    # -- assembly ----------------------------------------------------------------------------
    def build(self, ws_resource_for: Callable[[str], Any]):
        """The Klein app with every route; ``/ws/<id>`` renders *ws_resource_for(id)*."""
        from klein import Klein

        app = Klein()
        r = self._route
        app.route("/health", methods=["GET"])(r(self.health))
        app.route("/sessions", methods=["POST"])(r(self.register))
        app.route("/sessions/<session_id>", methods=["GET"])(r(self.get_session))
        app.route("/sessions/<session_id>/join", methods=["POST"])(r(self.join))
        app.route("/sessions/<session_id>/verify-code", methods=["POST"])(r(self.verify_code))
        app.route("/peer-sessions/attach", methods=["POST"])(r(self.attach))
        app.route("/peer-sessions/<psid>/webrtc/offer", methods=["POST"])(r(self.post_offer))
        app.route("/peer-sessions/<psid>/webrtc/offer", methods=["GET"])(r(self.get_offer))
        app.route("/peer-sessions/<psid>/webrtc/answer", methods=["POST"])(r(self.post_answer))
        app.route("/peer-sessions/<psid>/webrtc/answer", methods=["GET"])(r(self.get_answer))
        app.route("/debug/sessions/<session_id>/peers", methods=["GET"])(r(self.debug_peers))

        @app.route("/ws/<path_id>", methods=["GET"])
        def ws(request, path_id):
            return ws_resource_for(path_id)

        return app
