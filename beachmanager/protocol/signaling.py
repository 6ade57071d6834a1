"""Beach Road signaling messages, sans-I/O: JSON text in, values out (and back).

Covers the three JSON shapes of the join handshake (reference
``road-signaling-and-webrtc-join.md`` §2.3, §2.4, §3.2, §3.3):

* WebSocket messages on ``/ws/{id}``, each a JSON object tagged by ``"type"``.
  Client to Road: :class:`Join`, :class:`Signal`, :class:`Ping` (and the relayed
  :class:`NegotiateTransport` / :class:`AcceptTransport`).  Road to client:
  :class:`JoinSuccess`, :class:`JoinError`, :class:`PeerJoined`, :class:`PeerLeft`,
  :class:`RelayedSignal`, :class:`Pong`, :class:`ErrorMessage` (and
  :class:`TransportProposal` / :class:`TransportAccepted`).
* the SDP mailbox payload :class:`WebRtcSdpPayload` (HTTP body of the offer/answer routes);
* the ICE candidate carried inside a ``signal``: :class:`IceCandidateSignal`, whose sealed
  plaintext is an :class:`IceCandidate`.

Both roles use the same module: a Road server decodes client messages and encodes
server ones; a peer does the reverse.  Every decoder raises :class:`SignalingError`
(and only that) on bad input.  Sealing itself lives in ``protocol.crypto``; here a
sealed blob is only its JSON form, :class:`SealedBox`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from .crypto.policy import SECURE_PEER_LABELS

#: Largest WebSocket text message or HTTP SDP body a decoder accepts (bytes of UTF-8).
MAX_MESSAGE_BYTES = 256 * 1024

ROLE_SERVER = "server"
ROLE_CLIENT = "client"
ROLES = (ROLE_SERVER, ROLE_CLIENT)

TRANSPORT_WEBRTC = "webrtc"
TRANSPORTS = ("webrtc", "web_transport", "direct")

#: Peer labels for which a host runs the Noise handshake and encrypts ``beach`` (§4.1).
SECURE_LABELS = SECURE_PEER_LABELS

SDP_TYPES = ("offer", "answer")


class SignalingError(ValueError):
    """A signaling message, SDP payload or ICE signal is malformed."""


@dataclass(frozen=True)
class CustomTransport:
    """``{"custom": name}``: a transport outside the known set."""

    name: str


Transport = str | CustomTransport


# -- small JSON helpers -----------------------------------------------------------------


def _load(text: str | bytes, what: str) -> dict[str, Any]:
    if isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
        if len(raw) > MAX_MESSAGE_BYTES:
            raise SignalingError(f"{what} is {len(raw)} bytes, more than {MAX_MESSAGE_BYTES}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SignalingError(f"{what} is not UTF-8") from None
    elif not isinstance(text, str):
        raise SignalingError(f"{what} must be text, got {type(text).__name__}")
    elif len(text) > MAX_MESSAGE_BYTES:  # chars <= bytes, a cheap bound before encoding
        raise SignalingError(f"{what} is longer than {MAX_MESSAGE_BYTES} bytes")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise SignalingError(f"{what} is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise SignalingError(f"{what} must be a JSON object")
    return value


def _dump(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@overload
def _str(obj: Mapping[str, Any], key: str, *, optional: Literal[False] = ...) -> str: ...
@overload
def _str(obj: Mapping[str, Any], key: str, *, optional: bool) -> str | None: ...
def _str(obj: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if optional:
            return None
        raise SignalingError(f"missing field {key!r}")
    if not isinstance(value, str):
        raise SignalingError(f"field {key!r} must be a string")
    return value


@overload
def _int(obj: Mapping[str, Any], key: str, *, optional: Literal[False] = ...) -> int: ...
@overload
def _int(obj: Mapping[str, Any], key: str, *, optional: bool) -> int | None: ...
def _int(obj: Mapping[str, Any], key: str, *, optional: bool = False) -> int | None:
    value = obj.get(key)
    if value is None:
        if optional:
            return None
        raise SignalingError(f"missing field {key!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise SignalingError(f"field {key!r} must be an integer")
    return value


def _bool(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SignalingError(f"field {key!r} must be a boolean")
    return value


def _transport(value: Any, key: str) -> Transport:
    if isinstance(value, str):
        if value not in TRANSPORTS:
            raise SignalingError(f"field {key!r}: unknown transport {value!r}")
        return value
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("custom"), str):
        return CustomTransport(value["custom"])
    raise SignalingError(f'field {key!r} must be a transport name or {{"custom": name}}')


def _transport_json(t: Transport) -> Any:
    return {"custom": t.name} if isinstance(t, CustomTransport) else t


def _transports(
    obj: Mapping[str, Any], key: str, *, optional: bool = False
) -> tuple[Transport, ...]:
    value = obj.get(key)
    if value is None and optional:
        return ()
    if not isinstance(value, list):
        raise SignalingError(f"field {key!r} must be a list of transports")
    return tuple(_transport(v, key) for v in value)


def _opt_transport(obj: Mapping[str, Any], key: str) -> Transport | None:
    value = obj.get(key)
    return None if value is None else _transport(value, key)


def _metadata(obj: Mapping[str, Any], key: str = "metadata") -> dict[str, str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SignalingError(f"field {key!r} must be an object of strings")
    return dict(value)


def _role(value: Any) -> str:
    if value not in ROLES:
        raise SignalingError(f"peer role must be one of {ROLES}, got {value!r}")
    return value


# -- peers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerInfo:
    id: str
    role: str
    joined_at: int = 0
    supported_transports: tuple[Transport, ...] = (TRANSPORT_WEBRTC,)
    preferred_transport: Transport | None = None
    metadata: dict[str, str] | None = field(default=None, compare=True, hash=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "role": self.role,
            "joined_at": self.joined_at,
            "supported_transports": [_transport_json(t) for t in self.supported_transports],
            "preferred_transport": None
            if self.preferred_transport is None
            else _transport_json(self.preferred_transport),
        }
        if self.metadata is not None:
            out["metadata"] = dict(self.metadata)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> PeerInfo:
        if not isinstance(obj, dict):
            raise SignalingError("peer info must be a JSON object")
        return cls(
            id=_str(obj, "id"),
            role=_role(obj.get("role")),
            joined_at=_int(obj, "joined_at", optional=True) or 0,
            supported_transports=_transports(obj, "supported_transports"),
            preferred_transport=_opt_transport(obj, "preferred_transport"),
            metadata=_metadata(obj),
        )

    @property
    def label(self) -> str | None:
        return (self.metadata or {}).get("label")


# -- client -> Road ---------------------------------------------------------------------


@dataclass(frozen=True)
class Join:
    peer_id: str
    passphrase: str | None = None
    supported_transports: tuple[Transport, ...] = (TRANSPORT_WEBRTC,)
    preferred_transport: Transport | None = TRANSPORT_WEBRTC
    label: str | None = None
    mcp: bool = False
    metadata: dict[str, str] | None = field(default=None, hash=False)
    viewer_token: str | None = None


@dataclass(frozen=True)
class Signal:
    """A signal to relay to *to_peer*; *signal* is any JSON value, relayed unchanged."""

    to_peer: str
    signal: Any = field(hash=False)


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class NegotiateTransport:
    to_peer: str
    proposed_transport: Transport


@dataclass(frozen=True)
class AcceptTransport:
    to_peer: str
    transport: Transport


ClientMessage = Join | Signal | Ping | NegotiateTransport | AcceptTransport


def encode_client(msg: ClientMessage) -> str:
    """The WebSocket text for a client-to-Road message."""
    if isinstance(msg, Join):
        out: dict[str, Any] = {
            "type": "join",
            "peer_id": msg.peer_id,
            "passphrase": msg.passphrase,
            "supported_transports": [_transport_json(t) for t in msg.supported_transports],
            "preferred_transport": None
            if msg.preferred_transport is None
            else _transport_json(msg.preferred_transport),
            "label": msg.label,
            "mcp": msg.mcp,
        }
        if msg.metadata is not None:
            out["metadata"] = dict(msg.metadata)
        if msg.viewer_token is not None:
            out["viewer_token"] = msg.viewer_token
        return _dump(out)
    if isinstance(msg, Signal):
        return _dump({"type": "signal", "to_peer": msg.to_peer, "signal": msg.signal})
    if isinstance(msg, Ping):
        return _dump({"type": "ping"})
    if isinstance(msg, NegotiateTransport):
        return _dump(
            {
                "type": "negotiate_transport",
                "to_peer": msg.to_peer,
                "proposed_transport": _transport_json(msg.proposed_transport),
            }
        )
    if isinstance(msg, AcceptTransport):
        return _dump(
            {
                "type": "accept_transport",
                "to_peer": msg.to_peer,
                "transport": _transport_json(msg.transport),
            }
        )
    raise TypeError(f"not a client signaling message: {msg!r}")


def decode_client(text: str | bytes) -> ClientMessage:
    """Parse a client-to-Road message (what a Road server receives)."""
    obj = _load(text, "signaling message")
    kind = obj.get("type")
    if kind == "join":
        return Join(
            peer_id=_str(obj, "peer_id"),
            passphrase=_str(obj, "passphrase", optional=True),
            supported_transports=_transports(obj, "supported_transports"),
            preferred_transport=_opt_transport(obj, "preferred_transport"),
            label=_str(obj, "label", optional=True),
            mcp=_bool(obj, "mcp", False),
            metadata=_metadata(obj),
            viewer_token=_str(obj, "viewer_token", optional=True),
        )
    if kind == "signal":
        if "signal" not in obj:
            raise SignalingError("missing field 'signal'")
        return Signal(to_peer=_str(obj, "to_peer"), signal=obj["signal"])
    if kind == "ping":
        return Ping()
    if kind == "negotiate_transport":
        return NegotiateTransport(
            _str(obj, "to_peer"), _transport(obj.get("proposed_transport"), "proposed_transport")
        )
    if kind == "accept_transport":
        return AcceptTransport(_str(obj, "to_peer"), _transport(obj.get("transport"), "transport"))
    raise SignalingError(f"unknown client message type {kind!r}")


# -- Road -> client ---------------------------------------------------------------------


@dataclass(frozen=True)
class JoinSuccess:
    session_id: str
    peer_id: str
    peers: tuple[PeerInfo, ...]
    available_transports: tuple[Transport, ...] = (TRANSPORT_WEBRTC,)

    def server_peer(self) -> PeerInfo | None:
        """The room's ``server`` peer other than me, if any (§2.5)."""
        return next((p for p in self.peers if p.role == ROLE_SERVER and p.id != self.peer_id), None)

    def me(self) -> PeerInfo | None:
        return next((p for p in self.peers if p.id == self.peer_id), None)


