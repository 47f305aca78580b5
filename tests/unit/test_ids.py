"""Ids sort in the order they were made, even within one millisecond."""

from __future__ import annotations

from codeforge.domain.ids import IdGenerator, new_id


def test_ids_made_in_a_burst_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_are_version_7_and_carry_their_millisecond() -> None:
    later = IdGenerator()(now_ms=4_102_444_800_000)  # 2100-01-01
    assert later.version == 7
    assert later.int >> 80 == 4_102_444_800_000


def test_a_clock_stepping_back_does_not_break_the_order() -> None:
    generate = IdGenerator()
    first = generate(now_ms=5_000_000_000_000)
    second = generate(now_ms=4_000_000_000_000)
    assert second > first


def test_more_ids_than_the_counter_holds_in_one_millisecond_still_sort() -> None:
    generate = IdGenerator()
    ids = [generate(now_ms=1_000) for _ in range(5000)]
    assert ids == sorted(ids)
