"""A Beach Road-compatible signaling server (HTTP mailboxes + WebSocket rooms)."""
