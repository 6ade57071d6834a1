"""Beach Gate / Clerk stand-ins with their key sets on a real HTTP listener."""

from tests.support.auth_fixtures import auth_settings, clerk, gate, jwks  # noqa: F401 (fixtures)
