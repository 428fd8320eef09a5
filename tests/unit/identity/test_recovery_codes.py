from __future__ import annotations

from services.identity.domain import recovery_codes


def test_a_set_is_ten_distinct_codes_of_at_least_64_bits() -> None:
    codes = recovery_codes.generate()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert recovery_codes.ENTROPY_BITS >= 64
    for code in codes:
        groups = code.split("-")
        assert [len(g) for g in groups] == [5, 5, 5]
        assert not set(code.replace("-", "")) & set("01OIL")


def test_normalize_accepts_what_people_type_and_refuses_the_rest() -> None:
    code = recovery_codes.generate(1)[0]
    canonical = code.replace("-", "")
    assert recovery_codes.normalize(code) == canonical
    assert recovery_codes.normalize(code.lower().replace("-", " ")) == canonical
    for bad in ("", "ABCDE", canonical + "2", canonical[:-1] + "0", "x" * 1000, canonical[:-1] + "\u0410"):
        assert recovery_codes.normalize(bad) is None


def test_selector_is_keyed() -> None:
    code = recovery_codes.normalize(recovery_codes.generate(1)[0])
    assert code is not None
    a = recovery_codes.selector(b"key-one", code)
    assert a == recovery_codes.selector(b"key-one", code)
    assert a != recovery_codes.selector(b"key-two", code)
    assert len(a) == 16
