"""Manager membership heartbeats, rendezvous hashing, capacity and reassignment."""
