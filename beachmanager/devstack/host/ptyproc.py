"""A program on a real pseudo-terminal, read by the reactor (non-blocking, cleaned up on stop)."""

from __future__ import annotations

import fcntl
import os
import pty
import shlex
import struct
import termios
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from twisted.internet import error as twisted_error
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.process import PTYProcess

#: Seconds between SIGHUP and SIGKILL when stopping.
KILL_GRACE = 2.0


def set_winsize(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def default_command() -> list[str]:
    return [os.environ.get("SHELL") or "/bin/sh"]


def parse_command(command: str | Sequence[str] | None) -> list[str]:
    if command is None:
        return default_command()
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise ValueError("empty command")
    return argv


class _Proto(ProcessProtocol):
    def __init__(self, owner: PtyProcess):
        self.owner = owner

    def childDataReceived(self, childFD, data):
        self.owner._output(data)

    def processEnded(self, reason):
        self.owner._ended(reason)


class PtyProcess:
    log = Logger()

    def __init__(self, reactor, clock, argv: Sequence[str], *, cols: int, rows: int,
                 on_output: Callable[[bytes], None], on_exit: Callable[[int | None], None] | None = None,
                 env: Mapping[str, str] | None = None, cwd: str | None = None):
        self.reactor = reactor
        self.clock = clock
        self.argv = list(argv)
        self.cols = cols
        self.rows = rows
        self.on_output = on_output
        self.on_exit = on_exit
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("TERM", "xterm-256color")
        self.cwd = cwd
        self.transport: PTYProcess | None = None  # spawnProcess with usePTY
        self.exit_code: int | None = None
        self.ended = False
        self._ended_waiters: list[Deferred] = []
        self.bytes_out = 0
        self.bytes_in = 0

    def start(self) -> None:
        master, slave = pty.openpty()
        set_winsize(slave, self.cols, self.rows)
        self.transport = transport = self.reactor.spawnProcess(
            _Proto(self), self.argv[0], self.argv, env=self.env, path=self.cwd,
            usePTY=(master, slave, os.ttyname(slave)))
        self.log.info("started {argv} on a {cols}x{rows} pty (pid {pid})", argv=self.argv,
                      cols=self.cols, rows=self.rows, pid=transport.pid)

    def _live(self) -> PTYProcess | None:
        """The process transport while the program runs, else None."""
        return self.transport if not self.ended else None

    @property
    def running(self) -> bool:
        return self._live() is not None

    def write(self, data: bytes) -> None:
        transport = self._live()
        if transport is None:
            raise OSError("the terminal program is not running")
        self.bytes_in += len(data)
        transport.write(data)

    def resize(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        transport = self._live()
        if transport is not None:
            set_winsize(transport.fd, cols, rows)  # the kernel sends SIGWINCH to the foreground job

    def _output(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.on_output(data)

    def _ended(self, reason) -> None:
        self.ended = True
        value = getattr(reason, "value", None)
        self.exit_code = getattr(value, "exitCode", None)
        self.log.info("terminal program ended (exit code {code})", code=self.exit_code)
        waiters, self._ended_waiters = self._ended_waiters, []
        for d in waiters:
            d.callback(self.exit_code)
        if self.on_exit is not None:
            self.on_exit(self.exit_code)

    def when_ended(self) -> Deferred:
        if self.ended or self.transport is None:
            return succeed(self.exit_code)
        d: Deferred = Deferred()
        self._ended_waiters.append(d)
        return d

    def stop(self) -> Deferred:
        """Hang up the program, kill it after a grace period; fires once it has ended."""
        transport = self._live()
        if transport is None:
            return succeed(self.exit_code)
        ended = self.when_ended()
        try:
            transport.signalProcess("HUP")
        except twisted_error.ProcessExitedAlready:
            pass
        killer = self.clock.callLater(KILL_GRACE, self._kill)
        ended.addBoth(lambda r: (killer.cancel() if killer.active() else None, r)[1])
        return ended

    def _kill(self) -> None:
        transport = self._live()
        if transport is not None:
            try:
                transport.signalProcess("KILL")
            except twisted_error.ProcessExitedAlready:
                pass
