"""Terminal mirror fed by the host's Hello/Grid/Snapshot/Delta frames."""
