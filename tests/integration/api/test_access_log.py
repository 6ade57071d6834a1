"""--http-access-log: every request, only answers of 400 and above, or none."""

import pytest
import pytest_twisted

from tests.support.api_client import start_manager


class Lines(list):
    def write(self, line):
        self.append(line)


@pytest.mark.parametrize("mode, expected", [("all", [200, 404]), ("errors", [404]), ("off", [])])
@pytest_twisted.ensureDeferred
async def test_access_log_modes(mode, expected):
    mgr = await start_manager(auth_bypass=True, http_access_log=mode)
    try:
        site = mgr.parts.http.port.factory
        lines = site._logFile = Lines()
        assert (await mgr.call("GET", "/healthz")).status == 200
        assert (await mgr.call("GET", "/no/such/route")).status == 404
        assert [int(line.split('HTTP/1.1" ')[1].split()[0]) for line in lines] == expected
    finally:
        await mgr.stop()
