"""aiortc <-> Beach ICE candidate conversions, shared by the manager's answerer and the dev host.

* Beach signals carry ``{"candidate": "candidate:...", "sdp_mid", "sdp_mline_index"}``;
  webrtc-rs hosts always send ``sdp_mid = ""`` and index 0, while aiortc routes a
  candidate only when its ``sdpMid`` equals the data channel's mid (reference §3.4):
  :func:`to_aiortc` takes the mid to use.
* aiortc does not trickle: its candidates are in the local SDP after
  ``setLocalDescription``.  :func:`sdp_candidates` lists them in Beach form;
  :func:`strip_candidates` removes them (to trickle them instead, as webrtc-rs does).
"""

from __future__ import annotations

from typing import Any

CANDIDATE_PREFIX = "candidate:"


def candidate_text(text: str) -> str:
    """The candidate attribute value without ``a=`` / ``candidate:`` prefixes."""
    text = text.strip()
    if text.startswith("a="):
        text = text[2:]
    if text.startswith(CANDIDATE_PREFIX):
        text = text[len(CANDIDATE_PREFIX):]
    return text


def to_aiortc(text: str, sdp_mid: str | None, sdp_mline_index: int | None) -> Any:
    """An ``aiortc.RTCIceCandidate`` for a Beach candidate string; ``ValueError`` if unparsable."""
    from aiortc.sdp import candidate_from_sdp

    body = candidate_text(text)
    if not body:
        raise ValueError("empty candidate (end of candidates)")
    try:
        cand = candidate_from_sdp(body)
    except (ValueError, IndexError, AssertionError) as e:  # aiortc asserts on short candidates
        raise ValueError(f"unparsable candidate: {e!r}") from None
    cand.sdpMid = sdp_mid
    cand.sdpMLineIndex = sdp_mline_index
    return cand


def sdp_candidates(sdp: str) -> list[tuple[str, str | None, int]]:
    """``(candidate, mid, mline_index)`` for every ``a=candidate`` line, in Beach form."""
    mids = section_mids(sdp)
    out: list[tuple[str, str | None, int]] = []
    index = -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
        elif line.startswith("a=candidate:") and index >= 0:
            out.append((line[2:], mids[index], index))
    return out


def section_mids(sdp: str) -> list[str | None]:
    mids: list[str | None] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            mids.append(None)
        elif line.startswith("a=mid:") and mids:
            mids[-1] = line[6:].strip()
    return mids


def strip_candidates(sdp: str) -> str:
    """The SDP without ``a=candidate`` and ``a=end-of-candidates`` lines."""
    keep = [line for line in sdp.split("\r\n")
            if not line.startswith("a=candidate:") and line != "a=end-of-candidates"]
    return "\r\n".join(keep)
