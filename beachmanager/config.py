"""Every setting of the manager: command-line option, environment variable, default, parser.

The table :data:`SETTINGS` is the single source: ``tap.Options`` is generated from
it, ``tap.md`` documents it (a test keeps the two in step) and :class:`Config`
carries the parsed values.  Precedence: command line, then environment, then default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting has a bad value; the message is one line naming the option and variable."""


@dataclass(frozen=True)
class Setting:
    key: str  # attribute on Config, and the long option with "_" -> "-"
    env: str | None
    default: str | None
    doc: str
    parse: Callable[[str], Any] = str
    #: Given several times on the command line (or comma/space separated in the environment);
    #: the value is a tuple of parsed items, empty by default.
    repeatable: bool = False

    @property
    def option(self) -> str:
        return self.key.replace("_", "-")


# -- parsers: each raises ValueError with a short reason -------------------

def positive_int(maximum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip(), 10)
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None
        if not 1 <= value <= maximum:
            raise ValueError(f"must be between 1 and {maximum}, got {value}")
        return value

    return parse


def non_negative_int(maximum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip(), 10)
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None
        if not 0 <= value <= maximum:
            raise ValueError(f"must be between 0 and {maximum}, got {value}")
        return value

    return parse


def positive_float(maximum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not 0 < value <= maximum:
            raise ValueError(f"must be above 0 and at most {maximum}, got {value}")
        return value

    return parse


def non_negative_float(maximum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not 0 <= value <= maximum:
            raise ValueError(f"must be at least 0 and at most {maximum}, got {value}")
        return value

    return parse


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(f"must be a {'/'.join(schemes)} URL, got {redact_url(value)!r}")
        if not parts.netloc and parts.scheme not in ("unix",):
            raise ValueError(f"has no host, got {redact_url(value)!r}")
        return value.rstrip("/") if parts.scheme.startswith("http") else value

    return parse


def identifier(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 128 or not all(c.isalnum() or c in "-_.:" for c in value):
        raise ValueError(f"must be 1-128 characters of letters, digits, '-', '_', '.', ':', got {raw!r}")
    return value


def server_endpoint(raw: str) -> str:
    """A Twisted server endpoint string, checked by constructing it on a memory reactor."""
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.testing import MemoryReactor

    value = raw.strip()
    try:
        serverFromString(MemoryReactor(), value)
    except Exception as e:  # serverFromString raises several types for bad strings
        raise ValueError(f"is not a Twisted endpoint string ({e}), got {raw!r}") from None
    return value


def flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be 1/true/yes/on or 0/false/no/off, got {raw!r}")


def text(raw: str) -> str:
    """A short single-line value (an issuer, an audience)."""
    value = raw.strip()
    if not value or len(value) > 512 or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"must be 1-512 printable characters without spaces, got {raw!r}")
    return value


def join_code_keys(raw: str):
    from .registry.join_codes import parse_keys  # cryptography only; no reactor

    return parse_keys(raw)


def association_key(raw: str) -> bytes:
    from .auth.bridge import parse_key  # cryptography only; no reactor

    return parse_key(raw)


def _transport_parser(name: str) -> Callable[[str], Any]:
    """A parser from ``beachmanager.transport`` (stdlib-only modules), imported when used."""

    def parse(raw: str) -> Any:
        from importlib import import_module

        module, _, func = name.rpartition(".")
        return getattr(import_module(f"beachmanager.transport.{module}"), func)(raw)

    return parse


def redact_url(value: str | None) -> str | None:
    """The URL with any password replaced by ``***`` (never log credentials)."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.password is None:
        return value
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


DEFAULT_INSTANCE_ID = "beach-manager-rewrite-1"

SETTINGS: tuple[Setting, ...] = (
    Setting("instance_id", "BEACH_MANAGER_INSTANCE_ID", DEFAULT_INSTANCE_ID,
            "Identity of this instance for membership, assignment and logs.", identifier),
    Setting("impl", "BEACH_MANAGER_IMPL", "rewrite",
            "The legacy|rewrite toggle shared with launch scripts; reported on /debug/info.",
            one_of("legacy", "rewrite")),
    Setting("capacity", "BEACH_MANAGER_CAPACITY", "50",
            "Most hosts this instance manages at once.", positive_int(100_000)),
    Setting("road_url", "BEACH_ROAD_URL", "http://127.0.0.1:4132",
            "Base URL of Beach Road (signaling); every Road URL is built from it.",
            url("http", "https")),
    Setting("redis_url", "REDIS_URL", None,
            "Redis for the runtime cache and action queues; unset means in-memory (single instance).",
            url("redis", "rediss", "unix")),
    Setting("database_url", "DATABASE_URL", None,
            "PostgreSQL for durable records; unset means in-memory (single instance).",
            url("postgres", "postgresql")),
    Setting("http_endpoint", "BEACH_MANAGER_HTTP_ENDPOINT", "tcp:8081:interface=127.0.0.1",
            "Twisted server endpoint string for the HTTP API.", server_endpoint),
    Setting("http_access_log", "BEACH_MANAGER_HTTP_ACCESS_LOG", "all",
            "HTTP access log lines: all requests, errors (answers 400 and above) or off.",
            one_of("all", "errors", "off")),
    Setting("stop_timeout", "BEACH_MANAGER_STOP_TIMEOUT", "10",
            "Seconds each part of the service may take to stop before it is abandoned.",
            positive_float(600)),
    # -- auth (beachmanager/auth): authorities are tried in this order, Gate first
    Setting("beach_gate_jwks_url", "BEACH_GATE_JWKS_URL", None,
            "JWKS of Beach Gate; its tokens are tried first.", url("http", "https")),
    Setting("beach_gate_issuer", "BEACH_GATE_ISSUER", None,
            "Required iss of Beach Gate tokens; unset means not checked.", text),
    Setting("beach_gate_audience", "BEACH_GATE_AUDIENCE", None,
            "Required aud of Beach Gate tokens; unset means not checked.", text),
    Setting("clerk_jwks_url", "CLERK_JWKS_URL", None,
            "JWKS of Clerk; tried after Beach Gate.", url("http", "https")),
    Setting("clerk_issuer", "CLERK_ISSUER", None,
            "Required iss of Clerk tokens; unset means not checked.", text),
    Setting("clerk_audience", "CLERK_AUDIENCE", None,
            "Required aud of Clerk tokens; unset means not checked.", text),
    Setting("auth_bypass", "AUTH_BYPASS", "0",
            "Development only: accept every request without a token, with every scope.", flag),
    Setting("beach_env", "BEACH_ENV", "development",
            "Deployment environment; production refuses AUTH_BYPASS.",
            one_of("development", "test", "staging", "production")),
    Setting("join_code_key", "BEACH_MANAGER_JOIN_CODE_KEY", None,
            "Keys encrypting stored join codes: comma-separated base64 of 32 bytes, the first "
            "encrypts. Required with DATABASE_URL in production.", join_code_keys),
    Setting("database_migrate_url", "DATABASE_MIGRATE_URL", None,
            "PostgreSQL URL of the schema owner, used only to run migrations at start-up; unset "
            "means DATABASE_URL.", url("postgres", "postgresql")),
)

# -- rate limits (beachmanager/ratelimit.py): token buckets on the write paths and bad tokens
SETTINGS += (
    Setting("rate_limit_account", "BEACH_MANAGER_RATE_LIMIT_ACCOUNT", "20",
            "Writes per second per account (REST POST/PUT/DELETE and agent bus messages); 0: off.",
            non_negative_float(100_000)),
    Setting("rate_limit_account_burst", "BEACH_MANAGER_RATE_LIMIT_ACCOUNT_BURST", "40",
            "Writes an account may make at once before the per-second rate applies.",
            positive_int(1_000_000)),
    Setting("rate_limit_beach", "BEACH_MANAGER_RATE_LIMIT_BEACH", "100",
            "Writes per second per private beach, all its accounts together; 0: off.",
            non_negative_float(100_000)),
    Setting("rate_limit_beach_burst", "BEACH_MANAGER_RATE_LIMIT_BEACH_BURST", "200",
            "Writes a private beach may take at once before the per-second rate applies.",
            positive_int(1_000_000)),
    Setting("rate_limit_failures", "BEACH_MANAGER_RATE_LIMIT_FAILURES", "10",
            "Requests with a missing or bad token per second per client address (then 429 "
            "before the token is checked); 0: off.", non_negative_float(100_000)),
    Setting("rate_limit_failures_burst", "BEACH_MANAGER_RATE_LIMIT_FAILURES_BURST", "100",
            "Failed tokens an address may send at once before the per-second rate applies.",
            positive_int(1_000_000)),
    Setting("rate_limit_keys", "BEACH_MANAGER_RATE_LIMIT_KEYS", "10000",
            "Most accounts, beaches and addresses each limiter remembers (least recently used "
            "dropped first).", positive_int(10_000_000)),
)

# -- assignment (beachmanager/assign): membership heartbeats and host placement
SETTINGS += (
    Setting("public_url", "BEACH_MANAGER_PUBLIC_URL", None,
            "URL other instances and clients use to reach this instance (redirects); unset means "
            "derived from the HTTP listener.", url("http", "https")),
    Setting("heartbeat_interval", "BEACH_MANAGER_HEARTBEAT_INTERVAL", None,
            "Seconds between membership heartbeats (the ownership lease of all this instance's "
            "hosts, renewed in one call). Unset: 0.3 with BEACH_MANAGER_STANDBY, else 5.",
            positive_float(300)),
    Setting("lease_timeout", "BEACH_MANAGER_LEASE_TIMEOUT", None,
            "Seconds without a heartbeat after which an instance is dead and its hosts move. "
            "Unset: 1 with BEACH_MANAGER_STANDBY and the default interval, else two intervals "
            "plus a tick.", positive_float(3600)),
    Setting("membership_ttl", "BEACH_MANAGER_MEMBERSHIP_TTL", "15",
            "Seconds a membership record lives without a heartbeat (must exceed two intervals).",
            positive_float(3600)),
    Setting("standby", "BEACH_MANAGER_STANDBY", "0",
            "Hot failover (first part): keep a warm standby session to every host for which "
            "this instance is next in rank after the owner, and promote it when the host "
            "moves here (no new attach).  Needs hosts that serve several peers.", flag),
    Setting("liveness_interval", "BEACH_MANAGER_LIVENESS_INTERVAL", None,
            "Seconds between bus heartbeats to each host (active and standby sessions); the "
            "harness answers. Unset: 0.25 with BEACH_MANAGER_STANDBY, off without; 0: off.",
            non_negative_float(60)),
    Setting("liveness_standby_interval", "BEACH_MANAGER_LIVENESS_STANDBY_INTERVAL", "1",
            "Seconds between bus heartbeats from a standby session (it needs the host's word "
            "about the owner, not a close watch); its own transport is lost after three.",
            positive_float(60)),
    Setting("liveness_timeout", "BEACH_MANAGER_LIVENESS_TIMEOUT", "1",
            "Seconds without a heartbeat answer before a host's transport is redone, and of "
            "silence from the active manager, reported by the host, before a standby takes it.",
            positive_float(600)),
    Setting("failover_min_interval", "BEACH_MANAGER_FAILOVER_MIN_INTERVAL", "10",
            "Least seconds a host stays with its owner before a standby may take it over on "
            "the host's report (against flapping).", non_negative_float(3600)),
    Setting("association_key", "BEACH_MANAGER_ASSOCIATION_KEY", None,
            "The cluster's association authority: base64 of a 32-byte Ed25519 seed, the same on "
            "every instance (hosts pin it and refuse associations signed otherwise). Unset: "
            "one generated per process (one instance only). Required with shared stores in "
            "production.", association_key),
    Setting("bridge_token_ttl", "BEACH_MANAGER_BRIDGE_TOKEN_TTL", "900",
            "Seconds a harness's bridge token lives (the harness asks for a new one at two "
            "thirds of its life).", positive_float(86_400)),
    Setting("idle_snapshot_interval_ms", "IDLE_SNAPSHOT_INTERVAL_MS", "30000",
            "Hint to each harness (in the association): most ms between full state snapshots "
            "while its screen is idle.", positive_int(86_400_000)),
    Setting("rebalance_batch", "BEACH_MANAGER_REBALANCE_BATCH", "5",
            "Hosts handed at a time to a better-ranked instance that joined; 0 keeps hosts where "
            "they are until their owner leaves.", non_negative_int(1000)),
)

# -- transport (beachmanager/transport): which hosts, ICE, attach timing
SETTINGS += (
    Setting("host", "BEACH_MANAGER_HOSTS", None,
            "A host to manage, SESSION_ID:JOIN_CODE; repeat the option for more (the variable "
            "takes a comma-separated list).", _transport_parser("targets.parse_target"),
            repeatable=True),
    Setting("hosts_file", "BEACH_MANAGER_HOSTS_FILE", None,
            "A file of hosts to manage, one SESSION_ID:JOIN_CODE per line (# comments).",
            _transport_parser("targets.parse_hosts_file")),
    Setting("ice_servers", "BEACH_ICE_SERVERS", None,
            "ICE servers as a JSON array of {urls, username?, credential?}; Google STUN is "
            "appended unless disabled.", _transport_parser("ice.parse_ice_servers")),
    Setting("webrtc_disable_stun", "BEACH_WEBRTC_DISABLE_STUN", "0",
            "Do not append stun:stun.l.google.com:19302 to the ICE servers.", flag),
    Setting("ice_transport_policy", "BEACH_ICE_TRANSPORT_POLICY", "all",
            "ICE candidate policy: all, or relay (TURN only).", one_of("all", "relay")),
    Setting("ice_public_ip", "BEACH_ICE_PUBLIC_IP", None,
            "Advertise this address in host candidates (NAT 1:1, e.g. a container's public IP).",
            _transport_parser("ice.parse_ip")),
    Setting("ice_public_host", "BEACH_ICE_PUBLIC_HOST", None,
            "Like BEACH_ICE_PUBLIC_IP, as a DNS name resolved at start-up.", text),
    Setting("ice_host_addresses", "BEACH_ICE_HOST_ADDRESSES", None,
            "Gather host candidates on exactly these local addresses (comma-separated; aioice "
            "never uses 127.0.0.1 on its own).", _transport_parser("ice.parse_address_list")),
    Setting("webrtc_poll_interval_ms", "BEACH_WEBRTC_POLL_INTERVAL_MS", "250",
            "How often Road's offer mailbox is polled while attaching, in ms.",
            positive_int(10_000)),
    Setting("attach_phase_timeout", "BEACH_ATTACH_PHASE_TIMEOUT", "10",
            "Seconds each attach phase (attach, answer, ice, dc_open, handshake, ready) may take.",
            positive_float(300)),
    Setting("attach_offer_timeout", "BEACH_ATTACH_OFFER_TIMEOUT", "20",
            "Seconds to wait for the host to join the room and post its offer.",
            positive_float(600)),
    Setting("signaling_ping_interval", "BEACH_SIGNALING_PING_INTERVAL", "20",
            "Seconds between pings on Road's WebSocket (Road evicts after 60 s of silence).",
            positive_float(55)),
    Setting("host_heartbeat_timeout", "BEACH_HOST_HEARTBEAT_TIMEOUT", "45",
            "Seconds without any traffic from a ready host before its transport is redone "
            "(hosts send a heartbeat every 15 s).", positive_float(3600)),
    Setting("reconnect_max_delay", "BEACH_RECONNECT_MAX_DELAY", "30",
            "Cap of the exponential backoff (with jitter) between attach attempts, in seconds.",
            positive_float(3600)),
    Setting("attach_concurrency", "BEACH_ATTACH_CONCURRENCY", "16",
            "Most hosts negotiating at once; more attaches queue (protects Road and hosts).",
            positive_int(10_000)),
)

# -- controller (beachmanager/controller): per-host action queues and delivery
SETTINGS += (
    Setting("action_queue_bound", "BEACH_ACTION_QUEUE_BOUND", "500",
            "Most unfinished actions per host; beyond it POST /sessions/:id/actions answers 429.",
            positive_int(100_000)),
    Setting("action_inflight_window", "BEACH_ACTION_INFLIGHT_WINDOW", "32",
            "Most actions delivered to one host and not yet acked.", positive_int(10_000)),
    Setting("action_ack_timeout", "BEACH_ACTION_ACK_TIMEOUT", "5",
            "Seconds to wait for an ack before delivering an action again (doubling, up to 8x).",
            positive_float(3600)),
    Setting("action_claim_timeout", "BEACH_ACTION_CLAIM_TIMEOUT", "30",
            "Seconds an action may stay pending with another manager before this one claims it.",
            positive_float(86_400)),
    Setting("action_admission_target", "BEACH_ACTION_ADMISSION_TARGET", "0.25",
            "Load shedding: seconds of backlog (at the measured finishing rate) this instance "
            "accepts before new actions get 429 with Retry-After; 0 turns it off.",
            non_negative_float(60)),
    Setting("action_admission_floor", "BEACH_ACTION_ADMISSION_FLOOR", "100",
            "Load shedding: actions in progress always accepted, whatever the rate.",
            positive_int(1_000_000)),
    Setting("action_ack_writers", "BEACH_ACTION_ACK_WRITERS", "2",
            "Batches of final acks written to the stores at once (each one transaction).",
            positive_int(8)),
)

# -- devstack inside the manager (beachmanager/devstack/embedded.py): `make run`, demos
SETTINGS += (
    Setting("dev_road", "BEACH_DEV_ROAD", "0",
            "Start a development Beach Road in this process on 127.0.0.1:PORT and use it "
            "(replaces --road-url); 0 is off. Refused in production.", non_negative_int(65_535)),
    Setting("dev_hosts", "BEACH_DEV_HOSTS", "0",
            "Start this many development Beach hosts (real PTYs) in this process, record them in "
            "private beach 'dev' and attach them. Refused in production.", non_negative_int(50)),
    Setting("dev_host_command", "BEACH_DEV_HOST_COMMAND", "/bin/sh",
            "The program each development host runs on its PTY (split on spaces)."),
)

SETTINGS_BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


class Config(Mapping[str, Any]):
    """Parsed settings; read them as attributes (``config.capacity``) or items."""

    def __init__(self, values: Mapping[str, Any]):
        self._values = dict(values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes: Any) -> Config:
        unknown = set(changes) - set(self._values)
        if unknown:
            raise KeyError(f"unknown settings: {sorted(unknown)}")
        return Config({**self._values, **changes})

    def describe(self) -> dict[str, Any]:
        """The settings with credentials redacted, safe to log or serve."""
        return {k: redact_url(v) if k.endswith("_url") else v for k, v in self._values.items()}

    @property
    def membership_interval(self) -> float:
        """The membership heartbeat interval in force; see ``heartbeat_interval``."""
        value = self._values.get("heartbeat_interval")
        if value is None:
            return 0.3 if self._values.get("standby") else 5.0
        return float(value)

    @property
    def membership_dead_after(self) -> float | None:
        """The lease timeout in force (None: two intervals plus a tick); see ``lease_timeout``."""
        value = self._values.get("lease_timeout")
        if value is None and self._values.get("standby") \
                and self._values.get("heartbeat_interval") is None:
            return 1.0
        return None if value is None else float(value)

    @property
    def liveness_every(self) -> float:
        """The bus heartbeat interval in force (0: off); see ``liveness_interval``."""
        value = self._values.get("liveness_interval")
        if value is None:
            return 0.25 if self._values.get("standby") else 0.0
        return float(value)

    @property
    def stores(self) -> dict[str, str]:
        return {
            "runtime": "redis" if self.redis_url else "memory",
            "registry": "postgres" if self.database_url else "memory",
        }


def _split_items(raw: str) -> list[str]:
    return [item for item in raw.replace(",", " ").split() if item]


def parse_setting(setting: Setting, raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return setting.parse(raw)
    except ValueError as e:
        where = f"--{setting.option}" + (f" / {setting.env}" if setting.env else "")
        raise ConfigError(f"{where} {e}") from None


def load(cli: Mapping[str, str | None] | None = None,
         environ: Mapping[str, str] | None = None) -> Config:
    """Resolve every setting from the command line, then *environ*, then its default."""
    import os

    cli = cli or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = cli.get(s.key)
        if s.repeatable:
            items = list(raw or ())
            if not items and s.env and environ.get(s.env):
                items = _split_items(environ[s.env])
            values[s.key] = tuple(parse_setting(s, item) for item in items)
            continue
        if raw is None and s.env:
            env_raw = environ.get(s.env)
            raw = env_raw if env_raw not in (None, "") else None
        if raw is None:
            raw = s.default
        values[s.key] = parse_setting(s, raw)
    if values.get("auth_bypass") and values.get("beach_env") == "production":
        raise ConfigError("--auth-bypass / AUTH_BYPASS is refused when BEACH_ENV=production")
    if (values.get("dev_road") or values.get("dev_hosts")) and values.get("beach_env") == "production":
        raise ConfigError("--dev-road / --dev-hosts start development peers and are refused when "
                          "BEACH_ENV=production")
    if values.get("beach_env") == "production" and not values.get("association_key") and (
            values.get("redis_url") or values.get("database_url")):
        raise ConfigError("--association-key / BEACH_MANAGER_ASSOCIATION_KEY is required in "
                          "production with shared stores (every instance must sign associations "
                          "with the same key)")
    return Config(values)


def defaults(**overrides: Any) -> Config:
    """The default configuration (ignoring the environment), with *overrides* applied."""
    return load({}, {}).replace(**overrides)
