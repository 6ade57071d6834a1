"""Registry stores for the contract tests: the in-memory twin and PostgreSQL (fresh database each)."""

import pytest
import pytest_twisted
from twisted.internet import reactor

from beachmanager.registry.join_codes import JoinCodeCipher, JoinCodeKeys
from beachmanager.registry.memory import MemoryStore
from beachmanager.registry.migrate import enter_app_role, migrate_in_thread
from beachmanager.registry.postgres import PostgresStore
from beachmanager.registry.postgres_conn import PostgresService
from tests.support.servers import temporary_database


def start_pool(url: str) -> PostgresService:
    svc = PostgresService(url, reactor, prepare=lambda: migrate_in_thread(url), configure=enter_app_role)
    svc.startService()
    pytest_twisted.blockon(svc.whenReady())
    return svc


@pytest.fixture
def database():
    with temporary_database() as url:
        yield url


@pytest.fixture
def pg(database):
    svc = start_pool(database)
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
    with temporary_database() as url:
        svc = start_pool(url)
        try:
            yield PostgresStore(svc, cipher, reactor)
        finally:
            pytest_twisted.blockon(svc.stopService())
