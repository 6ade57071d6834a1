"""The impaired wire between two namespaces: real taps, real packets, real delay and loss.

Namespace X (tap ``eth0``, 10.88.0.1/24) is joined to namespace Y (tap ``eth0``, 10.88.0.2/24)
by ``python -m beachmanager.devstack.stack.wire`` run from here: it enters the namespaces
itself.  The peers are small Python programs run in X and Y with ``ip netns exec``.  The
neighbours are static, so a lost ARP cannot spoil a measurement.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from beachmanager.devstack.stack.wire import make_tap
from tests.support import netns

REPO = Path(__file__).resolve().parents[3]
# starts with netns.TAG_PREFIX, so netns.sweep() removes what a crashed run left
TAG = f"{netns.TAG_PREFIX}w{os.getpid() % 100000:05d}"
X_ADDR, Y_ADDR = "10.88.0.1", "10.88.0.2"


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def _mac(namespace: str, device: str) -> str:
    found = re.search(r"link/ether (\S+)", _ip("-n", namespace, "-o", "link", "show", device))
    assert found, f"no MAC address on {namespace}:{device}"
    return found.group(1)


def _in(namespace: str, script: str, *args: object) -> list[str]:
    return ["ip", "netns", "exec", namespace, sys.executable, "-c", textwrap.dedent(script),
            *map(str, args)]


@dataclass
class Pair:
    x: str
    y: str
    workdir: Path
    runs: int = 0


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Iterator[Pair]:
    reason = netns.unavailable()
    if reason is None and not os.path.exists("/dev/net/tun"):
        reason = "no /dev/net/tun (TAP devices; Debian: modprobe tun)"
    if reason is not None:
        raise AssertionError(f"wire tests need network namespaces and TAP devices: {reason}")
    x, y = f"{TAG}x", f"{TAG}y"
    made: list[str] = []
    try:
        for name in (x, y):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)  # a reused pid
            _ip("netns", "add", name)
            made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        make_tap(x, "eth0", address=f"{X_ADDR}/24")
        make_tap(y, "eth0", address=f"{Y_ADDR}/24")
        for here, there, addr in ((x, y, Y_ADDR), (y, x, X_ADDR)):
            _ip("-n", here, "neigh", "replace", addr, "lladdr", _mac(there, "eth0"),
                "dev", "eth0", "nud", "permanent")
        yield Pair(x, y, tmp_path_factory.mktemp("wire"))
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Running:
    def __init__(self, stats_file: Path, start_line: str) -> None:
        self.stats_file, self.start_line = stats_file, start_line

    def stats(self) -> dict:
        return json.loads(self.stats_file.read_text())


@contextmanager
def wire(pair: Pair, impair: str, a: str = "eth0", b: str = "eth0") -> Iterator[Running]:
    pair.runs += 1
    stats_file = pair.workdir / f"stats-{pair.runs}.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "beachmanager.devstack.stack.wire", "--a", f"{pair.x}:{a}",
         "--b", f"{pair.y}:{b}", "--impair", impair, "--stats-file", str(stats_file)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = proc.stdout.readline().strip()  # printed once both taps are attached
        assert line.startswith("wire: "), f"the wire did not start: {line!r} {proc.stderr.read()}"
        yield Running(stats_file, line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    assert rc == 0, f"the wire exited {rc}: {proc.stderr.read()}"


@contextmanager
def peer(cmd: list[str]) -> Iterator[subprocess.Popen]:
    """A peer that prints ``ready`` once it listens; killed on the way out if still running."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.kill()
            raise AssertionError(f"peer did not start: {line!r} {proc.communicate()[1]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _run(cmd: list[str], timeout: float = 15) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _finish(proc: subprocess.Popen, timeout: float = 15) -> str:
    """What a peer printed after ``ready``, once it has exited by itself."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out.strip()


UDP_ECHO = """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 9000))
    print("ready", flush=True)
    s.settimeout(10)
    try:
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(data, peer)
    except TimeoutError:
        pass
"""

UDP_PING = """
    import json, socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    rtts = []
    for seq in range(int(sys.argv[2])):
        sent = time.monotonic()
        s.sendto(seq.to_bytes(4, "big"), (sys.argv[1], 9000))
        try:
            while int.from_bytes(s.recv(64), "big") != seq:
                pass
            rtts.append(time.monotonic() - sent)
        except TimeoutError:
            pass
    print(json.dumps(rtts))
"""

UDP_COUNT = """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 9001))
    print("ready", flush=True)
    seen = set()
    s.settimeout(10)  # for the first packet; then 1 s of silence ends the count
    try:
        while True:
            seen.add(int.from_bytes(s.recv(64)[:4], "big"))
            s.settimeout(1.0)
    except TimeoutError:
        pass
    print(len(seen))
