"""Command line: `dynserver serve`, `dynserver reload`, `dynserver check-config`, `dynserver probe`,
`dynserver credential add|list|revoke`, `dynserver agent add|list|remove|run`,
`dynserver dnssec ds|status|rollover`, `dynserver hash-password`, `dynserver --version`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from dynserver import __version__, config
from dynserver.errors import ConfigError
from dynserver.model import DynamicRecord, Listener, ZoneConfig, monitors_of

# A command imports its own modules inside its function: `dynserver --version`,
# `hash-password` and `check-config` then skip the server (uvicorn, starlette, httpx...).
# Measured with -X importtime (Python 3.11, 2026-12): 250 ms deferred, 660 ms with every
# command's imports at the top (dynserver.app is nearly all of the difference).


def _listener(value: str) -> Listener:
    try:
        return config.parse_listener(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dynserver",
        description="Authoritative DNS for a dynamic zone, with built-in health checks.",
    )
    parser.add_argument("--version", action="version", version=f"dynserver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve DNS (and the web UI) from a config")
    serve.add_argument("--config", required=True, metavar="PATH", help="the TOML config file")
    serve.add_argument(
        "--dns",
        action="append",
        type=_listener,
        metavar="HOST:PORT",
        help="DNS listener (UDP+TCP); repeat for several; overrides [server] dns",
    )
    serve.add_argument(
        "--http", type=_listener, metavar="HOST:PORT", help="web listener; overrides [server] http"
    )
    serve.add_argument(
        "--database", metavar="PATH", help='SQLite file; overrides [server] database ("" keeps nothing)'
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="one line per event: logfmt key=value (text, the default) or a JSON object (json)",
    )

    reload = commands.add_parser(
        "reload", help="make the running server reload its config (it keeps answering meanwhile)"
    )
    _database_options(reload)
    reload.add_argument(
        "--control",
        metavar="PATH",
        help="the server's control socket; else [server] control, or dynserver.control next to the database",
    )

    check = commands.add_parser("check-config", help="validate a config and its master files")
    check.add_argument("--config", required=True, metavar="PATH")

    probe = commands.add_parser("probe", help="run a record's checks once and print each result")
    probe.add_argument("--config", required=True, metavar="PATH")
    probe.add_argument("record", help="the record: app, app.dyn.example.test or app.dyn.example.test.")
    probe.add_argument("target", nargs="?", help="only this target")

    credential = commands.add_parser("credential", help="update credentials: add, list, revoke")
    actions = credential.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a credential; its secret is printed once, last")
    add.add_argument("--name", required=True, help="the credential's name (the dyndns2 user name)")
    scope = add.add_mutually_exclusive_group(required=True)
    scope.add_argument("--admin", action="store_true", help="may do everything")
    scope.add_argument(
        "--target",
        action="extend",
        nargs="+",
        metavar="RECORD/TARGET",
        help="may update this target, e.g. app.dyn.example.test/bravo (RECORD/* for all of the record's); "
        "acme:NAME: may add and delete the ACME challenges of NAME and the names under it",
    )
    listing = actions.add_parser("list", help="names, scopes, created and last used (never secrets)")
    revoke = actions.add_parser("revoke", help="delete a credential: it stops working at once")
    revoke.add_argument("--name", required=True)
    _database_options(add, listing, revoke)
    _agent_parser(commands)
    _dnssec_parser(commands)
    _push_parser(commands)
    hashing = commands.add_parser(
        "hash-password", help="print a hash for [web] admin_password_hash (reads the password from stdin)"
    )
    hashing.set_defaults(config=None)
    return parser


def _database_options(*actions: argparse.ArgumentParser) -> None:
    """--config and --database of the commands that write the server's database."""
    for action in actions:
        action.add_argument("--config", required=True, metavar="PATH")
        action.add_argument(
            "--database", metavar="PATH", help="SQLite file; overrides [server] database (the server's)"
        )


