"""The devstack Pong: the rules, the screen reader and the player (no terminal needed)."""

from __future__ import annotations

from twisted.internet.task import Clock

from beachmanager.devstack.pong import HEIGHT, PADDLE, Game, PongPlayer, read_screen


def test_a_paddle_that_follows_the_ball_keeps_the_rally_going_and_one_that_does_not_misses():
    g = Game(seed=3)
    for _ in range(400):
        row = int(round(g.y))
        g.right = min(max(0, row - PADDLE // 2), HEIGHT - PADDLE)
        g.step()
    assert g.best >= 5 and g.score[0] == 0
    lazy = Game(seed=3)
    lazy.right = 0
    for _ in range(400):
        lazy.step()
    assert lazy.score[0] > 0


def test_the_screen_reader_finds_the_ball_the_paddle_and_the_score():
    g = Game(seed=1)
    seen = read_screen(g.frame())
    assert seen["ball"] == (int(round(g.y)), int(g.x))
    assert seen["paddle"] == (g.right, g.right + PADDLE - 1)
    assert seen["score"] == (0, 0) and seen["rally"] == 0 and seen["keys"] == 0
    g.key("j")
    assert read_screen(g.frame())["keys"] == 1
    assert read_screen(["$ ls", "file"]) is None


class FakeAgent:
    def __init__(self):
        self.typed = []
        self.ids = []

    def act(self, commands):
        for c in commands:
            self.typed.append(c["payload"]["bytes"])
            self.ids.append(c["id"])
        return "r"


def test_the_player_moves_towards_the_ball_once_per_new_screen():
    g = Game(seed=1)
    g.right, g.y = 0, 9.0
    state = {"payload": {"type": "terminal_full", "lines": g.frame()}}
    p, agent = PongPlayer(Clock()), FakeAgent()
    p.on_state(agent, state)
    p.on_state(agent, state)  # the same screen: no second key
    assert agent.typed == ["j"]
    g.right, g.y = 8, 1.0
    p.on_state(agent, {"payload": {"lines": g.frame()}})
    assert agent.typed == ["j", "k"]


def test_the_player_drives_a_game_to_long_rallies():
    g, p = Game(seed=5), PongPlayer(Clock())

    class Keys:
        def act(self, commands):
            for c in commands:
                g.key(c["payload"]["bytes"])
            return "r"

    for _ in range(600):
        p.on_state(Keys(), {"payload": {"lines": g.frame()}})
        g.step()
    assert g.score[0] == 0 and g.best >= 7, (g.best, g.score)  # a return every 76 frames


def test_the_player_sends_an_unacked_key_again_with_its_id_and_stops_at_its_limit():
    clock = Clock()
    g = Game(seed=1)
    p, agent = PongPlayer(clock, limit=2), FakeAgent()

    def screen(ball_row, paddle_top):
        g.right, g.y = paddle_top, float(ball_row)
        return {"payload": {"lines": g.frame()}}

    p.on_state(agent, screen(9, 0))
    p.on_state(agent, screen(1, 8))
    assert agent.typed == ["j", "k"] and len(set(agent.ids)) == 2
    p.on_ack(agent, {"id": agent.ids[0], "status": "ok"})
    p.on_state(agent, screen(9, 0))  # at its limit: no new key
    assert len(agent.typed) == 2
    clock.advance(3)
    p.on_state(agent, screen(1, 8))  # the unacked one goes again, same id
    assert agent.ids[-1] == agent.ids[1] and agent.typed[-1] == "k" and p.unacked.resent == 1
