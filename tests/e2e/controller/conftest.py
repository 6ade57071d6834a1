"""The real stack for controller end-to-end tests: devstack Road, devstack hosts (real shell)."""

from tests.integration.transport.conftest import road, start_host  # noqa: F401 (fixtures)
