"""Editing the config file (issue 14): every operation on records, targets and monitors,
what stays as written (comments, order, layout: only the lines of what changed differ),
what a bad edit says (key and reason, and nothing written), and how the file is written
(atomically, its mode kept) or why it cannot be.

A crash in the middle of edits is in tests/config/test_edit_crash.py.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from dynserver import config
from dynserver.config import Editor
from dynserver.errors import ConfigError
from tests.dns.zones import DYN
from tests.support import ROOT

APP = "app.dyn.example.test"
TARGETS = 'zones."dyn.example.test".records.app.targets'

# Comments on every kind of line: an edit must keep each one where it is.
COMMENTED = """\
# dynserver, commented everywhere: edits keep every comment where it is.

[server]  # the listeners
dns = ["127.0.0.1:0"]   # any free port
database = ""           # keep nothing

# -- monitors --
[monitors.web]  # the HTTP check
type = "http"   # as Cloudflare names it
port = 18081
interval = 1.0  # seconds
timeout = 0.5

[zones."dyn.example.test"]  # served from its master file
file = "dyn.example.test.zone"

# The application: three servers in failover order.
[zones."dyn.example.test".records.app]
type = "A"        # IPv4
monitor = "web"   # checked by [monitors.web]
ttl = 5
targets = [
  # the preferred one
  { name = "charlie", value = "127.0.0.21", priority = 1 },  # first
  { name = "echo",    value = "127.0.0.22", priority = 2 },  # second
  { name = "bravo",   value = "127.0.0.23", priority = 3 },  # last
]  # end of targets

# A name without checks.
[zones."dyn.example.test".records.plain]
type = "A"
targets = [{ name = "one", value = "192.0.2.1" }]  # one line

