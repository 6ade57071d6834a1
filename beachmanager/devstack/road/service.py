"""The development Road as a service, and :func:`start_road` to embed one in tests.

``start_road()`` listens on ``127.0.0.1:0`` under the running reactor and gives a
:class:`RunningRoad` with its URL and a ``stop()``::

    road = await start_road()
    ...  # road.url == "http://127.0.0.1:<port>"
    await road.stop()
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ...service import FatalStartupError, ReadyService
from .cors import CorsResource
from .http import RoadHttp
from .rooms import Rooms
from .settings import RoadSettings
from .store import RoadStore
from .viewer import ViewerVerifier


class RoadService(ReadyService):
    log = Logger()

    def __init__(self, reactor, endpoint: str, settings: RoadSettings | None = None, clock=None):
        super().__init__("beach-road-dev", clock if clock is not None else reactor)
        self.reactor = reactor
        self.endpoint = endpoint
        self.settings = settings or RoadSettings()
        self.store = RoadStore(self.settings, self.clock)
        viewer = None
        secret, jwks_path = self.settings.viewer_token_secret, self.settings.viewer_jwks_path
        if self.settings.viewer_tokens_enabled and secret is not None and jwks_path is not None:
            viewer = ViewerVerifier(secret, jwks_path,
                                    self.settings.viewer_token_audience, self.settings.viewer_token_issuer)
        self.rooms = Rooms(self.store, self.settings, self.clock, viewer)
        self.http = RoadHttp(self.store, self.rooms, self.settings, self._listen_url, viewer)
        self.port = None
        self._ws_factory = None
        self._sweeper: LoopingCall | None = None

    def _listen_url(self) -> str:
        if self.port is None:
            return "http://127.0.0.1"
        host = self.port.getHost()
        name = host.host if host.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        return f"http://{name}:{host.port}"

    @property
    def url(self) -> str:
        """The base URL clients should use (the public URL when one is configured)."""
        return self.http.base()

    def _site(self):
        from autobahn.twisted.resource import WebSocketResource
        from twisted.web.server import Site

        from .ws import RoadWebSocketFactory

        self._ws_factory = RoadWebSocketFactory(self.rooms, self.settings.max_ws_message_bytes, self.reactor,
                                                self.settings.max_ws_backlog_bytes)
        ws_resource = WebSocketResource(self._ws_factory)
        site = Site(CorsResource(self.http.build(lambda _path_id: ws_resource).resource()))
        site.displayTracebacks = False
        site.noisy = False
        return site

    def start(self) -> Deferred:
        d = serverFromString(self.reactor, self.endpoint).listen(self._site())

        def listening(port):
            self.port = port
            self._sweeper = LoopingCall(self._sweep)
            self._sweeper.clock = self.clock
            self._sweeper.start(self.settings.effective_sweep_interval, now=False).addErrback(
                lambda f: self.log.failure("eviction sweep stopped", failure=f))
            self.log.info("Road listening at {url}", url=self.url)
            return port

        def failed(f):
            raise FatalStartupError(f"cannot listen on {self.endpoint}: {f.getErrorMessage()}")

        return d.addCallbacks(listening, failed)

    def _sweep(self) -> None:
        try:
            self.rooms.sweep()
        except Exception:
            self.log.failure("eviction sweep failed")

    def stop(self):
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        if self._ws_factory is not None:
            self._ws_factory.close_all()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


@dataclass
class RunningRoad:
    service: RoadService

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    @property
    def store(self) -> RoadStore:
        return self.service.store

    @property
    def rooms(self) -> Rooms:
        return self.service.rooms

    def stop(self) -> Deferred:
        return self.service.stopService()


def start_road(reactor=None, settings: RoadSettings | None = None, interface: str = "127.0.0.1",
               port: int = 0, clock=None) -> Deferred[RunningRoad]:
    """Start a Road under the running reactor; fires with a :class:`RunningRoad`."""
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    iface = interface.replace(":", "\\:")
    service = RoadService(reactor, f"tcp:{port}:interface={iface}", settings, clock)

    async def _start() -> RunningRoad:
        service.startService()
        await service.whenReady()
        return RunningRoad(service)

    return ensureDeferred(_start())
