"""The stack's network: one namespace per service on a bridge, as on a compose network.

Layout (prefix ``bms-``, or ``BEACH_STACK_PREFIX``)::

    root namespace ── bms-root (no address) ┐
                                            │  bridge br0 in namespace bms-net
    bms-<service>: eth0 (subnet .<octet>) ──┘  (a veth pair, or two TAP devices joined by
                                                an impaired wire: see wire.py)

Each service namespace has a loopback, one ``eth0`` and no default route: it reaches the
subnet only, by the names in ``/etc/netns/bms-<service>/hosts`` (``ip netns exec`` mounts that
file over ``/etc/hosts``).  A partition between two services is a host route in each to an
address of the subnet that no one holds (the sink): their packets to each other wait for a
neighbour that never answers and are dropped, silently, as on a pulled cable; everyone else
still reaches both.  (This kernel has no netem, no tc filters and no nftables.)

Nothing here touches an address outside the subnet; :func:`remove_all` deletes every
namespace, device and file with the prefix, whatever state a crashed run left.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from pathlib import Path


def _prefix(raw: str) -> str:
    if not re.fullmatch(r"[a-z]{2,4}-", raw):
        raise SystemExit(f"BEACH_STACK_PREFIX must be 2-4 lowercase letters and '-', got {raw!r}")
    return raw


#: Every namespace, root device and hosts directory of the stack starts with this; another
#: prefix (and subnet, and state directory) makes a second stack beside the first (the tests).
PREFIX = _prefix(os.environ.get("BEACH_STACK_PREFIX", "bms-"))
NET_NS = f"{PREFIX}net"
ROOT_DEV = f"{PREFIX}root"
BRIDGE = "br0"
NETNS_ETC = Path("/etc/netns")
SINK_OCTET = 254


class NetworkError(Exception):
    """A network step failed: the command and what it said, in one line."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def namespace(service: str) -> str:
    return f"{PREFIX}{service}"


def unavailable(who: str = "the stack") -> str | None:
    """Why this machine cannot make network namespaces for *who* (one line), or None."""
    if shutil.which("ip") is None:
        return f"{who} needs iproute2's `ip` (Debian: apt-get install iproute2)"
    if os.geteuid() != 0:
        return f"{who} needs root: it creates network namespaces and veth pairs"
    probe = f"{PREFIX}probe{os.getpid() % 100000}"  # concurrent probes do not collide
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def overlapping_routes(subnet: str) -> list[str]:
    """Routes of the root namespace, other than the stack's own, that overlap *subnet*."""
    net = ipaddress.ip_network(subnet)
    out = []
    for line in ip("-4", "route", "show", check=False).stdout.splitlines():
        words = line.split()
        if not words or "dev" in words and words[words.index("dev") + 1] == ROOT_DEV:
            continue
        try:
            dest = ipaddress.ip_network(words[0], strict=False) if words[0] != "default" else None
        except ValueError:
            continue
        if dest is not None and dest.overlaps(net):
            out.append(line.strip())
    return out


def existing_namespaces() -> list[str]:
    listed = ip("netns", "list", check=False).stdout.splitlines()
    return [line.split(" ", 1)[0] for line in listed if line.startswith(PREFIX)]


