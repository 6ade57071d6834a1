"""Structured logs, the Prometheus metrics registry, phase tracing and the crash hook."""
