"""The provider diff, pure: what a provider has + what is wanted -> the fewest changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dynserver.mirror.base import Desired, canonical, canonical_values
from dynserver.mirror.diff import Create, Delete, Existing, Patch, Plan, plan


def want(*values: str, ttl: int = 60, proxied: bool | None = None, comment: str | None = None) -> Desired:
    return Desired("www.example.com", "A", canonical_values("A", values), ttl, proxied, comment)


def test_nothing_there_creates_every_value() -> None:
    assert plan([], want("192.0.2.2", "192.0.2.1")) == Plan(
        creates=(Create("192.0.2.1", 60, False), Create("192.0.2.2", 60, False))
    )


def test_in_place_is_an_empty_plan() -> None:
    existing = [Existing("r1", "192.0.2.1", 60)]
    assert plan(existing, want("192.0.2.1")).operations == 0


def test_a_failover_is_one_patch_of_the_existing_record() -> None:
    existing = [Existing("r1", "192.0.2.1", 60)]
    result = plan(existing, want("192.0.2.2"))
    assert result == Plan(patches=(Patch("r1", "192.0.2.1", (("content", "192.0.2.2"),)),))
    assert result.describe() == ("patch 192.0.2.1 -> 192.0.2.2",)


def test_a_hand_made_record_is_adopted_not_duplicated() -> None:
    """The user created www A 203.0.113.7 with TTL 300 in the dashboard: it becomes ours."""
    existing = [Existing("hand", "203.0.113.7", 300, comment="made by hand")]
    result = plan(existing, want("192.0.2.1"))
    assert result.creates == ()
    assert result.patches == (Patch("hand", "203.0.113.7", (("content", "192.0.2.1"), ("ttl", 60))),)


def test_round_robin_removal_deletes_only_the_failed_member() -> None:
    existing = [Existing(f"r{n}", f"192.0.2.{n}", 60) for n in (1, 2, 3)]
    assert plan(existing, want("192.0.2.1", "192.0.2.3")) == Plan(deletes=(Delete("r2", "192.0.2.2"),))


def test_duplicates_are_removed_and_the_best_copy_kept() -> None:
    existing = [Existing("b", "192.0.2.1", 300), Existing("a", "192.0.2.1", 60)]
    assert plan(existing, want("192.0.2.1")) == Plan(deletes=(Delete("b", "192.0.2.1"),))


def test_ttl_comment_and_proxied_are_patched_only_when_configured() -> None:
    existing = [Existing("r1", "192.0.2.1", 60, proxied=True, comment="theirs")]
    # proxied and comment unset: left as found; a proxied record's TTL is Cloudflare's
    assert plan(existing, want("192.0.2.1", ttl=120)).operations == 0
    result = plan(existing, want("192.0.2.1", ttl=120, proxied=False, comment="dynserver"))
    fields = (("proxied", False), ("ttl", 120), ("comment", "dynserver"))
    assert result.patches == (Patch("r1", "192.0.2.1", fields),)


def test_new_records_take_proxied_and_comment() -> None:
    result = plan([], want("192.0.2.1", proxied=True, comment="c"))
    assert result.creates == (Create("192.0.2.1", 1, True, "c"),)


def test_an_empty_desired_set_deletes_everything() -> None:
    existing = [Existing("r1", "192.0.2.1", 60), Existing("r2", "192.0.2.2", 60)]
    assert plan(existing, want()) == Plan(deletes=(Delete("r1", "192.0.2.1"), Delete("r2", "192.0.2.2")))


def test_cname_values_compare_without_case_or_final_dot() -> None:
    desired = Desired("www.example.com", "CNAME", canonical_values("CNAME", ["Backup.Example.NET."]), 60)
    assert plan([Existing("c", canonical("CNAME", "backup.example.net"), 60)], desired).operations == 0


def test_ipv6_is_compared_in_canonical_form() -> None:
    desired = Desired("www.example.com", "AAAA", canonical_values("AAAA", ["2001:DB8:0:0::1"]), 60)
    assert plan([Existing("r", canonical("AAAA", "2001:db8::1"), 60)], desired).operations == 0


def test_the_plan_does_not_depend_on_the_listing_order() -> None:
    existing = [Existing(f"r{n}", f"192.0.2.{n}", 60) for n in (1, 2, 9)]
    desired = want("192.0.2.5", "192.0.2.6")
    assert plan(existing, desired) == plan(list(reversed(existing)), desired)


_ADDRESSES = st.sampled_from([f"192.0.2.{n}" for n in range(1, 8)])


@given(
    current=st.lists(st.tuples(_ADDRESSES, st.sampled_from([1, 60, 300]), st.booleans()), max_size=6),
    wanted=st.sets(_ADDRESSES, max_size=5),
    ttl=st.sampled_from([60, 300]),
    proxied=st.sampled_from([None, True, False]),
)
def test_applying_the_plan_gives_exactly_the_desired_set(
    current: list[tuple[str, int, bool]], wanted: set[str], ttl: int, proxied: bool | None
) -> None:
    existing = [Existing(f"r{i}", content, t, p) for i, (content, t, p) in enumerate(current)]
    desired = want(*wanted, ttl=ttl, proxied=proxied)
    result = plan(existing, desired)
    records = {e.id: e for e in existing}
    for delete in result.deletes:
        del records[delete.id]
    for patch in result.patches:
        fields = dict(patch.fields)
        old = records[patch.id]
        records[patch.id] = Existing(
            old.id,
            fields.get("content", old.content),
            fields.get("ttl", old.ttl),
            fields.get("proxied", old.proxied),
            old.comment,
        )
    for n, create in enumerate(result.creates):
        records[f"new{n}"] = Existing(f"new{n}", create.content, create.ttl, create.proxied)
    assert sorted(r.content for r in records.values()) == sorted(wanted)
    for record in records.values():
        if proxied is not None:
            assert record.proxied == proxied
        if not record.proxied:
            assert record.ttl == ttl
    # never more operations than records touched: no delete + create where a patch does
    assert len(result.creates) == 0 or len(result.deletes) == 0
    assert plan(list(records.values()), desired).operations == 0, "a second plan finds nothing to do"
