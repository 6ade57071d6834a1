"""A long fuzz run of every wire, framing, harness, signaling and bus-message decoder.

    .venv/bin/python bench/fuzz.py            # 10**6 inputs per decoder (several minutes)
    .venv/bin/python bench/fuzz.py --quick    # 10**4 each, a smoke run
    .venv/bin/python bench/fuzz.py --inputs 200000 --only wire.decode_host,signaling.decode_server

Inputs: hypothesis draws structured seeds (the protocol tests' strategies: valid host and
client frames, chunks, envelopes; valid JSON messages of each other decoder), then a seeded
byte mutator derives each input from one of them (bit flips, byte sets, inserts, deletions,
repeats, truncations, splices with another seed, interesting bytes) or makes it up (one in
ten: random bytes).  Each decoder must raise only its module's documented error type; any
other exception is a finding (the first few are printed with their input, and the exit
status is 1).  Stateful decoders (the reassembler, the inbound pipeline) keep one instance
across inputs and must keep their in-flight bytes within their bound.  Each decoder runs in
a child process of its own, so its figures are its own: inputs/s, peak RSS, and RSS growth
over the run (more than ``--max-growth-mib`` is a finding: memory must stay bounded).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from beachmanager.protocol import (
    agent,
    association,
    envelope,
    framing,
    harness,
    liveness,
    signaling,
    wire,
)
from beachmanager.protocol.channel import Inbound
from beachmanager.protocol.framing import FramingError, MacConfig, Reassembler

SEEDS_PER_DECODER = 400
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, ord("{"), ord('"'), ord("["), ord("\\"))


# -- seeds --------------------------------------------------------------------------------

def drawn(strategy, n: int, seed: int) -> list[bytes]:
    """*n* examples of a hypothesis strategy, reproducibly."""
    from hypothesis import HealthCheck, Phase, given, settings

    out: list[bytes] = []

    @settings(max_examples=n, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck), derandomize=True)
    @given(strategy)
    def collect(value):
        out.append(value)

    random.seed(seed)
    collect()
    return out[:n] or [b""]


def wire_seeds(kind: str) -> list[bytes]:
    from tests.unit.protocol import strategies as s

    frames = s.host_frames.map(wire.encode_host) if kind == "host" else s.client_frames.map(
        wire.encode_client)
    return drawn(frames, SEEDS_PER_DECODER, 1)


def chunk_seeds() -> list[bytes]:
    from hypothesis import strategies as st

    chunks = st.builds(
        lambda ns, kind, seq, payload, mac: framing.encode(
            ns, kind, seq, payload, 512, mac=MacConfig.single(b"k") if mac else None),
        st.sampled_from(["sync", "controller", "manager"]), st.sampled_from(["text", "binary"]),
        st.integers(0, 2**64 - 1), st.binary(max_size=2000), st.booleans())
    return [c for chunks_ in drawn(chunks, SEEDS_PER_DECODER // 4, 2) for c in chunks_]


def envelope_seeds() -> list[bytes]:
    from hypothesis import strategies as st

    return drawn(st.one_of(
        st.builds(envelope.encode, st.just("binary"), st.integers(0, 2**64 - 1), st.binary(max_size=64)),
        st.builds(envelope.encode, st.just("text"), st.integers(0, 2**64 - 1), st.text(max_size=32))),
        SEEDS_PER_DECODER, 3)


def dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


TIME = {"secs_since_epoch": 1_700_000_000, "nanos_since_epoch": 5}
HARNESS = [dumps(x) for x in (
    {"type": "action", "payload": {"id": "a-1", "action_type": "terminal_write",
                                   "payload": {"bytes": "ls\r"}, "expires_at": TIME}},
    {"type": "ack", "payload": {"id": "a-1", "status": "ok", "applied_at": TIME, "latency_ms": 3}},
    {"type": "state", "payload": {"sequence": 7, "emitted_at": TIME, "payload": {"rows": ["x"]}}},
    {"type": "health", "payload": [1, 0.5, None, False, ["warn"]]},
)]
SIGNALING_CLIENT = [signaling.encode_client(m).encode() for m in (
    signaling.Join(peer_id="p", passphrase="ABC123", label="beach-manager",
                   metadata={"role": "answerer"}),
    signaling.Ping(),
)] + [b'{"type":"signal","to_peer":"h","signal":{"sdp":"v=0","type":"offer"}}']
SIGNALING_SERVER = [signaling.encode_server(m).encode() for m in (
    signaling.JoinSuccess("h", "a", (signaling.PeerInfo(id="a", role="server", joined_at=5,
                                                        metadata={"label": "x"}),)),
    signaling.RelayedSignal("a", {"k": [1]}), signaling.Pong(), signaling.ErrorMessage("m"),
    signaling.PeerLeft("z"),
)]
AGENT_REQUESTS = [
    agent.lease_request(agent.LeaseRequest("r1", "target", "jwt.a.b", "pb", ttl_ms=30_000,
                                           bridge_token="bt")),
    agent.actions_request(agent.ActionsRequest(
        "r2", "target", "jwt.a.b", "ctl", ({"id": "x", "action_type": "terminal_write",
                                            "payload": {"bytes": "a"}},), bridge_token="bt")),
]
AGENT_ANSWERS = [
    agent.lease(agent.Lease("r1", "target", "ctl", 1_700_000_000_000)),
    agent.forwarded(agent.Forwarded("state", "target", {"sequence": 1})),
    agent.refusal(agent.Refusal("busy", "wait", "r1", "target", {"retry_after_seconds": 1})),
]
LIVENESS = [liveness.Ping(7, "mgr-a", "standby", 3).to_json(),
            liveness.Pong(7, "mgr-b", 3, 1250).to_json()]


def association_seeds() -> list[bytes]:
    from tests.support.associations import signed

    return [signed("mgr-a", 3), signed("mgr-b", 9, private_beach_id="pb", standby=("mgr-c",)),
            association.renew_request("tok.en.x")]


# -- the decoders -------------------------------------------------------------------------

class Target:
    def __init__(self, name: str, seeds: Callable[[], list[bytes]], errors: tuple[type, ...],
                 make: Callable[[], Callable[[bytes], object]]):
        self.name, self.seeds, self.errors, self.make = name, seeds, errors, make


def stateless(fn: Callable[[bytes], object]) -> Callable[[], Callable[[bytes], object]]:
    return lambda: fn


def reassembler() -> Callable[[bytes], object]:
    now = [0.0]
    r = Reassembler(lambda: now[0], chunk_size=512, mac=MacConfig.single(b"k"),
                    max_bytes=64 * 1024)

    def feed(data: bytes) -> object:
        now[0] += 0.001
        try:
            return r.feed(data)
        finally:
            if r.inflight_bytes > r.max_bytes or r.inflight_messages > r.max_inflight:
                raise AssertionError(f"reassembler over its bound: {r.inflight_bytes} bytes")

    return feed


def inbound() -> Callable[[bytes], object]:
    now = [0.0]
    pipe = Inbound(lambda: now[0], chunk_size=512)

    def feed(data: bytes) -> object:
        now[0] += 0.001
        msg = pipe.feed(data)
        if msg is not None:
            try:
                msg.host_frame()
            except wire.WireError:
                pass
        return msg

    return feed


def each_harness_class(data: bytes) -> object:
    for cls in (harness.Envelope, harness.ActionCommand, harness.ActionAck, harness.StateDiff):
        try:
            harness.from_json(data, cls)
        except harness.HarnessError:
            pass
    return harness.parse_action_envelope(data)


TARGETS = [
    Target("wire.decode_host", lambda: wire_seeds("host"), (wire.WireError,),
           stateless(wire.decode_host)),
    Target("wire.decode_from_host", lambda: wire_seeds("client") + wire_seeds("host"),
           (wire.WireError,), stateless(wire.decode_from_host)),
    Target("wire.decode_client", lambda: wire_seeds("client"), (wire.WireError,),
           stateless(wire.decode_client)),
    Target("framing.parse_chunk", chunk_seeds, (FramingError,),
           stateless(lambda d: framing.parse_chunk(d, 512))),
    Target("framing.Reassembler.feed", chunk_seeds, (FramingError,), reassembler),
    Target("envelope.decode", envelope_seeds, (envelope.EnvelopeError,), stateless(envelope.decode)),
    Target("channel.Inbound.feed", chunk_seeds, (FramingError, envelope.EnvelopeError), inbound),
    Target("harness.from_json", lambda: HARNESS, (harness.HarnessError,),
           stateless(each_harness_class)),
    Target("signaling.decode_client", lambda: SIGNALING_CLIENT, (signaling.SignalingError,),
           stateless(signaling.decode_client)),
    Target("signaling.decode_server", lambda: SIGNALING_SERVER, (signaling.SignalingError,),
           stateless(signaling.decode_server)),
    Target("agent.read_lease_request/read_actions", lambda: AGENT_REQUESTS, (agent.AgentError,),
           stateless(lambda d: agent.read_actions(d) if b'"actions"' in d
                     else agent.read_lease_request(d))),
    Target("agent.read_from_manager", lambda: AGENT_ANSWERS, (agent.AgentError,),
           stateless(agent.read_from_manager)),
    Target("association.read_association/read_renew_request", association_seeds,
           (association.AssociationError,),
           stateless(lambda d: association.read_renew_request(d) if b"renew" in d
                     else association.read_association(d))),
    Target("liveness.read_ping/read_pong", lambda: LIVENESS, (liveness.LivenessError,),
           stateless(lambda d: liveness.read_pong(d) if b"pong" in d else liveness.read_ping(d))),
]


# -- the mutator --------------------------------------------------------------------------

def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    if rng.random() < 0.1:
        return rng.randbytes(rng.randrange(0, 96))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(8)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 2:
            data[at:at] = rng.randbytes(rng.randrange(1, 9))
        elif op == 3 and data:
            del data[at:at + rng.randrange(1, 17)]
        elif op == 4 and data:
            piece = data[at:at + rng.randrange(1, 33)]
            data[at:at] = piece * rng.randrange(1, 4)
        elif op == 5:
            del data[at:]
        elif op == 6:
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            data[at:] = other[cut:]
        elif data:
            data[min(at, len(data) - 1)] = rng.choice(INTERESTING)
    return bytes(data)


# -- running one decoder ------------------------------------------------------------------

def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(target: Target, inputs: int, seed: int) -> dict:
    seeds = target.seeds()
    decode = target.make()
    rng = random.Random(seed)
    start_rss = rss_mib()
    findings: list[str] = []
    found = 0
    began = time.perf_counter()
    for _ in range(inputs):
        data = mutate(rng, seeds)
        try:
            decode(data)
        except target.errors:
            pass
        except Exception as e:  # the point of the run
            found += 1
            if len(findings) < 3:
                findings.append(f"{type(e).__name__}: {e!r:.200} for {data[:120]!r}")
    elapsed = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"name": target.name, "inputs": inputs, "per_second": inputs / elapsed,
            "seconds": elapsed, "peak_rss_mib": peak, "growth_mib": rss_mib() - start_rss,
            "findings": found, "examples": findings, "seeds": len(seeds)}


def in_child(target: Target, inputs: int, seed: int) -> dict:
    """Run one decoder in a forked child (its own memory figures); its result as JSON."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        try:
            result = run(target, inputs, seed)
        except BaseException as e:  # a crash of the harness itself
            result = {"name": target.name, "error": repr(e)}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b'{"error": "the child died"}')


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=int, default=1_000_000, help="inputs per decoder (10**6)")
    p.add_argument("--quick", action="store_true", help="10**4 inputs per decoder")
    p.add_argument("--seed", type=int, default=17, help="seed of the mutator (reproducible)")
    p.add_argument("--only", default="", help="comma-separated decoder names")
    p.add_argument("--max-growth-mib", type=float, default=64.0,
                   help="RSS growth over a run that counts as unbounded memory")
    args = p.parse_args(argv)
    inputs = 10_000 if args.quick else args.inputs
    chosen = [t for t in TARGETS if not args.only or t.name in args.only.split(",")]
    print(f"fuzz: {len(chosen)} decoders x {inputs} inputs, seed {args.seed}, Python "
          f"{sys.version.split()[0]}")
    print(f"{'decoder':<50} {'inputs/s':>10} {'peak RSS':>9} {'growth':>8} {'findings':>8}")
    bad = 0
    for target in chosen:
        r = in_child(target, inputs, args.seed)
        if "error" in r:
            print(f"{target.name:<50} harness error: {r['error']}")
            bad += 1
            continue
        unbounded = r["growth_mib"] > args.max_growth_mib
        print(f"{r['name']:<50} {r['per_second']:>10,.0f} {r['peak_rss_mib']:>7.1f}Mi "
              f"{r['growth_mib']:>6.1f}Mi {r['findings']:>8}" + ("  UNBOUNDED" if unbounded else ""))
        for example in r["examples"]:
            print(f"    {example}")
        bad += bool(r["findings"]) + unbounded
    print("fuzz: no findings" if not bad else f"fuzz: {bad} decoder(s) with findings")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
