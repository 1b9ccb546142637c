"""Mirrors: external DNS providers (Cloudflare, RFC 2136 primaries) that receive the
current answer of each dynamic record, so a name kept elsewhere follows health too.

``base`` is the provider interface, ``diff`` the pure plan of what to change, the
providers are ``cloudflare`` and ``rfc2136``, and ``worker`` queues, coalesces, retries
and reconciles, off the DNS and check paths.
"""
