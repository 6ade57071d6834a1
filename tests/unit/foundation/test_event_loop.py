"""The event loop under the beach-asyncio reactor: uvloop by default, the standard one on request."""

import asyncio

import pytest

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
