"""Phone numbers in E.164: the one place that turns written numbers into ``+15551234567``.

Three strengths, one shape: :func:`to_e164` checks the shape only (``+`` and 8-15 digits;
what a provider sends us), :func:`to_e164_us` also checks with the ``phonenumbers`` library
that it is a valid US number (what we accept to manage), and :func:`lookup_e164` is for a
person searching (the strict form, else the shape with separators removed, so a number the
library rejects can still be looked up). Provider wire forms (Plivo's digits without ``+``)
live in the provider's module and call these.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

#: The United States and its territories in the North American Numbering Plan.
US_REGIONS = frozenset({"US", "PR", "GU", "VI", "AS", "MP"})
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: ASCII digits only (``\d`` would also take other scripts' digits).
E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_SEPARATORS = re.compile(r"[\s().-]")
#: A North American number written plainly (``+1NPANXXXXXX``, ``1NPANXXXXXX``, ``NPANXXXXXX``):
#: what ``phonenumbers.parse`` would make of it is known, so it is not parsed (half the cost).
_PLAIN_NANP = re.compile(r"(?:\+?1)?([2-9][0-9]{2}[2-9][0-9]{6})")


class InvalidNumber(ValueError):
    """The reason is the message, meant for people."""


def is_e164(number: object) -> bool:
    return isinstance(number, str) and E164.fullmatch(number) is not None


def to_e164(value: object) -> str:
    """E.164 from digits with or without the ``+`` (or an int); the shape only, not whether
    the number is valid. Raises InvalidNumber."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidNumber(f"not a phone number: {str(value)[:40]!r}")
    text = str(value).strip()
    number = text if text.startswith("+") else "+" + text
    if not is_e164(number):
        raise InvalidNumber(f"not a phone number: {text[:40]!r}")
    return number


@lru_cache(maxsize=65_536)  # a file is checked, then recorded: parse each number once
def to_e164_us(raw: str) -> str:
    """``+15551234567`` for a valid US number given in any common form; else InvalidNumber."""
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty number")
    if len(text) > 32:
        raise InvalidNumber("too long to be a phone number")
    plain = _PLAIN_NANP.fullmatch(text)
    if plain is not None:
        parsed = phonenumbers.PhoneNumber(country_code=1, national_number=int(plain[1]))
    else:
        try:
            parsed = phonenumbers.parse(text, "US")
        except phonenumbers.NumberParseException as exc:
            raise InvalidNumber(f"not a phone number ({exc._msg})") from None
    if parsed.country_code != 1:
        raise InvalidNumber("not a US number")
    # is_valid_number() is this, finding the region again: the matching is the cost.
    region = phonenumbers.region_code_for_number(parsed)
    if region is None or not _valid_for_found_region(parsed, region):
        raise InvalidNumber("not a valid US number")
    if region not in US_REGIONS:
        raise InvalidNumber("not a US number")
    return to_e164(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _valid_for_found_region(parsed: phonenumbers.PhoneNumber, region: str) -> bool:
    """``is_valid_number_for_region`` for the region ``region_code_for_number`` found.

    That search already ran the full validation for a region without leading digits (the
    US, first of country code 1): it returns such a region only for a valid number, so
    validating again would double the cost of a file. A region it found by its leading
    digits alone (Puerto Rico: 787, 939) is validated here."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is not None and metadata.leading_digits is None:
        return True
    return bool(phonenumbers.is_valid_number_for_region(parsed, region))


def lookup_e164(raw: str) -> str:
    """E.164 from what a person typed (``(202) 555-0143``, ``12025550143``...) to look a
    number up; the strict form's reason when it is not even number-shaped."""
    try:
        return to_e164_us(raw)
    except InvalidNumber as exc:
        strict = exc
    try:
        return to_e164(_SEPARATORS.sub("", raw))
    except InvalidNumber:
        raise strict from None


def check_campaign_id(campaign_id: str) -> str:
    if not CAMPAIGN_ID.match(campaign_id or ""):
        raise ValueError("campaign_id must be 1-64 letters, digits, '-' or '_'")
    return campaign_id
