"""Topic pub/sub over Beach extension frames (namespace `manager`)."""
