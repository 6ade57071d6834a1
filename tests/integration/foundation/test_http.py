"""The foundation's HTTP endpoints over real HTTP on 127.0.0.1:0, with the real service tree."""

import json

import pytest
import pytest_twisted
import treq
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred

from beachmanager import config
from beachmanager.manager import build_manager
from beachmanager.service import ReadyService
from beachmanager.telemetry.metrics import PLAN_METRICS, Metrics
from tests.support.auth_issuer import GATE_AUDIENCE, GATE_ISSUER
from tests.support.eventually import eventually


class NeverReady(ReadyService):
    critical = False

    def __init__(self, clock):
        super().__init__("slow-store", clock)
        self.gate = Deferred()

    def start(self):
        return self.gate

    def stop(self):
        if not self.gate.called:
            self.gate.cancel()


@pytest.fixture
def manager(jwks):
    cfg = config.defaults(http_endpoint="tcp:0:interface=127.0.0.1", instance_id="mgr-test",
                          beach_gate_jwks_url=jwks.url("gate"), beach_gate_issuer=GATE_ISSUER,
                          beach_gate_audience=GATE_AUDIENCE)
    fatal = []
    root = build_manager(cfg, reactor, metrics=Metrics(CollectorRegistry()), on_fatal=fatal.append)
    root.fatal = fatal
    yield root
    if root.running:
        pytest_twisted.blockon(root.stopService())


def base_url(root):
    host, port = root.parts.http.address()
    return f"http://{host}:{port}"


@pytest_twisted.inlineCallbacks
def test_health_ready_metrics_info(manager, gate):
    manager.startService()
    yield manager.parts.http.whenReady()
    url = base_url(manager)

    r = yield treq.get(url + "/healthz")
    assert r.code == 200 and (yield r.text()) == "OK"

    r = yield treq.get(url + "/readyz")
    body = json.loads((yield r.text()))
    assert r.code == 200 and body["status"] == "ready"
    assert body["children"]["http"]["ready"]

    r = yield treq.get(url + "/metrics")
    assert r.code == 200 and r.headers.getRawHeaders("content-type")[0].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families((yield r.text()))}
    for name in PLAN_METRICS:
        assert name in families or name.removesuffix("_total") in families, name

    r = yield treq.get(url + "/debug/info")
    assert r.code == 401
    yield r.text()
    r = yield treq.get(url + "/debug/info", headers={
        "Authorization": "Bearer " + gate.token(scope="pb:manager.debug")})
    info = json.loads((yield r.text()))
    assert r.code == 200, info
    assert info["instance_id"] == "mgr-test" and info["impl"] == "rewrite"
    assert info["stores"] == {"runtime": "memory", "registry": "memory"}
    assert info["version"]

    async def grown():  # a later read says the manager has been up longer
        r = await treq.get(url + "/debug/info", headers={
            "Authorization": "Bearer " + gate.token(scope="pb:manager.debug")})
        return json.loads(await r.text())["uptime_seconds"] > info["uptime_seconds"]

    yield ensureDeferred(eventually(grown, what="uptime_seconds to grow between two reads"))
    assert manager.fatal == []


@pytest_twisted.inlineCallbacks
def test_readyz_is_503_naming_parts_not_ready(manager):
    slow = NeverReady(reactor)
    slow.setServiceParent(manager)
    manager.startService()
    yield manager.parts.http.whenReady()
    r = yield treq.get(base_url(manager) + "/readyz")
    body = json.loads((yield r.text()))
    assert r.code == 503
    assert body == {"status": "not_ready", "not_ready": ["slow-store"], "children": body["children"]}
    slow.gate.callback(None)
    r = yield treq.get(base_url(manager) + "/readyz")
    assert r.code == 200
    yield r.text()


@pytest_twisted.inlineCallbacks
def test_port_in_use_is_fatal(manager):
    manager.startService()
    yield manager.parts.http.whenReady()
    host, port = manager.parts.http.address()
    cfg = config.defaults(http_endpoint=f"tcp:{port}:interface={host}")
    fatal = []
    second = build_manager(cfg, reactor, metrics=Metrics(CollectorRegistry()), on_fatal=fatal.append)
    second.startService()
    try:
        with pytest.raises(Exception, match="cannot listen"):
            yield second.parts.http.whenReady()
        assert fatal == [1]
        assert "cannot listen" in second.fatal_error.getErrorMessage()
    finally:
        yield second.stopService()


async def readyz_when_settled(root, want_ready: bool, timeout: float = 30.0, until=lambda body: True):
    """/readyz once it says *want_ready* and *until(body)*: ``(code, body)``."""

    async def settled():
        r = await treq.get(base_url(root) + "/readyz")
        body = json.loads(await r.text())
        assert (r.code == 200) == want_ready and until(body), (r.code, body)
        return r.code, body

    return await eventually(settled, timeout=timeout, errors=(AssertionError,),
                            what=f"/readyz to settle {'ready' if want_ready else 'not ready'}")


@pytest_twisted.ensureDeferred
async def test_real_stores_are_used_and_a_dead_one_keeps_readyz_503():
    from tests.support.servers import MACHINE_REDIS, free_port, temporary_database

    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with temporary_database() as db_url:
        for redis_url, ready in ((MACHINE_REDIS, True), (dead_redis, False)):
            cfg = config.defaults(http_endpoint="tcp:0:interface=127.0.0.1", redis_url=redis_url,
                                  database_url=db_url)
            root = build_manager(cfg, reactor, metrics=Metrics(CollectorRegistry()),
                                 on_fatal=list().append)
            root.startService()
            try:
                await root.parts.http.whenReady()
                await root.parts.postgres.whenReady()
                code, body = await readyz_when_settled(
                    root, ready, until=lambda b, ready=ready: ready or "error" in b["children"]["redis"])
                assert code == (200 if ready else 503), body
                if not ready:
                    assert "redis" in body["not_ready"] and "postgres" not in body["not_ready"]
                    assert body["children"]["redis"]["error"]
                assert root.ctx.config.stores == {"runtime": "redis", "registry": "postgres"}
            finally:
                await root.stopService()
