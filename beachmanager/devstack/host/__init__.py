"""A Python Beach host: real PTY, terminal cache sync, WebRTC offerer, bus harness."""
