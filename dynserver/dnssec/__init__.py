"""DNSSEC: keys, where they are kept, and the signer (docs/dnssec.md)."""
