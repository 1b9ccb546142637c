"""Type stubs of the C receive loop (dynserver/server/_hitloop.c)."""

from collections.abc import Callable
from typing import Any

class HitLoop:
    naps: int
    credits: int
    def __init__(
        self,
        *,
        fd: int,
        recv_msgs: int,
        send_msgs: int,
        batch: int,
        recv_size: int,
        ipv4: bool,
        packets: Callable[[], tuple[dict[bytes, Any], list[int]]],
        handover: Callable[[list[int]], bool],
        charge: Callable[[bytes, Any, int, float], tuple[int, list[int]]] | None,
        slip: Callable[[bytes], bytes],
        credit_s: float,
        nap_ns: int,
        nap_below: int,
    ) -> None: ...
    def run(self) -> bool: ...
    def stop(self) -> None: ...
    def fence(self) -> None: ...
