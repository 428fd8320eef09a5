from __future__ import annotations

import pytest

from deelrx_kit.errors import DomainError
from services.identity.domain import passwords
from services.identity.domain.passwords import check_password, is_built_from_email, is_common

EMAIL = "alice.smith+crm@example.com"


def refused(password: str, email: str = EMAIL) -> DomainError:
    with pytest.raises(DomainError) as info:
        check_password(password, email)
    assert info.value.code == "validation_error"
    assert info.value.violations[0].pointer == "/password"
    return info.value


def test_accepts_a_long_unusual_passphrase_unchanged() -> None:
    value = "  Correct horse battery staple  "
    assert check_password(value, EMAIL) == value  # no trimming, no case folding


def test_length_counts_code_points_after_nfkc() -> None:
    # Seven full-width letters are seven code points after NFKC: too short.
    refused("\uff21\uff22\uff23\uff24\uff25\uff26\uff27")
    # Eight emoji are eight code points (but many more UTF-8 bytes): long enough.
    assert check_password("\U0001f600" * 8, EMAIL) == "\U0001f600" * 8
    assert check_password("x" * 7 + "é", EMAIL)  # precomposed: 8 code points
    refused("y" * 257)
    assert len(check_password("z" * 200 + "q" * 56, EMAIL)) == 256


def test_nfkc_form_is_what_gets_hashed() -> None:
    # The ligature "ﬁ" and full-width digits normalize; so does the decomposed é.
    assert check_password("\ufb01ve\uff11\uff12\uff13rivers", EMAIL) == "five123rivers"
    assert check_password("cafe\u0301-latte-42", EMAIL) == "caf\u00e9-latte-42"


def test_common_passwords_are_refused_case_insensitively() -> None:
    for password in ("password", "Password1", "QWERTYUIOP", "iloveyou123", "baseball2024", "1q2w3e4r5t"):
        assert is_common(password), password
        refused(password)
    # Full-width input is normalized before the lookup.
    refused("\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44")


def test_shipped_list_is_large_and_only_holds_usable_lengths() -> None:
    common = passwords.common_passwords()
    assert len(common) > 3000
    assert all(len(p) >= passwords.MIN_LENGTH for p in common)


@pytest.mark.parametrize(
    "password",
    [
        "alice.smith+crm@example.com",
        "ALICE.SMITH@example.com1",
        "alice.smith",
        "alice.smith2024",
        "Alice.Smith!!",
        "123alice.smith",
        "alicesmith99",
        "alice.smith+crm",
        "alice.smith+crm#1",
    ],
)
def test_refuses_passwords_built_from_the_email(password: str) -> None:
    assert is_built_from_email(password, EMAIL)
    refused(password)


@pytest.mark.parametrize("password", ["alice in wonderland 7", "smithsonian-trip", "my example of a password"])
def test_email_words_inside_a_real_passphrase_are_fine(password: str) -> None:
    assert not is_built_from_email(password, EMAIL)
    assert check_password(password, EMAIL)


def test_short_local_parts_do_not_refuse_everything() -> None:
    assert check_password("jo12345678", "jo@example.com")
