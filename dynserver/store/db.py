"""SQLite (aiosqlite): the memory of dynserver, never its hot path.

Target states (so a restart resumes where it stopped), the event log (seed 000's status
table), check latencies for history, zone serials, update credentials and agents (hashed),
and the ACME challenges being served.
WAL with synchronous=FULL: a committed write survives a crash or power loss. Times are
wall-clock Unix seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite

SCHEMA_VERSION = 9
# Rows a prune deletes in one statement (and transaction): ~10-50 ms each, so the writer's
# batches go in between instead of waiting for the whole retention delete (docs/benchmarks.md).
PRUNE_CHUNK = 20_000
_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE target_state (
        record TEXT NOT NULL, type TEXT NOT NULL, target TEXT NOT NULL,
        observed TEXT NOT NULL, since REAL NOT NULL,
        successes INTEGER NOT NULL, failures INTEGER NOT NULL,
        pending_until REAL, maintenance INTEGER NOT NULL, config_maintenance INTEGER NOT NULL,
        last_ok INTEGER, last_reason TEXT, last_at REAL, last_latency REAL,
        value TEXT, value_set_at REAL,
        PRIMARY KEY (record, type, target)
    );
    CREATE TABLE event (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL, kind TEXT NOT NULL,
        record TEXT, target TEXT, result TEXT, reason TEXT,
        previous TEXT, current TEXT, actor TEXT, detail TEXT
    );
    CREATE INDEX event_at ON event (at);
    CREATE INDEX event_record ON event (record, at);
    CREATE TABLE sample (
        at REAL NOT NULL, record TEXT NOT NULL, target TEXT NOT NULL,
        ok INTEGER NOT NULL, latency REAL, state TEXT NOT NULL
    );
    CREATE INDEX sample_record ON sample (record, at);
    CREATE TABLE zone_serial (
        zone TEXT PRIMARY KEY, serial INTEGER NOT NULL, digest TEXT NOT NULL
    );
    """,
    # The config's value when an update last set the target: a changed config wins.
    2: "ALTER TABLE target_state ADD COLUMN config_value TEXT;",
    # Update credentials: a salted SHA-256 of the secret, never the secret. ``targets``
    # is a JSON list of scopes ("app.dyn.example.test/bravo"); admin may do anything.
    3: """
    CREATE TABLE credential (
        name TEXT PRIMARY KEY,
        salt BLOB NOT NULL, digest BLOB NOT NULL,
        admin INTEGER NOT NULL, targets TEXT NOT NULL,
        created REAL NOT NULL, last_used REAL
    );
    """,
    # The IXFR journal: each zone's last changes (dynserver.xfr.journal.encode), so that
    # secondaries continue with incremental transfers after a restart.
    4: """
    CREATE TABLE xfr_journal (
        zone TEXT NOT NULL, seq INTEGER NOT NULL,
        serial_from INTEGER NOT NULL, serial_to INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (zone, seq)
    );
    """,
    # Agents (checks from other locations): the token hashed as a credential's secret.
    # last_contact and version are the hub's hints for `agent list` and the agents page.
    5: """
    CREATE TABLE agent (
        name TEXT PRIMARY KEY,
        salt BLOB NOT NULL, digest BLOB NOT NULL,
        created REAL NOT NULL, last_contact REAL, version TEXT, canary TEXT
    );
    """,
    # ACME DNS-01 challenges (dynserver.update.acme): stored before an update is answered,
    # served again after a restart until deleted or ``expires``. Names in the text form.
    # IF NOT EXISTS: a database set back to an older version keeps the table it has.
    6: """
    CREATE TABLE IF NOT EXISTS acme_challenge (
        name TEXT NOT NULL, value TEXT NOT NULL, zone TEXT NOT NULL,
        added REAL NOT NULL, expires REAL NOT NULL, actor TEXT NOT NULL,
        PRIMARY KEY (name, value)
    );
    """,
    # DNSSEC keys of zones without a key_directory (dynserver.dnssec.keystore): ``key``
    # and ``private`` are the texts of BIND's K*.key and K*.private files, times included.
    7: """
    CREATE TABLE IF NOT EXISTS dnssec_key (
        zone TEXT NOT NULL, tag INTEGER NOT NULL, algorithm INTEGER NOT NULL,
        key TEXT NOT NULL, private TEXT NOT NULL,
        PRIMARY KEY (zone, tag, algorithm)
    );
    """,
    # Push monitors' tokens (dynserver.update.push): the SHA-256 of each token, never the
    # token; one per target, names in the text form.
    8: """
    CREATE TABLE IF NOT EXISTS push_token (
        digest BLOB PRIMARY KEY,
        record TEXT NOT NULL, type TEXT NOT NULL, target TEXT NOT NULL,
        created REAL NOT NULL, last_used REAL,
        UNIQUE (record, type, target)
    );
    """,
    # Forced states (an admin's up or down over the checks, gdnsd's admin_state): kept
    # across restarts until cleared or ``until`` (Unix time; NULL: until cleared).
    9: """
    CREATE TABLE IF NOT EXISTS forced_state (
        record TEXT NOT NULL, type TEXT NOT NULL, target TEXT NOT NULL,
        state TEXT NOT NULL, actor TEXT NOT NULL, at REAL NOT NULL, until REAL,
        reason TEXT NOT NULL,
        PRIMARY KEY (record, type, target)
    );
    """,
}


