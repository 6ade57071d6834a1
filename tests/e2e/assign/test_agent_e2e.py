"""Controller agents on the bus (M9b, first part): an agent host drives a target host through
the manager with no REST call; the target's acks and states come back to the agent.

Real parts: the manager process, devstack Road, a target host and an agent host (real shells on
PTYs, each its own process), Redis, PostgreSQL.
"""

from __future__ import annotations

import json
import sys

from .cluster import ownership, wait_for
from .test_cluster_e2e import lines, metric


def start_agent(c, target: str, script: list[str], token: str = "agent-token",
                name: str = "agent", interval: float = 0.1):
    """A devstack host in agent mode; returns (its session id and join code, its events file)."""
    script_file = c.workdir / f"{name}.script"
    script_file.write_text("".join(line + "\n" for line in script))
    info, events = c.workdir / f"{name}.info", c.workdir / f"{name}.events"
    c.spawn(name, [sys.executable, "-m", "twisted", "--log-format=text", "--reactor=beach-asyncio",
                   "beach-host-dev", "--road", c.road_url, "--session-id", f"{name}-0001",
                   "--command", "/bin/sh", "--info-file", str(info), "--agent-target", target,
                   "--agent-token", token, "--agent-script", str(script_file),
                   "--agent-interval", str(interval), "--agent-events", str(events)])
    wait_for(f"{name} in its room", lambda: info.exists() and info.read_text().strip(), 60)
    boot = json.loads(info.read_text())
    return (boot["session_id"], boot["join_code"]), events


def heard(events) -> list[dict]:
    if not events.exists():
        return []
    return [json.loads(line) for line in events.read_text().splitlines() if line.strip()]


def test_an_agent_takes_a_lease_and_drives_its_target_over_the_bus(cluster):
    c = cluster
    c.start_road()
    [target] = c.start_hosts(1, prefix="target")
    out = c.workdir / "target.out"
    tags = [f"AG{i}" for i in range(10)]
    agent, events = start_agent(c, target[0], [f"echo {t} >> {out}" for t in tags])
    # bridge tokens of 3 s: each harness renews its own over the bus at 2 s, and the agent's
    # requests carry whichever it holds
    m = c.start_manager("mgr-a", 10, c.hosts_file([target, agent]),
                        BEACH_MANAGER_BRIDGE_TOKEN_TTL="3")
    c.wait_ready(m)
    wait_for("both hosts ready", lambda: len(ownership([m])["ready"]) == 2, 60, step=0.5)
    wait_for("both harnesses renewed their bridge tokens",
             lambda: metric(m, "association_total", outcome="renewed") >= 2, 30, step=0.5)
    m.register(target[0])  # the target belongs to a private beach (the agent's token sees it)
    wait_for("every line typed by the agent applied", lambda: set(lines(out)) == set(tags), 60)
    # every ack back at the agent: each action is finally acked, none can be delivered again
    wait_for("every ack back at the agent", lambda: sum(
        1 for e in heard(events) if e["event"] == "ack" and e["ack"]["status"] == "ok") == len(tags),
        20)
    assert sorted(lines(out)) == sorted(tags)  # each once
    kinds = [e["event"] for e in heard(events)]
    assert "lease" in kinds and "state" in kinds, kinds
    assert metric(m, "agent_messages_total", outcome="ok") >= 1 + len(tags)
    assert metric(m, "association_total", outcome="invalid_bridge_token") == 0
    print(f"agent: {len(tags)} actions applied once, {kinds.count('ack')} acks and "
          f"{sum(1 for e in heard(events) if e['event'] == 'state')} state samples back over the bus")


def test_an_agent_asking_for_a_host_it_cannot_see_gets_a_clear_bus_error(cluster):
    c = cluster
    c.start_road()
    [target] = c.start_hosts(1, prefix="target")
    agent, events = start_agent(c, "no-such-session", ["echo never"])
    m = c.start_manager("mgr-a", 10, c.hosts_file([target, agent]))
    c.wait_ready(m)
    wait_for("the refusal at the agent", lambda: any(
        e["event"] == "error" and e["code"] == "session_not_found" for e in heard(events)), 60)
    assert not any(e["event"] == "lease" for e in heard(events))
    assert metric(m, "agent_messages_total", outcome="session_not_found") >= 1


