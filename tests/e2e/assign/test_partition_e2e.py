"""Hot failover under partitions, each participant in its own network namespace.

Topology (``tests/support/netns.py``): two managers, the host farm and Redis each in a
namespace of their own; every manager has one link to the hosts, one to Redis and one
uplink to the root namespace (Road, PostgreSQL, this test's HTTP calls).  The managers
gather ICE candidates on their host link only, so a host's transport to a manager runs over
that link and nothing else: cutting it partitions the manager from its hosts while it still
reaches Redis; cutting its Redis link partitions it from Redis while its transports live on.

Actions flow at 10/s; each writes its tag and the host's clock to a file in the host's shell,
so the test counts what was lost, applied twice, and the longest stretch without an effect.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import netns
from tests.support.servers import throwaway_postgres, throwaway_redis

from .cluster import Cluster, ownership, wait_for
from .stream import Stream, check_once, wait_effects_after
from .test_cluster_e2e import metric, register


@pytest.fixture
def net(request):
    reason = netns.unavailable()
    if reason is not None:
        raise AssertionError(f"partition tests need network namespaces: {reason}")
    netns.sweep()
    topo = netns.Topology(f"{netns.TAG_PREFIX}{time.monotonic_ns() % 1000:03d}")
    workdir = Path(tempfile.mkdtemp(prefix="beach-partition-e2e-"))
    try:
        ns = {name: topo.ns(name) for name in ("m1", "m2", "h", "r")}
        links = {
            "up1": topo.link(ns["m1"], None), "up2": topo.link(ns["m2"], None),
            "uph": topo.link(ns["h"], None), "upr": topo.link(ns["r"], None),
            "r1": topo.link(ns["m1"], ns["r"]), "r2": topo.link(ns["m2"], ns["r"]),
            "h1": topo.link(ns["m1"], ns["h"]), "h2": topo.link(ns["m2"], ns["h"]),
        }
        # both managers must name PostgreSQL alike (the assignment keys' prefix comes from its
        # URL): m2 reaches the root end of m1's uplink through its own uplink
        db_address = links["up1"].addr_b
        topo.route(ns["m2"], f"{db_address}/32", links["up2"].addr_b)
        redis_bind = (links["upr"].addr_a, links["r1"].addr_b, links["r2"].addr_b)
        with throwaway_redis(bind=redis_bind, prefix=tuple(topo.run_in(ns["r"]))) as redis, \
                throwaway_postgres(listen=("127.0.0.1", db_address),
                                   trust_nets=(f"10.{topo.net}.0.0/16",)) as pg:
            c = Cluster(workdir, redis.url, pg.url)
            c.start_road(interface="0.0.0.0")
            try:
                yield Net(topo, ns, links, c, redis.port, pg.port, db_address)
            finally:
                c.stop()
                report = getattr(request.node, "rep_call", None)
                if report is None or report.failed:
                    for name in c.procs:
                        print(f"----- {name} log (tail) -----\n{c.tail(name)}")
    finally:
        topo.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.passed:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}")


class Net:
    def __init__(self, topo, ns, links, cluster, redis_port, pg_port, db_address):
        self.topo, self.ns, self.links, self.c = topo, ns, links, cluster
        self.redis_port, self.pg_port, self.db_address = redis_port, pg_port, db_address

    def road(self, uplink: str) -> str:
        port = self.c.road_url.rsplit(":", 1)[1]
        return f"http://{self.links[uplink].addr_b}:{port}"

    def start(self, hosts: int = 2):
        c = self.c
        farm = c.start_hosts(hosts, road_url=self.road("uph"), run_in=self.topo.run_in(self.ns["h"]))
        listing = c.hosts_file(farm)
        managers = {}
        for i, name in ((1, "mgr-a"), (2, "mgr-b")):
            up, to_redis, to_hosts = self.links[f"up{i}"], self.links[f"r{i}"], self.links[f"h{i}"]
            managers[name] = c.start_manager(
                name, 10, listing, address=up.addr_a, run_in=self.topo.run_in(self.ns[f"m{i}"]),
                REDIS_URL=f"redis://{to_redis.addr_b}:{self.redis_port}/0",
                DATABASE_URL=f"postgresql://postgres@{self.db_address}:{self.pg_port}/postgres",
                BEACH_ROAD_URL=self.road(f"up{i}"), BEACH_ICE_HOST_ADDRESSES=to_hosts.addr_a,
                BEACH_MANAGER_STANDBY="1", BEACH_MANAGER_HEARTBEAT_INTERVAL="0.3",
                BEACH_MANAGER_FAILOVER_MIN_INTERVAL="2", BEACH_ACTION_CLAIM_TIMEOUT="2")
        for m in managers.values():
            c.wait_ready(m)
        ids = [h for h, _ in farm]
        wait_for("every host ready", lambda: len(ownership(c.live())["ready"]) == len(ids), 90,
                 step=0.5)

        def standbys_ready() -> bool:
            owners = ownership(c.live())["owners"]
            return all(managers["mgr-b" if owners[h] == "mgr-a" else "mgr-a"].sessions()
                       .get(h, {}).get("status") == "ready" for h in ids)

        wait_for("a ready standby for every host", standbys_ready, 90, step=0.5)
        return ids, managers

    def link_of(self, manager: str, kind: str):
        return self.links[f"{kind}{1 if manager == 'mgr-a' else 2}"]


def _failover_events(m, host: str) -> list[dict]:
    return [e for e in m.events() if "failover_initiated" in str(e.get("log_format", ""))
            and e.get("host_session_id") == host]


def _cut_under_load(net, link: str):
    """Stream actions to a host of the victim, cut the victim's *link* (``h``: to the hosts,
    ``r``: to Redis) until the standby is promoted and effects flow again, heal, go on until
    effects follow the heal; returns the figures and the parties."""
    ids, managers = net.start()
    host = ids[0]
    owners = ownership(net.c.live())["owners"]
    victim = managers[owners[host]]
    survivor = managers["mgr-b" if victim.instance_id == "mgr-a" else "mgr-a"]
    token = register(survivor, host)
    with Stream(survivor, host, token, net.c.workdir / f"{host}.out") as stream:
        wait_for("actions flowing", lambda: len(stream.applied()) >= 10, 30, step=0.2)
        cut_at = time.time()
        net.topo.cut(net.link_of(victim.instance_id, link))
        try:
            wait_for("the standby promoted", lambda: survivor.sessions()[host]["role"] == "active",
                     30, step=0.1)
            promoted_after = time.time() - cut_at
            wait_effects_after(stream, cut_at + promoted_after, 1, "effects after the promotion")
            fenced = metric(victim, "fenced_actions_total")  # reachable: its uplink is up
        finally:
            net.topo.heal(net.link_of(victim.instance_id, link))
        wait_effects_after(stream, time.time(), 10, "effects across the heal")
    gap = check_once(stream)
    return host, victim, survivor, stream, promoted_after, gap, fenced


def test_a_manager_cut_off_from_its_host_loses_it_to_the_standby_the_host_tells(net):
    """Partition the owner from the host only (it still reaches Redis, so its lease lives): the
    host tells the standby that its manager went silent, the standby takes the host by
    compare-and-set at a new epoch, and every action lands exactly once."""
    host, victim, survivor, stream, promoted_after, gap, _ = _cut_under_load(net, "h")
    [initiated] = _failover_events(survivor, host)
    assert initiated["detection_signal"] == "host", initiated
    rows = {h["host_session_id"]: h for h in survivor.debug()["hosts"]}
    assert rows[host]["manager_instance_id"] == survivor.instance_id
    wait_for("the cut-off manager lets the host go",
             lambda: victim.sessions().get(host, {}).get("role") != "active", 30)
    print(f"host partition: promoted {promoted_after:.2f}s after the cut; longest gap between "
          f"effects {gap:.2f}s; {len(stream.posted)} actions, each once; {len(stream.refused)} "
          f"post(s) answered 409 child_offline during the hand-over and sent again")
    assert promoted_after < 5.0


def test_a_manager_cut_off_from_redis_is_replaced_and_applies_nothing_stale(net):
    """Partition the owner from Redis only (its transports live on): its lease expires, the
    survivor's sweep moves the host and promotes the standby at a new epoch; the cut-off owner
    stops delivering once its own lease may be over, the host refuses its old epoch, and after
    the heal it takes nothing back."""
    host, victim, survivor, stream, promoted_after, gap, fenced = _cut_under_load(net, "r")
    [initiated, *_] = _failover_events(survivor, host)
    assert initiated["detection_signal"] == "membership", initiated
    wait_for("the cut-off manager lets the host go after the heal",
             lambda: victim.sessions().get(host, {}).get("role") != "active", 30)
    rows = {h["host_session_id"]: h for h in survivor.debug()["hosts"]}
    assert rows[host]["manager_instance_id"] == survivor.instance_id  # no failback
    print(f"redis partition: promoted {promoted_after:.2f}s after the cut; longest gap between "
          f"effects {gap:.2f}s; {len(stream.posted)} actions, each once; {fenced:.0f} of the "
          f"cut-off owner's deliveries fenced by the host; {len(stream.refused)} post(s) "
          f"answered 409 child_offline during the hand-over and sent again")
    assert promoted_after < 5.0