@dataclass(frozen=True)
class JoinError:
    reason: str


@dataclass(frozen=True)
class PeerJoined:
    peer: PeerInfo


@dataclass(frozen=True)
class PeerLeft:
    peer_id: str


@dataclass(frozen=True)
class RelayedSignal:
    """A ``signal`` as delivered by Road: *from_peer* is the sender's connection id."""

    from_peer: str
    signal: Any = field(hash=False)


@dataclass(frozen=True)
class Pong:
    pass


@dataclass(frozen=True)
class ErrorMessage:
    message: str


@dataclass(frozen=True)
class TransportProposal:
    from_peer: str
    proposed_transport: Transport


@dataclass(frozen=True)
class TransportAccepted:
    from_peer: str
    transport: Transport


ServerMessage = (
    JoinSuccess
    | JoinError
    | PeerJoined
    | PeerLeft
    | RelayedSignal
    | Pong
    | ErrorMessage
    | TransportProposal
    | TransportAccepted
)

#: ``join_error`` reasons Road sends (§2.4).
JOIN_ERROR_NOT_FOUND = "Session not found"
JOIN_ERROR_INTERNAL = "Internal error"
JOIN_ERROR_VIEWER_UNAVAILABLE = "viewer tokens unavailable"
JOIN_ERROR_VIEWER_FAILED = "viewer token verification failed"
JOIN_ERROR_VIEWER_INVALID = "viewer credential invalid"
JOIN_ERROR_BAD_PASSPHRASE = "Invalid passphrase"
JOIN_ERROR_NO_PASSPHRASE = "Passphrase required"


