"""When to seal signaling and when to run secure transport, and the insecure overrides.

Same switches as the Beach host: ``BEACH_INSECURE_SIGNALING`` and ``BEACH_INSECURE_TRANSPORT``
take effect only when set to exactly ``I_KNOW_THIS_IS_UNSAFE`` (surrounding whitespace
ignored).  Both are off by default; turning one on emits an :class:`InsecureOverrideWarning`
(Twisted's log beginner routes warnings into the log), once per process and switch.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

INSECURE_OVERRIDE_TOKEN = "I_KNOW_THIS_IS_UNSAFE"
INSECURE_SIGNALING_ENV = "BEACH_INSECURE_SIGNALING"
INSECURE_TRANSPORT_ENV = "BEACH_INSECURE_TRANSPORT"

#: Peer labels for which the host runs Noise and encrypts the ``beach`` channel.
SECURE_PEER_LABELS = frozenset({
    "mgr-actions",
    "pb-controller",
    "mgr-acks",
    "mgr-state",
    "private-beach-dashboard",
    "beach-manager",
})
#: The label this manager joins with (it is in :data:`SECURE_PEER_LABELS`).
MANAGER_PEER_LABEL = "beach-manager"
HANDSHAKE_CHANNEL_LABEL = "beach-secure-handshake"


class InsecureOverrideWarning(UserWarning):
    """An insecure override is on: signaling or data travel without Beach's own encryption."""


_MESSAGES = {
    INSECURE_SIGNALING_ENV: "SECURITY: BEACH_INSECURE_SIGNALING=I_KNOW_THIS_IS_UNSAFE is set: "
                            "this manager sends its SDP answer and ICE candidates UNSEALED",
    INSECURE_TRANSPORT_ENV: "SECURITY: BEACH_INSECURE_TRANSPORT=I_KNOW_THIS_IS_UNSAFE is set: "
                            "no Noise handshake and NO ENCRYPTION of beach data-channel traffic",
}


def _override_on(environ: Mapping[str, str], name: str) -> bool:
    on = environ.get(name, "").strip() == INSECURE_OVERRIDE_TOKEN
    if on:
        warnings.warn(_MESSAGES[name], InsecureOverrideWarning, stacklevel=3)
    return on


@dataclass(frozen=True)
class InsecureOverrides:
    signaling: bool = False
    transport: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> InsecureOverrides:
        """The overrides set in *environ* (the caller passes the process environment)."""
        return cls(signaling=_override_on(environ, INSECURE_SIGNALING_ENV),
                   transport=_override_on(environ, INSECURE_TRANSPORT_ENV))

    def messages(self) -> list[str]:
        """The loud lines to log at startup for whatever is on."""
        out = []
        if self.signaling:
            out.append(_MESSAGES[INSECURE_SIGNALING_ENV])
        if self.transport:
            out.append(_MESSAGES[INSECURE_TRANSPORT_ENV])
        return out


#: No override: the protocol's rule as written.
OFF = InsecureOverrides()


def join_code_present(join_code: str | None) -> bool:
    return join_code is not None and join_code.strip() != ""


def signaling_sealed(join_code: str | None, overrides: InsecureOverrides | None = None) -> bool:
    """Whether to seal our own SDP and ICE (we open sealed ones from the host regardless)."""
    ov = OFF if overrides is None else overrides
    return join_code_present(join_code) and not ov.signaling


def secure_transport_active(join_code: str | None, peer_label: str | None,
                            overrides: InsecureOverrides | None = None) -> bool:
    """The rule: secure transport (Noise, challenge, encrypted ``beach``) runs when the join code
    is non-blank and the peer label is one of the six secure labels (exact match), unless
    ``BEACH_INSECURE_TRANSPORT`` is on."""
    ov = OFF if overrides is None else overrides
    return (join_code_present(join_code) and peer_label in SECURE_PEER_LABELS
            and not ov.transport)
