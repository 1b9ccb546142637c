"""A process started as root becomes [server] user once its listeners are bound: port 53
needs root (or CAP_NET_BIND_SERVICE) to bind, and nothing after that does, so a flaw in
the code that reads packets and requests is not a flaw run as root."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import pwd
from pathlib import Path

log = logging.getLogger("dynserver")

# prctl(2) options (linux/prctl.h).
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_CAP_SETPCAP = 8

# SQLite's files beside the database: written through descriptors opened as root, and
# reopened by the next start, which may be the user's own (systemd's User=).
_SQLITE_SIDECARS = ("", "-wal", "-shm", "-journal")


def drop_privileges(user: str | None, database: Path | None) -> None:
    """Become ``user`` (its group and supplementary groups too) and drop every capability,
    when started as root; nothing otherwise. The database's files are given to the user
    first, so that the user can keep writing them and open them at the next start.
    PermissionError when the change fails or leaves a privilege: the process stops rather
    than serve as root by mistake."""
    if user is None:
        return
    if os.geteuid() != 0:
        # systemd's User= or DynamicUser=, a container's USER: already unprivileged.
        log.info("event=privileges_kept user=%s uid=%d reason=%r", user, os.geteuid(), "not started as root")
        return
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise PermissionError(errno.EINVAL, f"[server] user: no user {user!r} on this system") from None
    uid, gid = account.pw_uid, account.pw_gid
    if database is not None:
        for suffix in _SQLITE_SIDECARS:
            path = Path(f"{database}{suffix}")
            if path.exists():
                os.chown(path, uid, gid)
    _drop_bounding_set()  # needs CAP_SETPCAP: before the user change takes it away
    # glibc applies these to every thread of the process (aiosqlite's, the executor's),
    # not only the caller; the kernel clears the permitted, effective and ambient
    # capabilities when no user id is 0 any more.
    os.setgroups(os.getgrouplist(user, gid))
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    _clear_capabilities()
    _check_dropped(uid)
    log.info("event=privileges_dropped user=%s uid=%d gid=%d", user, uid, gid)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _drop_bounding_set() -> None:
    """No capability can come back through an exec, whatever a file's capabilities say.
    Without CAP_SETPCAP (a container may withhold it) no_new_privs does that alone."""
    if not capability_sets().get("CapEff", 0) >> _CAP_SETPCAP & 1:
        return
    libc = _libc()
    for cap in range(_last_capability() + 1):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise PermissionError(ctypes.get_errno(), f"cannot drop capability {cap} from the bounding set")


def _clear_capabilities() -> None:
    """The ambient and inheritable sets too (setuid leaves the inheritable set), and no
    new privilege through a set-user-ID program."""
    libc = _libc()
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # fails before Linux 4.3: none to clear
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: two 32-bit words each
    if libc.capset(header, data) != 0:
        raise PermissionError(ctypes.get_errno(), "cannot clear the capability sets")
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise PermissionError(ctypes.get_errno(), "cannot set no_new_privs")


def _check_dropped(uid: int) -> None:
    """As OpenSSH does: prove the change cannot be undone before serving a packet as it."""
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise PermissionError(errno.EPERM, "the process could become root again after dropping")
    held = {name: value for name, value in capability_sets().items() if value}
    if held:
        raise PermissionError(errno.EPERM, f"capabilities still held after dropping: {held}")


def capability_sets(status: Path = Path("/proc/thread-self/status")) -> dict[str, int]:
    """CapInh, CapPrm, CapEff and CapAmb of a thread (or a process: /proc/PID/status),
    as numbers; the bounding set (CapBnd) is not one a thread uses."""
    sets = {}
    for line in status.read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            sets[name] = int(value.strip(), 16)
    return sets


def _last_capability() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except OSError:  # pragma: no cover - a kernel older than 3.2
        return 40
