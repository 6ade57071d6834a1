"""The host-side bus participant (Python beach-buggy): applies actions, publishes acks, state, health."""