"""

UDP_BLAST = """
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for seq in range(int(sys.argv[2])):
        s.sendto(seq.to_bytes(4, "big") + bytes(60), (sys.argv[1], 9001))
        time.sleep(0.0005)  # paced: the taps' own queues must not be what drops
"""

TCP_SINK = """
    import socket, sys
    server = socket.create_server((sys.argv[1], 9002))
    print("ready", flush=True)
    server.settimeout(10)
    conn, _ = server.accept()
    conn.settimeout(20)
    total = 0
    while chunk := conn.recv(65536):
        total += len(chunk)
    conn.sendall(str(total).encode())
    conn.close()
"""

TCP_SEND = """
    import json, socket, sys, time
    size = int(sys.argv[2])
    conn = socket.create_connection((sys.argv[1], 9002), timeout=20)
    started = time.monotonic()
    conn.sendall(bytes(size))
    conn.shutdown(socket.SHUT_WR)
    received = int(conn.recv(64))
    print(json.dumps({"bytes": received, "seconds": time.monotonic() - started}))
"""


def test_delay_makes_the_round_trip(pair):
    with peer(_in(pair.y, UDP_ECHO, Y_ADDR)), wire(pair, "delay=50ms,loss=0") as w:
        assert w.start_line == f"wire: {pair.x}:eth0 <-> {pair.y}:eth0, delay 50 ms, loss 0.0 %"
        rtts = json.loads(_run(_in(pair.x, UDP_PING, Y_ADDR, 20)))
    assert len(rtts) == 20, f"only {len(rtts)} of 20 echoes came back"
    median = statistics.median(rtts)
    print(f"UDP echo RTT through delay=50ms: median {median * 1000:.1f} ms, "
          f"min {min(rtts) * 1000:.1f}, max {max(rtts) * 1000:.1f}")
    assert 0.095 <= median < 0.25
    stats = w.stats()
    assert stats["a_to_b"]["forwarded"] >= 20 and stats["b_to_a"]["forwarded"] >= 20
    assert stats["a_to_b"]["dropped_loss"] == stats["b_to_a"]["dropped_loss"] == 0


def test_loss_drops_about_its_share(pair):
    sent = 1000
    with peer(_in(pair.y, UDP_COUNT, Y_ADDR)) as counter, \
            wire(pair, "delay=1ms,loss=10%,seed=11") as w:
        _run(_in(pair.x, UDP_BLAST, Y_ADDR, sent))
        received = int(_finish(counter))
    fraction = received / sent
    print(f"loss=10%: {received} of {sent} datagrams arrived ({fraction:.3f})")
    assert 0.85 <= fraction <= 0.95  # sd is 0.0095: this is five of them
    forward = w.stats()["a_to_b"]
    assert forward["dropped_loss"] >= sent - received - 5  # the wire, not something else
    assert forward["dropped_queue"] == forward["write_errors"] == 0


def test_tcp_gets_through_delay_and_loss(pair):
    size = 4 << 20
    with peer(_in(pair.y, TCP_SINK, Y_ADDR)) as sink, wire(pair, "delay=20ms,loss=1%") as w:
        result = json.loads(_run(_in(pair.x, TCP_SEND, Y_ADDR, size), timeout=25))
        _finish(sink)
    assert result["bytes"] == size
    rate = size / result["seconds"] / 1e6
    stats = w.stats()
    lost = stats["a_to_b"]["dropped_loss"] + stats["b_to_a"]["dropped_loss"]
    print(f"TCP {size >> 20} MiB through delay=20ms,loss=1%: {result['seconds']:.2f} s, "
          f"{rate:.2f} MB/s, {lost} frames lost on the way")
    assert lost > 0  # it recovered from real losses


def test_a_tap_moved_between_namespaces_can_be_wired(pair):
    """``ip link set DEV netns Y`` works for taps: the wire attaches to it where it is now."""
    staging = f"{TAG}z"
    subprocess.run(["ip", "netns", "del", staging], capture_output=True)
    _ip("netns", "add", staging)
    try:
        make_tap(staging, "mv0", up=False)
        _ip("-n", staging, "link", "set", "mv0", "netns", pair.y)
    finally:
        subprocess.run(["ip", "netns", "del", staging], capture_output=True)
    try:
        _ip("-n", pair.y, "addr", "add", "10.89.0.2/24", "dev", "mv0")
        _ip("-n", pair.y, "link", "set", "mv0", "up")
        make_tap(pair.x, "mv1", address="10.89.0.1/24")
        with peer(_in(pair.y, UDP_ECHO, "10.89.0.2")), wire(pair, "delay=0", a="mv1", b="mv0"):
            rtts = json.loads(_run(_in(pair.x, UDP_PING, "10.89.0.2", 3)))
        assert len(rtts) == 3
    finally:
        subprocess.run(["ip", "-n", pair.y, "link", "del", "mv0"], capture_output=True)
        subprocess.run(["ip", "-n", pair.x, "link", "del", "mv1"], capture_output=True)
