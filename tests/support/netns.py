"""Network namespaces for tests that need separate addresses and real partitions.

A :class:`Topology` makes named namespaces and point-to-point veth links between them (or
between one and the root namespace), each link a /30 of ``10.<net>.<n>.0`` with its own two
addresses.  A partition is a link taken down (:meth:`Topology.cut`): both ends lose carrier and
every packet on it is gone, as when a cable is pulled; :meth:`Topology.heal` brings it back.
Nothing here needs more than ``ip`` (iproute2) and root: this kernel has no ``netem`` and no
``tc`` actions, and links that carry one kind of traffic each make packet filters
unnecessary.

Everything a topology makes carries its tag; :meth:`Topology.close` (also run on a failed
start) deletes it, and :func:`sweep` deletes what a crashed run left behind.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

#: Tags start with this (namespaces and root-side devices): what :func:`sweep` may remove.
TAG_PREFIX = "bmt"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def unavailable() -> str | None:
    """Why namespaces cannot be used here (one line), or None (the stack's own probe)."""
    from beachmanager.devstack.stack.network import unavailable as probe

    return probe("these tests")


def sweep() -> None:
    """Delete namespaces a crashed run left (their links go with them)."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    for line in listed:
        name = line.split(" ", 1)[0]
        if name.startswith(TAG_PREFIX) and not name.startswith(f"{TAG_PREFIX}probe"):
            _ip("netns", "del", name, check=False)


@dataclass(frozen=True)
class Link:
    a: str | None  # namespace (None: the root namespace)
    b: str | None
    dev_a: str
    dev_b: str
    addr_a: str
    addr_b: str


@dataclass
class Topology:
    tag: str  # short: device names are at most 15 characters
    net: int = 77
    namespaces: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    def ns(self, name: str) -> str:
        """Make the namespace *name* (its loopback up); returns its full name."""
        full = f"{self.tag}{name}"
        _ip("netns", "add", full)
        self.namespaces.append(full)
        _ip("-n", full, "link", "set", "lo", "up")
        return full

    def link(self, a: str | None, b: str | None) -> Link:
        """A veth pair between namespaces *a* and *b* (None: root), a /30 of its own."""
        n = len(self.links) + 1
        dev_a, dev_b = f"{self.tag}{n}a", f"{self.tag}{n}b"
        _ip("link", "add", dev_a, "type", "veth", "peer", "name", dev_b)
        addr_a, addr_b = f"10.{self.net}.{n}.1", f"10.{self.net}.{n}.2"
        for dev, where, addr in ((dev_a, a, addr_a), (dev_b, b, addr_b)):
            if where is not None:
                _ip("link", "set", dev, "netns", where)
            scope = ("-n", where) if where is not None else ()
            _ip(*scope, "addr", "add", f"{addr}/30", "dev", dev)
            _ip(*scope, "link", "set", dev, "up")
        link = Link(a, b, dev_a, dev_b, addr_a, addr_b)
        self.links.append(link)
        return link

    def route(self, namespace: str, destination: str, via: str) -> None:
        """A route in *namespace* to *destination* (an address of another namespace's link)."""
        _ip("-n", namespace, "route", "add", destination, "via", via)

    def run_in(self, namespace: str | None) -> list[str]:
        """The argv prefix that runs a command in *namespace* (nothing for root)."""
        return ["ip", "netns", "exec", namespace] if namespace else []

    def cut(self, link: Link) -> None:
        """Partition: take the link down at its *a* end (both ends lose carrier)."""
        scope = ("-n", link.a) if link.a is not None else ()
        _ip(*scope, "link", "set", link.dev_a, "down")

    def heal(self, link: Link) -> None:
        scope = ("-n", link.a) if link.a is not None else ()
        _ip(*scope, "link", "set", link.dev_a, "up")

    def close(self) -> None:
        for full in reversed(self.namespaces):
            _ip("netns", "del", full, check=False)  # its ends of the links go with it
        for link in self.links:
            if link.a is None:
                _ip("link", "del", link.dev_a, check=False)
            if link.b is None:
                _ip("link", "del", link.dev_b, check=False)
        self.namespaces.clear()
        self.links.clear()


__all__ = ["Link", "Topology", "sweep", "unavailable"]
