"""``twistd beach-manager`` / ``twist beach-manager``: command-line options and the service tree.

``makeService`` only builds services; all I/O starts when the tree is started.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from twisted.python import usage

from . import __version__
from . import config as config_module
from ._reactor import asyncio_reactor_problem, ensure_loop_current, installed_reactor
from .config import SETTINGS, Config, ConfigError


def _option_doc(setting: config_module.Setting) -> str:
    default = setting.default if setting.default is not None else "unset"
    env = f" [env {setting.env}]" if setting.env else ""
    return f"{setting.doc}{env} [default: {default}]"


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the Beach manager: it joins Beach hosts as a Beach client and runs the manager bus. "
        "Every option may also be set by the environment variable named in its description; "
        "the command line wins. Without REDIS_URL and DATABASE_URL it runs as a single instance "
        "on in-memory stores. Needs --reactor=beach-asyncio."
    )
    optParameters = [[s.option, None, None, _option_doc(s)] for s in SETTINGS if not s.repeatable]

    def __init__(self, environ: Mapping[str, str] | None = None, exit_on_error: bool = True):
        super().__init__()
        self.environ = os.environ if environ is None else environ
        self.exit_on_error = exit_on_error
        self.config: Config | None = None
        self.repeated: dict[str, list[str]] = {}

    def opt_version(self):
        """Print the version and exit."""
        print(f"beach-manager {__version__}")
        sys.exit(0)

    def postOptions(self) -> None:
        # a repeatable setting's value is the list of its occurrences (load reads either)
        cli: dict[str, Any] = {
            s.key: self.repeated.get(s.key, []) if s.repeatable else self[s.option]
            for s in SETTINGS}
        self.config = config_module.load(cli, self.environ)

    def parseOptions(self, options=None):
        try:
            super().parseOptions(options)
        except ConfigError as e:
            if self.exit_on_error:
                # One clear line, no usage dump: the value is wrong, not the syntax.
                raise SystemExit(f"beach-manager: error: {e}") from None
            raise


def _repeatable_option(setting: config_module.Setting):
    def handler(self, value: str) -> None:
        self.repeated.setdefault(setting.key, []).append(value)

    handler.__doc__ = _option_doc(setting) + " [repeatable]"
    return handler


for _setting in SETTINGS:  # one opt_ method per repeatable setting (usage.Options finds them)
    if _setting.repeatable:
        setattr(Options, "opt_" + _setting.key, _repeatable_option(_setting))


def makeService(options: Options, reactor=None):
    """Build the manager's service tree (no I/O happens until it starts)."""
    if reactor is None:  # the real process (twist/twistd), not a test
        problem = asyncio_reactor_problem(installed_reactor())
        if problem:
            raise SystemExit(f"beach-manager: error: {problem}")
        reactor = installed_reactor()
        from . import gc_tuning

        reactor.callWhenRunning(gc_tuning.tune)  # once started: see gc_tuning
    ensure_loop_current(reactor)
    from .manager import build_manager

    config = options.config
    if config is None:
        raise RuntimeError("the options are not parsed (no config): call parseOptions first")
    return build_manager(config, reactor)
