"""The base error type of the sans-I/O protocol package.

Each module has one documented error type, a subclass of :class:`ProtocolError`:
``framing.FramingError``, ``envelope.EnvelopeError``, ``wire.WireError`` and
``harness.HarnessError``.  A decoder given bad bytes raises its module's type and nothing else,
so a caller that handles a whole stack can catch ``ProtocolError`` once.
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Bad bytes or bad values at some layer of the Beach protocol stack."""
