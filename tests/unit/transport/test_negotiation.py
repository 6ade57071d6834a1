"""Sealed signaling from the answerer's side, against the host's view of the same AAD rules."""

from __future__ import annotations

import os

import pytest

from beachmanager.protocol import crypto
from beachmanager.protocol import signaling as sig
from beachmanager.transport import negotiation
from beachmanager.transport.errors import AttachError

HID, HOST, ME = "hs-1", "peer-host", "peer-me"
PSK = os.urandom(32)
SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"


def host_offer(psk=PSK, **changes):
    env = crypto.seal(psk, HID, "offer", crypto.sdp_components(HOST, ME, "offer"), SDP.encode())
    fields = {"sdp": "", "type": "offer", "handshake_id": HID, "from_peer": HOST, "to_peer": ME,
              "sealed": sig.SealedBox.from_json(env), **changes}
    return sig.WebRtcSdpPayload(**fields)


def test_sealed_and_plain_offers_open():
    assert negotiation.open_offer(host_offer(), PSK) == SDP
    plain = sig.WebRtcSdpPayload(SDP, "offer", HID, HOST, ME)
    assert negotiation.open_offer(plain, PSK) == SDP


def test_an_offer_sealed_with_another_key_or_for_other_peers_does_not_open():
    with pytest.raises(AttachError) as err:
        negotiation.open_offer(host_offer(psk=os.urandom(32)), PSK)
    assert err.value.phase == "offer" and err.value.code == "offer_unsealable"
    with pytest.raises(AttachError):
        negotiation.open_offer(host_offer(to_peer="someone-else"), PSK)  # AAD names the peers
    with pytest.raises(AttachError, match="neither SDP"):
        negotiation.open_offer(sig.WebRtcSdpPayload("", "offer", HID, HOST, ME), PSK)


def test_the_answer_opens_with_the_hosts_view_and_travels_as_json():
    payload = negotiation.answer_payload(PSK, HID, ME, HOST, "answer-sdp", sealed=True)
    wire = sig.WebRtcSdpPayload.decode(payload.encode())
    assert wire.sdp == "" and wire.from_peer == ME and wire.to_peer == HOST
    opened = crypto.open_sealed(PSK, HID, "answer", crypto.sdp_components(ME, HOST, "answer"),
                                wire.sealed.to_json())
    assert opened == b"answer-sdp"
    plain = negotiation.answer_payload(PSK, HID, ME, HOST, "answer-sdp", sealed=False)
    assert plain.sdp == "answer-sdp" and plain.sealed is None


def test_host_candidates_open_with_the_receivers_view():
    cand = sig.IceCandidate("candidate:1 1 udp 2130706431 192.0.2.2 40000 typ host", "", 0)
    env = crypto.seal(PSK, HID, "ice", crypto.ice_components(HOST, ME, HID), cand.encode())
    sealed = sig.IceCandidateSignal(HID, sealed=sig.SealedBox.from_json(env))
    assert negotiation.open_candidate(PSK, sealed, HOST, ME) == cand.to_json()
    plain = sig.IceCandidateSignal.plain(HID, cand)
    assert negotiation.open_candidate(PSK, plain, HOST, ME) == cand.to_json()
    with pytest.raises(negotiation.NegotiationError):
        negotiation.open_candidate(PSK, sealed, ME, HOST)  # the sender's view does not open