def _push_parser(commands: Any) -> None:
    push = commands.add_parser("push", help="push monitors' tokens (heartbeat URLs): add, list, remove")
    actions = push.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="make a target's token; its heartbeat URL is printed once")
    listing = actions.add_parser(
        "list", help="targets with a token, created and last heartbeat (never tokens)"
    )
    remove = actions.add_parser("remove", help="delete a target's token: its heartbeats are refused at once")
    _database_options(add, listing, remove)
    for action in (add, remove):
        action.add_argument("target", metavar="RECORD/TARGET", help="e.g. backup.dyn.example.test/nightly")
    add.add_argument("--replace", action="store_true", help="a new token for a target that has one")


def _agent_parser(commands: Any) -> None:
    agent = commands.add_parser("agent", help="checks from other locations: add, list, remove, run")
    actions = agent.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register an agent; its token is printed once, last")
    listing = actions.add_parser("list", help="names, last contact and version (never tokens)")
    remove = actions.add_parser("remove", help="delete an agent: its token stops working, its stream is cut")
    _database_options(add, listing, remove)
    for action in (add, remove):
        action.add_argument("--name", required=True, help="the agent's name: its location, e.g. paris-vps")
    add.add_argument(
        "--canary",
        metavar="HOST:PORT",
        help="a TCP address this agent connects to, to tell its own connectivity (else [locations] canary)",
    )
    run = actions.add_parser("run", help="run checks for a server (no config: the server hands them out)")
    run.add_argument(
        "--server", required=True, metavar="URL", help="the server's web URL, e.g. https://dns.example.com"
    )
    run.add_argument(
        "--token-file", required=True, type=Path, metavar="FILE", help="a file holding the token"
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _seconds(text: str) -> float:
    """A duration on the command line: seconds, or a number with s, m, h or d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    scale = units.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if text[-1:].lower() in units else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or 30s/5m/1h/1d, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a duration cannot be negative")
    return value


def _dnssec_parser(commands: Any) -> None:
    dnssec = commands.add_parser("dnssec", help="DNSSEC keys of a signed zone: ds, status, rollover")
    actions = dnssec.add_subparsers(dest="action", required=True, metavar="ACTION")
    ds = actions.add_parser("ds", help="the DS records to give the parent (SHA-256, digest type 2)")
    status = actions.add_parser(
        "status", help="the keys, their states, and the rollover's next step and date"
    )
    roll = actions.add_parser(
        "rollover",
        help="start a key rollover (RFC 7583, double signature), or say the parent has the new DS",
    )
    _database_options(ds, status, roll)
    for action in (ds, status, roll):
        action.add_argument("zone", help="the signed zone, e.g. dyn.example.test")
    roll.add_argument(
        "--ds-published",
        action="store_true",
        help="the parent now serves only the new key's DS: schedule the old key's removal",
    )
    roll.add_argument(
        "--propagation",
        type=_seconds,
        default=300.0,
        metavar="DURATION",
        help="until every nameserver of the zone serves a change (default 5m)",
    )
    roll.add_argument(
        "--parent-ds-ttl",
        type=_seconds,
        default=86400.0,
        metavar="DURATION",
        help="the parent's DS TTL (default 1d)",
    )
    roll.add_argument(
        "--parent-propagation",
        type=_seconds,
        default=3600.0,
        metavar="DURATION",
        help="until every nameserver of the parent serves the DS seen at one (default 1h)",
    )


def _hash_password() -> int:
    """Read the password from a prompt (or a pipe) so it never lands in the shell history."""
    import getpass

    from dynserver.web.password import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("admin password: ")
        if getpass.getpass("again: ") != password:
            print("dynserver: the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("dynserver: expected a password of at least 8 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "hash-password":
        return _hash_password()
    if args.command == "agent" and args.action == "run":  # an agent has no config file
        from dynserver.locations.agent import main as run_agent

        return run_agent(args.server, args.token_file, args.log_level)
    if args.command == "reload":  # the server loads the file (and says what is wrong with it)
        return _reload(args)
    try:
        loaded = config.load(args.config)
    except ConfigError as error:
        print(f"dynserver: config error: {error}", file=sys.stderr)
        return 1
    if args.command == "probe":
        return asyncio.run(_probe(loaded, args.record, args.target))
    if args.command == "credential":
        return _credential(args, loaded)
    if args.command == "agent":
        return _agent(args, loaded)
    if args.command == "dnssec":
        return _dnssec(args, loaded)
    if args.command == "push":
        database = _database(args, loaded, "push tokens")
        return 1 if database is None else asyncio.run(_push_command(args, loaded, database))
    if args.command == "check-config":
        names = ", ".join(_zone_names(loaded))
        print(f"{args.config}: OK ({len(loaded.zones)} zones: {names})")
        return 0
    from dynserver import logs

    logs.configure(args.log_level, args.log_format)
    from dynserver.app import App, Overrides

    # Kept by the server: a reload applies them again to the config it reads.
    overrides = Overrides(dns=tuple(args.dns or ()), http=args.http, database=args.database)
    loaded = overrides.apply(loaded)
    try:
        _run_loop(_serve(App, loaded, overrides))
    except OSError as error:
        print(f"dynserver: cannot listen: {error}", file=sys.stderr)
        return 1
    return 0


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the server on uvloop when it is installed (a C event loop: each wake-up of
    the UDP reader costs a few microseconds less, which is most of a query's cost at
    moderate rates), else on asyncio's own loop. DYNSERVER_LOOP=asyncio forces the latter."""
    if os.environ.get("DYNSERVER_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


async def _serve(app_class: type, loaded: config.Config, overrides: Any) -> None:
    app = app_class(loaded, overrides=overrides)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, app.stopping.set)
    serving = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, _reload_on_hangup(app, serving))

    # The collector is settled once everything is built, just before the DNS listeners
    # are bound and read (app.App.start): not after the first answer, which it would delay.
    await app.serve_forever(on_started=serving.set, settle=_settle_gc)


