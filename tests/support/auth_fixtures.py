"""Beach Gate / Clerk stand-ins with their key sets on a real HTTP listener, as pytest fixtures.

Registered for every test in tests/conftest.py; ``gate`` and ``clerk`` are the authorities
(session-wide: a test that rotates a key restores it), ``jwks`` serves both.
"""

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.support.auth_issuer import (
    CLERK_AUDIENCE,
    CLERK_ISSUER,
    GATE_AUDIENCE,
    GATE_ISSUER,
    Issuer,
    JwksServer,
)


@pytest.fixture(scope="session")
def gate():
    return Issuer("ec", GATE_ISSUER, GATE_AUDIENCE)


@pytest.fixture(scope="session")
def clerk():
    return Issuer("rsa", CLERK_ISSUER, CLERK_AUDIENCE)


@pytest.fixture
def jwks(gate, clerk):
    server = JwksServer(reactor, {"gate": gate, "clerk": clerk})
    server.start()
    yield server
    pytest_twisted.blockon(server.stop())


def auth_settings(jwks):
    """Manager settings that trust both stand-ins."""
    return dict(beach_gate_jwks_url=jwks.url("gate"), beach_gate_issuer=GATE_ISSUER,
                beach_gate_audience=GATE_AUDIENCE, clerk_jwks_url=jwks.url("clerk"),
                clerk_issuer=CLERK_ISSUER, clerk_audience=CLERK_AUDIENCE)
