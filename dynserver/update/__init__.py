"""Address updates: dyndns2, the REST API, RFC 2136 UPDATE with TSIG."""