def _reload_on_hangup(app: Any, serving: asyncio.Event) -> Callable[[], None]:
    """SIGHUP reloads, as it does nsd and gdnsd. Its handler is installed from the start,
    since SIGHUP's default ends the process; one sent while starting reloads once started."""
    reloads: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    async def reload() -> None:
        await serving.wait()
        await app.runtime.reload(actor="signal", via="sighup")

    def hangup() -> None:
        task = asyncio.get_running_loop().create_task(reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    return hangup


def _reload(args: argparse.Namespace) -> int:
    """`dynserver reload`: the running server reloads its config file; exit 0 once the new
    config is live, else 1 with the errors (the server keeps the config it runs)."""
    from dynserver import control

    path: Path | None = Path(args.control) if args.control else None
    if path is None:
        path = control.control_socket_of_file(Path(args.config), args.database)
    if path is None:
        print(
            f'dynserver: {args.config} has no control socket ([server] control = ""): '
            "send the server SIGHUP, or pass --control PATH",
            file=sys.stderr,
        )
        return 1
    try:
        reply = control.request(path, "reload")
    except (FileNotFoundError, ConnectionRefusedError):
        print(f"dynserver: no server answers on {path}: is dynserver running?", file=sys.stderr)
        return 1
    except PermissionError:
        print(f"dynserver: may not connect to {path} (mode 0600): run as the server's user", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"dynserver: no reply on {path}: {error}", file=sys.stderr)
        return 1
    changes = [str(change) for change in reply.get("changes") or []]
    if reply.get("ok") is True:
        count = f"{len(changes)} change{'s' * (len(changes) != 1)}" if changes else "no change"
        print(f"reloaded in {float(reply.get('duration') or 0):.3f} s: {count}")
        for change in changes:
            print(f"  {change}")
        return 0
    print("dynserver: reload refused; the server keeps the config it runs:", file=sys.stderr)
    for refusal in reply.get("errors") or []:
        print(f"  {refusal}", file=sys.stderr)
    return 1


# The collector's youngest generation is scanned after this many net allocations
# (CPython's default: 700). Each check allocates a few hundred short-lived objects
# (a task step, futures, a transport, a response), nearly all freed by reference
# counting before a scan could find them; at 700, thousands of checks a second started
# a scan every few checks (7 % of the CPU at 5,000 targets, py-spy --native).
GC_YOUNG_THRESHOLD = 50_000


def _settle_gc() -> None:
    """Once built, before DNS is served: move everything built to serve (zones, snapshots,
    the config, one task per check) out of the collector's reach, as it lives as long as
    the process (gc.freeze), and scan young objects less often. Cycles are still collected."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def _probe(loaded: config.Config, record_text: str, target_name: str | None) -> int:
    """Cloudflare's "preview monitor": check every target now, print result and reason."""
    from dynserver.dns.names import name_text
    from dynserver.dns.wire import name_to_text
    from dynserver.health.engine import build_check, checked_address
    from dynserver.health.probes import close_clients, run_check

    records = [record for zone in loaded.zones for record in zone.records]
    # Not fqdn: it also strips surrounding space, and " app" names no record today.
    wanted = record_text.rstrip(".").lower()

    def names(record: DynamicRecord) -> tuple[str, str]:
        full, zone = name_text(record.name), name_text(record.zone)
        return full, full[: -len(zone) - 1] if full != zone else "@"

    matches = [r for r in records if wanted in names(r)]
    if not matches:
        known = ", ".join(name_to_text(r.name) for r in records) or "none"
        print(f"dynserver: no dynamic record {record_text!r}; known: {known}", file=sys.stderr)
        return 1
    monitors = {m.name: m for m in loaded.monitors}
    failed = 0
    for record in matches:
        targets = [t for t in record.targets if target_name in (None, t.name)]
        if not targets:
            print(f"dynserver: {name_to_text(record.name)} has no target {target_name!r}", file=sys.stderr)
            return 1
        for target in targets:
            label = f"{name_to_text(record.name)} {record.type} {target.name} ({target.value or 'no value'})"
            address = checked_address(target, target.value)
            named = monitors_of(record, target)
            if not named or address is None:
                print(f"{label}: not checked ({'no monitor' if not named else 'no value yet'})")
                continue
            for monitor in named:  # combined checks: each monitor in turn, named
                if monitors[monitor].type == "push":
                    print(f"{label}: {monitor}: a push monitor: heartbeats come in, nothing to probe")
                    continue
                check = build_check(monitors[monitor], target, address)
                result = await run_check(check)
                latency = f"{result.latency * 1000:.1f} ms" if result.latency is not None else "-"
                which = f" {monitor}:" if len(named) > 1 else ""
                verdict = "UP" if result.ok else "DOWN"
                print(f"{label}:{which} {verdict} {result.reason} [{check.type}, {latency}]")
                failed += not result.ok
    await close_clients()
    return 0 if not failed else 2


def _zone_names(loaded: config.Config) -> list[str]:
    from dynserver.dns.wire import name_to_text

    return [name_to_text(zone.name) for zone in loaded.zones]


def _database(args: argparse.Namespace, loaded: config.Config, what: str) -> Path | None:
    """The database the credential and agent commands write: --database, else the config's."""
    database = loaded.database
    if args.database is not None:
        database = Path(args.database) if args.database else None
    if database is None:
        print(
            'dynserver: this config keeps no database ([server] database = ""); '
            f"{what} are stored in it: set one, or pass --database PATH",
            file=sys.stderr,
        )
    return database


def _credential(args: argparse.Namespace, loaded: config.Config) -> int:
    """`credential add|list|revoke` on the server's database, also while it runs (WAL):
    the server reads credentials per request, so no restart is needed."""
    database = _database(args, loaded, "credentials")
    if database is None:
        return 1
    return asyncio.run(_credential_command(args, loaded, database))


def _agent(args: argparse.Namespace, loaded: config.Config) -> int:
    """`agent add|list|remove` on the server's database, also while it runs: the server
    notices within a second (a removed agent's stream is cut)."""
    database = _database(args, loaded, "agents")
    if database is None:
        return 1
    return asyncio.run(_agent_command(args, loaded, database))


async def _agent_command(args: argparse.Namespace, loaded: config.Config, database: Path) -> int:
    import time

    from dynserver.locations import hub
    from dynserver.store.db import EventRow, Store

    if args.action == "add":
        local = loaded.locations.name if loaded.locations is not None else "local"
        try:
            name = hub.check_agent_name(args.name, local)
            canary = None if args.canary is None else str(config.parse_listener(args.canary))
        except ValueError as error:
            print(f"dynserver: {error}", file=sys.stderr)
            return 1
        stored, token = hub.new_agent(name, canary=canary, now=time.time())
    store = await Store.open(database)
    try:
        if args.action == "add":
            added = await store.add_agent(stored)
            refusal = f"agent {args.name!r} exists; remove it first or choose another name"
            event = EventRow(kind="agent", reason="added", actor="cli", detail={"location": name})
            if not await _recorded(added, refusal, lambda: store.add_events([event])):
                return 1
            print(f"agent {name} added" + (f" (canary {canary})" if canary else ""))
            if loaded.locations is None:
                print("note: this config has no [locations] table; the server takes agents once it has one")
            print("its token, shown this once (only a hash is stored), for `agent run --token-file`:")
            print(token)
        elif args.action == "list":
            rows = [(a.name, _when(a.last_contact), a.version or "-") for a in await store.agents()]
            _print_table(("NAME", "LAST CONTACT", "VERSION"), rows, "no agents")
        else:
            known = ", ".join(a.name for a in await store.agents()) or "none"
            removed = await store.delete_agent(args.name)
            event = EventRow(kind="agent", reason="removed", actor="cli", detail={"location": args.name})
            refusal = f"no agent {args.name!r}; known: {known}"
            if not await _recorded(removed, refusal, lambda: store.add_events([event])):
                return 1
            print(f"agent {args.name} removed: its token no longer works and its stream is cut")
    finally:
        await store.close()
    return 0


async def _credential_command(args: argparse.Namespace, loaded: config.Config, database: Path) -> int:
    import time

    from dynserver.dns.names import name_text
    from dynserver.store.db import EventRow, Store
    from dynserver.update import credentials
    from dynserver.update.targets import Targets

    if args.action == "add":
        targets = Targets.build(r for zone in loaded.zones for r in zone.records)
        try:
            origins = [name_text(zone.name) for zone in loaded.zones]
            scopes = [
                credentials.acme_scope(text, origins)
                if text.startswith(credentials.ACME)
                else targets.check_scope(text)
                for text in args.target or []
            ]
            stored, secret = credentials.create(args.name, admin=args.admin, targets=scopes, now=time.time())
        except ValueError as error:
            print(f"dynserver: {error}", file=sys.stderr)
            return 1
    store = await Store.open(database)
    try:
        if args.action == "add":
            if not await store.add_credential(stored):
                print(
                    f"dynserver: credential {args.name!r} exists; revoke it first or choose another name",
                    file=sys.stderr,
                )
                return 1
            scope = credentials.Principal.of(stored).scope
            event = EventRow(
                kind="credential", reason=f"added: {scope}", actor="cli", detail={"name": args.name}
            )
            await store.add_events([event])
            allowed = "admin (may do everything)" if stored.admin else f"may update {scope}"
            print(f"credential {stored.name} added: {allowed}")
            print("its secret, shown this once (only a hash is stored):")
            print(secret)
        elif args.action == "list":
            rows = [
                (c.name, credentials.Principal.of(c).scope, _when(c.created), _when(c.last_used))
                for c in await store.credentials()
            ]
            _print_table(("NAME", "SCOPE", "CREATED", "LAST USED"), rows, "no credentials")
        else:
            if not await store.delete_credential(args.name):
                known = ", ".join(c.name for c in await store.credentials()) or "none"
                print(f"dynserver: no credential {args.name!r}; known: {known}", file=sys.stderr)
                return 1
            event = EventRow(kind="credential", reason="revoked", actor="cli", detail={"name": args.name})
            await store.add_events([event])
            print(f"credential {args.name} revoked")
    finally:
        await store.close()
    return 0


async def _push_command(args: argparse.Namespace, loaded: config.Config, database: Path) -> int:
    """`push add|list|remove` on the server's database, also while it runs: the server
    reads the token of each heartbeat from it, so no restart is needed."""
    import time

    from dynserver.store.db import EventRow, Store
    from dynserver.update import push
    from dynserver.update.targets import Targets

    targets = Targets.build(r for zone in loaded.zones for r in zone.records)
    monitors = {m.name: m for m in loaded.monitors}
    key = None
    if args.action != "list":
        try:
            ref = targets.check_scope(args.target)
        except ValueError as error:
            print(f"dynserver: {error}", file=sys.stderr)
            return 1
        record_name, _, target_name = ref.partition("/")
        key = targets.by_ref(record_name, target_name)
        if key is None:  # RECORD/*: a token is a target's
            print(
                f"dynserver: {args.target!r}: expected one target, e.g. {record_name}/bravo", file=sys.stderr
            )
            return 1
    store = await Store.open(database)
    try:
        if args.action == "list":
            rows = [
                (f"{t.record}/{t.target}", t.type, _when(t.created), _when(t.last_used))
                for t in await store.push_tokens()
            ]
            _print_table(("TARGET", "TYPE", "CREATED", "LAST HEARTBEAT"), rows, "no push tokens")
            return 0
        assert key is not None
        record = targets.records[record_name]
        hostname = targets.hostname(key)
        if args.action == "remove":
            removed = await store.delete_push_token(record_name, key[1], key[2])
            event = EventRow(
                kind="push", record=record_name + ".", target=key[2], reason="token removed", actor="cli"
            )
            if not await _recorded(
                removed, f"{hostname} has no push token", lambda: store.add_events([event])
            ):
                return 1
            print(f"push token of {hostname} removed: its heartbeats are refused from now on")
            return 0
        target = record.target(key[2])
        pushed = [n for n in monitors_of(record, target) if monitors[n].type == "push"]
        if not pushed:
            print(
                f'dynserver: {hostname} has no push monitor; expected one of type = "push" in its monitor',
                file=sys.stderr,
            )
            return 1
        stored, token = push.create(record_name, key[1], key[2], now=time.time())
        added = await store.add_push_token(stored, replace=args.replace)
        reason = "token replaced" if args.replace else "token added"
        event = EventRow(kind="push", record=record_name + ".", target=key[2], reason=reason, actor="cli")
        refusal = f"{hostname} has a push token; remove it first, or pass --replace"
        if not await _recorded(added, refusal, lambda: store.add_events([event])):
            return 1
        web = f"http://{loaded.server.http}" if loaded.server.http is not None else "https://YOUR-SERVER"
        url = f"{web}/api/v1/push/{token}"
        print(f"push token for {hostname} (monitor {', '.join(pushed)}); only a hash is stored.")
        print("Its heartbeat URL, shown this once (GET or POST; ?status=down&msg=... reports a failure):")
        print(f"  {url}")
        print(f"e.g. in a crontab:  */5 * * * * curl -fsS -m 10 -o /dev/null '{url}'")
        print("the token:")
        print(token)
    finally:
        await store.close()
    return 0


async def _recorded(done: bool, refusal: str, record: Callable[[], Awaitable[None]]) -> bool:
    """A command's event is recorded when it did what it says; else why not, on stderr."""
    if not done:
        print(f"dynserver: {refusal}", file=sys.stderr)
        return False
    await record()
    return True


def _print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], empty: str) -> None:
    """Columns padded to their widest cell (the last one is not padded); ``empty`` if no rows."""
    if not rows:
        print(empty)
        return
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1])


