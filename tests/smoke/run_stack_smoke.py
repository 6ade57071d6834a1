#!/usr/bin/env python3
"""The connectivity smoke across network namespaces (M7): the smoke stack of ``scripts/stack``
(Road, Redis, PostgreSQL, two managers, two hosts, each in its own namespace on a bridge),
checked as the plan words it:

1. health on the rewrite manager (both instances);
2. host-1, in its own namespace, negotiates WebRTC with its owner across the bridge: RTC
   ready within the SLO, on a nominated ICE pair of real, non-loopback stack addresses (the
   owner's and host-1's); the owner's start-up ICE log shows what it advertises, and the
   "private address advertised from a container" warning fired (a manager in a namespace of
   its own, with no public address set, is exactly that case);
3. a change in host-1's terminal shows in the owner's mirror within a minute;
4. ``--duration`` seconds (60) connected: same transport ids on the owner, no reconnect, no
   missing heartbeat;
5. clean teardown: the managers exit cleanly on SIGTERM, and ``down`` leaves nothing behind.

``--impair host-1=delay=50ms,loss=1%`` runs host-1's link through the impaired wire (this
kernel has no netem) and also checks the wire really delayed (host heartbeats arrive at least
the delay late) and dropped frames.  ``make stack-smoke`` runs both.  Needs root; when this
machine cannot make namespaces it says so in one line and fails.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from beachmanager.devstack.stack import network, runner  # noqa: E402
from beachmanager.devstack.stack import topology as topo  # noqa: E402
from beachmanager.devstack.stack.wire import Impairment  # noqa: E402
from tests.smoke import run_smoke  # noqa: E402
from tests.smoke.run_smoke import SmokeFailure, get_json, log  # noqa: E402

HOST = topo.HOSTS[0]


def owner_of(managers: dict[str, str], host_id: str) -> str:
    def owner():
        _, view = get_json(managers["manager-1"] + "/debug/assignments")
        row = next((h for h in view["hosts"] if h["host_session_id"] == host_id), None)
        return row and row["ready"] and row["manager_instance_id"]

    instance = run_smoke.wait_for(f"an owner of {host_id} with a ready transport", owner, 60)
    return {"smoke-manager-1": "manager-1", "smoke-manager-2": "manager-2"}[instance]


def ice_checks(st: runner.Stack, owner: str, host: str):
    """What the nominated pair and the owner's start-up log must show."""
    owner_addr = st.entry(owner)["address"]
    host_addr = st.entry(host)["address"]
    subnet = ipaddress.ip_network(st.subnet)

    def on_ready(state: dict, results: dict) -> None:
        pair = state.get("ice_pair")
        if not pair:
            raise SmokeFailure(f"the transport reports no nominated ICE pair: {state}")
        local, remote = (pair[k].split(" ")[0].rsplit(":", 1)[0] for k in ("local", "remote"))
        for what, addr, want in (("local", local, owner_addr), ("remote", remote, host_addr)):
            ip = ipaddress.ip_address(addr)
            if ip.is_loopback or ip not in subnet or addr != want:
                raise SmokeFailure(f"the ICE pair's {what} end is {addr}, expected {want} "
                                   f"(a non-loopback address of the stack's subnet)")
        results["ice_pair"] = pair
        log(f"ICE pair {pair['local']} <-> {pair['remote']} across the bridge")
        text = Path(st.entry(owner)["log"]).read_text(errors="replace")
        if "ICE: servers" not in text:
            raise SmokeFailure(f"{owner}'s log has no start-up ICE line")
        warning = f"running in a container and advertising private address(es) {owner_addr}"
        if warning not in text:
            raise SmokeFailure(f"{owner}'s log lacks the private-address warning ({warning!r})")
        results["private_address_warning"] = True
        log(f"{owner} logged what it advertises and warned about its private address")

    return on_ready


def impairment_checks(st: runner.Stack, host: str, spec: str, results: dict) -> None:
    impairment = Impairment.parse(spec)
    stats = json.loads(Path(st.entry(host)["wire"]["stats"]).read_text())
    results["wire"] = stats
    forwarded = sum(d.get("forwarded", 0) for d in stats.values() if isinstance(d, dict))
    dropped = sum(d.get("dropped_loss", 0) for d in stats.values() if isinstance(d, dict))
    log(f"the wire forwarded {forwarded} frames and dropped {dropped} ({spec})")
    if forwarded < 100:
        raise SmokeFailure(f"the wire forwarded only {forwarded} frames: is it in the path?")
    if impairment.loss and forwarded > 3 / impairment.loss and dropped == 0:
        raise SmokeFailure("the wire dropped nothing: the loss was not applied")
    latency = results["heartbeat_latency_ms"]
    if impairment.delay_ms and latency < 0.8 * impairment.delay_ms:
        raise SmokeFailure(f"host heartbeats arrive {latency:.1f} ms late, less than the wire's "
                           f"{impairment.delay_ms:.0f} ms delay")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=float(os.environ.get("SMOKE_DURATION", 60)))
    p.add_argument("--rtc-slo", type=float, default=5.0)
    p.add_argument("--heartbeat-interval", type=float, default=float(topo.SMOKE_HEARTBEAT))
    p.add_argument("--poll", type=float, default=0.1)
    p.add_argument("--impair", default=None, metavar="SERVICE=SPEC")
    p.add_argument("--keep", action="store_true", help="leave the stack up afterwards")
    args = p.parse_args(argv)

    why = network.unavailable()
    if why:
        log(f"FAIL: the stack smoke cannot run on this machine: {why}")
        return 1
    impair = dict([args.impair.split("=", 1)]) if args.impair else {}
    results: dict = {}
    failure = None
    st = None
    try:
        st = runner.up(impair=impair)
        managers = {n: f"http://{st.entry(n)['address']}:{topo.MANAGER_PORT}"
                    for n in ("manager-1", "manager-2")}
        for name, url in managers.items():
            run_smoke.wait_for(f"{name}'s /readyz", lambda u=url: run_smoke.get_text(u + "/readyz")[0] == 200, 60)
        owner = owner_of(managers, HOST.session_id)
        log(f"{HOST.name} is owned by {owner}")
        results = run_smoke.check(args, managers[owner], HOST.session_id, None,
                                  sole_host=False, on_ready=ice_checks(st, owner, HOST.name))
        results["owner"] = owner
        if HOST.name in impair:
            impairment_checks(st, HOST.name, impair[HOST.name], results)
        for name in ("manager-1", "manager-2"):
            code = runner.stop_service(st, name)
            # twist re-raises the stop signal after a clean shutdown: -SIGTERM is clean.
            if code not in (0, -signal.SIGTERM):
                raise SmokeFailure(f"{name} exited with status {code} on SIGTERM")
        log("both managers stopped cleanly")
    except (SmokeFailure, runner.StackError, network.NetworkError, OSError, KeyError) as e:
        failure = f"{type(e).__name__}: {e}"
        if st is not None:
            for name in st.services:
                print(f"----- {name} -----\n{runner.tail(st, name, 15)}")
    except KeyboardInterrupt:
        failure = "interrupted"
    finally:
        if not args.keep:
            runner.down(quiet=True)
            left = network.leftovers()
            if left and failure is None:
                failure = f"down left behind: {', '.join(left)}"
    if failure:
        log(f"FAIL: {failure}")
        return 1
    log("stack down, nothing left behind")
    log("PASS " + json.dumps(results, default=str))
    return 0


if __name__ == "__main__":

    sys.exit(main())
