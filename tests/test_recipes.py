"""docs/recipes.md: every recipe's config loads with the real config loader, and says
what the recipe promises (so the page cannot rot as the config grows)."""

from __future__ import annotations

import re
from pathlib import Path

from dynserver import config
from dynserver.model import DynamicRecord, Order, required

PAGE = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
BLOCK = re.compile(r"<!-- recipe: ([a-z-]+) -->\n```toml\n(.*?)```", re.DOTALL)


def recipes() -> dict[str, str]:
    return dict(BLOCK.findall(PAGE.read_text()))


def load(tmp_path: Path, name: str) -> DynamicRecord:
    path = tmp_path / "dynserver.toml"
    path.write_text(recipes()[name])
    loaded = config.load(path)
    (zone,) = loaded.zones
    (record,) = zone.records
    return record


def test_the_page_has_every_recipe() -> None:
    assert set(recipes()) == {"nat", "database", "dialup", "nightly", "weighted"}


def test_nat(tmp_path: Path) -> None:
    home, vps = load(tmp_path, "nat").targets
    assert (home.value, home.check_address, home.port) == ("203.0.113.7", "192.168.1.20", 8080)
    assert (vps.check_address, vps.priority) == (None, 2)


def test_database(tmp_path: Path) -> None:
    record = load(tmp_path, "database")
    assert record.monitors == ("web", "db")
    assert all(required(record, target) == 2 for target in record.targets)


def test_dialup(tmp_path: Path) -> None:
    path = tmp_path / "dynserver.toml"
    path.write_text(recipes()["dialup"])
    loaded = config.load(path)
    (record,) = loaded.zones[0].records
    main, backup = record.targets
    assert (main.value, backup.value, backup.monitors) == ("192.0.2.10", None, ("dialup",))
    dialup = next(m for m in loaded.monitors if m.name == "dialup")
    assert (dialup.type, dialup.heartbeat, dialup.interval * dialup.consecutive_down) == (
        "push",
        "updates",
        900,
    )


def test_nightly(tmp_path: Path) -> None:
    a, b = load(tmp_path, "nightly").targets
    assert len(a.maintenance_windows) == len(b.maintenance_windows) == 1
    assert a.maintenance_windows != b.maintenance_windows


def test_weighted(tmp_path: Path) -> None:
    record = load(tmp_path, "weighted")
    assert record.order is Order.ROTATE
    assert [(t.weight, t.priority) for t in record.targets] == [(2, 1), (1, 1), (1, 1), (1, 2)]
