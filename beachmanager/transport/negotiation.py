"""The answerer's side of the sealed signaling (reference §3.2, §3.3, §4.3), sans-I/O.

* :func:`open_offer` -- the host's offer SDP, opened with the handshake key when sealed
  (AAD ``[from_peer, to_peer, "offer"]`` from the payload itself);
* :func:`answer_payload` -- our answer for the mailbox, sealed (AAD ``[us, host, "answer"]``)
  unless signaling sealing is off;
* :func:`open_candidate` -- a host ICE signal as ``{"candidate", "sdp_mid", "sdp_mline_index"}``
  (sealed AAD, receiver's view: ``[host, us, handshake_id]``).

Failures raise :class:`~beachmanager.transport.errors.AttachError` (offer) or
``NegotiationError`` (a candidate, which is dropped, not fatal).
"""

from __future__ import annotations

from typing import Any

from ..protocol import crypto
from ..protocol import signaling as sig
from .errors import AttachError


class NegotiationError(ValueError):
    """A signal from the host that cannot be used (it is dropped and logged)."""


def open_offer(offer: sig.WebRtcSdpPayload, psk: bytes) -> str:
    if offer.sealed is None:
        if not offer.sdp:
            raise AttachError("offer", "the offer has neither SDP nor a sealed SDP", code="bad_offer")
        return offer.sdp
    try:
        plain = crypto.open_sealed(psk, offer.handshake_id, "offer",
                                   crypto.sdp_components(offer.from_peer, offer.to_peer, "offer"),
                                   offer.sealed.to_json())
        return plain.decode("utf-8")
    except (crypto.CryptoError, UnicodeDecodeError) as e:
        raise AttachError("offer", f"cannot open the sealed offer ({e}): wrong join code?",
                          code="offer_unsealable") from None


def answer_payload(psk: bytes, handshake_id: str, me: str, host: str, answer_sdp: str,
                   sealed: bool) -> sig.WebRtcSdpPayload:
    if not sealed:
        return sig.WebRtcSdpPayload(answer_sdp, "answer", handshake_id, me, host)
    env = crypto.seal(psk, handshake_id, "answer", crypto.sdp_components(me, host, "answer"),
                      answer_sdp.encode("utf-8"))
    return sig.WebRtcSdpPayload("", "answer", handshake_id, me, host,
                                sealed=sig.SealedBox.from_json(env))


def open_candidate(psk: bytes, cand: sig.IceCandidateSignal, host: str, me: str) -> dict[str, Any]:
    try:
        if cand.sealed is None:
            return cand.plain_candidate().to_json()
        plain = crypto.open_sealed(psk, cand.handshake_id, "ice",
                                   crypto.ice_components(host, me, cand.handshake_id),
                                   cand.sealed.to_json())
        return sig.IceCandidate.decode(plain).to_json()
    except (crypto.CryptoError, sig.SignalingError) as e:
        raise NegotiationError(str(e)) from None