def pids_in(ns: str) -> list[int]:
    done = ip("netns", "pids", ns, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def root_source(subnet: str) -> str | None:
    """The root namespace's own (global) IPv4 address, which the stack's namespaces will use
    to reach it; None when there is none outside *subnet*."""
    net = ipaddress.ip_network(subnet)
    for line in ip("-4", "-o", "addr", "show", "scope", "global", check=False).stdout.splitlines():
        words = line.split()
        if "inet" in words:
            addr = ipaddress.ip_interface(words[words.index("inet") + 1]).ip
            if addr not in net and not line.split()[1].startswith(PREFIX):
                return str(addr)
    return None


def make_bridge(subnet: str) -> str:
    """The bridge namespace, its bridge, and the root namespace's link to it; returns the
    address the stack reaches the root namespace at.

    The root end gets no address of the subnet when the machine has one of its own: a route
    sends the subnet to the link, and each namespace routes that one address back.  An
    address of the subnet in the root namespace would be gathered by every WebRTC peer there
    (aioice uses all interfaces) and their transports would die with it at ``down``."""
    net = ipaddress.ip_network(subnet)
    ip("netns", "add", NET_NS)
    ip("-n", NET_NS, "link", "set", "lo", "up")
    ip("-n", NET_NS, "link", "add", BRIDGE, "type", "bridge")
    ip("-n", NET_NS, "link", "set", BRIDGE, "up")
    ip("link", "add", ROOT_DEV, "type", "veth", "peer", "name", "v-root", "netns", NET_NS)
    ip("-n", NET_NS, "link", "set", "v-root", "master", BRIDGE, "up")
    ip("link", "set", ROOT_DEV, "up")
    source = root_source(subnet)
    if source is None:
        source = str(net.network_address + 1)
        ip("addr", "add", f"{source}/{net.prefixlen}", "dev", ROOT_DEV)
    else:
        ip("route", "add", str(net), "dev", ROOT_DEV, "src", source)
    return source


def make_service_namespace(service: str, address: str, prefixlen: int, hosts: str,
                           root: str, tap: bool = False) -> tuple[str, str]:
    """The namespace of *service* with ``eth0`` at *address* on the bridge.  With *tap*, eth0
    and its bridge port are TAP devices for a wire to join; returns (namespace, port)."""
    ns = namespace(service)
    etc = NETNS_ETC / ns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(hosts)
    ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")
    port = f"v-{service}"[:15]
    if tap:
        inner = f"t-{service}"[:15]
        ip("-n", NET_NS, "tuntap", "add", "mode", "tap", "name", inner)
        ip("-n", NET_NS, "link", "set", inner, "netns", ns)
        ip("-n", ns, "link", "set", inner, "name", "eth0")
        ip("-n", NET_NS, "tuntap", "add", "mode", "tap", "name", port)
    else:
        ip("-n", NET_NS, "link", "add", port, "type", "veth", "peer", "name", "eth0",
           "netns", ns)
    ip("-n", NET_NS, "link", "set", port, "master", BRIDGE, "up")
    ip("-n", ns, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")
    if ipaddress.ip_address(root) not in ipaddress.ip_interface(f"{address}/{prefixlen}").network:
        ip("-n", ns, "route", "add", f"{root}/32", "dev", "eth0")  # the root namespace
    return ns, port


def sink(subnet: str) -> str:
    return str(ipaddress.ip_network(subnet).network_address + SINK_OCTET)


def partition(ns_a: str, addr_a: str, ns_b: str, addr_b: str, subnet: str) -> None:
    for ns, other in ((ns_a, addr_b), (ns_b, addr_a)):
        ip("-n", ns, "route", "replace", f"{other}/32", "via", sink(subnet))


def heal(ns_a: str, addr_a: str, ns_b: str, addr_b: str) -> None:
    for ns, other in ((ns_a, addr_b), (ns_b, addr_a)):
        ip("-n", ns, "route", "del", f"{other}/32", check=False)
        ip("-n", ns, "neigh", "flush", "all", check=False)


def remove_all() -> list[str]:
    """Delete every namespace, root device and hosts file of the stack; what was removed."""
    removed = []
    for ns in existing_namespaces():
        ip("netns", "del", ns, check=False)
        removed.append(f"namespace {ns}")
    if ip("link", "show", ROOT_DEV, check=False).returncode == 0:
        ip("link", "del", ROOT_DEV, check=False)
        removed.append(f"device {ROOT_DEV}")
    if NETNS_ETC.exists():
        for etc in NETNS_ETC.glob(f"{PREFIX}*"):
            shutil.rmtree(etc, ignore_errors=True)
            removed.append(f"directory {etc}")
    return removed


def leftovers() -> list[str]:
    """What of the stack exists now (empty when it is fully down)."""
    found = [f"namespace {ns}" for ns in existing_namespaces()]
    if ip("link", "show", ROOT_DEV, check=False).returncode == 0:
        found.append(f"device {ROOT_DEV}")
    if NETNS_ETC.exists():
        found += [f"directory {p}" for p in NETNS_ETC.glob(f"{PREFIX}*")]
    return found


__all__ = ["NetworkError", "heal", "leftovers", "make_bridge", "make_service_namespace",
           "namespace", "partition", "pids_in", "remove_all", "unavailable"]
