"""Run many devstack hosts (each a real shell on a PTY) in one process, for the cluster tests.

    python -m tests.e2e.assign.hostfarm --road URL --count N [--prefix P] --out FILE

Writes one JSON line per host (``session_id``, ``join_code``) to FILE, then ``READY``, and
keeps serving until SIGTERM.  Hosts start in small batches so Road and the key derivation
are not flooded.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--road", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--prefix", default="farm")
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--drop-first-acks", type=int, default=0,
                        help="fault injection: each host drops its first N acks of applied actions")
    args = parser.parse_args(argv)

    from beachmanager import _reactor

    _reactor.install()
    from twisted.internet import reactor
    from twisted.internet.defer import DeferredList, ensureDeferred

    from beachmanager.devstack.host.host import start_host

    env = {"PS1": "$ ", "TERM": "xterm", "PATH": "/usr/bin:/bin"}
    authority = os.environ.get("BEACH_MANAGER_AUTHORITY")  # the cluster's key, as hosts pin it
    pin = base64.b64decode(authority) if authority else None
    running = []

    async def run() -> None:
        with open(args.out, "w") as out:
            for first in range(0, args.count, args.batch):
                ids = range(first, min(args.count, first + args.batch))
                results = await DeferredList(
                    [start_host(args.road, reactor, command=("/bin/sh",), env=env,
                                session_id=f"{args.prefix}-{i:04d}",
                                drop_first_acks=args.drop_first_acks,
                                manager_authority=pin) for i in ids],
                    consumeErrors=True)
                for ok, value in results:
                    if not ok:
                        raise value.value
                    running.append(value)
                    out.write(json.dumps({"session_id": value.session_id,
                                          "join_code": value.join_code}) + "\n")
                out.flush()
            out.write("READY\n")

    def failed(failure) -> None:
        print(f"hostfarm: {failure.getErrorMessage()}", file=sys.stderr, flush=True)
        reactor.stop()

    def stop(*_):
        reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGTERM, stop)
    reactor.callWhenRunning(lambda: ensureDeferred(run()).addErrback(failed))
    reactor.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
