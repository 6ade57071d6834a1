"""Per-peer terminal cache sync (reference wire-framing §7.1): handshake, then deltas.

Handshake: ``Hello`` (subscription 1, ``max_seq``), ``Grid``, then per lane the
``Snapshot`` frames and a ``SnapshotComplete`` (sent for all three lanes, even an
empty one).  Foreground holds the style table and the viewport rows, Recent the
scrollback, History nothing; rows go newest first, at most :data:`FRAME_UPDATES`
updates per frame, ``has_more`` on every frame but the lane's last, the cursor on
the first foreground frame.  Afterwards :meth:`PeerSync.deltas` yields ``Delta``
frames with every change above the peer's watermark (and the cursor when it moved);
:meth:`PeerSync.backfill` answers ``RequestBackfill`` with ``HistoryBackfill`` frames.
"""

from __future__ import annotations

from ...protocol.frames import (
    FEATURE_CURSOR_SYNC,
    Delta,
    Grid,
    Hello,
    HistoryBackfill,
    HostFrame,
    Lane,
    RequestBackfill,
    Row,
    Snapshot,
    SnapshotComplete,
    Update,
)
from .terminal import TerminalModel

SUBSCRIPTION = 1
#: Updates per Snapshot or Delta frame (upstream splits chunks into frames of <= 64).
FRAME_UPDATES = 64


def _split(updates: list[Update], size: int = FRAME_UPDATES) -> list[list[Update]]:
    return [updates[i:i + size] for i in range(0, len(updates), size)] or [[]]


def _max_seq(updates: list[Update]) -> int:
    return max((getattr(u, "seq", 0) for u in updates), default=0)


class PeerSync:
    def __init__(self, model: TerminalModel):
        self.model = model
        self.watermark = 0
        self.cursor_seq = 0
        self.handshakes = 0

    def handshake(self) -> list[HostFrame]:
        """Hello, Grid, Snapshots and the three SnapshotComplete frames for the current state."""
        m = self.model
        self.handshakes += 1
        frames: list[HostFrame] = [
            Hello(subscription=SUBSCRIPTION, max_seq=m.seq, features=FEATURE_CURSOR_SYNC),
            Grid(cols=m.cols, history_rows=m.history_rows, base_row=m.base_row, viewport_rows=m.viewport_rows),
        ]
        viewport = range(m.top_row, m.top_row + m.viewport_rows)
        foreground: list[Update] = list(m.style_updates())
        recent: list[Update] = []
        for row_id in m.row_ids_descending():
            st = m.rows[row_id]
            (foreground if row_id in viewport else recent).append(Row(row=row_id, seq=st.seq, cells=st.cells))
        cursor = m.cursor()
        for lane, updates in ((Lane.FOREGROUND, foreground), (Lane.RECENT, recent)):
            if updates:
                chunks = _split(updates)
                for i, chunk in enumerate(chunks):
                    frames.append(Snapshot(subscription=SUBSCRIPTION, lane=lane, watermark=_max_seq(chunk),
                                           has_more=i < len(chunks) - 1, updates=tuple(chunk),
                                           cursor=cursor if lane is Lane.FOREGROUND and i == 0 else None))
            frames.append(SnapshotComplete(subscription=SUBSCRIPTION, lane=lane))
        frames.append(SnapshotComplete(subscription=SUBSCRIPTION, lane=Lane.HISTORY))
        self.watermark = m.seq
        self.cursor_seq = cursor.seq
        return frames

    def deltas(self) -> list[HostFrame]:
        """Delta frames for everything that changed since the last call (or a new handshake
        when the change log no longer reaches back to this peer's watermark)."""
        m = self.model
        updates = m.updates_since(self.watermark)
        if updates is None:
            return self.handshake()
        cursor = m.cursor() if m.cursor_seq > self.cursor_seq else None
        if not updates and cursor is None:
            self.watermark = m.seq
            return []
        chunks = _split(updates)
        frames: list[HostFrame] = [
            Delta(subscription=SUBSCRIPTION, watermark=m.seq, has_more=i < len(chunks) - 1, updates=tuple(chunk),
                  cursor=cursor if i == len(chunks) - 1 else None)
            for i, chunk in enumerate(chunks)
        ]
        self.watermark = m.seq
        if cursor is not None:
            self.cursor_seq = cursor.seq
        return frames

    def backfill(self, request: RequestBackfill) -> list[HostFrame]:
        """``HistoryBackfill`` frames with the stored rows of the requested range (at most
        :data:`FRAME_UPDATES` rows each; ``more`` on all but the last)."""
        m = self.model
        end = request.start_row + min(request.count, m.history_limit)
        row_ids = [r for r in sorted(m.rows) if request.start_row <= r < end]
        chunks = [row_ids[i:i + FRAME_UPDATES] for i in range(0, len(row_ids), FRAME_UPDATES)] or [[]]
        frames: list[HostFrame] = []
        for i, chunk in enumerate(chunks):
            start = chunk[0] if chunk else request.start_row
            count = chunk[-1] - start + 1 if chunk else 0
            frames.append(HistoryBackfill(
                subscription=request.subscription, request_id=request.request_id, start_row=start, count=count,
                more=i < len(chunks) - 1,
                updates=tuple(Row(row=r, seq=m.rows[r].seq, cells=m.rows[r].cells) for r in chunk)))
        return frames
