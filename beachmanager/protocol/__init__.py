"""Sans-I/O Beach protocol: framing, envelope, wire frames, extensions, harness JSON.

Nothing in this package touches Twisted, asyncio or sockets: bytes in, values or events out."""
