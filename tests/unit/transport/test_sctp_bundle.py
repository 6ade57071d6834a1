"""SCTP bundling (transport/sctp_bundle.py) between two real aiortc peers in this process."""

from __future__ import annotations

import asyncio

import pytest_twisted

from beachmanager import _aio
from beachmanager.transport import sctp_bundle
from beachmanager.transport.peer import tune_sctp


async def _pair():
    from aiortc import RTCConfiguration, RTCPeerConnection

    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sent = a.createDataChannel("beach", ordered=True)
    opened = asyncio.get_running_loop().create_future()
    b.on("datachannel", lambda ch: opened.done() or opened.set_result(ch))
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    got = await asyncio.wait_for(opened, 10)
    if sent.readyState != "open":
        ready = asyncio.get_running_loop().create_future()
        sent.on("open", lambda: ready.done() or ready.set_result(None))
        await asyncio.wait_for(ready, 10)
    return a, b, sent, got


def _count_packets(pc) -> list[tuple[int, int]]:
    """(DATA chunks, bytes) of every SCTP packet *pc* sends from now on."""
    dtls = pc.sctp._RTCSctpTransport__transport
    seen: list[tuple[int, int]] = []
    send = dtls._send_data

    async def counting(packet: bytes):
        chunks, pos = 0, 12
        while pos + 4 <= len(packet):
            kind, length = packet[pos], int.from_bytes(packet[pos + 2:pos + 4], "big")
            chunks += kind == 0
            pos += length + (-length % 4)
        seen.append((chunks, len(packet)))
        return await send(packet)

    dtls._send_data = counting
    return seen


@pytest_twisted.ensureDeferred
async def test_messages_written_in_one_turn_share_packets_and_arrive_whole_in_order():
    tune_sctp()
    assert sctp_bundle.install() and sctp_bundle.MAX_PACKET

    async def scenario():
        a, b, out, into = await _pair()
        try:
            received: list[bytes] = []
            done = asyncio.get_running_loop().create_future()
            messages = [bytes([i]) * 200 for i in range(60)]
            messages[30] = b"big" * 1500  # fragmented over several DATA chunks, between small ones
            into.on("message", lambda m: (received.append(m), len(received) == len(messages)
                                          and not done.done() and done.set_result(None)))
            packets = _count_packets(a)
            for m in messages:  # one reactor turn: aiortc's transmit pass sees them together
                out.send(m)
            await asyncio.wait_for(done, 10)
            assert received == messages
            data = [(n, size) for n, size in packets if n]
            assert sum(n for n, _ in data) >= len(messages)  # every chunk went out
            assert len(data) <= len(messages) // 2, data  # up to 5 small chunks per packet
            assert max(size for _, size in data) <= sctp_bundle.MAX_PACKET
            # a lone message still goes out at once, alone
            packets.clear()
            done = asyncio.get_running_loop().create_future()
            messages.append(b"last")
            out.send(b"last")
            await asyncio.wait_for(done, 10)
            assert received[-1] == b"last" and [n for n, _ in packets if n] == [1]
        finally:
            await a.close()
            await b.close()

    await _aio.as_deferred(scenario())
