"""dynserver: an authoritative DNS server for a dynamic zone, with built-in health checks."""

__version__ = "0.1.0"
