"""Options of the development host (defaults follow upstream hosts where they have one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...protocol.crypto import InsecureOverrides
from .link import EXT_HEADER_CLIENT


@dataclass(frozen=True)
class HostSettings:
    road_url: str
    #: argv of the program on the PTY; ``None`` is the user's shell.
    command: tuple[str, ...] | None = None
    cols: int = 80
    rows: int = 24
    #: Join code to register with; ``None`` lets Road generate one (upstream hosts send one).
    join_code: str | None = None
    #: Host session id; ``None`` is a fresh UUIDv4.
    session_id: str | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    # -- transport ---------------------------------------------------------------------
    heartbeat_interval: float = 15.0
    extension_header: int = EXT_HEADER_CLIENT
    honour_resize: bool = False
    ping_interval: float = 30.0
    poll_interval: float = 0.25
    answer_timeout: float = 120.0
    dc_open_timeout: float = 15.0
    ready_timeout: float = 10.0
    #: Most client peers negotiating or served at once (upstream: 128 negotiators).
    max_peers: int = 128
    #: Leave aiortc's candidates in the offer SDP as well as trickling them.
    candidates_in_offer: bool = False
    #: ``aiortc.RTCIceServer`` objects; empty means host candidates only.
    ice_servers: tuple[Any, ...] = ()
    overrides: InsecureOverrides = field(default_factory=InsecureOverrides)
    # -- terminal and harness ---------------------------------------------------------------
    history_limit: int = 1000
    #: Delay that coalesces PTY output into one round of deltas.
    flush_delay: float = 0.01
    harness: bool = True
    #: The manager cluster's association authority (raw Ed25519 public key) the harness
    #: trusts; ``None``: the first that signs a valid association (trust on first use).
    manager_authority: bytes | None = None
    state_interval: float = 0.1
    #: Fault injection for tests: the first N acks of applied actions are dropped (an ack lost
    #: on the wire after the host applied the action; the manager must redeliver and the
    #: harness must recognise the replay).
    drop_first_acks: int = 0
    # -- agent mode: drive another host through the manager over the bus --------------------
    agent_target: str | None = None
    agent_token: str | None = None
    agent_beach: str | None = None
    agent_script: tuple[str, ...] = ()
    #: ``script`` (type the script's lines) or ``pong`` (play the right paddle of the target)
    agent_driver: str = "script"
    agent_interval: float = 0.1
    #: the most actions a pong player sends (None: it plays on)
    agent_limit: int | None = None
    #: a file that gets one JSON line per thing the agent hears (tests and demos read it)
    agent_events: str | None = None
    health_interval: float = 5.0
    #: Stop the host when the PTY program exits (the ``twistd`` behaviour).
    exit_with_command: bool = False
