"""Which hosts to manage: ``SESSION_ID:JOIN_CODE`` from options, the environment or a file.

No Twisted here (``config`` parses these before any reactor exists).  A join code is a
secret: it never appears in ``repr``, logs or error messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_JOIN_CODE = 128
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class HostTarget:
    host_session_id: str
    join_code: str = field(repr=False)

    def __repr__(self) -> str:
        return f"HostTarget({self.host_session_id!r}, join_code=***)"


def parse_target(raw: str) -> HostTarget:
    """``SESSION_ID:JOIN_CODE``; raises ``ValueError`` naming the problem (never the code)."""
    value = raw.strip()
    session_id, sep, code = value.partition(":")
    if not sep:
        raise ValueError("must be SESSION_ID:JOIN_CODE (no ':' found)")
    if not _SESSION_ID.fullmatch(session_id):
        raise ValueError(f"has a bad session id {session_id[:40]!r} (letters, digits, '.', '_', '-')")
    if not code or len(code) > MAX_JOIN_CODE or any(c.isspace() or not c.isprintable() for c in code):
        raise ValueError(f"has a bad join code for {session_id} (1-{MAX_JOIN_CODE} printable "
                         f"characters without spaces)")
    return HostTarget(session_id, code)


def parse_hosts_text(text: str, where: str = "hosts file") -> tuple[HostTarget, ...]:
    """One ``SESSION_ID:JOIN_CODE`` per line; blank lines and ``#`` comments ignored."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            out.append(parse_target(line))
        except ValueError as e:
            raise ValueError(f"{where} line {number} {e}") from None
    return tuple(out)


def read_hosts_file(path: str) -> tuple[HostTarget, ...]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if len(text) > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return parse_hosts_text(text, path)


def merge_targets(*groups: tuple[HostTarget, ...]) -> tuple[HostTarget, ...]:
    """All targets, the first one given for a session id winning."""
    seen: dict[str, HostTarget] = {}
    for group in groups:
        for target in group:
            seen.setdefault(target.host_session_id, target)
    return tuple(seen.values())


def configured_targets(config) -> tuple[HostTarget, ...]:
    """The hosts named by ``--host`` (and ``BEACH_MANAGER_HOSTS``) and ``--hosts-file``."""
    file_targets = config.hosts_file.targets if config.get("hosts_file") else ()
    return merge_targets(tuple(config.get("host") or ()), file_targets)


@dataclass(frozen=True)
class HostsFile:
    """The ``--hosts-file`` setting: its path and the targets read from it at start-up."""

    path: str
    targets: tuple[HostTarget, ...] = field(repr=False)

    def __repr__(self) -> str:
        return f"HostsFile({self.path!r}, {len(self.targets)} hosts)"


def parse_hosts_file(raw: str) -> HostsFile:
    path = raw.strip()
    return HostsFile(path, read_hosts_file(path))
