"""Link devstack hosts to a private beach by code, through a manager: the stack's one-shot
``attach`` service (also a compose service).  Retries each host until the manager accepts it
(the host may not have registered with Road yet), up to ``--timeout``; exits 0 when every
host is attached, 1 (with the manager's last answer) when one is not.

    python -m beachmanager.devstack.stack.attach --manager URL --beach ID SESSION:CODE...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

#: Answers worth a retry: the session not yet known, the manager not ready, a busy instance.
RETRY = {0, 404, 409, 425, 429, 500, 502, 503}
#: Road cannot verify a code for a session that has not registered yet: retried this long.
SETTLE_SECONDS = 20.0


def post(url: str, body: dict, token: str | None, timeout: float = 5.0) -> tuple[int, dict]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null") or {}
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null") or {}
        except ValueError:
            return e.code, {}
    except (urllib.error.URLError, OSError) as e:
        return 0, {"error": str(e)}


def attach(manager: str, beach: str, target: str, token: str | None, deadline: float,
           step: float = 0.5) -> tuple[int, dict]:
    session, _, code = target.partition(":")
    if not session or not code:
        raise SystemExit(f"attach: {target!r} is not SESSION_ID:JOIN_CODE")
    url = f"{manager.rstrip('/')}/private-beaches/{beach}/sessions/attach-by-code"
    settle = time.monotonic() + SETTLE_SECONDS
    while True:
        status, body = post(url, {"session_id": session, "code": code}, token)
        unverified = status == 403 and body.get("error_code") == "invalid_join_code"
        again = status in RETRY or (unverified and time.monotonic() < settle)
        if status == 200 or not again or time.monotonic() >= deadline:
            return status, body
        time.sleep(step)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manager", required=True, help="the manager's base URL")
    ap.add_argument("--beach", required=True, help="the private beach id")
    ap.add_argument("--token", default=None, help="a bearer token (none: the dev bypass)")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("hosts", nargs="+", metavar="SESSION_ID:JOIN_CODE")
    args = ap.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    failed = 0
    for target in args.hosts:
        status, body = attach(args.manager, args.beach, target, args.token, deadline)
        session = target.partition(":")[0]
        if status == 200:
            print(f"attach: {session} attached to {args.beach}", flush=True)
        else:
            failed += 1
            print(f"attach: {session} NOT attached: {status} {json.dumps(body)[:300]}",
                  file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
