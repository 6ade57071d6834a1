#!/usr/bin/env python3
"""What the zero-trust layer costs: token checks, registry writes, and a guarded HTTP call.

1. JWT verification (ES256 Beach Gate, RS256 Clerk) with the key set cached: checks/s and
   the mean time per check (signature check dominates).
2. Registry writes on PostgreSQL (a fresh database on the machine's server, as the
   non-owner role, row-level security on): ``register_session`` and ``acquire_lease``
   (renewals), one at a time and 16 at a time; p50/p95 ms and ops/s.
3. A whole guarded request (``POST /sessions/:id/controller/lease`` with an ES256 token,
   in-memory registry) over loopback HTTP: p50/p95 ms.

Run from the repository root: ``.venv/bin/python bench/auth_registry.py [--n 2000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beachmanager import _reactor  # noqa: E402

_reactor.install()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def line(what: str, samples: list[float], wall: float) -> None:
    print(f"  {what:<44} p50 {pct(samples, 0.5) * 1000:7.3f} ms  p95 {pct(samples, 0.95) * 1000:7.3f} ms  "
          f"{len(samples) / wall:9.0f} ops/s")


async def bench_jwt(n: int) -> None:
    import json

    from twisted.internet.defer import succeed
    from twisted.internet.task import Clock

    from beachmanager.auth.jwks import JwksCache
    from beachmanager.auth.verifier import Authority, TokenVerifier
    from tests.support.auth_issuer import (
        CLERK_AUDIENCE,
        CLERK_ISSUER,
        GATE_AUDIENCE,
        GATE_ISSUER,
        Issuer,
    )

    clock = Clock()
    clock.advance(time.time())
    print("JWT verification (key set cached)")
    for kind, iss, aud in (("ec", GATE_ISSUER, GATE_AUDIENCE), ("rsa", CLERK_ISSUER, CLERK_AUDIENCE)):
        issuer = Issuer(kind, iss, aud)
        body = json.dumps(issuer.jwks()).encode()
        verifier = TokenVerifier([Authority("a", JwksCache("a", "u", lambda url, body=body: succeed(body), clock), iss, aud)],
                                 clock)
        token = issuer.token(now=clock.seconds())
        await verifier.verify(token)
        samples = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            await verifier.verify(token)
            samples.append(time.perf_counter() - t0)
        line(f"{issuer.key.alg} verify", samples, time.perf_counter() - start)


async def bench_registry(n: int) -> None:
    from twisted.internet import reactor
    from twisted.internet.defer import gatherResults

    from beachmanager.registry.join_codes import JoinCodeCipher, JoinCodeKeys
    from beachmanager.registry.migrate import enter_app_role, migrate_in_thread
    from beachmanager.registry.postgres import PostgresStore
    from beachmanager.registry.postgres_conn import PostgresService
    from beachmanager.registry.store import Op, SessionRegistration, Tenant
    from tests.support.servers import temporary_database

    print("Registry on PostgreSQL (non-owner role, RLS on, fresh database)")
    with temporary_database() as url:
        svc = PostgresService(url, reactor, prepare=lambda: migrate_in_thread(url), configure=enter_app_role)
        svc.startService()
        await svc.whenReady()
        store = PostgresStore(svc, JoinCodeCipher(JoinCodeKeys.generate()), reactor)
        tenant = Tenant("pb-bench", "acct")
        try:
            async def timed(make, count, concurrency):
                samples: list[float] = []

                async def one(i):
                    t0 = time.perf_counter()
                    await make(i)
                    samples.append(time.perf_counter() - t0)

                start = time.perf_counter()
                for base in range(0, count, concurrency):
                    await gatherResults([ensure(one(i)) for i in range(base, min(count, base + concurrency))])
                return samples, time.perf_counter() - start

            def register(i):
                return store.register_session(tenant, SessionRegistration(f"h-{i}", viewer_passcode="c"),
                                              Op.new(), int(time.time() * 1000))

            def acquire(i):
                return store.acquire_lease(tenant, f"h-{i % 50}", "ctl", "ui", 30_000, Op.new(),
                                           int(time.time() * 1000))

            count = max(50, n // 4)
            for concurrency in (1, 16):
                s, wall = await timed(register, count, concurrency)
                line(f"register_session x{count}, {concurrency} at a time", s, wall)
                s, wall = await timed(acquire, count, concurrency)
                line(f"acquire_lease (renew) x{count}, {concurrency} at a time", s, wall)
        finally:
            await svc.stopService()


async def bench_http(n: int) -> None:
    from twisted.internet import reactor

    from tests.support.api_client import start_manager
    from tests.support.auth_issuer import GATE_AUDIENCE, GATE_ISSUER, Issuer, JwksServer

    print("Guarded HTTP request (ES256 token, in-memory registry, loopback)")
    gate = Issuer("ec", GATE_ISSUER, GATE_AUDIENCE)
    jwks = JwksServer(reactor, {"gate": gate})
    jwks.start()
    # acct-1 owns pb-1 (membership is checked, its role kept briefly); the write buckets are
    # off: this measures the guarded path, not the limits
    m = await start_manager(beach_gate_jwks_url=jwks.url("gate"), beach_gate_issuer=GATE_ISSUER,
                            beach_gate_audience=GATE_AUDIENCE, owners={"pb-1": "acct-1"},
                            rate_limit_account=0, rate_limit_beach=0)
    try:
        token = gate.token(exp=int(time.time()) + 3600)
        r = await m.call("POST", "/sessions/register", token=token,
                         body={"session_id": "h-1", "private_beach_id": "pb-1"})
        assert r.status == 200, r.body
        samples = []
        count = max(100, n // 4)
        start = time.perf_counter()
        for _ in range(count):
            t0 = time.perf_counter()
            r = await m.call("POST", "/sessions/h-1/controller/lease", token=token, body={"reason": "ui"})
            samples.append(time.perf_counter() - t0)
            assert r.status == 200
        line(f"POST /sessions/:id/controller/lease x{count}", samples, time.perf_counter() - start)
    finally:
        await m.stop()
        await jwks.stop()


def ensure(coro):
    from twisted.internet.defer import ensureDeferred

    return ensureDeferred(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="token checks per algorithm (others scale from it)")
    args = parser.parse_args()

    from twisted.internet import task

    async def run(reactor):
        await bench_jwt(args.n)
        await bench_registry(args.n)
        await bench_http(args.n)

    task.react(lambda reactor: ensure(run(reactor)))


if __name__ == "__main__":
    main()
