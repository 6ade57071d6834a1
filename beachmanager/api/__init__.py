"""HTTP routes: health, readiness, metrics, debug and the REST API."""
