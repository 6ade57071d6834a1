"""An outside tool attacks the API: schemathesis reads the live /openapi.json of a running
manager (PostgreSQL through a least-privilege login, a real Road, real JWTs over a real JWKS)
and sends what it generates from it, once with a valid token and once with none.  Every
request must get a status the document lists, never a 5xx, never a hang (each request has a
timeout; the run has a time budget); responses must match their schemas.

The tool runs as a subprocess (``st run``), awaited without blocking the reactor that serves
the manager, the Road and the key sets.  Its figures (test cases generated, failures) are
printed with ``-s``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import globalLogPublisher

from tests.support.api_client import start_manager
from tests.support.auth_fixtures import auth_settings
from tests.support.servers import least_privilege_database

ST = str(Path(sys.executable).parent / "st")
#: Every check but three: the stateful ones (use_after_free, ensure_resource_availability)
#: follow OpenAPI links, which this API has none of; positive_data_acceptance wants every
#: schema-valid body accepted, and some refusals depend on what JSON Schema cannot state (an
#: action id twice in one list, a beach id already taken, a join code Road does not verify):
#: those get their documented 400/403/409, which status_code_conformance checks.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,negative_data_rejection,"
          "missing_required_header,unsupported_method,ignored_auth")
EXAMPLES = os.environ.get("BEACH_SCHEMATHESIS_EXAMPLES", "20")
#: Seconds each run may take (the fuzzing phase repeats until it is spent).
BUDGET = os.environ.get("BEACH_SCHEMATHESIS_SECONDS", "45")


@pytest.fixture
def urls():
    with least_privilege_database() as pair:
        yield pair


async def attack(base: str, spec: str, workdir: Path, token: str | None,
                 seed: int) -> tuple[int, str]:
    args = ["run", spec, "--url", base, "--checks", CHECKS,
            "--max-examples", EXAMPLES, "--request-timeout", "5", "--max-time", BUDGET,
            "--workers", "1", "--seed", str(seed), "--no-color", "--generation-database", "none",
            "--phases", "examples,coverage,fuzzing", "--suppress-health-check", "all",
            "--max-redirects", "0",
            # The console's live feed is a stream by design (it ends only with once=1); the
            # console tests cover it (tests/integration/api/test_console_http.py).
            "--exclude-path", "/ui/stream",
            # Text is UTF-8 without NUL (PostgreSQL text cannot hold it): such bodies get a
            # documented 400 (tests/unit/api/test_schema.py), so generate the others.
            "--generation-allow-x00", "false", "--generation-codec", "utf-8"]
    if token is not None:
        args += ["--header", f"Authorization: Bearer {token}"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
           "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""}
    out, err, code = await getProcessOutputAndValue(ST, args, env=env, path=str(workdir),
                                                    reactor=reactor)
    return code, (out + err).decode("utf-8", "replace")


def generated(report: str) -> int:
    found = re.search(r"(\d+) generated", report)
    assert found, report[-3000:]
    return int(found.group(1))


@pytest.mark.timeout(900)
@pytest_twisted.ensureDeferred
async def test_schemathesis_finds_nothing_with_a_valid_token_and_with_none(
        urls, jwks, gate, road, tmp_path):
    owner_url, login_url = urls
    failures: list[str] = []

    def errors(event) -> None:  # anything the manager logs as a failure is a finding too
        if event.get("log_failure") is not None:
            failures.append(event["log_failure"].getTraceback()[-3000:])

    globalLogPublisher.addObserver(errors)
    m = await start_manager(database_url=login_url, database_migrate_url=owner_url,
                            road_url=road.url, owners={"pb-st": "acct-1"},
                            rate_limit_account=0, rate_limit_beach=0, rate_limit_failures=0,
                            **auth_settings(jwks))
    try:
        token = gate.token(exp=int(reactor.seconds()) + 3600)
        r = await m.call("POST", "/sessions/register", token=token,
                         body={"session_id": "h-st", "private_beach_id": "pb-st"})
        assert r.status == 200, r.body
        # /openapi.json itself needs pb:manager.read: the run without a token reads the live
        # document fetched with one (the same bytes), then sends every request without
        r = await m.call("GET", "/openapi.json", token=token)
        assert r.status == 200
        (tmp_path / "openapi.json").write_text(json.dumps(r.body))
        figures = {}
        for name, bearer, spec, seed in (("valid token", token, f"{m.base}/openapi.json", 1),
                                         ("no token", None, str(tmp_path / "openapi.json"), 2)):
            code, report = await attack(m.base, spec, tmp_path, bearer, seed)
            (tmp_path / f"schemathesis-{seed}.txt").write_text(report)
            figures[name] = generated(report)
            print(f"\nschemathesis ({name}): {figures[name]} test cases generated, exit {code}")
            assert not failures, "\n".join(failures[:3])
            assert code == 0, report[-12000:]
            assert "No issues found" in report or " 0 failures" in report or "passed" in report, report[-4000:]
        assert all(n >= 100 for n in figures.values()), figures
    finally:
        globalLogPublisher.removeObserver(errors)
        await m.stop()
