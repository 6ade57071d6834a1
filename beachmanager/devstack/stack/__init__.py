"""The smoke stack: every service in its own network namespace (see scripts/stack)."""
