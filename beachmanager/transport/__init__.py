"""Road client, aiortc answerer and the attach state machine."""
