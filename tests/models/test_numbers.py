"""``models.numbers``: the one E.164 normaliser, its strict and lookup forms, and Plivo's wire
form built on it."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.numbers import (
    US_REGIONS,
    InvalidNumber,
    is_e164,
    lookup_e164,
    to_e164,
    to_e164_us,
)
from providers.plivo import e164_to_digits


@pytest.mark.parametrize(
    "bad", ["15551234567", "+0123456789", "+1", "+1555abc4567", "", "+1555123456789012"]
)
def test_e164_to_digits_rejects(bad) -> None:
    with pytest.raises(ValueError):
        e164_to_digits(bad)


@pytest.mark.parametrize(
    ("wire", "e164"),
    [
        ("12025551111", "+12025551111"),
        ("+12025551111", "+12025551111"),
        (12025551111, "+12025551111"),
    ],
)
def test_wire_to_e164(wire, e164) -> None:
    assert to_e164(wire) == e164
    assert e164_to_digits(e164) == "12025551111"


@pytest.mark.parametrize("bad", [None, True, "", "abc", "+", "1202555111१", 1.5, ["12025551111"]])
def test_wire_to_e164_rejects(bad) -> None:
    with pytest.raises(ValueError):
        to_e164(bad)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("+12025551111", True), ("12025551111", False), ("+1202555111१", False), (12025551111, False)],
)
def test_is_e164_takes_only_the_canonical_form(value, ok) -> None:
    assert is_e164(value) is ok


@pytest.mark.parametrize("raw", ["(202) 555-0143", "202.555.0143", "+1 202 555 0143", "2025550143"])
def test_strict_and_lookup_agree_on_valid_us_numbers(raw) -> None:
    assert to_e164_us(raw) == lookup_e164(raw) == "+12025550143"


def test_lookup_finds_numbers_the_strict_form_refuses() -> None:
    # 555-01xx is fictional: not a valid number, yet a provider (or the sandbox) may hold it.
    with pytest.raises(InvalidNumber):
        to_e164_us("+1 (555) 010-0001")
    assert lookup_e164("+1 (555) 010-0001") == "+15550100001"
    assert lookup_e164("1-555-010-0001") == "+15550100001"


def test_lookup_gives_the_strict_reason_for_what_is_not_a_number() -> None:
    with pytest.raises(InvalidNumber) as strict:
        to_e164_us("call me")
    with pytest.raises(InvalidNumber) as lookup:
        lookup_e164("call me")
    assert str(lookup.value) == str(strict.value)


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["", "1", "+1"]),
    npa=st.integers(200, 999),
    nxx=st.integers(200, 999),
    line=st.integers(0, 9999),
)
def test_plain_nanp_numbers_skip_parsing_with_the_same_result(
    prefix: str, npa: int, nxx: int, line: int
) -> None:
    """``+1NPANXXXXXX`` (and ``1…``, bare) is not parsed: same number, same reason, as the
    same digits written with spaces (which the ``phonenumbers`` parser reads)."""
    plain = f"{prefix}{npa}{nxx}{line:04d}"
    spaced = f"{prefix} {npa} {nxx} {line:04d}".strip()

    def outcome(raw: str) -> str:
        try:
            return to_e164_us(raw)
        except InvalidNumber as exc:
            return f"invalid: {exc}"

    assert outcome(plain) == outcome(spaced)


@settings(max_examples=500, deadline=None)
@given(
    npa=st.one_of(st.integers(200, 999), st.sampled_from([787, 939, 671, 340, 684, 670, 876])),
    nxx=st.integers(200, 999),
    line=st.integers(0, 9999),
)
def test_valid_exactly_when_phonenumbers_says_a_valid_us_number(
    npa: int, nxx: int, line: int
) -> None:
    """The region search's own validation is not repeated: same verdicts as the library's
    ``is_valid_number`` and region, for the US, its territories and other NANP countries."""
    raw = f"+1{npa}{nxx}{line:04d}"
    parsed = phonenumbers.parse(raw)
    region = phonenumbers.region_code_for_number(parsed)
    expected = phonenumbers.is_valid_number(parsed) and region in US_REGIONS
    try:
        assert to_e164_us(raw) == raw and expected
    except InvalidNumber:
        assert not expected
