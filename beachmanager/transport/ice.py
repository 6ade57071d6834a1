"""ICE configuration of the manager's answerer: servers, candidate policy, address hints.

Server selection follows upstream Beach (reference §3.6): the servers in
``BEACH_ICE_SERVERS`` (a JSON array of ``{"urls", "username"?, "credential"?,
"credentialType"?}``), then Google's public STUN server appended unless
``BEACH_WEBRTC_DISABLE_STUN`` is set.  Unlike upstream, an invalid
``BEACH_ICE_SERVERS`` is a start-up error instead of a silent fall back to
host-only candidates.

Address hints:

* ``public_ip`` / ``public_host`` play the role of webrtc-rs' NAT 1:1 mapping: the
  address of every ``typ host`` candidate in our answer is replaced by it;
* ``host_addresses`` overrides the local addresses aioice gathers on.  aioice never
  uses 127.0.0.1, so a loopback-only network namespace gathers nothing without it.

No asyncio and no Twisted here: values in, values out (plus one explicit patch of
aioice's address enumeration, installed by :func:`install_host_address_override`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GOOGLE_STUN = "stun:stun.l.google.com:19302"
_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
MAX_ICE_SERVERS = 16


@dataclass(frozen=True)
class IceServer:
    """One configured ICE server; its credential never appears in ``repr`` or logs."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)
    credential_type: str = "password"

    def __repr__(self) -> str:
        cred = ", credential=***" if self.credential else ""
        return f"IceServer(urls={list(self.urls)!r}{cred})"

    @property
    def is_turn(self) -> bool:
        return any(u.startswith(("turn:", "turns:")) for u in self.urls)

    def describe(self) -> dict[str, Any]:
        return {"urls": list(self.urls), "credentials": bool(self.username or self.credential)}

    def to_aiortc(self):
        from aiortc import RTCIceServer

        return RTCIceServer(urls=list(self.urls), username=self.username,
                            credential=self.credential, credentialType=self.credential_type)


def parse_ice_servers(raw: str) -> tuple[IceServer, ...]:
    """Parse ``BEACH_ICE_SERVERS``; raises ``ValueError`` with a short reason."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"is not valid JSON ({e.msg} at position {e.pos})") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("must be a JSON array of {\"urls\": ...} objects")
    if len(value) > MAX_ICE_SERVERS:
        raise ValueError(f"lists {len(value)} servers; at most {MAX_ICE_SERVERS} are allowed")
    servers = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise ValueError(f"entry {i} is not an object")
        urls = entry.get("urls", entry.get("url"))
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            raise ValueError(f"entry {i} needs \"urls\": a string or a non-empty list of strings")
        for u in urls:
            if not u.startswith(_SCHEMES):
                raise ValueError(f"entry {i} has URL {u!r}; expected stun:, stuns:, turn: or turns:")
        username, credential = entry.get("username"), entry.get("credential")
        for name, v in (("username", username), ("credential", credential)):
            if v is not None and not isinstance(v, str):
                raise ValueError(f"entry {i} field {name!r} must be a string")
        ctype = entry.get("credentialType", entry.get("credential_type", "password"))
        if ctype != "password":
            raise ValueError(f"entry {i} credentialType {ctype!r} is not supported (only 'password')")
        servers.append(IceServer(tuple(u.strip() for u in urls), username, credential, ctype))
    return tuple(servers)


def parse_address_list(raw: str) -> tuple[str, ...]:
    """A comma- or space-separated list of IP addresses (the gathering override)."""
    items = [p for p in re.split(r"[,\s]+", raw.strip()) if p]
    if not items:
        raise ValueError("lists no addresses")
    out = []
    for item in items:
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address") from None
    return tuple(out)


def parse_ip(raw: str) -> str:
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        raise ValueError(f"is not an IP address, got {raw!r}") from None


@dataclass(frozen=True)
class IceSettings:
    """Everything the answerer needs to build its ``RTCConfiguration``."""

    configured: tuple[IceServer, ...] = ()
    disable_stun: bool = False
    transport_policy: str = "all"  # all | relay
    public_ip: str | None = None
    public_host: str | None = None
    host_addresses: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> IceSettings:
        return cls(configured=tuple(config.get("ice_servers") or ()),
                   disable_stun=bool(config.get("webrtc_disable_stun")),
                   transport_policy=config.get("ice_transport_policy") or "all",
                   public_ip=config.get("ice_public_ip"),
                   public_host=config.get("ice_public_host"),
                   host_addresses=tuple(config.get("ice_host_addresses") or ()))

    @property
    def servers(self) -> tuple[IceServer, ...]:
        """The configured servers plus Google's STUN server unless disabled (no duplicates)."""
        out = list(self.configured)
        if not self.disable_stun and not any(GOOGLE_STUN in s.urls for s in out):
            out.append(IceServer((GOOGLE_STUN,)))
        return tuple(out)

    def effective(self) -> dict[str, str | None]:
        """aiortc uses only the first STUN and the first usable TURN URL: say which."""
        stun = turn = None
        for s in self.servers:
            for u in s.urls:
                if stun is None and u.startswith(("stun:", "stuns:")):
                    stun = u
                if turn is None and u.startswith(("turn:", "turns:")) and (s.username or s.credential):
                    turn = u
        return {"stun": stun, "turn": turn}

    def rtc_configuration(self):
        from aiortc import RTCConfiguration

        kwargs: dict[str, Any] = {"iceServers": [s.to_aiortc() for s in self.servers]}
        if self.transport_policy == "relay":
            from aiortc.rtcconfiguration import RTCIceTransportPolicy

            kwargs["iceTransportPolicy"] = RTCIceTransportPolicy.RELAY
        return RTCConfiguration(**kwargs)

    def describe(self) -> dict[str, Any]:
        """For the start-up log and debug routes: no credentials."""
        return {
            "servers": [s.describe() for s in self.servers],
            "effective": self.effective(),
            "stun_disabled": self.disable_stun,
            "candidate_policy": self.transport_policy,
            "host_addresses": list(self.host_addresses) or "auto",
            "public_ip": self.public_ip,
            "public_host": self.public_host,
        }


