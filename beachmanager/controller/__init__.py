"""Controller leases, the per-host action queue, delivery and ack matching."""
