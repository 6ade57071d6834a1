"""``twistd -n beach-road-dev``: a Beach Road-compatible signaling server, in memory.

Imports nothing that installs a reactor; the service is built in :func:`makeService`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.python import usage

if TYPE_CHECKING:
    from .settings import RoadSettings


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


def _positive(name: str, raw: str, cast=float):
    try:
        value = cast(raw)
    except ValueError:
        raise usage.UsageError(f"--{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise usage.UsageError(f"--{name} must be above 0, got {raw!r}")
    return value


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = ("Run a development Beach Road (signaling server) compatible with upstream Road's HTTP "
                "and WebSocket API, holding everything in memory.")
    optParameters = [
        ["port", "p", None, "TCP port to listen on, 0 for any [env BEACH_ROAD_PORT, then PORT] [default: 4132]"],
        ["interface", None, "127.0.0.1", "Address to listen on (0.0.0.0 for all)."],
        ["public-url", None, None, "Base URL advertised in responses [env BEACH_PUBLIC_SESSION_SERVER] "
                                   "[default: the listening address]"],
        ["peer-timeout", None, None, "Seconds without ping before a WebSocket peer is evicted "
                                     "[env SIGNALING_PEER_TIMEOUT_SECONDS] [default: 60]"],
        ["sweep-interval", None, None, "Seconds between eviction sweeps "
                                       "[env SIGNALING_HEARTBEAT_INTERVAL_SECONDS] [default: max(timeout/2, 5)]"],
        ["session-ttl", None, None, "Seconds a session lives without use [env SESSION_TTL] [default: 2592000]"],
        ["max-sessions", None, "10000", "Most sessions held at once."],
        ["viewer-token-secret", None, None, "HMAC secret of viewer tokens [env BEACH_GATE_VIEWER_TOKEN_SECRET]"],
        ["viewer-jwks", None, None, "Path of a JWKS file with the viewer-token signing keys"],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None):
        super().__init__()
        self.environ = os.environ if environ is None else environ
        self.settings: RoadSettings | None = None
        self.endpoint: str | None = None

    def postOptions(self) -> None:
        from .settings import RoadSettings

        env = self.environ
        port = self["port"] or _env(env, "BEACH_ROAD_PORT", "PORT") or "4132"
        try:
            port_n = int(port)
        except ValueError:
            raise usage.UsageError(f"--port must be a number, got {port!r}") from None
        if not 0 <= port_n <= 65535:
            raise usage.UsageError(f"--port must be 0 (any free port) to 65535, got {port}")
        iface = self["interface"].replace(":", "\\:")
        self.endpoint = f"tcp:{port_n}:interface={iface}"
        kw: dict[str, Any] = {}
        public = self["public-url"] or _env(env, "BEACH_PUBLIC_SESSION_SERVER")
        if public:
            kw["public_url"] = public
        timeout = self["peer-timeout"] or _env(env, "SIGNALING_PEER_TIMEOUT_SECONDS")
        if timeout:
            kw["peer_timeout"] = _positive("peer-timeout", timeout)
        sweep = self["sweep-interval"] or _env(env, "SIGNALING_HEARTBEAT_INTERVAL_SECONDS")
        if sweep:
            kw["sweep_interval"] = _positive("sweep-interval", sweep)
        ttl = self["session-ttl"] or _env(env, "SESSION_TTL")
        if ttl:
            kw["session_ttl"] = _positive("session-ttl", ttl)
        kw["max_sessions"] = int(_positive("max-sessions", self["max-sessions"], int))
        secret = self["viewer-token-secret"] or _env(env, "BEACH_GATE_VIEWER_TOKEN_SECRET")
        if secret:
            kw["viewer_token_secret"] = secret.encode()
        if self["viewer-jwks"]:
            kw["viewer_jwks_path"] = self["viewer-jwks"]
        self.settings = RoadSettings(**kw)


def makeService(options: Options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    from .service import RoadService

    if options.endpoint is None:
        raise usage.UsageError("the options were not parsed (postOptions sets the endpoint)")
    return RoadService(reactor, options.endpoint, options.settings)
