"""SIGKILL in the middle of edits never leaves a torn or invalid config file (issue 14).

A child process makes 200 edits (a target's priority, and a target added and removed, so
the file's length changes too), each committed: validated, written to a temporary file,
fsynced and renamed. It is killed at random moments, several times; after each kill the
file parses and loads, and is one of the texts the edits write.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from dynserver import config
from dynserver.config import Editor
from tests.config.test_edit import APP, COMMENTED
from tests.dns.zones import DYN
from tests.support import DEADLINE, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EDITS = 200
KILLS = 6

CHILD = f"""
import sys
from dynserver.config import Editor

editor = Editor(sys.argv[1])
print("ready", flush=True)
for index in range({EDITS}):
    text = editor.read().text
    fields = {{"value": "127.0.0.22", "priority": index % 7 + 1}}
    text = editor.put_target(text, "{APP}", "echo", fields)
    if editor.target(text, "{APP}", "delta") is None:
        text = editor.put_target(text, "{APP}", "delta", {{"value": "127.0.0.24", "priority": 4}})
    else:
        text = editor.delete_target(text, "{APP}", "delta")
    editor.commit(text)
print("done", flush=True)
"""


def possible_texts(path: Path) -> set[str]:
    """Every text the child can leave: the start, and each priority with and without delta
    (echo's line as the editor writes it, once it has been changed)."""
    editor = Editor(path)
    texts = {COMMENTED}
    changed = editor.put_target(COMMENTED, APP, "echo", {"value": "127.0.0.22", "priority": 1})
    for priority in range(1, 8):
        text = editor.put_target(changed, APP, "echo", {"value": "127.0.0.22", "priority": priority})
        texts.add(text)
        texts.add(editor.put_target(text, APP, "delta", {"value": "127.0.0.24", "priority": 4}))
    return texts


def test_sigkill_during_edits_leaves_a_whole_valid_file(tmp_path: Path) -> None:
    (tmp_path / "dyn.example.test.zone").write_text(DYN)
    path = tmp_path / "dynserver.toml"
    path.write_text(COMMENTED)
    expected = possible_texts(path)
    seed = random.randrange(1 << 32)
    chance = random.Random(seed)
    killed_midway = 0
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
            time.sleep(chance.uniform(0.0, 1.0))
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=DEADLINE)
        finally:
            if child.poll() is None:  # pragma: no cover - only when an assertion failed
                child.kill()
                child.wait()
        killed_midway += child.returncode == -signal.SIGKILL
        text = path.read_text()
        assert text in expected, f"seed {seed}: a text no edit writes:\n{text}"
        tomllib.loads(text)
        config.load(path)
    assert killed_midway, f"seed {seed}: every child finished its {EDITS} edits before the kill"
