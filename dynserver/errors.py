"""Every error dynserver raises on purpose derives from DynserverError.

DynserverError
└── ConfigError          bad configuration or master file: names file, line and key
"""

from __future__ import annotations


class DynserverError(Exception):
    """Base of all dynserver errors."""


class ConfigError(DynserverError):
    """A configuration problem the user must fix before anything is served."""

    def __init__(self, message: str, *, path: str = "", line: int = 0, key: str = "") -> None:
        self.path = path
        self.line = line
        self.key = key
        self.message = message
        where = path
        if line:
            where += f":{line}"
        parts = [p for p in (where, key) if p]
        super().__init__(": ".join([*parts, message]))
