"""Mirrors: external DNS providers (Cloudflare, RFC 2136 primaries, dns-lexicon's
providers, dyndns2 servers) that receive the current answer of each dynamic record, so
a name kept elsewhere follows health too.

``base`` is the provider interface, ``diff`` the pure plan of what to change, the
providers are ``cloudflare``, ``rfc2136``, ``lexicon`` and ``dyndns2``, and ``worker``
queues, coalesces, retries and reconciles, off the DNS and check paths.
"""
