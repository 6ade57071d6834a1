"""Beach Road's ``POST /sessions/:id/verify-code`` over treq (URL built from ``config.road_url``).

Road answers 200 ``{verified, owner_account_id}`` (an unknown session is just
``verified: false``).  Anything else is an upstream failure: :class:`RoadError`
(502), or :class:`RoadTimeout` (504) after :data:`TIMEOUT` seconds on the clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.error import TimeoutError as TwistedTimeout
from twisted.internet.interfaces import IReactorTime

TIMEOUT = 8.0
MAX_REPLY_BYTES = 16 * 1024


class RoadError(Exception):
    """Road could not be asked or gave an unusable answer."""


class RoadTimeout(RoadError):
    pass


@dataclass(frozen=True)
class Verification:
    verified: bool
    owner_account_id: str | None = None


class RoadVerifier:
    def __init__(self, reactor, clock: IReactorTime, road_url: str, timeout: float = TIMEOUT):
        import treq
        from twisted.web.client import Agent, HTTPConnectionPool

        self.clock = clock
        self.road_url = road_url.rstrip("/")
        self.timeout = timeout
        self._client = treq.client.HTTPClient(
            Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))

    def url(self, host_session_id: str) -> str:
        return f"{self.road_url}/sessions/{quote(host_session_id, safe='')}/verify-code"

    def verify(self, host_session_id: str, code: str):
        """Deferred[:class:`Verification`]."""
        return ensureDeferred(self._verify(host_session_id, code))

    async def _verify(self, host_session_id: str, code: str) -> Verification:
        import treq

        url = self.url(host_session_id)
        timed_out = False
        # the Deferred being waited on (the request, then the body)
        current: Deferred[Any] | None = None

        def give_up() -> None:
            nonlocal timed_out
            timed_out = True
            if current is not None:  # always set before the timer starts
                current.cancel()

        try:
            current = self._client.post(url, json={"code": code})
            timer = self.clock.callLater(self.timeout, give_up)
            try:
                response = await current
                current = treq.content(response)
                body = await current
            finally:
                if timer.active():
                    timer.cancel()
        except Exception as e:
            # The agent reports a cancelled request as ResponseNeverReceived, not CancelledError.
            if timed_out or isinstance(e, TwistedTimeout | CancelledError):
                raise RoadTimeout(f"Beach Road did not answer verify-code within {self.timeout:g}s") from None
            raise RoadError(f"cannot reach Beach Road: {type(e).__name__}") from None
        if response.code != 200:
            raise RoadError(f"Beach Road answered verify-code with HTTP {response.code}")
        try:
            reply = json.loads(body[:MAX_REPLY_BYTES])
        except ValueError:
            raise RoadError("Beach Road's verify-code answer is not JSON") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("verified"), bool):
            raise RoadError("Beach Road's verify-code answer has no boolean 'verified'")
        owner = reply.get("owner_account_id")
        return Verification(reply["verified"], owner if isinstance(owner, str) else None)