# -- start-up checks ---------------------------------------------------------------------

def in_container(environ: Mapping[str, str] | None = None, root: str = "/") -> bool:
    """A best guess: Docker/Podman marker files, the ``container`` variable, a cgroup hint, or
    a network namespace other than init's (``ip netns exec``, the smoke stack): anywhere the
    local addresses may not be the ones hosts can reach."""
    environ = os.environ if environ is None else environ
    if environ.get("container"):
        return True
    try:
        own = os.stat(os.path.join(root, "proc/self/ns/net")).st_ino
        if own != os.stat(os.path.join(root, "proc/1/ns/net")).st_ino:
            return True
    except OSError:
        pass  # no /proc, or init's namespace is not ours to see
    for marker in (".dockerenv", "run/.containerenv"):
        if os.path.exists(os.path.join(root, marker)):
            return True
    try:
        with open(os.path.join(root, "proc/1/cgroup"), encoding="utf-8", errors="replace") as f:
            text = f.read(65536)
    except OSError:
        return False
    return any(word in text for word in ("docker", "kubepods", "containerd", "libpod"))


def is_private(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


def local_addresses() -> list[str]:
    """The IPv4 addresses aioice would gather on (it skips 127.0.0.1)."""
    from aioice.ice import get_host_addresses

    return [a for a in get_host_addresses(use_ipv4=True, use_ipv6=False)]


def startup_warnings(settings: IceSettings, *, container: bool,
                     addresses: Sequence[str]) -> list[str]:
    """The warnings to log at start: no TURN, a private address advertised from a container,
    or nothing to gather on."""
    warnings = []
    if not any(s.is_turn for s in settings.servers):
        warnings.append("no TURN server configured (BEACH_ICE_SERVERS): hosts behind symmetric "
                        "NAT or strict firewalls will not connect")
    advertised = settings.host_addresses or tuple(addresses)
    if container and not (settings.public_ip or settings.public_host):
        private = [a for a in advertised if is_private(a)]
        if private:
            warnings.append(f"running in a container and advertising private address(es) "
                            f"{', '.join(private)}: set BEACH_ICE_PUBLIC_IP or "
                            f"BEACH_ICE_PUBLIC_HOST unless hosts share this network")
    if not advertised and settings.transport_policy != "relay":
        warnings.append("no usable local address for ICE host candidates (aioice never uses "
                        "127.0.0.1); set BEACH_ICE_HOST_ADDRESSES or a TURN server")
    return warnings


# -- SDP rewriting -------------------------------------------------------------------------

_CANDIDATE_LINE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host\b.*)$")


def rewrite_host_candidates(sdp: str, public_ip: str) -> str:
    """Replace the address of every ``typ host`` candidate (NAT 1:1 hint)."""
    out = []
    for line in sdp.split("\r\n"):
        m = _CANDIDATE_LINE.match(line)
        out.append(f"{m.group(1)}{public_ip}{m.group(3)}" if m else line)
    return "\r\n".join(out)


def strip_end_of_candidates(sdp: str) -> str:
    """Drop ``a=end-of-candidates``: the host keeps trickling, and aiortc would ignore the rest."""
    return "\r\n".join(line for line in sdp.split("\r\n") if line != "a=end-of-candidates")


def application_mid(sdp: str) -> str | None:
    """The ``a=mid`` of the ``m=application`` section (where the data channels live)."""
    in_app = False
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_app = line.startswith("m=application")
        elif in_app and line.startswith("a=mid:"):
            return line[6:].strip()
    return None


def candidate_count(sdp: str) -> int:
    return sum(1 for line in sdp.splitlines() if line.startswith("a=candidate:"))


# -- the gathering override -------------------------------------------------------------------

_original_get_host_addresses = None


def install_host_address_override(addresses: Iterable[str]) -> None:
    """Make aioice gather on exactly *addresses* (process-wide; empty restores the default)."""
    import aioice.ice as aioice_ice

    global _original_get_host_addresses
    if _original_get_host_addresses is None:
        _original_get_host_addresses = aioice_ice.get_host_addresses
    chosen = tuple(addresses)
    if not chosen:
        aioice_ice.get_host_addresses = _original_get_host_addresses
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen
                if (use_ipv4 and ":" not in a) or (use_ipv6 and ":" in a)]

    aioice_ice.get_host_addresses = get_host_addresses