class StoredState(NamedTuple):
    """A target's state as stored: a row of target_state, in its columns' order (a tuple:
    built without a frozen dataclass's per-field cost, and bound as it is; every target's
    is written every STATE_REFRESH, 20,000 of them at issue 19's scale)."""

    record: str
    type: str
    target: str
    observed: str
    since: float
    successes: int
    failures: int
    pending_until: float | None
    maintenance: bool
    config_maintenance: bool
    last_ok: bool | None
    last_reason: str | None
    last_at: float | None
    last_latency: float | None
    value: str | None
    value_set_at: float | None
    config_value: str | None = None


@dataclass(frozen=True, slots=True)
class EventRow:
    # health | answer | maintenance | update | check | auth | credential | agent | mirror | notify | system
    # | acme (challenges added and removed) | scheduler (checks fell behind or caught up)
    kind: str
    record: str | None = None
    target: str | None = None
    result: str | None = None
    reason: str | None = None
    previous: str | None = None
    current: str | None = None
    actor: str | None = None
    detail: dict[str, Any] | None = None
    at: float = 0.0  # 0: now
    id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredCredential:
    """A credential row as stored: the hash of its secret, never the secret."""

    name: str
    salt: bytes
    digest: bytes
    admin: bool
    targets: tuple[str, ...]
    created: float
    last_used: float | None = None


@dataclass(frozen=True, slots=True)
class StoredAgent:
    """An agent row as stored: the hash of its token, never the token."""

    name: str  # its location name
    salt: bytes
    digest: bytes
    created: float
    last_contact: float | None = None
    version: str | None = None  # the agent's, from its last stream
    canary: str | None = None  # host:port this agent connects to for its connectivity


@dataclass(frozen=True, slots=True)
class StoredPushToken:
    """A push monitor's token as stored: its hash, and the target it beats for."""

    digest: bytes
    record: str  # text form, without the final dot (as scopes write it)
    type: str
    target: str
    created: float
    last_used: float | None = None


