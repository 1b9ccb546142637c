"""The validated configuration: frozen dataclasses, built only by dynserver.config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dynserver.dns.zone import RRset
from dynserver.types import Name


@dataclass(frozen=True, slots=True)
class Listener:
    """An address to listen on. IPv6 hosts are written [::1]:5353 in the config."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    dns: tuple[Listener, ...]
    http: Listener | None
    chaos_version: str | None = None  # answered to CH TXT version.bind when set
    chaos_hostname: str | None = None  # answered to CH TXT hostname.bind / id.server
    tcp_idle_timeout: float = 10.0  # RFC 7766 6.2.3: close idle connections
    tcp_message_timeout: float = 5.0  # longest time to receive one message
    tcp_max_connections: int = 1024
    tcp_max_connections_per_client: int = 64


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    name: Name
    file: Path | None
    rrsets: tuple[RRset, ...]  # static data: from the master file or generated SOA/NS


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    server: ServerConfig
    zones: tuple[ZoneConfig, ...]
