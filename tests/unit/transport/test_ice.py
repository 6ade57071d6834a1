"""ICE settings: parsing, upstream fallbacks, start-up warnings, SDP rewrites."""

from __future__ import annotations

import json

import pytest

from beachmanager.transport import ice
from beachmanager.transport.ice import GOOGLE_STUN, IceServer, IceSettings

TURN = {"urls": ["turn:turn.example:3478?transport=udp"], "username": "u", "credential": "s3cret"}


def test_parse_accepts_string_or_list_urls_and_hides_credentials():
    servers = ice.parse_ice_servers(json.dumps([{"urls": "stun:a.example:3478"}, TURN]))
    assert servers[0].urls == ("stun:a.example:3478",)
    assert servers[1].is_turn and servers[1].credential == "s3cret"
    assert "s3cret" not in repr(servers) and "***" in repr(servers[1])
    assert "s3cret" not in json.dumps(IceSettings(configured=servers).describe())


@pytest.mark.parametrize("raw, reason", [
    ("not json", "not valid JSON"),
    ("42", "JSON array"),
    ("[1]", "not an object"),
    ('[{"urls": []}]', "needs \"urls\""),
    ('[{"urls": "http://x"}]', "expected stun:"),
    ('[{"urls": "turn:x", "username": 3}]', "must be a string"),
    ('[{"urls": "turn:x", "credentialType": "oauth"}]', "not supported"),
])
def test_parse_rejects_bad_values_with_a_reason(raw, reason):
    with pytest.raises(ValueError, match=reason):
        ice.parse_ice_servers(raw)


def test_google_stun_is_appended_unless_disabled_and_never_twice():
    configured = (IceServer(("stun:a.example:3478",)),)
    assert [s.urls for s in IceSettings(configured=configured).servers] == [
        ("stun:a.example:3478",), (GOOGLE_STUN,)]
    assert IceSettings(configured=configured, disable_stun=True).servers == configured
    assert IceSettings(disable_stun=True).servers == ()
    with_google = (IceServer((GOOGLE_STUN,)),)
    assert IceSettings(configured=with_google).servers == with_google


def test_effective_servers_are_the_first_stun_and_first_credentialed_turn():
    servers = ice.parse_ice_servers(json.dumps([
        {"urls": ["turn:nocreds.example"]}, {"urls": "stun:first.example"}, TURN]))
    eff = IceSettings(configured=servers).effective()
    assert eff == {"stun": "stun:first.example", "turn": TURN["urls"][0]}


def test_rtc_configuration_carries_servers_and_relay_policy():
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    servers = ice.parse_ice_servers(json.dumps([TURN]))
    cfg = IceSettings(configured=servers, disable_stun=True, transport_policy="relay").rtc_configuration()
    assert [s.urls for s in cfg.iceServers] == [TURN["urls"]]
    assert cfg.iceServers[0].credential == "s3cret"
    assert cfg.iceTransportPolicy == RTCIceTransportPolicy.RELAY


def test_warnings_no_turn_private_address_in_container_and_nothing_to_gather():
    plain = IceSettings(disable_stun=True)
    w = ice.startup_warnings(plain, container=True, addresses=["172.17.0.2"])
    assert any("no TURN" in x for x in w)
    assert any("172.17.0.2" in x and "container" in x for x in w)
    hinted = IceSettings(disable_stun=True, public_ip="203.0.113.9")
    assert not any("container" in x for x in ice.startup_warnings(hinted, container=True,
                                                                  addresses=["172.17.0.2"]))
    assert not any("container" in x for x in ice.startup_warnings(plain, container=False,
                                                                  addresses=["172.17.0.2"]))
    assert any("no usable local address" in x for x in ice.startup_warnings(plain, container=False,
                                                                            addresses=[]))
    with_turn = IceSettings(configured=ice.parse_ice_servers(json.dumps([TURN])))
    assert not any("no TURN" in x for x in ice.startup_warnings(with_turn, container=False,
                                                                addresses=["192.0.2.2"]))


def test_container_detection(tmp_path):
    assert ice.in_container({"container": "podman"}, root=str(tmp_path))
    assert not ice.in_container({}, root=str(tmp_path))
    (tmp_path / ".dockerenv").write_text("")
    assert ice.in_container({}, root=str(tmp_path))


def test_a_network_namespace_of_its_own_counts_as_a_container(tmp_path):
    for who in ("self", "1"):
        (tmp_path / "proc" / who / "ns").mkdir(parents=True)
    (tmp_path / "proc/self/ns/net").write_text("")
    (tmp_path / "proc/1/ns/net").symlink_to(tmp_path / "proc/self/ns/net")
    assert not ice.in_container({}, root=str(tmp_path))  # init's namespace: the same inode
    (tmp_path / "proc/1/ns/net").unlink()
    (tmp_path / "proc/1/ns/net").write_text("")
    assert ice.in_container({}, root=str(tmp_path))


SDP = "\r\n".join([
    "v=0", "m=audio 9 UDP/TLS/RTP/SAVPF 0", "a=mid:a0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:1",
    "a=candidate:1 1 udp 2130706431 10.0.0.5 50000 typ host",
    "a=candidate:2 1 udp 1694498815 198.51.100.7 50001 typ srflx raddr 10.0.0.5 rport 50000",
    "a=end-of-candidates", ""])


def test_sdp_helpers():
    assert ice.application_mid(SDP) == "1"
    assert ice.candidate_count(SDP) == 2
    rewritten = ice.rewrite_host_candidates(SDP, "203.0.113.9")
    assert "203.0.113.9 50000 typ host" in rewritten
    assert "198.51.100.7 50001 typ srflx raddr 10.0.0.5" in rewritten  # srflx untouched
    assert "a=end-of-candidates" not in ice.strip_end_of_candidates(SDP)


def test_parse_addresses():
    assert ice.parse_address_list("127.0.0.1, ::1 10.0.0.1") == ("127.0.0.1", "::1", "10.0.0.1")
    with pytest.raises(ValueError, match="not an IP"):
        ice.parse_address_list("127.0.0.1,localhost")
    with pytest.raises(ValueError):
        ice.parse_address_list(" , ")


def test_host_address_override_is_installed_and_removed():
    import aioice.ice as aioice_ice

    original = aioice_ice.get_host_addresses
    try:
        ice.install_host_address_override(["127.0.0.1", "::1"])
        assert aioice_ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice_ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    finally:
        ice.install_host_address_override([])
    assert aioice_ice.get_host_addresses is original
