"""A fresh cluster per test: private Redis, fresh database, work directory; logs shown on failure."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.servers import temporary_database, throwaway_redis

from .cluster import Cluster


@pytest.fixture
def cluster(request):
    workdir = Path(tempfile.mkdtemp(prefix="beach-assign-e2e-"))
    with throwaway_redis() as redis, temporary_database() as database:
        c = Cluster(workdir, redis.url, database)
        try:
            yield c
        finally:
            c.stop()
            failed = getattr(request.node, "rep_call", None)
            if failed is not None and failed.failed:
                for name in c.procs:
                    print(f"----- {name} log (tail) -----\n{c.tail(name)}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