def _when(at: float | None) -> str:
    import datetime

    if at is None:
        return "never"
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _dnssec(args: argparse.Namespace, loaded: config.Config) -> int:
    """`dnssec ds|status|rollover`: read (and for a rollover, write) the zone's keys where
    the server keeps them (its key_directory, else its database, also while it runs),
    then ask a running server to reload so it signs with the new key times at once."""
    from dynserver.dns.names import fqdn, name_text

    zone = next((z for z in loaded.zones if name_text(z.name) == fqdn(args.zone)), None)
    if zone is None:
        print(f"dynserver: no zone {args.zone!r}; served: {', '.join(_zone_names(loaded))}", file=sys.stderr)
        return 1
    if zone.dnssec is None:
        print(
            f"dynserver: zone {name_text(zone.name)} is not signed: set enabled = true in "
            f'[zones."{name_text(zone.name)}".dnssec]',
            file=sys.stderr,
        )
        return 1
    database = None
    if zone.dnssec.key_directory is None:
        database = _database(args, loaded, "this zone's keys")
        if database is None:
            return 1
    return asyncio.run(_dnssec_command(args, loaded, zone, database))


async def _dnssec_command(
    args: argparse.Namespace, loaded: config.Config, zone: ZoneConfig, database: Path | None
) -> int:
    import time

    from dynserver.dns.wire import TYPE_SOA
    from dynserver.dnssec import keys, keystore, rollover
    from dynserver.store.db import Store

    store = await Store.open(database) if database is not None else None
    try:
        found = await keystore.load_keys(zone, store)
        now = time.time()
        if args.action == "ds":
            chosen = [k for k in found if k.for_parent(now)] or [k for k in found if k.signing(now)]
            if not chosen:
                print(
                    "dynserver: this zone has no key yet: the server makes one when it starts",
                    file=sys.stderr,
                )
                return 1
            for key in chosen:
                print(key.ds_text())
            return 0
        times = [_key_times(key) for key in found]
        if args.action == "status":
            _print_dnssec_status(rollover.status(times, now))
            return 0
        timings = rollover.Timings(
            dnskey_ttl=next(r.ttl for r in zone.rrsets if r.name == zone.name and r.rtype == TYPE_SOA),
            max_ttl=_max_ttl(zone),
            propagation=args.propagation,
            parent_ds_ttl=args.parent_ds_ttl,
            parent_propagation=args.parent_propagation,
        )
        by_tag = {key.tag: key for key in found}
        try:
            if args.ds_published:
                changed = rollover.ds_published(times, now, timings)
            else:
                current = rollover.status(times, now).old
                # The new key has the current key's algorithm: an algorithm change needs the
                # new algorithm's signatures everywhere before its key (RFC 6781 4.1.4).
                algorithm = by_tag[current.tag].algorithm if current is not None else keys.ECDSAP256SHA256
                new = keys.generate(zone.name, algorithm, now)
                while new.tag in by_tag:  # RFC 4034 tags collide: a roll needs two distinct ones
                    new = keys.generate(zone.name, algorithm, now)
                by_tag[new.tag] = new
                changed = rollover.start(times, new.tag, now, timings)
        except rollover.RolloverError as error:
            print(f"dynserver: {error}", file=sys.stderr)
            return 1
        for change in changed:
            await keystore.save_key(zone, store, keys.with_times(by_tag[change.tag], **change.times()))
        found = await keystore.load_keys(zone, store)
        _print_dnssec_status(rollover.status([_key_times(key) for key in found], now))
    finally:
        if store is not None:
            await store.close()
    _reload_after_keys(args)
    return 0


