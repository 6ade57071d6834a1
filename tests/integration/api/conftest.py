"""Beach Gate / Clerk stand-ins with their key sets on a real HTTP listener, and a whole
manager on in-memory stores that trusts them."""

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred

from tests.support.api_client import start_manager
from tests.support.auth_fixtures import auth_settings, clerk, gate, jwks  # noqa: F401 (fixtures)


@pytest.fixture
def manager(jwks):  # noqa: F811 (the imported fixture)
    running = pytest_twisted.blockon(ensureDeferred(start_manager(**auth_settings(jwks))))
    yield running
    pytest_twisted.blockon(ensureDeferred(running.stop()))