# the end
"""

Edit = Callable[[Editor, str], str]


@pytest.fixture
def editor(tmp_path: Path) -> Editor:
    (tmp_path / "dyn.example.test.zone").write_text(DYN)
    path = tmp_path / "dynserver.toml"
    path.write_text(COMMENTED)
    return Editor(path)


def changed(before: str, after: str) -> tuple[list[str], list[str]]:
    """The lines an edit removed and the lines it added."""
    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [line[2:] for line in diff if line[0] == "-"], [line[2:] for line in diff if line[0] == "+"]


# -- load_text --------------------------------------------------------------------------


def test_load_text_is_load_of_the_same_text(editor: Editor) -> None:
    assert config.load_text(COMMENTED, editor.path) == config.load(editor.path)


def test_load_text_names_the_file_line_and_key(editor: Editor) -> None:
    text = COMMENTED.replace("ttl = 5", "ttl = 5\ncolour = 1")
    with pytest.raises(ConfigError) as caught:
        config.load_text(text, editor.path)
    line = text.splitlines().index("colour = 1") + 1
    assert str(caught.value).startswith(
        f'{editor.path}:{line}: zones."dyn.example.test".records.app.colour: '
    )
    assert "unknown key" in str(caught.value)


def test_load_text_says_what_load_says_of_bad_toml(editor: Editor) -> None:
    editor.path.write_text("[server\n")
    with pytest.raises(ConfigError) as from_file:
        config.load(editor.path)
    with pytest.raises(ConfigError) as from_text:
        config.load_text("[server\n", editor.path)
    assert str(from_text.value) == str(from_file.value)


# -- reading -----------------------------------------------------------------------------


def test_read_gives_the_text_and_a_strong_etag(editor: Editor) -> None:
    document = editor.read()
    assert document.text == COMMENTED
    assert document.etag == '"' + hashlib.sha256(COMMENTED.encode()).hexdigest() + '"'
    editor.path.write_text(COMMENTED + "\n")
    assert editor.read().etag != document.etag


def test_definitions_are_the_keys_as_written(editor: Editor) -> None:
    text = editor.read().text
    assert editor.record(text, "APP.dyn.example.test.") == {
        "type": "A",
        "monitor": "web",
        "ttl": 5,
        "targets": [
            {"name": "charlie", "value": "127.0.0.21", "priority": 1},
            {"name": "echo", "value": "127.0.0.22", "priority": 2},
            {"name": "bravo", "value": "127.0.0.23", "priority": 3},
        ],
    }
    assert editor.target(text, APP, "Echo") == {"name": "echo", "value": "127.0.0.22", "priority": 2}
    assert editor.monitor(text, "web") == {"type": "http", "port": 18081, "interval": 1.0, "timeout": 0.5}
    assert editor.record(text, "nothing.dyn.example.test") is None
    assert editor.record(text, "app.elsewhere.test") is None
    assert editor.target(text, APP, "delta") is None
    assert editor.monitor(text, "ssh") is None


# -- every operation: only the lines of what changed differ ------------------------------

OPERATIONS: list[tuple[str, Edit, list[str], list[str]]] = [
    (
        "replace a target",
        lambda e, t: e.put_target(t, APP, "echo", {"value": "127.0.0.22", "priority": 5}),
        ['  { name = "echo",    value = "127.0.0.22", priority = 2 },  # second'],
        ['  { name = "echo", value = "127.0.0.22", priority = 5 },  # second'],
    ),
    (
        "add a target",
        lambda e, t: e.put_target(t, APP, "delta", {"value": "127.0.0.24", "priority": 4, "port": 8080}),
        [],
        ['  { name = "delta", value = "127.0.0.24", priority = 4, port = 8080 },'],
    ),
    (
        "add a target with check overrides to a one-line list",
        lambda e, t: e.put_target(
            t, "plain.dyn.example.test", "two", {"value": "192.0.2.2", "check_address": "10.0.0.2"}
        ),
        ['targets = [{ name = "one", value = "192.0.2.1" }]  # one line'],
        [
            'targets = [{ name = "one", value = "192.0.2.1" }, '
            '{ name = "two", value = "192.0.2.2", check_address = "10.0.0.2" }]  # one line'
        ],
    ),
    (
        "delete a target",
        lambda e, t: e.delete_target(t, APP, "charlie"),
        ['  { name = "charlie", value = "127.0.0.21", priority = 1 },  # first'],
        [],
    ),
    (
        "replace a record's keys",
        lambda e, t: e.put_record(t, APP, {**(e.record(t, APP) or {}), "ttl": 30, "policy": "check-only"}),
        ["ttl = 5"],
        ["ttl = 30", 'policy = "check-only"'],
    ),
    (
        "create a record",
        lambda e, t: e.put_record(
            t,
            "api.dyn.example.test",
            {"monitor": "web", "targets": [{"name": "a", "value": "192.0.2.7"}], "type": "A"},
        ),
        [],
        [
            '[zones."dyn.example.test".records.api]',
            'monitor = "web"',
            'type = "A"',
            "targets = [",
            '  { name = "a", value = "192.0.2.7" },',
            "]",
            "",
        ],
    ),
    (
        "delete a record",
        lambda e, t: e.delete_record(t, "plain.dyn.example.test"),
        [
            "# A name without checks.",
            '[zones."dyn.example.test".records.plain]',
            'type = "A"',
            'targets = [{ name = "one", value = "192.0.2.1" }]  # one line',
            "",
        ],
        [],
    ),
    (
        "replace a monitor's keys",
        lambda e, t: e.put_monitor(t, "web", {**(e.monitor(t, "web") or {}), "interval": 2.0, "path": "/up"}),
        ["interval = 1.0  # seconds"],
        ["interval = 2.0  # seconds", 'path = "/up"'],
    ),
    (
        "create a monitor",
        lambda e, t: e.put_monitor(t, "ssh", {"type": "tcp", "port": 22, "header": {}}),
        [],
        ["", "[monitors.ssh]", 'type = "tcp"', "port = 22", "header = {}"],
    ),
    (
        "delete a monitor no record uses",
        lambda e, t: e.delete_monitor(e.put_monitor(t, "ssh", {"type": "tcp", "port": 22}), "ssh"),
        [],
        [],
    ),
]


@pytest.mark.parametrize(
    ("edit", "removed", "added"), [o[1:] for o in OPERATIONS], ids=[o[0] for o in OPERATIONS]
)
def test_an_edit_changes_only_its_own_lines(
    editor: Editor, edit: Edit, removed: list[str], added: list[str]
) -> None:
    before = editor.read().text
    after = edit(editor, before)
    assert changed(before, after) == (removed, added)
    editor.validate(after)


def test_what_is_put_is_what_is_read_back(editor: Editor) -> None:
    text = editor.read().text
    target = {"name": "delta", "value": "127.0.0.24", "priority": 4, "host": "www.example.test", "path": "/"}
    text = editor.put_target(text, APP, "delta", target)
    assert editor.target(text, APP, "delta") == target
    record = {"type": "AAAA", "ttl": 9, "targets": [{"name": "six", "value": "2001:db8::6"}]}
    text = editor.put_record(text, "v6.dyn.example.test", record)
    assert editor.record(text, "v6.dyn.example.test") == record
    monitor = {"type": "http", "header": {"Host": ["www.example.test"]}, "expected_codes": ["200", "204"]}
    text = editor.put_monitor(text, "api", monitor)
    assert editor.monitor(text, "api") == monitor
    editor.validate(text)


def test_a_null_leaves_the_key_out_and_a_new_name_renames(editor: Editor) -> None:
    text = editor.put_target(
        editor.read().text, APP, "echo", {"name": "foxtrot", "value": "127.0.0.22", "check_address": None}
    )
    assert editor.target(text, APP, "foxtrot") == {"name": "foxtrot", "value": "127.0.0.22"}
    assert editor.target(text, APP, "echo") is None


def test_created_then_deleted_is_the_file_as_it_was(editor: Editor) -> None:
    text = editor.read().text
    record = {"targets": [{"name": "a", "value": "192.0.2.7"}]}
    assert (
        editor.delete_record(editor.put_record(text, "api.dyn.example.test", record), "api.dyn.example.test")
        == text
    )
    assert editor.delete_monitor(editor.put_monitor(text, "ssh", {"type": "tcp", "port": 22}), "ssh") == text


def test_a_first_monitor_goes_before_the_zones(tmp_path: Path) -> None:
    (tmp_path / "dyn.example.test.zone").write_text(DYN)
    path = tmp_path / "dynserver.toml"
    path.write_text(
        '[server]\ndns = ["127.0.0.1:0"]\n\n[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\n'
    )
    editor = Editor(path)
    text = editor.put_monitor(path.read_text(), "web", {"type": "http"})
    assert text == (
        '[server]\ndns = ["127.0.0.1:0"]\n\n[monitors.web]\ntype = "http"\n\n'
        '[zones."dyn.example.test"]\nfile = "dyn.example.test.zone"\n'
    )
    editor.validate(text)


ARRAY_OF_TABLES = """\
[zones."dyn.example.test"]
file = "dyn.example.test.zone"