@dataclass(frozen=True, slots=True)
class StoredForced:
    """A target's forced state as stored (names in the text form, with the final dot)."""

    record: str
    type: str
    target: str
    state: str  # "up" or "down"
    actor: str
    at: float  # Unix time
    until: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One stored IXFR journal entry of a zone."""

    seq: int
    serial_from: int
    serial_to: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StoredChallenge:
    """An ACME challenge row: a TXT value served at ``name`` in ``zone`` until ``expires``."""

    name: str
    value: str
    zone: str
    added: float
    expires: float
    actor: str


class Sample(NamedTuple):
    """A history row of one target (a check's result): the sample table's row as it is,
    a tuple for the same reason as StoredState (one per result from every location)."""

    at: float
    record: str
    target: str
    ok: bool
    latency: float | None
    state: str


def _bit(flag: bool | None) -> int | None:
    return None if flag is None else int(flag)


class Store:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        # Held by a batch of several statements committed together (the store writer's,
        # a prune's chunk), so that one never commits half of the other.
        self.transaction = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Store:
        connection = await aiosqlite.connect(str(path))
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA synchronous=FULL")
        await connection.execute("PRAGMA busy_timeout=5000")
        store = cls(connection)
        await store._migrate()
        return store

    async def close(self) -> None:
        await self._db.close()

    async def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        """Run a statement and close its cursor on the database thread; the rows changed.

        Every write goes through here or _execute_many. A cursor left to the garbage
        collector is finalised on the event loop's thread, where it resets its statement
        while the database thread may be running that same cached statement for another
        caller: sqlite3 then fails with "bad parameter or other API misuse" (concurrent
        updates did, tests/update/test_durability.py)."""
        async with self._db.execute(sql, parameters) as cursor:
            return cursor.rowcount

    async def _changed_one(self, sql: str, parameters: Sequence[Any]) -> bool:
        """Run one statement and commit it: whether it changed a row (an insert that was
        ignored, a delete of a name that is not there: False)."""
        changed = await self._execute(sql, parameters)
        await self._db.commit()
        return changed == 1

    async def _execute_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        async with self._db.executemany(sql, rows) as cursor:
            return cursor.rowcount

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        for target in range(version + 1, SCHEMA_VERSION + 1):
            async with self._db.executescript(_MIGRATIONS[target]):
                pass
            await self._execute(f"PRAGMA user_version={target}")
        await self._db.commit()

    # -- target states --------------------------------------------------------------

    async def load_states(self) -> list[StoredState]:
        async with self._db.execute("SELECT * FROM target_state") as cursor:
            rows = await cursor.fetchall()
        return [
            StoredState(
                record=r[0],
                type=r[1],
                target=r[2],
                observed=r[3],
                since=r[4],
                successes=r[5],
                failures=r[6],
                pending_until=r[7],
                maintenance=bool(r[8]),
                config_maintenance=bool(r[9]),
                last_ok=None if r[10] is None else bool(r[10]),
                last_reason=r[11],
                last_at=r[12],
                last_latency=r[13],
                value=r[14],
                value_set_at=r[15],
                config_value=r[16],
            )
            for r in rows
        ]

    async def save_states(
        self, states: Iterable[StoredState], *, commit: bool = True, with_value: bool = True
    ) -> None:
        """Upsert target states. ``with_value=False`` (health results) never touches the
        address columns: only an update writes those, so a health write queued before an
        acknowledged update cannot put the old address back."""
        await self._execute_many(
            "INSERT OR REPLACE INTO target_state VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            if with_value
            else "INSERT INTO target_state VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (record, type, target) DO UPDATE SET observed = excluded.observed,"
            " since = excluded.since, successes = excluded.successes, failures = excluded.failures,"
            " pending_until = excluded.pending_until, maintenance = excluded.maintenance,"
            " config_maintenance = excluded.config_maintenance, last_ok = excluded.last_ok,"
            " last_reason = excluded.last_reason, last_at = excluded.last_at,"
            " last_latency = excluded.last_latency",
            # Plain tuples of plain values: sqlite3 binds a tuple subclass or a bool through
            # its slower generic path (~1 µs more a row each, in the writer's thread).
            [
                (*s[:8], int(s.maintenance), int(s.config_maintenance), _bit(s.last_ok), *s[11:])
                for s in states
            ],
        )
        if commit:
            await self._db.commit()

    # -- events and samples ---------------------------------------------------------

    async def add_events(self, events: Sequence[EventRow], *, commit: bool = True) -> None:
        now = time.time()
        await self._execute_many(
            "INSERT INTO event (at, kind, record, target, result, reason, previous, current, actor, detail)"
            " VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    e.at or now,
                    e.kind,
                    e.record,
                    e.target,
                    e.result,
                    e.reason,
                    e.previous,
                    e.current,
                    e.actor,
                    json.dumps(e.detail) if e.detail is not None else None,
                )
                for e in events
            ],
        )
        if commit:
            await self._db.commit()

    async def add_samples(self, samples: Sequence[Sample], *, commit: bool = True) -> None:
        await self._execute_many(
            "INSERT INTO sample VALUES (?,?,?,?,?,?)",
            [(s.at, s.record, s.target, int(s.ok), s.latency, s.state) for s in samples],  # as save_states
        )
        if commit:
            await self._db.commit()

    async def rollback(self) -> None:
        await self._db.rollback()

    async def commit(self) -> None:
        await self._db.commit()

    async def events(
        self,
        *,
        record: str | None = None,
        target: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 200,
        before_id: int | None = None,
    ) -> list[EventRow]:
        """Newest first, filtered."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("record", record), ("target", target), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        if until is not None:
            where.append("at < ?")
            args.append(until)
        if before_id is not None:
            where.append("id < ?")
            args.append(before_id)
        sql = (
            "SELECT id, at, kind, record, target, result, reason, previous, current, actor, detail FROM event"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        async with self._db.execute(sql, args) as cursor:
            rows = await cursor.fetchall()
        return [
            EventRow(
                id=r[0],
                at=r[1],
                kind=r[2],
                record=r[3],
                target=r[4],
                result=r[5],
                reason=r[6],
                previous=r[7],
                current=r[8],
                actor=r[9],
                detail=json.loads(r[10]) if r[10] else None,
            )
            for r in rows
        ]

    async def samples(self, record: str, since: float) -> list[Sample]:
        async with self._db.execute(
            "SELECT at, record, target, ok, latency, state FROM sample"
            " WHERE record = ? AND at >= ? ORDER BY at",
            (record, since),
        ) as cursor:
            rows = await cursor.fetchall()
        return [Sample(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    async def prune(self, before: float, *, chunk: int = PRUNE_CHUNK) -> int:
        """Retention: drop events and samples older than ``before``; the rows removed.

        In statements of at most ``chunk`` rows, each committed on its own, with the event
        loop let run between them: queued writes (the store writer's batch) go in between
        instead of waiting behind one long delete.

        ``sample`` has no index on ``at`` (it would cost every insert, the hot path), so
        ``DELETE ... WHERE at < ?`` scans the whole table. Samples are appended in time
        order instead, so rowid grows with ``at``: a binary search over rowid (a b-tree
        seek per step) finds the first row not older than ``before``, and the rows before
        it go by rowid range. Every delete still says ``at < before``, so a row at or
        after ``before`` is never removed, whatever the order. When the clock stepped back
        (rows out of time order), an old row after that boundary stays until a later prune
        whose boundary has passed it: retention is then approximate, never too eager.
        """
        removed = 0
        while True:  # event has an index on at: oldest first, a chunk at a time
            changed = await self._delete_chunk(
                "DELETE FROM event WHERE id IN (SELECT id FROM event WHERE at < ? ORDER BY at LIMIT ?)",
                (before, chunk),
            )
            removed += changed
            if changed < chunk:
                break
        first, end = await self._sample_boundary(before)
        while first < end:
            last = min(first + chunk, end)
            removed += await self._delete_chunk(
                "DELETE FROM sample WHERE rowid >= ? AND rowid < ? AND at < ?", (first, last, before)
            )
            first = last
        return removed

    async def _delete_chunk(self, sql: str, parameters: Sequence[Any]) -> int:
        """One delete of a prune, committed, outside any batch of the store writer (which
        holds ``transaction`` from its first statement to its commit or rollback); then
        the event loop runs whatever waits."""
        async with self.transaction:
            changed = await self._execute(sql, parameters)
            await self._db.commit()
        await asyncio.sleep(0)
        return changed

    async def _sample_boundary(self, before: float) -> tuple[int, int]:
        """The rowids ``[first, end)`` of the samples a prune at ``before`` looks at: from
        the oldest row to the first one (by a binary search over rowid, assuming time
        order) not older than ``before``."""
        ends = []
        for sql in ("SELECT min(rowid) FROM sample", "SELECT max(rowid) FROM sample"):  # one each: a seek
            async with self._db.execute(sql) as cursor:
                row = await cursor.fetchone()
            if row is None or row[0] is None:
                return 0, 0
            ends.append(int(row[0]))
        first, low, high = ends[0], ends[0], ends[1] + 1
        while low < high:
            middle = (low + high) // 2
            async with self._db.execute(
                "SELECT rowid, at FROM sample WHERE rowid >= ? ORDER BY rowid LIMIT 1", (middle,)
            ) as cursor:
                found = await cursor.fetchone()
            if found is None or found[1] >= before:
                high = middle
            else:
                low = min(int(found[0]) + 1, high)  # a row inserted meanwhile: past max
        return first, low

    # -- zone serials ---------------------------------------------------------------

    async def serials(self) -> dict[str, tuple[int, str]]:
        async with self._db.execute("SELECT zone, serial, digest FROM zone_serial") as cursor:
            rows = await cursor.fetchall()
        return {r[0]: (int(r[1]), r[2]) for r in rows}

    async def save_serials(self, serials: dict[str, tuple[int, str]], *, commit: bool = True) -> None:
        await self._execute_many(
            "INSERT OR REPLACE INTO zone_serial VALUES (?,?,?)",
            [(zone, serial, digest) for zone, (serial, digest) in serials.items()],
        )
        if commit:
            await self._db.commit()

    # -- the IXFR journal -----------------------------------------------------------

    async def journal(self) -> dict[str, list[JournalRow]]:
        """Every zone's journal entries, oldest first."""
        async with self._db.execute(
            "SELECT zone, seq, serial_from, serial_to, data FROM xfr_journal ORDER BY zone, seq"
        ) as cursor:
            rows = await cursor.fetchall()
        result: dict[str, list[JournalRow]] = {}
        for r in rows:
            result.setdefault(r[0], []).append(JournalRow(int(r[1]), int(r[2]), int(r[3]), bytes(r[4])))
        return result

    async def add_journal(self, rows: Sequence[tuple[str, JournalRow]], *, commit: bool = True) -> None:
        await self._execute_many(
            "INSERT OR REPLACE INTO xfr_journal VALUES (?,?,?,?,?)",
            [(zone, r.seq, r.serial_from, r.serial_to, r.data) for zone, r in rows],
        )
        if commit:
            await self._db.commit()

    async def keep_journal(self, first: dict[str, int], *, commit: bool = True) -> None:
        """Drop each zone's entries older than its ``first`` seq kept."""
        await self._execute_many("DELETE FROM xfr_journal WHERE zone = ? AND seq < ?", list(first.items()))
        if commit:
            await self._db.commit()

    # -- credentials ----------------------------------------------------------------
    # Read per request, never cached here: `dynserver credential add/revoke` writes from
    # another process, and the running server must see the change on the next request.

    async def credentials(self) -> list[StoredCredential]:
        async with self._db.execute(f"SELECT {_CREDENTIAL_COLUMNS} FROM credential ORDER BY name") as cursor:
            rows = await cursor.fetchall()
        return [_credential(r) for r in rows]

    async def credential(self, name: str) -> StoredCredential | None:
        async with self._db.execute(
            f"SELECT {_CREDENTIAL_COLUMNS} FROM credential WHERE name = ?", (name,)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _credential(row)

    async def add_credential(self, credential: StoredCredential) -> bool:
        """Insert a new credential; False if the name is taken (nothing is replaced)."""
        return await self._changed_one(
            f"INSERT OR IGNORE INTO credential ({_CREDENTIAL_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
            (
                credential.name,
                credential.salt,
                credential.digest,
                int(credential.admin),
                json.dumps(list(credential.targets)),
                credential.created,
                credential.last_used,
            ),
        )

    async def delete_credential(self, name: str) -> bool:
        return await self._changed_one("DELETE FROM credential WHERE name = ?", (name,))

    async def touch_credentials(self, used: dict[str, float]) -> None:
        await self._execute_many(
            "UPDATE credential SET last_used = ? WHERE name = ? AND (last_used IS NULL OR last_used < ?)",
            [(at, name, at) for name, at in used.items()],
        )
        await self._db.commit()

    # -- ACME challenges ------------------------------------------------------------

    async def challenges(self) -> list[StoredChallenge]:
        async with self._db.execute(
            "SELECT name, value, zone, added, expires, actor FROM acme_challenge ORDER BY name, value"
        ) as cursor:
            rows = await cursor.fetchall()
        return [StoredChallenge(*r) for r in rows]

    async def change_challenges(
        self,
        add: Sequence[StoredChallenge],
        delete: Sequence[tuple[str, str]],
        *,
        commit: bool = True,
    ) -> None:
        """Delete these (name, value) rows, then add (or renew) these."""
        await self._execute_many("DELETE FROM acme_challenge WHERE name = ? AND value = ?", delete)
        await self._execute_many(
            "INSERT OR REPLACE INTO acme_challenge VALUES (?,?,?,?,?,?)", [astuple(c) for c in add]
        )
        if commit:
            await self._db.commit()

    # -- DNSSEC keys (dynserver.dnssec.keystore) ------------------------------------

    async def dnssec_keys(self, zone: str) -> list[tuple[str, str]]:
        """The (key file text, private file text) of each key of a zone (its text form)."""
        async with self._db.execute(
            "SELECT key, private FROM dnssec_key WHERE zone = ? ORDER BY tag, algorithm", (zone,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    async def save_dnssec_key(self, zone: str, tag: int, algorithm: int, key: str, private: str) -> None:
        """Add or replace one key (its times changed), committed at once."""
        await self._execute(
            "INSERT OR REPLACE INTO dnssec_key VALUES (?,?,?,?,?)", (zone, tag, algorithm, key, private)
        )
        await self._db.commit()

    async def delete_dnssec_key(self, zone: str, tag: int, algorithm: int) -> None:
        await self._execute(
            "DELETE FROM dnssec_key WHERE zone = ? AND tag = ? AND algorithm = ?", (zone, tag, algorithm)
        )
        await self._db.commit()

    # -- agents ---------------------------------------------------------------------
    # Written by `dynserver agent add/remove` from another process: the hub re-reads them
    # when data_version says another connection committed.

    async def agents(self) -> list[StoredAgent]:
        async with self._db.execute(f"SELECT {_AGENT_COLUMNS} FROM agent ORDER BY name") as cursor:
            rows = await cursor.fetchall()
        return [_agent(r) for r in rows]

    async def add_agent(self, agent: StoredAgent) -> bool:
        """Insert a new agent; False if the name is taken (nothing is replaced)."""
        # The columns are StoredAgent's fields, in order.
        return await self._changed_one(
            f"INSERT OR IGNORE INTO agent ({_AGENT_COLUMNS}) VALUES (?,?,?,?,?,?,?)", astuple(agent)
        )

    async def delete_agent(self, name: str) -> bool:
        return await self._changed_one("DELETE FROM agent WHERE name = ?", (name,))

    # -- push tokens ------------------------------------------------------------------
    # Written by `dynserver push add/remove` from another process; read per heartbeat.

    async def push_tokens(self) -> list[StoredPushToken]:
        sql = f"SELECT {_PUSH_COLUMNS} FROM push_token ORDER BY record, type, target"
        async with self._db.execute(sql) as cursor:
            rows = await cursor.fetchall()
        return [StoredPushToken(*row) for row in rows]

    async def push_token(self, digest: bytes) -> StoredPushToken | None:
        sql = f"SELECT {_PUSH_COLUMNS} FROM push_token WHERE digest = ?"
        async with self._db.execute(sql, (digest,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else StoredPushToken(*row)

    async def add_push_token(self, token: StoredPushToken, *, replace: bool = False) -> bool:
        """A target's token; False if it has one already (unless ``replace``: the old one
        stops working in the same commit)."""
        if replace:
            await self._execute(
                "DELETE FROM push_token WHERE record = ? AND type = ? AND target = ?",
                (token.record, token.type, token.target),
            )
        return await self._changed_one(
            f"INSERT OR IGNORE INTO push_token ({_PUSH_COLUMNS}) VALUES (?,?,?,?,?,?)", astuple(token)
        )

    # -- forced states ---------------------------------------------------------------

    async def forced_states(self) -> list[StoredForced]:
        async with self._db.execute(f"SELECT {_FORCED_COLUMNS} FROM forced_state") as cursor:
            rows = await cursor.fetchall()
        return [StoredForced(*row) for row in rows]

    async def save_forced(self, forced: StoredForced) -> None:
        """A target's forced state, committed before it applies (it survives a crash)."""
        await self._changed_one(
            f"INSERT OR REPLACE INTO forced_state ({_FORCED_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
            astuple(forced),
        )

    async def delete_forced(self, record: str, type: str, target: str) -> bool:
        return await self._changed_one(
            "DELETE FROM forced_state WHERE record = ? AND type = ? AND target = ?", (record, type, target)
        )

    async def delete_push_token(self, record: str, type: str, target: str) -> bool:
        return await self._changed_one(
            "DELETE FROM push_token WHERE record = ? AND type = ? AND target = ?", (record, type, target)
        )

    async def touch_push_token(self, digest: bytes, at: float) -> None:
        """When a token last beat: a hint for `push list`, written at most once a minute."""
        await self._changed_one("UPDATE push_token SET last_used = ? WHERE digest = ?", (at, digest))

    async def touch_agents(self, contacts: dict[str, tuple[float, str | None]]) -> None:
        """Each agent's last contact (Unix time) and version; an older time changes nothing."""
        await self._execute_many(
            "UPDATE agent SET last_contact = ?, version = coalesce(?, version) "
            "WHERE name = ? AND (last_contact IS NULL OR last_contact < ?)",
            [(at, version, name, at) for name, (at, version) in contacts.items()],
        )
        await self._db.commit()

    async def data_version(self) -> int:
        """Changes when another connection commits (SQLite's PRAGMA data_version): a cheap
        way to notice `agent remove` without reading the table every second."""
        async with self._db.execute("PRAGMA data_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0


_CREDENTIAL_COLUMNS = "name, salt, digest, admin, targets, created, last_used"
_FORCED_COLUMNS = "record, type, target, state, actor, at, until, reason"
_PUSH_COLUMNS = "digest, record, type, target, created, last_used"
_AGENT_COLUMNS = "name, salt, digest, created, last_contact, version, canary"


def _credential(row: Sequence[Any]) -> StoredCredential:
    return StoredCredential(
        name=row[0],
        salt=bytes(row[1]),
        digest=bytes(row[2]),
        admin=bool(row[3]),
        targets=tuple(json.loads(row[4])),
        created=row[5],
        last_used=row[6],
    )


def _agent(row: Sequence[Any]) -> StoredAgent:
    return StoredAgent(row[0], bytes(row[1]), bytes(row[2]), *row[3:])
