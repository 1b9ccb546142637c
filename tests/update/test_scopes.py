"""Scopes, read and matched in one place for credentials and TSIG keys."""

from __future__ import annotations

import pytest

from dynserver.update.scopes import in_scope, ref, split

APP = (b"app", b"dyn", b"example", b"test")
BRAVO = (APP, "A", "bravo")


@pytest.mark.parametrize(
    ("scope", "parts"),
    [
        ("app.dyn.example.test/bravo", ("app.dyn.example.test", "bravo")),
        (" App.Dyn.Example.Test./Bravo ", ("app.dyn.example.test", "bravo")),
        ("app.dyn.example.test/*", ("app.dyn.example.test", "*")),
        ("app.dyn.example.test", None),
        ("/bravo", None),
        ("app.dyn.example.test/", None),
        ("*", None),  # a TSIG key's "*" is not a RECORD/TARGET scope: callers test it first
    ],
)
def test_split(scope: str, parts: tuple[str, str] | None) -> None:
    assert split(scope) == parts


@pytest.mark.parametrize(
    ("scopes", "covered"),
    [
        (["app.dyn.example.test/bravo"], True),
        (["app.dyn.example.test/*"], True),
        (["*"], True),
        (["app.dyn.example.test/charlie"], False),
        (["other.dyn.example.test/*", "other.dyn.example.test/bravo"], False),
        ([], False),
    ],
)
def test_in_scope(scopes: list[str], covered: bool) -> None:
    assert in_scope(scopes, BRAVO) is covered


def test_ref_names_a_target_as_a_scope_does() -> None:
    assert ref(BRAVO) == "app.dyn.example.test/bravo"
    assert split(ref(BRAVO)) == ("app.dyn.example.test", "bravo")