def test_agents_with_the_wrong_credentials_are_refused_on_the_bus_and_a_good_one_drives(cluster):
    """Real Beach Gate tokens (a key set served over HTTP): a token without the control scope
    and one bound to another private beach are refused with the API's codes; a good one
    takes the lease and drives the target."""
    from tests.support.auth_issuer import GATE_AUDIENCE, GATE_ISSUER, Issuer

    from .cluster import free_port, http

    c = cluster
    gate = Issuer("ec", GATE_ISSUER, GATE_AUDIENCE)
    keys = c.workdir / "jwks"
    keys.mkdir()
    (keys / "gate.json").write_text(json.dumps(gate.jwks()))
    port = free_port()
    c.spawn("jwks", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                     "--directory", str(keys)])
    jwks_url = f"http://127.0.0.1:{port}/gate.json"
    wait_for("the key set served", lambda: http("GET", jwks_url)[0] == 200, 20)
    c.start_road()
    [target] = c.start_hosts(1, prefix="target")
    out = c.workdir / "target.out"
    read_only = gate.token(scope="pb:control.read", private_beach_id="pb-e2e")
    elsewhere = gate.token(private_beach_id="pb-other")
    good = gate.token(private_beach_id="pb-e2e")
    agents = {name: start_agent(c, target[0], [f"echo {name} >> {out}"], token, name)
              for name, token in (("scopeless", read_only), ("outsider", elsewhere),
                                  ("member", good))}
    m = c.start_manager("mgr-a", 10, c.hosts_file([target, *(a for a, _ in agents.values())]),
                        AUTH_BYPASS="0", BEACH_GATE_JWKS_URL=jwks_url,
                        BEACH_GATE_ISSUER=GATE_ISSUER, BEACH_GATE_AUDIENCE=GATE_AUDIENCE)
    c.wait_ready(m)
    status, body, _ = http("POST", m.url + "/sessions/register",
                           {"session_id": target[0], "private_beach_id": "pb-e2e"},
                           headers={"authorization": f"Bearer {good}"})
    assert status == 200, body

    def refused(name: str, code: str) -> bool:
        return any(e["event"] == "error" and e["code"] == code for e in heard(agents[name][1]))

    wait_for("the scopeless agent refused", lambda: refused("scopeless", "missing_scope"), 60)
    wait_for("the outsider refused", lambda: refused("outsider", "session_not_found"), 60)
    wait_for("the member's line applied", lambda: lines(out) == ["member"], 60)
    for name in ("scopeless", "outsider"):
        assert not any(e["event"] == "lease" for e in heard(agents[name][1])), name
    assert metric(m, "auth_failure_total", reason="missing_scope") >= 1


def start_host_process(c, name: str, command: str, *extra: str):
    """One devstack host process running *command* on its PTY; its session id and join code."""
    info = c.workdir / f"{name}.info"
    c.spawn(name, [sys.executable, "-m", "twisted", "--log-format=text", "--reactor=beach-asyncio",
                   "beach-host-dev", "--road", c.road_url, "--session-id", f"{name}-0001",
                   "--command", command, "--info-file", str(info), *extra])
    wait_for(f"{name} in its room", lambda: info.exists() and info.read_text().strip(), 60)
    boot = json.loads(info.read_text())
    return boot["session_id"], boot["join_code"]


