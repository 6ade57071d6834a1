"""Registry stores for the contract tests: the in-memory twin and PostgreSQL (fresh database each)."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from beachmanager.registry.join_codes import JoinCodeCipher, JoinCodeKeys
from beachmanager.registry.memory import MemoryStore
from beachmanager.registry.migrate import enter_app_role, migrate_in_thread
from beachmanager.registry.postgres import PostgresStore
from beachmanager.registry.postgres_conn import PostgresService
from tests.support.servers import least_privilege_database


def start_pool(url: str, owner_url: str | None = None) -> PostgresService:
    """The registry's pool as deployed: the owner migrates, *url* (least privilege) queries."""
    owner = owner_url or url
    svc = PostgresService(url, reactor, prepare=lambda: migrate_in_thread(owner), configure=enter_app_role)
    svc.startService()
    pytest_twisted.blockon(svc.whenReady())
    return svc


@pytest.fixture
def databases():
    """(owner URL, least-privilege login URL) of a fresh database."""
    with least_privilege_database() as urls:
        yield urls


@pytest.fixture
def database(databases):
    """The owner's URL (migrations; sees every row)."""
    return databases[0]


@pytest.fixture
def pg(databases):
    svc = start_pool(databases[1], databases[0])
    yield svc
    pytest_twisted.blockon(svc.stopService())


@pytest.fixture
def cipher():
    return JoinCodeCipher(JoinCodeKeys.generate())


@pytest.fixture(params=["memory", "postgres"])
def store(request, cipher):
    if request.param == "memory":
        yield MemoryStore(cipher)
        return
    with least_privilege_database() as (owner_url, url):
        svc = start_pool(url, owner_url)
        try:
            yield PostgresStore(svc, cipher, reactor)
        finally:
            pytest_twisted.blockon(svc.stopService())
