"""RFC 1982 serial arithmetic: the next serial and which of two is newer, across the wrap."""

from __future__ import annotations

import pytest

from dynserver.dns.serial import next_serial, serial_gt


@pytest.mark.parametrize(
    ("serial", "following"),
    [(1, 2), (2**32 - 2, 2**32 - 1), (2**32 - 1, 1), (0, 1)],  # 0 is skipped at the wrap
)
def test_next_serial(serial: int, following: int) -> None:
    assert next_serial(serial) == following


@pytest.mark.parametrize(
    ("a", "b", "newer"),
    [
        (2, 1, True),
        (1, 2, False),
        (5, 5, False),
        (1, 2**32 - 1, True),  # wrapped around
        (2**32 - 1, 1, False),
        (2**31, 0, False),  # exactly half the circle apart: undefined, neither is newer
        (0, 2**31, False),
    ],
)
def test_serial_gt(a: int, b: int, newer: bool) -> None:
    assert serial_gt(a, b) is newer