def test_an_agent_plays_pong_on_its_target_through_the_manager(cluster):
    """The Pong target's right paddle is played by an agent that reads the target's screen from
    the states it is sent: it sustains rallies (read off the manager's mirror of the target)."""
    from beachmanager.devstack.pong import read_screen

    from .cluster import http

    c = cluster
    c.start_road()
    target = start_host_process(c, "pong", f"{sys.executable} -m beachmanager.devstack.pong "
                                            f"--seed 7 --fps 8")
    events = c.workdir / "player.events"
    player = start_host_process(c, "player", "/bin/sh", "--agent-target", target[0],
                                "--agent-token", "dev", "--agent-driver", "pong",
                                "--agent-events", str(events))
    m = c.start_manager("mgr-a", 10, c.hosts_file([target, player]))
    c.wait_ready(m)
    wait_for("both hosts ready", lambda: len(ownership([m])["ready"]) == 2, 60, step=0.5)
    m.register(target[0])

    def screen():
        status, body, _ = http("GET", f"{m.url}/debug/hosts/{target[0]}/cache")
        return read_screen(body.get("rows", [])) if status == 200 else None

    wait_for("a rally of 3 returns by the agent's paddle",
             lambda: (s := screen()) is not None and s["best"] >= 3, 120, step=0.5)
    seen = screen()
    assert seen["score"][0] <= 2, seen  # the agent misses hardly ever (a serve before its lease)
    assert any(e["event"] == "lease" for e in heard(events))
    print(f"pong: best rally {seen['best']}, score {seen['score']}")


def test_an_agent_on_one_manager_drives_a_target_owned_by_another(cluster):
    """Agent and target owned by different instances (capacity 1 each, shared Redis and
    PostgreSQL): the actions go through the target's shared queue, and its acks and states come
    back through the agent relay (the owner appends them to the agent instance's inbox)."""
    c = cluster
    c.start_road()
    [target] = c.start_hosts(1, prefix="target")
    out = c.workdir / "target.out"
    tags = [f"X{i}" for i in range(8)]
    agent, events = start_agent(c, target[0], [f"echo {t} >> {out}" for t in tags])
    listing = c.hosts_file([target, agent])
    managers = [c.start_manager(x, 1, listing, BEACH_ACTION_CLAIM_TIMEOUT="2")
                for x in ("mgr-a", "mgr-b")]
    for m in managers:
        c.wait_ready(m)
    wait_for("both hosts ready", lambda: len(ownership(managers)["ready"]) == 2, 60, step=0.5)
    owners = ownership(managers)["owners"]
    assert owners[target[0]] != owners[agent[0]], owners  # one host each
    managers[0].register(target[0])
    wait_for("every line applied", lambda: set(lines(out)) == set(tags), 60)
    wait_for("every ack relayed back to the agent", lambda: sum(
        1 for e in heard(events) if e["event"] == "ack") == len(tags), 20)
    assert sorted(lines(out)) == sorted(tags)  # each once (all acked: none comes again)
    assert any(e["event"] == "state" for e in heard(events))
    print(f"cross-manager agent: agent on {owners[agent[0]]}, target on {owners[target[0]]}; "
          f"{len(tags)} actions once, acks and states relayed")


def test_an_agent_keeps_driving_when_the_targets_manager_is_killed(cluster):
    """Hot failover under an agent: SIGKILL the target's active manager mid-script; the standby
    is promoted, the agent's actions flow again (an action whose ack never came is sent again
    with its id) and every line is applied exactly once."""
    import signal

    c = cluster
    c.start_road()
    [target] = c.start_hosts(1, prefix="target")
    out = c.workdir / "target.out"
    tags = [f"F{i:02d}" for i in range(30)]
    agent, events = start_agent(c, target[0], [f"echo {t} >> {out}" for t in tags],
                                interval=0.3)
    listing = c.hosts_file([target, agent])
    managers = {x: c.start_manager(x, 10, listing, BEACH_MANAGER_STANDBY="1",
                                   BEACH_ACTION_CLAIM_TIMEOUT="2") for x in ("mgr-a", "mgr-b")}
    for m in managers.values():
        c.wait_ready(m)
    live = list(managers.values())
    wait_for("both hosts ready", lambda: len(ownership(live)["ready"]) == 2, 60, step=0.5)

    def standby_ready(host: str) -> bool:
        owner = ownership(live)["owners"][host]
        other = managers["mgr-b" if owner == "mgr-a" else "mgr-a"]
        s = other.sessions().get(host, {})
        return s.get("role") == "standby" and s.get("status") == "ready"

    wait_for("standbys ready", lambda: standby_ready(target[0]) and standby_ready(agent[0]), 60)
    victim = ownership(live)["owners"][target[0]]
    managers["mgr-a" if victim == "mgr-b" else "mgr-b"].register(target[0])
    wait_for("the agent under way", lambda: len(lines(out)) >= 5, 60)
    c.kill(victim, signal.SIGKILL)
    wait_for("every line applied", lambda: set(lines(out)) == set(tags), 90)

    def acked_lines() -> int:
        return len({e["ack"]["id"] for e in heard(events)
                    if e["event"] == "ack" and "-line-" in e["ack"].get("id", "")})

    # every line acked back at the agent: finally acked, none can be delivered again
    wait_for("every line acked at the agent", lambda: acked_lines() == len(tags), 30)
    assert sorted(lines(out)) == sorted(tags)  # none lost, none twice
    print(f"agent under failover: {victim} killed after {len(tags)} lines began; each once")


