"""Run ``dynserver serve`` unchanged, and record how late its health checks start.

    python bench/dynserver_lateness.py OUT -- serve --config PATH --dns HOST:PORT --database ""

dynserver's scheduler already measures, for every check run, how late it started
against its due time (``Scheduler.lateness``), but does not expose it yet. This wrapper
runs dynserver's own CLI in the same process after one change that does not alter
behaviour: the scheduler's ``lateness`` deque is replaced by a deque subclass that also
keeps ``(time.monotonic(), lateness)`` in a list. A daemon thread appends new entries
to OUT every second as ``<time> <lateness>`` lines (and once more at exit).

Used by ``check_capacity.py`` next to the arrival log of the test server: successive
arrivals show changes in lateness but not a delay that is the same every cycle (checks
queued behind a burst of others), which this measure does show. If dynserver's internals
change (no ``Scheduler.lateness``), it says so on stderr and runs dynserver anyway.
"""

from __future__ import annotations

import atexit
import collections
import sys
import threading
import time
from pathlib import Path
from typing import Any

SAMPLES: list[tuple[float, float]] = []
FLUSH_S = 1.0


class RecordingDeque(collections.deque):  # type: ignore[type-arg]
    """A deque that also logs every appended value with the time it was appended."""

    def append(self, value: Any) -> None:
        super().append(value)
        SAMPLES.append((time.monotonic(), float(value)))


def patch_scheduler() -> bool:
    try:
        from dynserver.health import scheduler
    except ImportError as error:
        print(f"dynserver_lateness: cannot import the scheduler ({error})", file=sys.stderr)
        return False
    original = scheduler.Scheduler.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        old = getattr(self, "lateness", None)
        if isinstance(old, collections.deque):
            self.lateness = RecordingDeque(old, maxlen=old.maxlen)
        else:
            print("dynserver_lateness: Scheduler has no lateness deque: nothing recorded", file=sys.stderr)

    scheduler.Scheduler.__init__ = init  # type: ignore[method-assign,unused-ignore]
    return True


class Writer:
    """Appends new samples to the output file every second, from a daemon thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done = 0
        self.lock = threading.Lock()
        path.write_text("")

    def flush(self) -> None:
        with self.lock:
            new = SAMPLES[self.done :]  # a list slice is atomic under the GIL
            self.done += len(new)
            if new:
                with self.path.open("a") as out:
                    out.writelines(f"{t:.6f} {late:.6f}\n" for t, late in new)

    def loop(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self.flush()


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    writer = Writer(Path(argv[0]))
    patch_scheduler()
    atexit.register(writer.flush)
    threading.Thread(target=writer.loop, daemon=True).start()
    from dynserver.cli import main as dynserver_main

    code = int(dynserver_main(argv[2:]))
    writer.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
