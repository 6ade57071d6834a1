"""Requests for hosts owned elsewhere, carried over a Redis stream per owning manager.

Any instance accepts a controller's request; when the host belongs to another instance
the request travels to the owner's inbox stream, the owner replays it against its own
HTTP API (so authentication, scopes and the queue's checks happen where the host lives)
and posts the answer to the sender's reply stream::

    P inbox:<owner>      stream  id, from, deadline_ms, method, path, headers (JSON), body (base64)
    P replies:<sender>   stream  id, status, headers (JSON), body (base64)

Both streams are capped (``MAXLEN ~``).  One blocking connection per instance reads its
inbox and its replies together.  A request whose deadline passed is dropped unanswered;
the sender answers 504 at its own deadline.  Replayed requests carry
``x-beach-forwarded-by`` so they are never forwarded again.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .._aio import background
from .model import AssignmentError

FORWARDED_BY = b"x-beach-forwarded-by"
SERVED_BY = b"x-beach-served-by"
#: Request headers carried to the owner, and answer headers carried back.
REQUEST_HEADERS = ("authorization", "content-type", "accept", "x-request-id")
RESPONSE_HEADERS = ("content-type", "retry-after", "x-beach-auth-bypass", "www-authenticate")
STREAM_MAX = 1000
BLOCK_MS = 1000
MAX_BODY = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 10.0


class RelayTimeout(AssignmentError):
    """The owner did not answer a forwarded request in time."""


@dataclass(frozen=True)
class Relayed:
    status: int
    headers: dict[str, str]
    body: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Relay:
    log = Logger()

    def __init__(self, conn, blocking_conn, *, prefix: str, instance_id: str, clock: IReactorTime,
                 local_base: Callable[[], str], http_request: Callable[..., Deferred] | None = None):
        self.conn = conn
        self.blocking = blocking_conn
        self.prefix = prefix
        self.instance_id = instance_id
        self.clock = clock
        self.local_base = local_base
        self._http = http_request
        self._waiters: dict[str, Deferred] = {}
        self._running = False
        self._loop: Deferred | None = None
        self._ids = {"inbox": "0-0", "replies": "0-0"}
        self.served = 0
        self.forwarded = 0

    def inbox(self, instance_id: str) -> str:
        return f"{self.prefix}inbox:{instance_id}"

    def replies(self, instance_id: str) -> str:
        return f"{self.prefix}replies:{instance_id}"

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        for kind, key in (("inbox", self.inbox(self.instance_id)),
                          ("replies", self.replies(self.instance_id))):
            last = await self.conn.execute_command("XREVRANGE", key, "+", "-", "COUNT", 1)
            self._ids[kind] = _text(last[0][0]) if last else "0-0"
        self._running = True
        self._loop = background(ensureDeferred(self._read_loop()), "relay read loop", self.log)

    async def stop(self) -> None:
        self._running = False
        for d in list(self._waiters.values()):
            if not d.called:
                d.errback(RelayTimeout("this instance is stopping"))
        self._waiters.clear()
        try:  # ends the pending blocking read at once
            await self.blocking.disconnect()
        except Exception:
            pass
        if self._loop is not None:
            loop, self._loop = self._loop, None
            try:
                await loop.addTimeout(BLOCK_MS / 1000 + 2, self.clock)
            except Exception:
                pass

    # -- sending ------------------------------------------------------------------------------
    async def forward(self, owner: str, method: str, path: str, headers: dict[str, str], body: bytes,
                      timeout: float = DEFAULT_TIMEOUT) -> Relayed:
        """Send a request to *owner*'s inbox and wait for its answer (raises RelayTimeout)."""
        request_id = uuid.uuid4().hex
        deadline_ms = int((self.clock.seconds() + timeout) * 1000)
        waiter: Deferred = Deferred()
        self._waiters[request_id] = waiter
        try:
            await self.conn.execute_command(
                "XADD", self.inbox(owner), "MAXLEN", "~", STREAM_MAX, "*", "id", request_id,
                "from", self.instance_id, "deadline_ms", deadline_ms, "method", method, "path", path,
                "headers", json.dumps(headers), "body", _b64(body))
            self.forwarded += 1
            return await waiter.addTimeout(timeout, self.clock)
        except (CancelledError, TimeoutError) as e:
            raise RelayTimeout(f"manager {owner} did not answer within {timeout:g}s") from e
        finally:
            self._waiters.pop(request_id, None)

    # -- receiving ----------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        inbox, replies = self.inbox(self.instance_id), self.replies(self.instance_id)
        failures = 0
        while self._running:
            try:
                reply = await self.blocking.execute_command(
                    "XREAD", "COUNT", 64, "BLOCK", BLOCK_MS, "STREAMS", inbox, replies,
                    self._ids["inbox"], self._ids["replies"], apply_timeout=False)
                failures = 0
            except Exception as e:
                if not self._running:
                    return
                failures += 1
                if failures in (1, 10) or failures % 60 == 0:
                    self.log.warn("relay: reading the inbox failed ({error}); retrying",
                                  error=str(e) or type(e).__name__)
                from twisted.internet.task import deferLater

                await deferLater(self.clock, min(5.0, 0.2 * failures))
                continue
            for key, entries in reply or []:
                kind = "inbox" if _text(key) == inbox else "replies"
                for entry_id, flat in entries:
                    self._ids[kind] = _text(entry_id)
                    fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}
                    if kind == "inbox":
                        background(ensureDeferred(self._serve(fields)), "relay serve", self.log)
                    else:
                        self._answer(fields)

    def _answer(self, f: dict[str, str]) -> None:
        waiter = self._waiters.pop(f.get("id", ""), None)
        if waiter is None or waiter.called:
            return
        try:
            waiter.callback(Relayed(int(f["status"]), json.loads(f.get("headers") or "{}"),
                                    base64.b64decode(f.get("body", ""))))
        except (KeyError, ValueError) as e:
            waiter.errback(RelayTimeout(f"malformed answer from the owner: {e}"))

    async def _serve(self, f: dict[str, str]) -> None:
        now_ms = int(self.clock.seconds() * 1000)
        if now_ms > int(f.get("deadline_ms", "0")) or not f.get("from") or not f.get("id"):
            return
        headers = {k: v for k, v in json.loads(f.get("headers") or "{}").items()
                   if k.lower() in REQUEST_HEADERS}
        body = base64.b64decode(f.get("body", ""))
        send = {k.encode(): [v.encode()] for k, v in headers.items()}
        send[FORWARDED_BY] = [f["from"].encode()]
        try:
            response = await self._request(f["method"], self.local_base() + f["path"], send, body)
            content = await response.content()
            out_headers = {name: response.headers.getRawHeaders(name)[0] for name in RESPONSE_HEADERS
                           if response.headers.hasHeader(name)}
            status = response.code
        except Exception as e:
            self.log.warn("relay: replaying {method} {path} failed: {error}", method=f.get("method"),
                          path=f.get("path"), error=str(e) or type(e).__name__)
            status, out_headers = 502, {"content-type": "application/json"}
            content = json.dumps({"error": "upstream_error", "error_code": "forward_failed",
                                  "message": "the owning manager could not serve the request"}).encode()
        out_headers[SERVED_BY.decode()] = self.instance_id
        await self.conn.execute_command(
            "XADD", self.replies(f["from"]), "MAXLEN", "~", STREAM_MAX, "*", "id", f["id"],
            "status", status, "headers", json.dumps(out_headers), "body", _b64(content[:MAX_BODY]))
        self.served += 1

    def _request(self, method: str, url: str, headers, body: bytes) -> Deferred:
        if self._http is not None:
            return self._http(method, url, headers=headers, data=body or None)
        import treq

        return treq.request(method, url, headers=headers, data=body or None, timeout=DEFAULT_TIMEOUT)

    def status(self) -> dict[str, Any]:
        return {"forwarded": self.forwarded, "served": self.served, "waiting": len(self._waiters)}
