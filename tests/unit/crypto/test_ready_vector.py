"""The framed ``__ready__`` (reference §4.8) as the manager sends it on a secure ``beach``."""

from __future__ import annotations

from beachmanager.protocol import envelope, framing
from beachmanager.protocol.crypto import InboundGate, SecureChannel, SecureHandshake
from tests.unit.crypto.support import HANDSHAKE_ID, HOST_PEER, MANAGER_PEER

READY_54 = bytes.fromhex(
    "a100040473796e6374657874000000000000000000000016000000016ff13e49000000000000000000000000"
    "095f5f72656164795f5f")


def test_framed_ready_is_the_54_byte_vector():
    [chunk] = framing.encode("sync", "text", 0, envelope.encode("text", 0, "__ready__"))
    assert chunk == READY_54 and len(chunk) == 54


def test_encrypted_ready_reaches_the_host_intact():
    psk = bytes(range(32))
    host = SecureHandshake("initiator", psk, HANDSHAKE_ID, HOST_PEER, MANAGER_PEER)
    mgr = SecureHandshake("responder", psk, HANDSHAKE_ID, MANAGER_PEER, HOST_PEER)
    to_mgr, to_host = host.start(), []
    while to_mgr or to_host:
        nxt_host = [o for m in to_mgr for o in mgr.receive(m)]
        nxt_mgr = [o for m in to_host for o in host.receive(m)]
        to_host, to_mgr = nxt_host, nxt_mgr

    ours = SecureChannel(mgr.keys.send_key, mgr.keys.recv_key)
    wire = ours.seal(READY_54)
    assert len(wire) == 1 + 8 + 54 + 16 and wire[:9] == b"\x01" + bytes(8)

    # The host may not have installed its keys yet: it holds the frame, then flushes it.
    host_gate = InboundGate()
    assert host_gate.receive(wire) == []
    [plain] = host_gate.install(SecureChannel(host.keys.send_key, host.keys.recv_key))
    assert plain == READY_54
    msg = framing.Reassembler(lambda: 0.0).feed(plain)
    assert envelope.decode(msg.payload).text == "__ready__"
