"""Why an attach attempt failed or a ready transport was lost."""

from __future__ import annotations

# The attach phases, in order, are ``protocol.attach.PHASES``.


class AttachError(Exception):
    """An attach attempt failed in *phase*; *permanent* means retrying cannot help."""

    def __init__(self, phase: str, reason: str, *, permanent: bool = False, code: str | None = None):
        super().__init__(f"{phase}: {reason}")
        self.phase = phase
        self.reason = reason
        self.permanent = permanent
        #: A stable short name for APIs and tests (``bad_join_code``, ``timeout``...).
        self.code = code or "failed"


class TransportLost(Exception):
    """A ready transport went away; *reason* says how it was noticed."""

    def __init__(self, reason: str, code: str = "lost"):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class RoadError(Exception):
    """Road answered something unexpected (status, body) or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status
