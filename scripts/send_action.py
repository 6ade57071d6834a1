#!/usr/bin/env python3
"""Send one terminal action to a managed host through the manager's REST API, and show the result.

    .venv/bin/python scripts/send_action.py [--url http://127.0.0.1:8081] [--session ID]
                                             [--beach dev] [--token JWT] 'echo hello'

It takes a controller lease, posts a ``terminal_write`` action (the text and a carriage
return), waits for the host's ack, prints it and the host's screen as the manager's mirror
sees it, then releases the lease.  Without ``--session`` it picks the first session of the
private beach (``dev`` is where ``make run`` puts its hosts).  ``--token`` (or
``BEACH_TOKEN``) is sent as a bearer token; ``make run`` runs with the dev auth bypass.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid


class Api:
    def __init__(self, base: str, token: str | None):
        self.base = base.rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if self.token:
            req.add_header("authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def fail(what: str, status: int, body) -> None:
    sys.exit(f"send_action: {what} failed: HTTP {status} {json.dumps(body)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("text", help="what to type on the host's terminal (Enter is added)")
    p.add_argument("--url", default="http://127.0.0.1:8081")
    p.add_argument("--session", help="host session id (default: the beach's first session)")
    p.add_argument("--beach", default="dev", help="private beach to pick a session from")
    p.add_argument("--token", default=os.environ.get("BEACH_TOKEN"))
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the ack")
    args = p.parse_args(argv)
    api = Api(args.url, args.token)

    session = args.session
    if session is None:
        status, sessions = api.call("GET", f"/private-beaches/{args.beach}/sessions")
        if status != 200:
            fail("listing sessions", status, sessions)
        if not sessions:
            sys.exit(f"send_action: private beach {args.beach!r} has no sessions yet")
        session = sessions[0]["session_id"]
    status, lease = api.call("POST", f"/sessions/{session}/controller/lease",
                             {"reason": "send_action.py", "ttl_ms": 60_000})
    if status != 200:
        fail("taking the controller lease", status, lease)
    token = lease["controller_token"]
    action_id = "demo-" + uuid.uuid4().hex[:12]
    try:
        action = {"id": action_id, "action_type": "terminal_write",
                  "payload": {"bytes": args.text + "\r"}}
        status, accepted = api.call("POST", f"/sessions/{session}/actions",
                                    {"controller_token": token, "actions": [action]})
        if status != 200:
            fail("submitting the action", status, accepted)
        print(f"accepted {action_id} for host {session}")
        deadline = time.monotonic() + args.timeout
        while True:
            status, view = api.call("GET", f"/sessions/{session}/actions/{action_id}")
            if status == 200 and view.get("status") == "acked":
                print("ack:", json.dumps(view))
                break
            if time.monotonic() > deadline:
                fail(f"waiting {args.timeout}s for the ack", status, view)
            time.sleep(0.1)
        time.sleep(0.3)  # let the echo reach the mirror
        status, cache = api.call("GET", f"/debug/hosts/{session}/cache")
        if status == 200:
            print("screen (manager's mirror):")
            for row in cache["viewport"]:
                if row.strip():
                    print("  |", row.rstrip())
    finally:
        api.call("DELETE", f"/sessions/{session}/controller/lease", {"controller_token": token})
    return 0


if __name__ == "__main__":
    sys.exit(main())
