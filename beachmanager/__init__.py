"""beach-manager: joins Beach terminal hosts as a Beach client and runs the manager bus."""

__version__ = "0.1.0"