def encode_server(msg: ServerMessage) -> str:
    """The WebSocket text for a Road-to-client message."""
    if isinstance(msg, JoinSuccess):
        return _dump(
            {
                "type": "join_success",
                "session_id": msg.session_id,
                "peer_id": msg.peer_id,
                "peers": [p.to_json() for p in msg.peers],
                "available_transports": [_transport_json(t) for t in msg.available_transports],
            }
        )
    if isinstance(msg, JoinError):
        return _dump({"type": "join_error", "reason": msg.reason})
    if isinstance(msg, PeerJoined):
        return _dump({"type": "peer_joined", "peer": msg.peer.to_json()})
    if isinstance(msg, PeerLeft):
        return _dump({"type": "peer_left", "peer_id": msg.peer_id})
    if isinstance(msg, RelayedSignal):
        return _dump({"type": "signal", "from_peer": msg.from_peer, "signal": msg.signal})
    if isinstance(msg, Pong):
        return _dump({"type": "pong"})
    if isinstance(msg, ErrorMessage):
        return _dump({"type": "error", "message": msg.message})
    if isinstance(msg, TransportProposal):
        return _dump(
            {
                "type": "transport_proposal",
                "from_peer": msg.from_peer,
                "proposed_transport": _transport_json(msg.proposed_transport),
            }
        )
    if isinstance(msg, TransportAccepted):
        return _dump(
            {
                "type": "transport_accepted",
                "from_peer": msg.from_peer,
                "transport": _transport_json(msg.transport),
            }
        )
    raise TypeError(f"not a server signaling message: {msg!r}")


