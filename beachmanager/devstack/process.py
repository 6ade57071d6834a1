"""Run the devstack as child processes (``twist beach-road-dev`` / ``beach-host-dev``).

For smoke tests and benchmarks that want real process boundaries::

    road = await spawn_road()                      # any free port; road.url
    host = await spawn_host(road.url, command="/bin/sh")
    host.info["session_id"], host.info["join_code"]
    await host.stop(); await road.stop()

The children run ``python -m twisted`` from the same interpreter, so the checkout
(or the installed package) that runs the caller also runs them.
"""

from __future__ import annotations

import os
import re
import sys
from collections import deque
from collections.abc import Sequence
from typing import Any

from twisted.internet import error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

STOP_GRACE = 10.0
START_TIMEOUT = 30.0
_ROAD_URL = re.compile(r"Road listening at (http://\S+)")


class DevProcessError(Exception):
    pass


class DevProcess(ProcessProtocol):
    """One child: keeps its last output lines, fires ``ready`` on the first matching line."""

    log = Logger()

    def __init__(self, name: str, reactor, ready_line, keep_lines: int = 200):
        self.name = name
        self.reactor = reactor
        self._ready_line = ready_line
        self.lines: deque[str] = deque(maxlen=keep_lines)
        self.ready: Deferred = Deferred()
        self.ended: Deferred = Deferred()
        self.exit_code: int | None = None
        self.info: dict[str, Any] = {}
        self.url: str | None = None
        self._buffer = b""

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self.lines.append(line)
            if not self.ready.called and self._ready_line(self, line):
                self.ready.callback(self)

    errReceived = outReceived

    def processEnded(self, reason) -> None:
        self.exit_code = getattr(reason.value, "exitCode", None)
        if not self.ready.called:
            tail = "\n".join(list(self.lines)[-20:])
            self.ready.errback(DevProcessError(f"{self.name} exited ({self.exit_code}) before it was ready:\n{tail}"))
        self.ended.callback(self.exit_code)

    @property
    def running(self) -> bool:
        return not self.ended.called

    def stop(self) -> Deferred:
        """SIGTERM (a clean service stop), SIGKILL after :data:`STOP_GRACE` seconds."""
        if not self.running:
            return succeed(self.exit_code)
        try:
            self._signal("TERM")
        except error.ProcessExitedAlready:
            return succeed(self.exit_code)
        killer = self.reactor.callLater(STOP_GRACE, self._kill)

        def done(result):
            if killer.active():
                killer.cancel()
            return result

        return self.ended.addBoth(done)

    def _signal(self, signal: str) -> None:
        transport = self.transport
        if transport is None:
            raise DevProcessError(f"{self.name} has no process (never spawned)")
        transport.signalProcess(signal)

    def _kill(self) -> None:
        try:
            self._signal("KILL")
        except error.ProcessExitedAlready:
            pass


def _spawn(name: str, args: Sequence[str], ready_line, reactor=None, env: dict[str, str] | None = None,
           timeout: float = START_TIMEOUT) -> Deferred[DevProcess]:
    if reactor is None:
        from twisted.internet import reactor as _reactor

        reactor = _reactor
    proto = DevProcess(name, reactor, ready_line)
    argv = [sys.executable, "-m", "twisted", "--log-format=text", *args]
    child_env = dict(os.environ if env is None else env)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH")) if p)
    reactor.spawnProcess(proto, sys.executable, argv, env=child_env)
    d = proto.ready
    d.addTimeout(timeout, reactor)

    def failed(f):
        if proto.running:
            proto.stop()
        return f

    return d.addErrback(failed)


def _road_ready(proc: DevProcess, line: str) -> bool:
    m = _ROAD_URL.search(line)
    if m:
        proc.url = m.group(1)
    return m is not None


def _host_ready(proc: DevProcess, line: str) -> bool:
    if not line.startswith('{"schema"'):
        return False
    import json

    proc.info = json.loads(line)
    proc.url = proc.info.get("road_url")
    return "session_id" in proc.info


def spawn_road(port: int = 0, args: Sequence[str] = (), reactor=None, **kw: Any) -> Deferred[DevProcess]:
    """``twist beach-road-dev`` on 127.0.0.1:*port* (0: any); ``.url`` once it listens."""
    return _spawn("beach-road-dev", ["beach-road-dev", "--port", str(port), *args], _road_ready, reactor, **kw)


def spawn_host(road_url: str, command: str | None = None, args: Sequence[str] = (), reactor=None,
               **kw: Any) -> Deferred[DevProcess]:
    """``twist beach-host-dev``; ``.info`` is its bootstrap JSON (``session_id``, ``join_code``...)."""
    extra = ["--command", command] if command is not None else []
    return _spawn("beach-host-dev", ["--reactor=beach-asyncio", "beach-host-dev", "--road", road_url, *extra, *args],
                  _host_ready, reactor, **kw)
