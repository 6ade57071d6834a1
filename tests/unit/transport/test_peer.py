"""The aiortc answerer against a real aiortc offerer in the same process (loopback UDP)."""

from __future__ import annotations

import asyncio

import pytest
import pytest_twisted

from beachmanager import _aio
from beachmanager.transport.ice import IceSettings, candidate_count
from beachmanager.transport.peer import AnswerPeer, PeerClosed, PeerError

NO_STUN = IceSettings(disable_stun=True)


def _split_candidates(sdp: str) -> tuple[str, list[dict]]:
    """The offer without candidates, and its candidates as webrtc-rs trickles them."""
    lines, cands = [], []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            cands.append({"candidate": line[2:], "sdp_mid": "", "sdp_mline_index": 0})
        elif line != "a=end-of-candidates":
            lines.append(line)
    # A trickling offerer announces end-of-candidates too early in some stacks.
    return "\r\n".join(lines).replace("a=sctp-port", "a=end-of-candidates\r\na=sctp-port", 1), cands


async def _offerer(labels=("beach",)):
    from aiortc import RTCConfiguration, RTCPeerConnection

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channels = {label: pc.createDataChannel(label, ordered=True) for label in labels}
    await pc.setLocalDescription(await pc.createOffer())
    return pc, channels


async def _connect(peer: AnswerPeer, pc, trickle: bool):
    from aiortc import RTCSessionDescription

    offer = pc.localDescription.sdp
    if trickle:
        offer, cands = _split_candidates(offer)
        # Half before the remote description (queued), half after.
        for c in cands[: len(cands) // 2]:
            await peer.add_candidate(c)
        answer = await peer.answer(offer)
        for c in cands[len(cands) // 2:]:
            await peer.add_candidate(c)
    else:
        answer = await peer.answer(offer)
    assert candidate_count(answer) > 0
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await asyncio.wait_for(peer.wait_connected(), 10)


@pytest.mark.parametrize("trickle", [False, True])
@pytest_twisted.ensureDeferred
async def test_answers_and_exchanges_binary_messages(trickle):
    async def scenario():
        received, events = [], []
        loop = asyncio.get_running_loop()
        # what the peer reports: the first binary message, the first dropped text
        first = {"message": loop.create_future(), "text_dropped": loop.create_future()}

        def report(name):
            if not first[name].done():
                first[name].set_result(None)

        def on_message(label, data):
            received.append((label, data))
            report("message")

        def on_event(name, **f):
            events.append((name, f))
            if name in first:
                report(name)

        peer = AnswerPeer(NO_STUN, on_message=on_message, on_event=on_event)
        pc, channels = await _offerer(("beach", "beach-secure-handshake"))
        try:
            await _connect(peer, pc, trickle)
            beach = await asyncio.wait_for(peer.wait_channel("beach"), 10)
            assert beach.label == "beach"
            await asyncio.wait_for(peer.wait_channel("beach-secure-handshake"), 10)
            got = asyncio.get_running_loop().create_future()
            channels["beach"].on("message", lambda m: got.done() or got.set_result(m))
            peer.send("beach", b"\xa1hello")
            assert await asyncio.wait_for(got, 10) == b"\xa1hello"
            channels["beach"].send(b"from-host")
            channels["beach"].send("text is dropped")
            await asyncio.wait_for(asyncio.gather(*first.values()), 10)
            assert received == [("beach", b"from-host")]
            assert peer.text_dropped == 1
            with pytest.raises(TypeError):
                peer.send("beach", "text")  # type: ignore[arg-type]
            if trickle:
                assert peer.candidates_added > 0
            dc_events = [f for name, f in events if name == "dc_state_change"]
            assert {"label": "beach", "new_state": "open", "seq": 1} in dc_events
        finally:
            await pc.close()
        # The host went away: the loss is reported with a reason.
        reason = await asyncio.wait_for(peer.wait_lost(), 10)
        assert "closed" in reason or "failed" in reason
        await peer.close()

    await _aio.as_deferred(scenario())


@pytest_twisted.ensureDeferred
async def test_offer_without_data_channel_is_rejected():
    async def scenario():
        from aiortc import RTCConfiguration, RTCPeerConnection

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        peer = AnswerPeer(NO_STUN, on_message=lambda *a: None, on_event=lambda *a, **k: None)
        with pytest.raises(PeerError, match="no m=application"):
            await peer.answer(pc.localDescription.sdp)
        await peer.close()
        await pc.close()

    await _aio.as_deferred(scenario())


@pytest_twisted.ensureDeferred
async def test_no_local_candidates_fails_clearly(monkeypatch):
    import aioice.ice as aioice_ice

    monkeypatch.setattr(aioice_ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])

    async def scenario():
        pc, _ = await _offerer()
        peer = AnswerPeer(NO_STUN, on_message=lambda *a: None, on_event=lambda *a, **k: None)
        with pytest.raises(PeerError, match="no usable local ICE candidates"):
            await peer.answer(pc.localDescription.sdp)
        await peer.close()
        await pc.close()

    await _aio.as_deferred(scenario())


@pytest_twisted.ensureDeferred
async def test_waiting_for_a_channel_fails_when_closed():
    async def scenario():
        peer = AnswerPeer(NO_STUN, on_message=lambda *a: None, on_event=lambda *a, **k: None)
        waiter = asyncio.ensure_future(peer.wait_channel("beach"))
        await asyncio.sleep(0)  # one loop turn (no time): the waiter waits before the close
        await peer.close()
        with pytest.raises(PeerClosed, match="closed by the manager"):
            await waiter
        with pytest.raises(PeerClosed):
            await peer.wait_connected()

    await _aio.as_deferred(scenario())


@pytest_twisted.ensureDeferred
async def test_loopback_only_gathering_with_the_host_address_override():
    """A loopback-only network namespace: aioice alone gathers nothing there; with
    BEACH_ICE_HOST_ADDRESSES=127.0.0.1 both ends connect over 127.0.0.1."""
    from beachmanager.transport.ice import install_host_address_override

    install_host_address_override(["127.0.0.1"])
    try:
        async def scenario():
            peer = AnswerPeer(NO_STUN, on_message=lambda *a: None, on_event=lambda *a, **k: None)
            pc, _ = await _offerer()
            assert " 127.0.0.1 " in pc.localDescription.sdp
            await _connect(peer, pc, trickle=True)
            assert " 127.0.0.1 " in peer.pc.localDescription.sdp
            await asyncio.wait_for(peer.wait_channel("beach"), 10)
            await pc.close()
            await peer.close()

        await _aio.as_deferred(scenario())
    finally:
        install_host_address_override([])


@pytest_twisted.ensureDeferred
async def test_odd_candidates_are_dropped_and_counted_never_raised():
    async def scenario():
        events = []
        peer = AnswerPeer(NO_STUN, on_message=lambda *a: None,
                          on_event=lambda name, **f: events.append((name, f)))
        pc, _ = await _offerer()
        offer, _ = _split_candidates(pc.localDescription.sdp)
        await peer.answer(offer)
        for bad in ("candidate:1 1 udp", "candidate:garbage", "candidate:1 1 udp 1 host.local 9 typ host",
                    "", "candidate:"):
            await peer.add_candidate({"candidate": bad, "sdp_mid": "", "sdp_mline_index": 0})
        assert peer.candidates_dropped == 3 and peer.candidates_added == 0
        assert sorted(f["reason"] for n, f in events if n == "candidate_rejected") == [
            "mdns", "unparsable", "unparsable"]
        await peer.close()
        await pc.close()

    await _aio.as_deferred(scenario())


@pytest_twisted.ensureDeferred
async def test_a_released_handshake_channel_may_close_without_losing_the_peer():
    """The handshake channel closing loses the peer until the session releases it (handshake
    done); after that only "beach" or the connection count."""

    async def scenario():
        def connected_peer(received):
            return AnswerPeer(NO_STUN, on_message=lambda label, data: received.append((label, data)),
                              on_event=lambda name, **f: None)

        # before the release: a closed handshake channel is the loss of the peer, with its name
        early = connected_peer([])
        pc, channels = await _offerer(("beach", "beach-secure-handshake"))
        try:
            await _connect(early, pc, trickle=False)
            await asyncio.wait_for(early.wait_channel("beach-secure-handshake"), 10)
            channels["beach-secure-handshake"].close()
            reason = await asyncio.wait_for(early.wait_lost(), 10)
            assert reason == "data channel 'beach-secure-handshake' closed"
        finally:
            await early.close()
            await pc.close()

        # after the release: the peer stays, "beach" still carries messages both ways
        received: list = []
        peer = connected_peer(received)
        pc, channels = await _offerer(("beach", "beach-secure-handshake"))
        try:
            await _connect(peer, pc, trickle=False)
            await asyncio.wait_for(peer.wait_channel("beach"), 10)
            handshake = await asyncio.wait_for(peer.wait_channel("beach-secure-handshake"), 10)
            peer.release_channel("beach-secure-handshake")
            closed = asyncio.get_running_loop().create_future()
            handshake.on("close", lambda: closed.done() or closed.set_result(None))
            channels["beach-secure-handshake"].close()
            await asyncio.wait_for(closed, 10)  # the answerer saw the close
            got = asyncio.get_running_loop().create_future()
            channels["beach"].on("message", lambda m: got.done() or got.set_result(m))
            peer.send("beach", b"\xa1still-here")
            assert await asyncio.wait_for(got, 10) == b"\xa1still-here"
            channels["beach"].send(b"from-host")
            await asyncio.wait_for(peer.wait_channel("beach"), 10)
            assert peer.lost_reason() is None
            # "beach" closing is still a loss
            channels["beach"].close()
            reason = await asyncio.wait_for(peer.wait_lost(), 10)
            assert reason == "data channel 'beach' closed"
            assert ("beach", b"from-host") in received
        finally:
            await peer.close()
            await pc.close()

    await _aio.as_deferred(scenario())