def decode_server(text: str | bytes) -> ServerMessage:
    """Parse a Road-to-client message (what a host or manager receives)."""
    obj = _load(text, "signaling message")
    kind = obj.get("type")
    if kind == "join_success":
        peers = obj.get("peers")
        if not isinstance(peers, list):
            raise SignalingError("field 'peers' must be a list")
        return JoinSuccess(
            session_id=_str(obj, "session_id"),
            peer_id=_str(obj, "peer_id"),
            peers=tuple(PeerInfo.from_json(p) for p in peers),
            available_transports=_transports(obj, "available_transports", optional=True),
        )
    if kind == "join_error":
        return JoinError(_str(obj, "reason"))
    if kind == "peer_joined":
        return PeerJoined(PeerInfo.from_json(obj.get("peer")))
    if kind == "peer_left":
        return PeerLeft(_str(obj, "peer_id"))
    if kind == "signal":
        if "signal" not in obj:
            raise SignalingError("missing field 'signal'")
        return RelayedSignal(from_peer=_str(obj, "from_peer"), signal=obj["signal"])
    if kind == "pong":
        return Pong()
    if kind == "error":
        return ErrorMessage(_str(obj, "message"))
    if kind == "transport_proposal":
        return TransportProposal(
            _str(obj, "from_peer"), _transport(obj.get("proposed_transport"), "proposed_transport")
        )
    if kind == "transport_accepted":
        return TransportAccepted(
            _str(obj, "from_peer"), _transport(obj.get("transport"), "transport")
        )
    raise SignalingError(f"unknown server message type {kind!r}")


# -- sealed blobs -------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedBox:
    """``{"version":1,"nonce":b64,"ciphertext":b64}`` (§4.3), decoded to bytes."""

    nonce: bytes
    ciphertext: bytes
    version: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "nonce": base64.b64encode(self.nonce).decode("ascii"),
            "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
        }

    @classmethod
    def from_json(cls, obj: Any) -> SealedBox:
        if not isinstance(obj, dict):
            raise SignalingError("'sealed' must be a JSON object")
        version = _int(obj, "version")
        if version != 1:
            raise SignalingError(f"unsupported sealed version {version}")
        try:
            nonce = base64.b64decode(_str(obj, "nonce"), validate=True)
            ciphertext = base64.b64decode(_str(obj, "ciphertext"), validate=True)
        except (binascii.Error, ValueError):
            raise SignalingError("'sealed' nonce/ciphertext is not base64") from None
        if len(nonce) != 12:
            raise SignalingError(f"sealed nonce must be 12 bytes, got {len(nonce)}")
        if len(ciphertext) < 16:
            raise SignalingError("sealed ciphertext is shorter than its tag")
        return cls(nonce=nonce, ciphertext=ciphertext, version=version)


def _opt_sealed(obj: Mapping[str, Any]) -> SealedBox | None:
    value = obj.get("sealed")
    return None if value is None else SealedBox.from_json(value)


# -- SDP mailbox payload ------------------------------------------------------------------


@dataclass(frozen=True)
class WebRtcSdpPayload:
    """Body of ``POST/GET /peer-sessions/{psid}/webrtc/{offer,answer}`` (§3.2)."""

    sdp: str
    type: str
    handshake_id: str
    from_peer: str
    to_peer: str
    sealed: SealedBox | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sdp": self.sdp,
            "type": self.type,
            "handshake_id": self.handshake_id,
            "from_peer": self.from_peer,
            "to_peer": self.to_peer,
        }
        if self.sealed is not None:
            out["sealed"] = self.sealed.to_json()
        return out

    def encode(self) -> str:
        return _dump(self.to_json())

    @classmethod
    def from_json(cls, obj: Any) -> WebRtcSdpPayload:
        if not isinstance(obj, dict):
            raise SignalingError("SDP payload must be a JSON object")
        sdp_type = _str(obj, "type")
        if sdp_type not in SDP_TYPES:
            raise SignalingError(f"SDP type must be offer or answer, got {sdp_type!r}")
        return cls(
            sdp=_str(obj, "sdp"),
            type=sdp_type,
            handshake_id=_str(obj, "handshake_id"),
            from_peer=_str(obj, "from_peer"),
            to_peer=_str(obj, "to_peer"),
            sealed=_opt_sealed(obj),
        )

    @classmethod
    def decode(cls, text: str | bytes) -> WebRtcSdpPayload:
        return cls.from_json(_load(text, "SDP payload"))

    def blank_ids(self) -> list[str]:
        """Names of the id fields that are blank (Road answers 400 when any is)."""
        return [k for k in ("handshake_id", "from_peer", "to_peer") if not getattr(self, k).strip()]


