"""Persistence: PostgreSQL (migrations, row-level security) and the Redis runtime cache."""
