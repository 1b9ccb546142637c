"""RFC 1982 serial number arithmetic for SOA serials: the next serial, and which is newer.

Serials wrap around modulo 2^32, so "newer" is a comparison within half the circle,
not an integer comparison."""

from __future__ import annotations

_HALF = 2**31


def next_serial(serial: int) -> int:
    """+ 1 modulo 2^32; 0 is skipped, as some tools treat it as unset."""
    return (serial + 1) % 2**32 or 1


def serial_gt(a: int, b: int) -> bool:
    """Is serial ``a`` newer than ``b``? Two serials exactly half the circle apart are
    undefined by RFC 1982; neither is newer."""
    return a != b and ((a > b and a - b < _HALF) or (a < b and b - a > _HALF))
