"""A whole manager on in-memory stores that trusts the Beach Gate / Clerk stand-ins (the
``jwks`` fixture of tests/support/auth_fixtures.py, registered in tests/conftest.py)."""

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred

from tests.support.api_client import start_manager
from tests.support.auth_fixtures import auth_settings


@pytest.fixture
def manager(jwks):
    # acct-1 (the test issuer's default account) owns pb-guard, the beach test_guard names
    running = pytest_twisted.blockon(ensureDeferred(start_manager(owners={"pb-guard": "acct-1"},
                                                                  **auth_settings(jwks))))
    yield running
    pytest_twisted.blockon(ensureDeferred(running.stop()))
