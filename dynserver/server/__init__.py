"""Thin transports around the answering core: UDP and TCP (RFC 7766)."""
