"""Shared helpers for the protocol tests: a manual clock and the reference vectors."""

from __future__ import annotations

import json


def h(text: str) -> bytes:
    """Bytes from hex with free spacing and ``|`` separators."""
    return bytes.fromhex(text.replace("|", " "))


# Reference §3.7 example A: the manager action envelope, 121 bytes of compact JSON.
ACTION_JSON = json.dumps(
    {
        "type": "action",
        "payload": {
            "id": "a-1",
            "action_type": "terminal_write",
            "payload": {"bytes": "echo hi\r"},
            "expires_at": None,
        },
    },
    separators=(",", ":"),
).encode()
assert len(ACTION_JSON) == 121

# Example A's wire frame, written out by hand from the spec (client Extension, header 0x44).
ACTION_FRAME = b"\x44\x07manager\x14beach.manager.action\x79" + ACTION_JSON

# Example B: the complete 54-byte `__ready__` data-channel message.
READY_CHUNK = h(
    "a1 00 04 04 73 79 6e 63 74 65 78 74 | 00 00 00 00 00 00 00 00 | 00 00 00 16 | 00 00 |"
    " 00 01 | 6f f1 3e 49 | 00 00 00 00 00 00 00 00 00 00 00 00 09 5f 5f 72 65 61 64 79 5f 5f"
)
