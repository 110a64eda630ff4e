"""US phone numbers in E.164, checked with the ``phonenumbers`` library."""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

#: The United States and its territories in the North American Numbering Plan.
US_REGIONS = frozenset({"US", "PR", "GU", "VI", "AS", "MP"})
CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class InvalidNumber(ValueError):
    """The reason is the message, meant for people."""


@lru_cache(maxsize=65_536)  # a file is checked, then recorded: parse each number once
def to_e164_us(raw: str) -> str:
    """``+15551234567`` for a valid US number given in any common form; else InvalidNumber."""
    text = raw.strip()
    if not text:
        raise InvalidNumber("empty number")
    if len(text) > 32:
        raise InvalidNumber("too long to be a phone number")
    try:
        parsed = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"not a phone number ({exc._msg})") from None
    if parsed.country_code != 1:
        raise InvalidNumber("not a US number")
    # is_valid_number() is this, finding the region again: the matching is the cost.
    region = phonenumbers.region_code_for_number(parsed)
    if region is None or not phonenumbers.is_valid_number_for_region(parsed, region):
        raise InvalidNumber("not a valid US number")
    if region not in US_REGIONS:
        raise InvalidNumber("not a US number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def check_campaign_id(campaign_id: str) -> str:
    if not CAMPAIGN_ID.match(campaign_id or ""):
        raise ValueError("campaign_id must be 1-64 letters, digits, '-' or '_'")
    return campaign_id
