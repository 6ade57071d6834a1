"""The stack's description and its pure helpers (no namespaces needed)."""

from __future__ import annotations

import ipaddress
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from beachmanager.devstack.stack import __main__ as cli
from beachmanager.devstack.stack import attach, network, runner
from beachmanager.devstack.stack import topology as topo


def test_dependencies_start_first_and_profiles_are_optional():
    t = topo.smoke()
    order = [s.name for s in t.start_order(pong=True)]
    for s in t.services:
        for dep in s.depends_on:
            assert order.index(dep) < order.index(s.name), (dep, s.name)
    without = [s.name for s in t.start_order(pong=False)]
    assert "pong" not in without and "agent" not in without and "attach" in without


def test_a_cycle_an_unknown_dependency_and_a_repeated_name_are_refused():
    a = topo.Service("a", 2, (), depends_on={"b": "service_started"})
    b = topo.Service("b", 3, (), depends_on={"a": "service_started"})
    with pytest.raises(ValueError, match="cycle"):
        topo.Topology("t", (a, b)).start_order(pong=False)
    with pytest.raises(ValueError, match="unknown"):
        topo.Topology("t", (a,))
    with pytest.raises(ValueError, match="repeat"):
        topo.Topology("t", (topo.Service("a", 2, ()), topo.Service("a", 3, ())))


def test_addresses_are_distinct_inside_the_subnet_and_clear_of_the_sink():
    t = topo.Topology("smoke", topo.smoke().services, "10.99.7.0/24")
    addresses = [t.address(s.name) for s in t.services]
    assert len(set(addresses)) == len(addresses)
    net = ipaddress.ip_network(t.subnet)
    for a in addresses:
        assert ipaddress.ip_address(a) in net
        assert a != network.sink(t.subnet)
    with pytest.raises(KeyError, match="no service 'nope'"):
        t.address("nope")


def test_the_hosts_file_names_every_service_its_aliases_and_the_root():
    t = topo.smoke()
    text = runner.hosts_file(t, "192.0.2.2")
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines()}
    assert lines["192.0.2.2"] == ["root"]
    assert lines[t.address("manager-1")] == ["manager-1", topo.REWRITE_SERVICE]
    assert all(s.name in text for s in t.services)


def test_impair_options_are_checked():
    assert cli._impairs(["host-1=delay=50ms,loss=1%"]) == {"host-1": "delay=50ms,loss=1%"}
    with pytest.raises(runner.StackError, match="SERVICE=SPEC"):
        cli._impairs(["host-1"])


class _Manager(BaseHTTPRequestHandler):
    answers: list[tuple[int, dict]] = []
    seen: list[dict] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).seen.append({"path": self.path, **body})
        status, answer = type(self).answers.pop(0) if type(self).answers else (200, {})
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def manager():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Manager)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Manager.answers, _Manager.seen = [], []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_attach_retries_a_code_road_cannot_verify_yet_then_succeeds(manager, capsys):
    not_yet = (403, {"error_code": "invalid_join_code"})
    _Manager.answers = [not_yet, (503, {}), not_yet]
    assert attach.main(["--manager", manager, "--beach", "pb", "--timeout", "10", "s-1:CODE"]) == 0
    assert len(_Manager.seen) == 4
    assert _Manager.seen[-1] == {"path": "/private-beaches/pb/sessions/attach-by-code",
                                 "session_id": "s-1", "code": "CODE"}
    assert "s-1 attached to pb" in capsys.readouterr().out


def test_attach_gives_up_at_once_on_an_answer_retrying_cannot_change(manager, capsys):
    _Manager.answers = [(400, {"error_code": "invalid_request"})]
    assert attach.main(["--manager", manager, "--beach", "pb", "s-1:CODE"]) == 1
    assert len(_Manager.seen) == 1
    assert "NOT attached: 400" in capsys.readouterr().err


def test_attach_refuses_a_target_without_a_code():
    with pytest.raises(SystemExit, match="SESSION_ID:JOIN_CODE"):
        attach.main(["--manager", "http://127.0.0.1:9", "--beach", "pb", "s-1"])


def test_managers_log_in_with_least_privilege_and_the_owner_migrates():
    from urllib.parse import urlsplit

    from beachmanager.devstack.stack import topology as topo

    for t in (topo.smoke(), topo.main_stack()):
        pg = t.service("postgres")
        assert f"CREATE ROLE {topo.APP_LOGIN[0]} LOGIN NOSUPERUSER" in pg.init_sql
        assert "GRANT beach_manager_app TO " + topo.APP_LOGIN[0] in pg.init_sql
        managers = [s for s in t.services if "DATABASE_URL" in s.environment]
        assert managers
        for s in managers:
            login = urlsplit(s.environment["DATABASE_URL"])
            owner = urlsplit(s.environment["DATABASE_MIGRATE_URL"])
            assert (login.username, owner.username) == (topo.APP_LOGIN[0], topo.DATABASE[0])
            assert login.path == owner.path == "/" + topo.DATABASE[2]
