"""The control socket: a unix socket (mode 0600, as knotc's) on which `dynserver reload`
asks the running server to reload. One JSON line in, one JSON line out."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
import stat
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("dynserver")

SOCKET_NAME = "dynserver.control"
REQUEST_LIMIT = 64 * 1024  # bytes of one request line: {"command": "reload"} needs 21
REQUEST_TIMEOUT = 5.0  # seconds a client may take to send its line
REPLY_TIMEOUT = 120.0  # seconds `dynserver reload` waits: a reload loads every master file


class Outcome(Protocol):
    """What a reload reports (dynserver.runtime.ReloadOutcome has this shape)."""

    @property
    def ok(self) -> bool: ...
    @property
    def errors(self) -> tuple[str, ...]: ...
    @property
    def changes(self) -> tuple[str, ...]: ...
    @property
    def duration(self) -> float: ...


Reload = Callable[[], Awaitable[Outcome]]


def control_socket(config_path: Path, control: str | None, database: Path | None) -> Path | None:
    """Where the control socket is: ``control`` ([server] control) relative to the config's
    folder; unset: dynserver.control next to the database, or next to the config without
    one; "": none. The one rule for the server and for `dynserver reload`."""
    if control == "":
        return None
    if control is not None:
        return config_path.parent / control
    return (database.parent if database is not None else config_path.parent) / SOCKET_NAME


def control_socket_of_file(config_path: Path, database: str | None = None) -> Path | None:
    """The control socket a config file names, read without validating the rest: a file
    the server will refuse is still the one it is asked to reload (and says why).
    ``database``: the server's --database, when it was started with one."""
    try:
        server = tomllib.loads(config_path.read_text(encoding="utf-8-sig")).get("server", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        server = {}  # the server reads it too, and reports what is wrong with it
    if not isinstance(server, dict):
        server = {}
    control = server.get("control")
    if database is None:
        database = server.get("database", "dynserver.db")
    folder = config_path.parent
    return control_socket(
        config_path,
        control if isinstance(control, str) else None,
        folder / database if isinstance(database, str) and database else None,
    )


class ControlServer:
    """Answers requests on the control socket; each reload is awaited, so the reply says
    whether the new config is live. Reloads themselves are serialized by the runtime."""

    def __init__(self, path: Path, reload: Reload) -> None:
        self.path = path
        self._reload = reload
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None

    async def start(self) -> None:
        """Bind, or OSError: the path is not a socket, another server answers on it, or
        the folder is not writable. A stale socket (its server is gone) is replaced."""
        _clear_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # The umask makes the socket 0600 from its creation: no moment when another
            # user could connect. Process-wide, but nothing else creates files meanwhile.
            previous = os.umask(0o177)
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(previous)
            os.chmod(self.path, 0o600)
            sock.listen(16)
            self._inode = os.stat(self.path).st_ino
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=REQUEST_LIMIT)
        except BaseException:
            sock.close()
            raise
        log.info("event=listening proto=control address=%s", self.path)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        # Only our own socket: a server started meanwhile on the same path keeps its own.
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            except (TimeoutError, ValueError, ConnectionError):
                return  # too slow, too long or gone: nothing worth answering
            reply = await self._answer(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except ConnectionError:
            pass  # the client left before its reply: the reload happened all the same
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return _refusal('expected one JSON line, e.g. {"command": "reload"}')
        command = request.get("command") if isinstance(request, dict) else None
        if command != "reload":
            return _refusal(f"unknown command {command!r}; expected reload")
        try:
            outcome = await self._reload()
        except Exception as error:  # a bug, not a bad config: the asker hears of it too
            log.exception("event=reload_crashed via=command")
            return _refusal(f"the reload failed unexpectedly ({error!r}); see the server's log")
        return {
            "ok": outcome.ok,
            "changes": list(outcome.changes),
            "errors": list(outcome.errors),
            "duration": outcome.duration,
        }


def _refusal(error: str) -> dict[str, Any]:
    return {"ok": False, "changes": [], "errors": [error], "duration": 0.0}


def _clear_stale(path: Path) -> None:
    """Unlink a socket left by a server that is gone; refuse anything else at ``path``."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"control socket {path}: exists and is not a socket; not replaced")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # nobody listens: left by a server that was killed
            return
    raise OSError(errno.EADDRINUSE, f"control socket {path}: another dynserver answers on it")


def request(path: Path, command: str, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
    """Send one command and return the server's reply; OSError when no server answers
    (FileNotFoundError, ConnectionRefusedError) or it answers no JSON line (ValueError)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        with sock.makefile("rb") as stream:
            line = stream.readline()
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ValueError(f"expected a JSON object, got {line[:80]!r}")
    return reply
