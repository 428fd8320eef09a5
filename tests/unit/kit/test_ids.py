from datetime import UTC, datetime, timedelta

import pytest

from deelrx_kit.ids import derived_id, has_prefix, new_id


def test_new_ids_are_prefixed_unique_and_time_sortable() -> None:
    ids = [new_id("usr") for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(has_prefix(i, "usr") for i in ids)
    assert not has_prefix(ids[0], "ses") and not has_prefix("usr_short", "usr")
    with pytest.raises(ValueError):
        new_id("bogus")


def test_derived_ids_agree_for_the_same_inputs_and_sort_by_time() -> None:
    t = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    assert derived_id("alr", t, "brute_force", "user:1") == derived_id("alr", t, "brute_force", "user:1")
    assert derived_id("alr", t, "brute_force", "user:1") != derived_id("alr", t, "brute_force", "user:2")
    # Parts are separated, so ("ab", "c") and ("a", "bc") differ.
    assert derived_id("alr", t, "ab", "c") != derived_id("alr", t, "a", "bc")
    assert derived_id("alr", t, "x") < derived_id("alr", t + timedelta(milliseconds=1), "x")
    assert has_prefix(derived_id("evt", t, "x"), "evt")
