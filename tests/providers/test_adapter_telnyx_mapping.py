"""Telnyx per-carrier mapping statuses parsed from assignment records (get and list)."""

from __future__ import annotations

import pytest

from providers.telnyx import carrier_mapping
from tests.providers.test_adapter_telnyx_api import (  # noqa: F401 (fixtures)
    CAMPAIGN,
    NUMBER,
    ONE,
    client,
    limiter,
    mock,
    record,
)


def test_get_carries_the_mapping_statuses(client, mock) -> None:  # noqa: F811
    body = record(
        "ASSIGNED",
        tmobileNumberMappingStatus="FAILED",
        nonTmobileNumberMappingStatus="added",
        attNumberMappingStatus="PENDING",
    )
    mock.get(ONE).respond(200, json=body)
    status = client.get(CAMPAIGN, NUMBER)
    assert status.carrier_mapping == (
        ("att", "PENDING"),
        ("non_tmobile", "ADDED"),
        ("tmobile", "FAILED"),
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, None),
        ({"tmobileNumberMappingStatus": None}, None),
        ({"tmobileNumberMappingStatus": 3, "attNumberMappingStatus": " "}, None),
        ({"nonTmobileNumberMappingStatus": "PENDING"}, (("non_tmobile", "PENDING"),)),
        ({"attNumberMappingStatus": "X" * 100}, (("att", "X" * 32),)),
    ],
)
def test_missing_or_odd_fields_are_left_out(fields: dict, expected) -> None:
    assert carrier_mapping(fields) == expected