[zones."dyn.example.test".records.app]
type = "A"

# the preferred one
[[zones."dyn.example.test".records.app.targets]]
name = "a"   # alpha
value = "192.0.2.1"

[[zones."dyn.example.test".records.app.targets]]
name = "b"
value = "192.0.2.2"

[zones."dyn.example.test".records]
"www.eu" = { type = "A", targets = [{ name = "y", value = "192.0.2.8" }] }
"""


@pytest.mark.parametrize(
    ("edit", "removed", "added"),
    [
        (
            lambda e, t: e.put_target(t, APP, "b", {"value": "192.0.2.3", "priority": 2}),
            ['value = "192.0.2.2"'],
            ['value = "192.0.2.3"', "priority = 2"],
        ),
        (
            lambda e, t: e.put_target(t, APP, "c", {"value": "192.0.2.4"}),
            [],
            ['[[zones."dyn.example.test".records.app.targets]]', 'name = "c"', 'value = "192.0.2.4"', ""],
        ),
        (
            lambda e, t: e.delete_target(t, APP, "b"),
            ['[[zones."dyn.example.test".records.app.targets]]', 'name = "b"', 'value = "192.0.2.2"', ""],
            [],
        ),
        (
            lambda e, t: e.put_target(t, "www.eu.dyn.example.test", "z", {"value": "192.0.2.7"}),
            ['"www.eu" = { type = "A", targets = [{ name = "y", value = "192.0.2.8" }] }'],
            [
                '"www.eu" = { type = "A", targets = [{ name = "y", value = "192.0.2.8" }, '
                '{ name = "z", value = "192.0.2.7" }] }'
            ],
        ),
    ],
    ids=["replace a [[target]]", "add a [[target]]", "delete a [[target]]", "add to an inline record"],
)
def test_arrays_of_tables_and_inline_records(
    tmp_path: Path, edit: Edit, removed: list[str], added: list[str]
) -> None:
    (tmp_path / "dyn.example.test.zone").write_text(DYN)
    path = tmp_path / "dynserver.toml"
    path.write_text(ARRAY_OF_TABLES)
    editor = Editor(path)
    after = edit(editor, ARRAY_OF_TABLES)
    assert changed(ARRAY_OF_TABLES, after) == (removed, added)
    editor.validate(after)


# -- bad edits: the key and the reason, and nothing written ------------------------------

BAD: list[tuple[str, Edit, str, str]] = [
    (
        "unknown key",
        lambda e, t: e.put_target(t, APP, "echo", {"value": "127.0.0.22", "colour": "red"}),
        TARGETS,
        "unknown key 'colour'",
    ),
    (
        "wrong type",
        lambda e, t: e.put_record(t, APP, {**(e.record(t, APP) or {}), "ttl": "five"}),
        'zones."dyn.example.test".records.app.ttl',
        "expected a number",
    ),
    (
        "a monitor that does not exist",
        lambda e, t: e.put_record(t, APP, {**(e.record(t, APP) or {}), "monitor": "nope"}),
        'zones."dyn.example.test".records.app.monitor',
        "no monitor named 'nope'",
    ),
    (
        "a duplicate target",
        lambda e, t: e.put_target(t, APP, "echo", {"name": "charlie", "value": "127.0.0.22"}),
        TARGETS,
        "target 'charlie' appears twice",
    ),
    (
        "a monitor still in use",
        lambda e, t: e.delete_monitor(t, "web"),
        'zones."dyn.example.test".records.app.monitor',
        "no monitor named 'web'",
    ),
    (
        "the last target",
        lambda e, t: e.delete_target(t, "plain.dyn.example.test", "one"),
        'zones."dyn.example.test".records.plain.targets',
        "expected a list of targets",
    ),
    (
        "an address of the other family",
        lambda e, t: e.put_target(t, APP, "six", {"value": "2001:db8::6"}),
        TARGETS,
        "is not an IPv4 address",
    ),
    (
        "a null in a list",
        lambda e, t: e.put_monitor(t, "web", {"type": "http", "expected_codes": ["200", None]}),
        "monitors.web.expected_codes",
        "TOML has no null",
    ),
    (
        "a name in no zone",
        lambda e, t: e.put_record(t, "app.elsewhere.test", {"targets": []}),
        "zones",
        "no zone holds app.elsewhere.test",
    ),
    (
        "a name that is not a host name",
        lambda e, t: e.put_record(t, "a\\010b.dyn.example.test", {"targets": []}),
        "name",
        "expected labels of letters, digits",
    ),
    (
        "a record that is not there",
        lambda e, t: e.delete_record(t, "nothing.dyn.example.test"),
        'zones."dyn.example.test".records.nothing',
        "no dynamic record",
    ),
]


@pytest.mark.parametrize(("edit", "key", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_edit_names_key_and_reason_and_writes_nothing(
    editor: Editor, edit: Edit, key: str, reason: str
) -> None:
    before = editor.read()
    with pytest.raises(ConfigError) as caught:
        editor.commit(edit(editor, before.text))
    assert (caught.value.key, caught.value.path) == (key, str(editor.path))
    assert reason in caught.value.message
    assert editor.read() == before
    assert sorted(p.name for p in editor.path.parent.iterdir()) == ["dyn.example.test.zone", "dynserver.toml"]


# -- writing -------------------------------------------------------------------------------


def test_commit_writes_the_text_and_gives_the_config_and_the_etag(editor: Editor) -> None:
    os.chmod(editor.path, 0o640)
    text = editor.put_target(editor.read().text, APP, "echo", {"value": "127.0.0.22", "priority": 5})
    loaded, document = editor.commit(text)
    assert editor.read() == document
    assert document.text == text
    assert loaded == config.load(editor.path)
    assert stat.S_IMODE(editor.path.stat().st_mode) == 0o640
    assert sorted(p.name for p in editor.path.parent.iterdir()) == ["dyn.example.test.zone", "dynserver.toml"]


def test_save_commits_in_a_thread(editor: Editor) -> None:
    text = editor.delete_target(editor.read().text, APP, "bravo")
    loaded, document = asyncio.run(editor.save(text))
    assert [t.name for t in loaded.zones[0].records[0].targets] == ["charlie", "echo"]
    assert editor.read() == document


def test_a_write_removes_temporary_files_a_killed_write_left(editor: Editor) -> None:
    folder = editor.path.parent
    old, fresh = folder / ".dynserver.toml.killed.tmp", folder / ".dynserver.toml.writing.tmp"
    old.write_text("[server")
    fresh.write_text("[server")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    editor.write(COMMENTED)
    assert (old.exists(), fresh.exists()) == (False, True)


def test_a_file_with_crlf_line_ends_keeps_them(editor: Editor) -> None:
    text = COMMENTED.replace("\n", "\r\n")
    text = editor.put_monitor(text, "ssh", {"type": "tcp", "port": 22})
    text = editor.put_target(text, APP, "echo", {"value": "127.0.0.22", "priority": 5})
    assert "\n" not in text.replace("\r\n", "")
    editor.validate(text)


def test_a_linked_file_is_written_through_the_link(editor: Editor, tmp_path: Path) -> None:
    link = tmp_path / "link.toml"
    link.symlink_to(editor.path.name)
    linked = Editor(link)
    assert linked.writable() is None
    linked.write("# new\n" + COMMENTED)
    assert link.is_symlink()
    assert editor.path.read_text() == "# new\n" + COMMENTED


def test_writable(editor: Editor, tmp_path: Path) -> None:
    assert editor.writable() is None
    missing = Editor(tmp_path / "missing.toml")
    assert f"{tmp_path / 'missing.toml'} is not a regular file" in str(missing.writable())
    os.link(editor.path, tmp_path / "other.toml")
    assert "has 2 hard links" in str(editor.writable())
    (tmp_path / "other.toml").unlink()
    if os.geteuid() == 0:
        return  # root may write anything: the permission cases cannot be seen
    os.chmod(editor.path, 0o444)
    assert "is read-only for this process" in str(editor.writable())
    os.chmod(editor.path, 0o644)
    os.chmod(tmp_path, 0o555)
    try:
        reason = str(editor.writable())
    finally:
        os.chmod(tmp_path, 0o755)
    assert f"the folder {tmp_path} is read-only" in reason
    assert "renames it over the config file" in reason


def test_a_bind_mounted_file_is_not_writable(editor: Editor, tmp_path: Path) -> None:
    """A file bind-mounted on its own (docker run -v file:file) cannot be renamed over."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a mount namespace")
    mounted = tmp_path / "mounted.toml"
    mounted.write_text("")
    check = "import sys; from dynserver.config import Editor; print(Editor(sys.argv[1]).writable())"
    source, target, python = (shlex.quote(str(p)) for p in (editor.path, mounted, sys.executable))
    script = f"mount --bind {source} {target} && {python} -c {shlex.quote(check)} {target}"
    private = ["--mount", "--propagation", "private", "sh", "-c", script]
    for namespace in (["unshare", *private], ["unshare", "--user", "--map-root-user", *private]):
        result = subprocess.run(namespace, capture_output=True, text=True, timeout=60, cwd=ROOT)
        if result.returncode == 0:
            break
    else:
        pytest.skip(f"no mount namespace here: {result.stderr.strip()}")
    assert f"the config file {mounted} is a mount point" in result.stdout
    assert editor.writable() is None  # outside the namespace, nothing is mounted there


def test_check_config_accepts_what_the_edits_wrote(editor: Editor) -> None:
    """Every step is committed (validated as a load, then written) and loaded again from
    the file; the command line checks the last."""
    steps: list[Edit] = [op[1] for op in OPERATIONS]
    for edit in steps:
        editor.commit(edit(editor, editor.read().text))
        tomllib.loads(editor.path.read_text())
        config.load(editor.path)
    result = subprocess.run(
        [sys.executable, "-m", "dynserver", "check-config", "--config", str(editor.path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    text = editor.read().text
    for comment in (
        "# any free port",
        "# the preferred one",
        "# end of targets",
        "# the end",
        "# -- monitors --",
    ):
        assert comment in text


def test_a_boolean_key_can_be_added_to_a_table(editor: Editor) -> None:
    # tomlkit unwraps a parsed boolean to a plain bool; the editor must still write it
    # (the API's fuzzing found a 500 here).
    text = editor.read().text
    monitor = {**(editor.monitor(text, "web") or {}), "invert": True}
    text = editor.put_monitor(text, "web", monitor)
    assert editor.monitor(text, "web") == monitor
    assert "invert = true" in text
    editor.validate(text)