def _key_times(key: Any) -> Any:
    from dynserver.dnssec.rollover import KeyTimes

    return KeyTimes(key.tag, **key.times())


def _max_ttl(zone: ZoneConfig) -> float:
    """The largest TTL a validator may cache an RRset of the zone for: static RRsets,
    dynamic records (and their pending TTL), negative answers (SOA MINIMUM)."""
    from dynserver.dns.wire import TYPE_SOA
    from dynserver.dns.zone import soa_fields

    ttls = [r.ttl for r in zone.rrsets]
    ttls += [r.ttl for r in zone.records] + [r.pending_ttl for r in zone.records if r.pending_ttl]
    ttls += [soa_fields(r).minimum for r in zone.rrsets if r.name == zone.name and r.rtype == TYPE_SOA]
    return float(max(ttls, default=0))


def _print_dnssec_status(status: Any) -> None:
    rows = [
        (
            str(key.tag),
            word,
            _when(key.publish),
            _when(key.activate),
            _when(key.sync_publish),
            _when(key.delete),
        )
        for key, word in status.keys
    ]
    _print_table(("TAG", "STATE", "PUBLISH", "ACTIVATE", "CDS FROM", "REMOVE"), rows, "no keys")
    print(f"phase: {status.phase.value}")
    at = f" (at {_when(status.next_at)})" if status.next_at is not None else ""
    print(f"next: {status.next_step}{at}")


def _reload_after_keys(args: argparse.Namespace) -> None:
    """Ask a running server to reload, so it signs with the new key times now (it also
    reads them on its own at the next signing tick)."""
    from dynserver import control

    path = control.control_socket_of_file(Path(args.config), args.database)
    if path is None:
        print("the server applies this at its next signing tick (no control socket to ask it now)")
        return
    try:
        reply = control.request(path, "reload")
    except (OSError, ValueError):
        print("no server answers on its control socket: it applies this when it starts")
        return
    if reply.get("ok") is True:
        print("the running server reloaded: it signs with these keys now")
    else:
        print(f"dynserver: the server refused to reload: {reply.get('errors')}", file=sys.stderr)
