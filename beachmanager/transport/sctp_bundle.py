"""SCTP chunk bundling for aiortc: the DATA chunks of one transmit pass share packets.

aiortc sends every SCTP chunk in a packet of its own (``_send_chunk``: "no bundling for
now"), so ten bus messages written in one reactor turn cost ten DTLS records, ten UDP
datagrams and, at the peer, ten received packets and up to ten SACKs.  RFC 9260 §6.10
lets a sender put several chunks in one packet up to the path MTU; every SCTP stack
(aiortc's own ``parse_packet``, usrsctp, webrtc-rs, Pion) reads them.

:func:`install` wraps two methods of ``RTCSctpTransport``:

* ``_data_channel_flush`` (moves the messages data channels queued into SCTP, one
  ``_transmit`` pass each, while congestion control lets them out) and ``_transmit`` (one
  pass over the retransmit and outbound queues) open a bundle, run aiortc's code unchanged
  and send what the bundle holds when they return (a pass inside a flush joins its
  bundle), so the messages written in one reactor turn leave together;
* ``_send_chunk`` adds a DATA chunk to the open bundle, sending the bundle first when
  the chunk would not fit in :data:`MAX_PACKET` bytes; any other chunk (SACK, FORWARD
  TSN, HEARTBEAT, control) first sends the bundle, then goes out alone, so the order of
  chunks on the wire is aiortc's.

Congestion control, timers and retransmission are aiortc's: they count chunks, not
packets, and each chunk is sent in the same pass as before.  ``BEACH_SCTP_BUNDLE=0``
leaves aiortc as it is (read at install time).
"""

from __future__ import annotations

import os
from struct import pack
from typing import Any

#: aiortc's own packet limit (it fits the minimum IPv6 MTU once UDP and DTLS are added).
MAX_PACKET: int | None = None
_HEADER = 12  # SCTP common header: ports, verification tag, checksum
_installed = False


def enabled() -> bool:
    return os.environ.get("BEACH_SCTP_BUNDLE", "1") not in ("0", "false", "no", "off")


def install() -> bool:
    """Patch aiortc once (idempotent); False when turned off by ``BEACH_SCTP_BUNDLE=0``."""
    global _installed, MAX_PACKET
    if _installed:
        return True
    if not enabled():
        return False
    import aiortc.rtcsctptransport as sctp

    cls = sctp.RTCSctpTransport
    MAX_PACKET = int(getattr(sctp, "SCTP_MAX_PACKET_LENGTH", 1189))
    transmit, send_chunk = cls._transmit, cls._send_chunk
    data_chunk, crc32c = sctp.DataChunk, sctp.crc32c

    async def flush(self: Any) -> None:
        bundle = self._beach_bundle
        if not bundle:
            return
        body = b"".join(bundle)
        bundle.clear()
        self._beach_bundle_size = 0
        header = pack("!HHL", self._local_port, self._remote_port, self._remote_verification_tag)
        packet = header + pack("<L", crc32c(header + b"\x00\x00\x00\x00" + body)) + body
        await self._RTCSctpTransport__transport._send_data(packet)

    async def bundled_send_chunk(self: Any, chunk: Any) -> None:
        bundle = getattr(self, "_beach_bundle", None)
        if bundle is None:
            await send_chunk(self, chunk)
            return
        if not isinstance(chunk, data_chunk):
            await flush(self)
            await send_chunk(self, chunk)
            return
        data = bytes(chunk)
        if bundle and _HEADER + self._beach_bundle_size + len(data) > MAX_PACKET:
            await flush(self)
        bundle.append(data)
        self._beach_bundle_size += len(data)

    def bundling(method):
        """*method*, with the DATA chunks it sends bundled; inside another bundling method it
        joins that one's bundle (sent when the outer one returns)."""
        async def bundled(self: Any, *args: Any) -> Any:
            if getattr(self, "_beach_bundle", None) is not None:
                return await method(self, *args)
            self._beach_bundle, self._beach_bundle_size = [], 0
            try:
                result = await method(self, *args)
                while self._beach_bundle:  # whatever joined while a send was under way, too
                    await flush(self)
                return result
            finally:  # on an error the chunks left are aiortc's to retransmit (they count as sent)
                self._beach_bundle = None

        return bundled

    cls._transmit = bundling(transmit)  # type: ignore[method-assign]
    cls._data_channel_flush = bundling(cls._data_channel_flush)  # type: ignore[method-assign]
    cls._send_chunk = bundled_send_chunk  # type: ignore[method-assign]
    _installed = True
    return True
