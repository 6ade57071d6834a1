"""Sans-I/O Beach protocol: framing, envelope, wire frames, extensions, harness JSON.

Nothing in this package touches Twisted, asyncio or sockets: bytes in, values or events out.
Where time matters (reassembly timeouts) the clock is injected.

Modules, outermost layer on the data channel first:

* ``framing``    0xA1 chunks: ``encode``, ``Reassembler``, ``MacConfig`` (``FramingError``)
* ``envelope``   transport envelope in namespace ``"sync"`` (``EnvelopeError``)
* ``channel``    ``Outbound`` / ``Inbound``: counters, framing and envelope together
* ``wire``       host and client frames, ``decode_from_host`` (``WireError``); the frame
  classes live in ``frames`` and are re-exported by ``wire``
* ``extensions`` manager bus namespace, topics, extension layouts per direction
* ``harness``    ActionCommand / ActionAck / StateDiff / HealthHeartbeat JSON (``HarnessError``)
* ``cells``      packed cells, colours, attributes, style table
* ``crypto``     secure transport (its own package)

Every error type derives from ``errors.ProtocolError`` (a ``ValueError``).
"""
