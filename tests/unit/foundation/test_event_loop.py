"""The event loop under the beach-asyncio reactor: uvloop by default, the standard one on request."""

import asyncio

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred

from beachmanager import _reactor


def test_uvloop_is_the_default_and_the_standard_loop_can_be_asked_for(monkeypatch):
    import uvloop

    monkeypatch.delenv("BEACH_EVENT_LOOP", raising=False)
    loop = _reactor.new_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    monkeypatch.setenv("BEACH_EVENT_LOOP", "asyncio")
    loop = _reactor.new_loop()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
    finally:
        loop.close()


def test_an_unknown_loop_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("BEACH_EVENT_LOOP", "tokio")
    with pytest.raises(SystemExit, match="BEACH_EVENT_LOOP must be uvloop or asyncio, not 'tokio'"):
        _reactor.new_loop()


@pytest_twisted.ensureDeferred
async def test_a_child_exit_is_reported_after_the_loop_spawned_a_process_of_its_own():
    """libuv takes SIGCHLD once the loop spawns (Playwright does); the reactor still sees exits."""
    from twisted.internet import protocol, reactor

    from beachmanager import _aio

    async def loop_child() -> int:
        proc = await asyncio.create_subprocess_exec("/bin/true")
        return await proc.wait()

    assert await _aio.as_deferred(loop_child()) == 0
    ended: Deferred = Deferred()

    class Child(protocol.ProcessProtocol):
        def processEnded(self, reason):
            ended.callback(reason.value.exitCode)

    # its pipes close first (Twisted's reap then finds it still running), it exits later:
    # only the exit itself can tell the reactor
    reactor.spawnProcess(Child(), "/bin/sh", ["sh", "-c", "exec <&- >&- 2>&-; sleep 0.3; exit 7"], env={})
    assert await ended.addTimeout(10, reactor) == 7