# -- ICE candidates ---------------------------------------------------------------------


@dataclass(frozen=True)
class IceCandidate:
    """One candidate; also the plaintext JSON inside a sealed ICE signal (§3.3)."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "sdp_mid": self.sdp_mid,
            "sdp_mline_index": self.sdp_mline_index,
        }

    def encode(self) -> bytes:
        """The sealed plaintext: UTF-8 JSON."""
        return _dump(self.to_json()).encode("utf-8")

    @classmethod
    def from_json(cls, obj: Any) -> IceCandidate:
        if not isinstance(obj, dict):
            raise SignalingError("ICE candidate must be a JSON object")
        index = _int(obj, "sdp_mline_index", optional=True)
        if index is not None and not 0 <= index <= 0xFFFFFFFF:
            raise SignalingError("sdp_mline_index out of range")
        return cls(
            candidate=_str(obj, "candidate"),
            sdp_mid=_str(obj, "sdp_mid", optional=True),
            sdp_mline_index=index,
        )

    @classmethod
    def decode(cls, data: str | bytes) -> IceCandidate:
        return cls.from_json(_load(data, "ICE candidate"))


@dataclass(frozen=True)
class IceCandidateSignal:
    """The ``signal`` value of a WS ``signal`` message carrying one WebRTC ICE candidate.

    Sealed form: ``candidate`` is ``""``, ``sdp_mid``/``sdp_mline_index`` are null and
    ``sealed`` holds an :class:`IceCandidate` JSON.  Plain form: no ``sealed``.
    """

    handshake_id: str
    candidate: str = ""
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    sealed: SealedBox | None = None

    @classmethod
    def plain(cls, handshake_id: str, cand: IceCandidate) -> IceCandidateSignal:
        return cls(handshake_id, cand.candidate, cand.sdp_mid, cand.sdp_mline_index)

    def plain_candidate(self) -> IceCandidate:
        """The candidate of an unsealed signal."""
        if self.sealed is not None:
            raise SignalingError("ICE signal is sealed; open it with the handshake key")
        return IceCandidate(self.candidate, self.sdp_mid, self.sdp_mline_index)

    def to_json(self) -> dict[str, Any]:
        inner: dict[str, Any] = {
            "signal_type": "ice_candidate",
            "candidate": self.candidate,
            "sdp_mid": self.sdp_mid,
            "sdp_mline_index": self.sdp_mline_index,
            "handshake_id": self.handshake_id,
        }
        if self.sealed is not None:
            inner["sealed"] = self.sealed.to_json()
        return {"transport": "webrtc", "signal": inner}

    @classmethod
    def from_json(cls, obj: Any) -> IceCandidateSignal:
        """Parse the ``signal`` value of a relayed signal; raise if it is anything else."""
        if not isinstance(obj, dict) or obj.get("transport") != "webrtc":
            raise SignalingError("not a webrtc signal")
        inner = obj.get("signal")
        if not isinstance(inner, dict) or inner.get("signal_type") != "ice_candidate":
            raise SignalingError("not an ICE candidate signal")
        index = _int(inner, "sdp_mline_index", optional=True)
        if index is not None and not 0 <= index <= 0xFFFFFFFF:
            raise SignalingError("sdp_mline_index out of range")
        return cls(
            handshake_id=_str(inner, "handshake_id"),
            candidate=_str(inner, "candidate", optional=True) or "",
            sdp_mid=_str(inner, "sdp_mid", optional=True),
            sdp_mline_index=index,
            sealed=_opt_sealed(inner),
        )


def is_secure_label(label: str | None) -> bool:
    """Whether a host runs the Noise handshake for a peer with this label (§4.1)."""
    return label is not None and label.strip() in SECURE_LABELS
