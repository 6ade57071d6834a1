"""Limits and timings of the development Road (defaults follow upstream Road where it has one)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoadSettings:
    #: Base URL advertised in responses; ``None`` means "the URL this Road listens on".
    public_url: str | None = None
    #: TTL of sessions and peer sessions, refreshed on use (upstream ``SESSION_TTL``).
    session_ttl: float = 30 * 24 * 3600.0
    #: A WebSocket peer is evicted after this long without a ``ping`` (``SIGNALING_PEER_TIMEOUT_SECONDS``).
    peer_timeout: float = 60.0
    #: How often the eviction sweep runs; ``None`` means max(timeout / 2, 5) as upstream.
    sweep_interval: float | None = None
    #: Poll interval advertised to peers, in milliseconds.
    poll_interval_ms: int = 250
    # -- bounds ------------------------------------------------------------------------
    max_sessions: int = 10_000
    max_peers_per_room: int = 256
    #: Offers queued for one peer / answers waiting in one peer session.
    max_offers_per_peer: int = 64
    max_answers_per_peer_session: int = 256
    #: Largest HTTP body and WebSocket message accepted, in bytes.
    max_body_bytes: int = 256 * 1024
    max_ws_message_bytes: int = 256 * 1024
    #: Bytes queued for a WebSocket peer that does not read before it is dropped.
    max_ws_backlog_bytes: int = 4 * 1024 * 1024
    #: Longest session id, peer id or handshake id accepted.
    max_id_length: int = 128
    # -- viewer tokens (optional) ---------------------------------------------------------
    #: HMAC secret for the ``mac`` claim; both this and ``viewer_jwks_path`` enable verification.
    viewer_token_secret: bytes | None = None
    #: Local JWKS file with the EC public keys that sign viewer tokens.
    viewer_jwks_path: str | None = None
    viewer_token_audience: str = "beach-road"
    viewer_token_issuer: str | None = None

    @property
    def effective_sweep_interval(self) -> float:
        if self.sweep_interval is not None:
            return self.sweep_interval
        half = self.peer_timeout / 2.0
        return max(half, 5.0) if self.peer_timeout >= 10 else half  # short timeouts are for tests

    @property
    def viewer_tokens_enabled(self) -> bool:
        return bool(self.viewer_token_secret) and bool(self.viewer_jwks_path)