def test_an_agent_keeps_playing_pong_when_the_targets_manager_is_killed(cluster):
    """Hot failover mid-game: SIGKILL the Pong target's active manager while the agent plays;
    the standby is promoted, the agent's keys flow again, and the game read each of them
    exactly once (its key count equals the keys the agent sent, every one acked)."""
    import signal

    from beachmanager.devstack.pong import read_screen

    from .cluster import http

    c = cluster
    c.start_road()
    limit = 120
    target = start_host_process(c, "pong", f"{sys.executable} -m beachmanager.devstack.pong "
                                            f"--seed 11 --fps 8")
    events = c.workdir / "player.events"
    player = start_host_process(c, "player", "/bin/sh", "--agent-target", target[0],
                                "--agent-token", "dev", "--agent-driver", "pong",
                                "--agent-limit", str(limit), "--agent-events", str(events))
    listing = c.hosts_file([target, player])
    managers = {x: c.start_manager(x, 10, listing, BEACH_MANAGER_STANDBY="1",
                                   BEACH_ACTION_CLAIM_TIMEOUT="2") for x in ("mgr-a", "mgr-b")}
    for m in managers.values():
        c.wait_ready(m)
    live = list(managers.values())
    wait_for("both hosts ready", lambda: len(ownership(live)["ready"]) == 2, 60, step=0.5)

    def standby_ready(host: str) -> bool:
        owner = ownership(live)["owners"][host]
        other = managers["mgr-b" if owner == "mgr-a" else "mgr-a"]
        s = other.sessions().get(host, {})
        return s.get("role") == "standby" and s.get("status") == "ready"

    wait_for("standbys ready", lambda: standby_ready(target[0]) and standby_ready(player[0]), 60)
    victim = ownership(live)["owners"][target[0]]
    survivor = managers["mgr-a" if victim == "mgr-b" else "mgr-b"]
    survivor.register(target[0])

    def acked() -> set[str]:
        return {e["ack"]["id"] for e in heard(events)
                if e["event"] == "ack" and e["ack"]["status"] == "ok"}

    wait_for("the agent playing", lambda: len(acked()) >= 30, 90, step=0.5)
    c.kill(victim, signal.SIGKILL)
    at_kill = len(acked())
    wait_for("keys acked again after the kill", lambda: len(acked()) >= at_kill + 20, 60, step=0.5)

    def sent() -> set[str]:
        return {i for e in heard(events) if e["event"] == "sent" for i in e["ids"]}

    # the player stops at its limit; every key it sent is finally acked (none can come again)
    wait_for("every key sent and acked", lambda: len(sent()) == limit and acked() == sent(),
             90, step=0.5)

    def screen():
        status, body, _ = http("GET", f"{survivor.url}/debug/hosts/{target[0]}/cache")
        return read_screen(body.get("rows", [])) if status == 200 else None

    wait_for("the game read every key", lambda: (s := screen()) is not None and s["keys"] == limit,
             30, step=0.5)
    assert ownership([survivor])["owners"][target[0]] == survivor.instance_id
    seen = screen()
    assert seen["keys"] == limit  # none lost, none twice
    print(f"pong under failover: {victim} killed after {at_kill} keys acked; {limit} keys each "
          f"read once; best rally {seen['best']}, score {seen['score']}")
