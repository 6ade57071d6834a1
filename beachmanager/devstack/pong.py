"""A terminal Pong for the devstack: a target for controller agents, and their player.

``python -m beachmanager.devstack.pong [--seed N] [--fps 10]`` runs the game on the terminal:
two paddles (``|``), a ball (``o``), and a score line.  The left paddle plays itself; the
right one is the player's: ``k`` moves it up, ``j`` down.  A rally is the number of returns
by the right paddle since its last miss; the score line shows it, the best one, and how many
keys the game has read (each player action is one key: the count proves none was doubled)::

    PONG left 0 right 0 rally 3 best 7 keys 42

:class:`Game` is the rules (pure: a seed in, frames out); :class:`PongPlayer` is an agent
driver (``harness/agent.py``) that reads the target's screen from the states it is sent and
moves the right paddle towards the ball.
"""

from __future__ import annotations

import argparse
import random
import re
import select
import sys
import time
import uuid
from typing import Any

WIDTH, HEIGHT, PADDLE = 40, 12, 3
SCORE_RE = re.compile(r"PONG left (\d+) right (\d+) rally (\d+) best (\d+)(?: keys (\d+))?")


class Game:
    def __init__(self, seed: int = 1, width: int = WIDTH, height: int = HEIGHT):
        self.rng = random.Random(seed)
        self.w, self.h = width, height
        self.left = self.right = (height - PADDLE) // 2  # top row of each paddle
        self.score = [0, 0]
        self.rally = self.best = 0
        self.keys = 0
        self._serve()

    def _serve(self) -> None:
        self.x, self.y = self.w / 2, self.h / 2
        self.dx = self.rng.choice((-1, 1))
        self.dy = self.rng.choice((-0.5, 0.5))

    def key(self, ch: str) -> None:
        self.keys += 1
        if ch == "k":
            self.right = max(0, self.right - 1)
        elif ch == "j":
            self.right = min(self.h - PADDLE, self.right + 1)

    def step(self) -> None:
        # the left paddle follows the ball, one row per frame
        centre = self.left + PADDLE // 2
        if self.y < centre:
            self.left = max(0, self.left - 1)
        elif self.y > centre + 0.5:
            self.left = min(self.h - PADDLE, self.left + 1)
        self.x += self.dx
        self.y += self.dy
        if self.y < 0 or self.y > self.h - 1:
            self.dy = -self.dy
            self.y = min(max(self.y, 0), self.h - 1)
        row = int(round(self.y))
        if self.x <= 1:
            if self.left <= row < self.left + PADDLE:
                self.dx, self.x = 1, 1
            else:
                self.score[1] += 1
                self._serve()
        elif self.x >= self.w - 2:
            if self.right <= row < self.right + PADDLE:
                self.dx, self.x = -1, self.w - 2
                self.rally += 1
                self.best = max(self.best, self.rally)
            else:
                self.score[0] += 1
                self.rally = 0
                self._serve()

    def frame(self) -> list[str]:
        rows = [[" "] * self.w for _ in range(self.h)]
        for i in range(PADDLE):
            rows[self.left + i][0] = "|"
            rows[self.right + i][self.w - 1] = "|"
        rows[int(round(self.y))][int(self.x)] = "o"
        score = (f"PONG left {self.score[0]} right {self.score[1]} rally {self.rally} "
                 f"best {self.best} keys {self.keys}")
        return [score, "-" * self.w, *("".join(r) for r in rows), "-" * self.w]


def read_screen(lines: list[str]) -> dict[str, Any] | None:
    """Ball, right paddle and score from a screen (None when it is not a Pong screen)."""
    score = next((SCORE_RE.search(line) for line in lines if SCORE_RE.search(line)), None)
    if score is None:
        return None
    top = next((i for i, line in enumerate(lines) if line.startswith("-")), None)
    if top is None:
        return None
    field = lines[top + 1:top + 1 + HEIGHT]
    ball = paddle = None
    paddle_rows = []
    for r, line in enumerate(field):
        c = line.find("o")
        if c >= 0:
            ball = (r, c)
        if len(line) >= WIDTH and line[WIDTH - 1] == "|":
            paddle_rows.append(r)
    if paddle_rows:
        paddle = (min(paddle_rows), max(paddle_rows))
    left, right, rally, best = (int(g) for g in score.groups()[:4])
    keys = score.group(5)
    return {"ball": ball, "paddle": paddle, "score": (left, right), "rally": rally,
            "best": best, "keys": int(keys) if keys is not None else None}


class PongPlayer:
    """An agent driver: moves the right paddle towards the ball, one key per new screen (at
    most *limit* keys; None: no end).  A key whose ack has not come is sent again with its
    id (:class:`~beachmanager.devstack.agents.Unacked`): the target applies it once."""

    def __init__(self, clock, limit: int | None = None) -> None:
        from .agents import Unacked

        self.best = 0
        self.moves = 0
        self.limit = limit
        self.unacked = Unacked(clock)
        self._tag = uuid.uuid4().hex[:8]
        self._last: tuple | None = None

    def started(self, agent) -> None:
        pass

    def on_ack(self, agent, ack: Any) -> None:
        self.unacked.acked(ack)

    def _press(self, agent, key: str) -> None:
        aid = f"{self._tag}-pong-{self.moves}"
        if agent.act([{"id": aid, "action_type": "terminal_write",
                       "payload": {"bytes": key}}]) is not None:
            self.unacked.sent(aid, key)
            self.moves += 1

    def on_state(self, agent, state: Any) -> None:
        payload = state.get("payload") if isinstance(state, dict) else None
        lines = payload.get("lines") if isinstance(payload, dict) else None
        if not isinstance(lines, list):
            return
        self.unacked.resend_one(agent)
        if self.limit is not None and self.moves >= self.limit:
            return
        seen = read_screen([str(x) for x in lines])
        if seen is None or seen["ball"] is None or seen["paddle"] is None:
            return
        self.best = max(self.best, seen["best"])
        key = (seen["ball"], seen["paddle"])
        if key == self._last:
            return  # the same screen again: one key per change
        self._last = key
        row = seen["ball"][0]
        top, bottom = seen["paddle"]
        centre = (top + bottom) / 2
        if row < centre:
            self._press(agent, "k")
        elif row > centre:
            self._press(agent, "j")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Terminal Pong (k/j move the right paddle).")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fps", type=float, default=8.0)
    args = ap.parse_args(argv)
    game = Game(args.seed)
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if sys.stdin.isatty() else None
    if saved is not None:
        tty.setcbreak(fd)
    out = sys.stdout
    out.write("\x1b[2J\x1b[?25l")
    try:
        next_frame = time.monotonic()
        while True:
            wait = max(0.0, next_frame - time.monotonic())
            ready, _, _ = select.select([sys.stdin], [], [], wait)
            if ready:
                for ch in sys.stdin.read(1):
                    if ch == "q":
                        return 0
                    game.key(ch)
                continue
            game.step()
            out.write("\x1b[H" + "\r\n".join(game.frame()) + "\r\n")
            out.flush()
            next_frame += 1 / args.fps
    except KeyboardInterrupt:
        return 0
    finally:
        out.write("\x1b[?25h")
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


if __name__ == "__main__":
    raise SystemExit(main())
