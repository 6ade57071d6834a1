"""The HTTP listener as a ReadyService: ready once it listens; a bind failure is fatal."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from ..service import FatalStartupError, ReadyService


class HttpService(ReadyService):
    log = Logger()

    def __init__(self, reactor, clock, endpoint: str, site_factory):
        super().__init__("http", clock)
        self.reactor = reactor
        self.endpoint = endpoint
        self.site_factory = site_factory
        self.port: IListeningPort | None = None

    def start(self) -> Deferred:
        d = serverFromString(self.reactor, self.endpoint).listen(self.site_factory())

        def listening(port: IListeningPort) -> IListeningPort:
            self.port = port
            host = port.getHost()
            self.log.info("HTTP API listening on {host}:{port}", host=getattr(host, "host", host),
                          port=getattr(host, "port", ""))
            return port

        def failed(f):
            raise FatalStartupError(f"cannot listen on {self.endpoint}: {f.getErrorMessage()}")

        return d.addCallbacks(listening, failed)

    def stop(self):
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None

    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise RuntimeError("the HTTP service is not listening")
        host = self.port.getHost()
        if not isinstance(host, IPv4Address | IPv6Address):
            raise RuntimeError(f"the HTTP listener has no host and port ({host!r})")
        return host.host, host.port

    def status(self) -> dict:
        out = super().status()
        if self.port is not None:
            out["listening"] = "%s:%d" % self.address()
        return out
