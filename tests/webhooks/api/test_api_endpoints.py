"""``/api/v1`` through the Flask test client, on SQLite and PostgreSQL (DESIGN §4)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from models.batch import Entry, link_numbers, unlink_numbers
from models.db import transaction
from models.links import apply_observation
from models.statemachine import Direction, Observation, Signal, Source, State
from webhooks.api import decode_cursor, encode_cursor
from webhooks.openapi import operations
from webhooks.schemas import Counts

A = "+12025550101"
B = "+12025550102"
C = "+12025550103"


def post_links(
    client: FlaskClient, auth: dict[str, str], numbers: Any, campaign: str = "CMP1", **extra: Any
) -> Any:
    body = {"provider": "plivo", "campaign_id": campaign, "numbers": numbers, **extra}
    return client.post("/api/v1/links", json=body, headers=auth)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    detail: dict[str, Any] = body["error"]
    return detail


# --- auth ----------------------------------------------------------------------------------

PROTECTED = [
    ("GET", "/api/v1/links"),
    ("POST", "/api/v1/links"),
    ("GET", f"/api/v1/links/plivo/{A}"),
    ("DELETE", f"/api/v1/links/plivo/{A}"),
    ("GET", f"/api/v1/links/plivo/{A}/history"),
    ("GET", "/api/v1/campaigns/plivo/CMP1/summary"),
    ("GET", "/api/v1/events"),
    ("POST", "/api/v1/adopt"),
    ("GET", "/api/v1/jobs/1"),
    ("POST", "/api/v1/plan"),
    ("POST", "/api/v1/apply"),
]


def test_every_operation_is_covered_by_the_auth_tests() -> None:
    declared = {(op.method, op.path) for op in operations()}
    assert len(declared) == len(PROTECTED)


@pytest.mark.parametrize(("method", "url"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic dGVzdC1hcGktdG9rZW4="},
        {"Authorization": "Bearer "},
        {"Authorization": "test-api-token-0123456789abcdefghij"},
        {"Authorization": "Bearer test-api-token-0123456789abcdefghij-but-longer"},
        {"Authorization": "Bearer t\u00e9st"},
    ],
)
def test_missing_or_wrong_token_is_401(
    client: FlaskClient, method: str, url: str, headers: dict[str, str]
) -> None:
    response = client.open(url, method=method, headers=headers, json={"x": 1})
    assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_unset_api_token_refuses_everything(
    sqlite_url: str, app_factory: Callable[..., Flask], method: str, url: str
) -> None:
    client = app_factory(sqlite_url, api_token=None).test_client()
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
        assert_error(client.open(url, method=method, headers=headers), 401, "unauthorized")
    # A blank API_TOKEN no longer means "closed": the web process refuses to start
    # (tests/webhooks/web/test_web_settings.py).


def test_scheme_is_case_insensitive(client: FlaskClient) -> None:
    response = client.get(
        "/api/v1/links", headers={"Authorization": "bearer test-api-token-0123456789abcdefghij"}
    )
    assert response.status_code == 200


def test_openapi_is_public(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json()["openapi"].startswith("3.")


# --- POST /links ---------------------------------------------------------------------------


def test_post_links_answers_one_result_per_number_in_input_order(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    response = post_links(client, auth, [A, "not a number", "(202) 555-0102", A, "+4420794600"])
    assert response.status_code == 202
    results = response.get_json()["results"]
    assert [r["accepted"] for r in results] == [True, False, True, False, False]
    assert results[0] == {"number": A, "accepted": True, "reason": "link requested"}
    assert results[1]["number"] == "not a number" and "not a phone number" in results[1]["reason"]
    assert results[2]["number"] == B
    assert "duplicate" in results[3]["reason"]
    assert "not a US number" in results[4]["reason"] or "valid" in results[4]["reason"]
    for r in results:
        assert set(r) == {"number", "accepted", "reason"}


def test_post_links_is_idempotent(client: FlaskClient, auth: dict[str, str]) -> None:
    assert post_links(client, auth, [A]).status_code == 202
    again = post_links(client, auth, [A])
    assert again.status_code == 202
    (result,) = again.get_json()["results"]
    assert result["accepted"] is True
    assert result["reason"] == "already LINK_REQUESTED"
    history = client.get(f"/api/v1/links/plivo/{A}/history", headers=auth).get_json()["items"]
    assert [(h["generation"], h["to_state"]) for h in history] == [(1, "LINK_REQUESTED")]
    link = client.get(f"/api/v1/links/plivo/{A}", headers=auth).get_json()
    assert link["generation"] == 1


def test_post_links_to_another_campaign_starts_a_new_generation(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    post_links(client, auth, [A], campaign="CMP1")
    (result,) = post_links(client, auth, [A], campaign="CMP2").get_json()["results"]
    assert result["accepted"] is True and "CMP1" in result["reason"]
    link = client.get(f"/api/v1/links/plivo/{A}", headers=auth).get_json()
    assert (link["campaign_id"], link["generation"], link["state"]) == (
        "CMP2",
        2,
        "LINK_REQUESTED",
    )


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"provider": "twilio", "campaign_id": "C", "numbers": [A]}, "provider"),
        ({"campaign_id": "C", "numbers": [A]}, "provider"),
        ({"provider": "plivo", "campaign_id": "bad id!", "numbers": [A]}, "campaign_id"),
        ({"provider": "plivo", "campaign_id": "", "numbers": [A]}, "campaign_id"),
        ({"provider": "plivo", "campaign_id": "C" * 65, "numbers": [A]}, "campaign_id"),
        ({"provider": "plivo", "campaign_id": 7, "numbers": [A]}, "campaign_id"),
        ({"provider": "plivo", "campaign_id": "C", "numbers": []}, "numbers"),
        ({"provider": "plivo", "campaign_id": "C", "numbers": A}, "numbers"),
        ({"provider": "plivo", "campaign_id": "C", "numbers": [12025550101]}, "numbers"),
        ({"provider": "plivo", "campaign_id": "C", "numbers": [None]}, "numbers"),
        ({"provider": "plivo", "campaign_id": "C", "numbers": [A] * 10_001}, "numbers"),
        ({"provider": "plivo", "campaign_id": "C", "numbers": [A], "dry_run": True}, "dry_run"),
        ([A], "body"),
        ("just a string", "body"),
        (None, "body"),
    ],
)
def test_post_links_validation(
    client: FlaskClient, auth: dict[str, str], body: Any, needle: str
) -> None:
    response = client.post(
        "/api/v1/links", data=json.dumps(body), content_type="application/json", headers=auth
    )
    detail = assert_error(response, 400, "invalid_body")
    assert needle in detail["message"]
    assert client.get("/api/v1/links", headers=auth).get_json()["items"] == []


def test_post_links_accepts_ten_thousand_numbers(client: FlaskClient, auth: dict[str, str]) -> None:
    numbers = ["+1202555" + "0100"] * 10_000  # all duplicates: validated, nothing slow to write
    response = post_links(client, auth, numbers)
    assert response.status_code == 202
    assert len(response.get_json()["results"]) == 10_000


def test_post_links_to_an_unconfigured_provider_is_400(
    sqlite_url: str, app_factory: Callable[..., Flask], auth: dict[str, str]
) -> None:
    client = app_factory(sqlite_url, telnyx_api_key=None).test_client()
    body = {"provider": "telnyx", "campaign_id": "C", "numbers": [A]}
    detail = assert_error(client.post("/api/v1/links", json=body, headers=auth), 400)
    assert detail["code"] == "provider_not_configured"
    assert_error(client.get(f"/api/v1/links/telnyx/{A}", headers=auth), 400)


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ("{", "application/json", 400),
        ('{"provider": "plivo",', "application/json", 400),
        (b"\xff\xfe\x00garbage", "application/json", 400),
        ("", "application/json", 400),
        ('{"provider":"plivo"}', "text/plain", 415),
        ("provider=plivo", "application/x-www-form-urlencoded", 415),
        ('{"provider":"plivo"}', None, 415),
    ],
)
def test_malformed_bodies(
    client: FlaskClient,
    auth: dict[str, str],
    data: str | bytes,
    content_type: str | None,
    status: int,
) -> None:
    response = client.post("/api/v1/links", data=data, content_type=content_type, headers=auth)
    assert_error(response, status)


def test_body_too_large_is_413(client: FlaskClient, auth: dict[str, str]) -> None:
    body = json.dumps({"provider": "plivo", "campaign_id": "C", "numbers": ["x" * 300_000]})
    response = client.post(
        "/api/v1/links", data=body, content_type="application/json", headers=auth
    )
    assert_error(response, 413)


# --- DELETE /links/{provider}/{number} -----------------------------------------------------


@pytest.mark.parametrize("spelled", [A, "%2B12025550101", "2025550101", "12025550101"])
def test_delete_unlinks(client: FlaskClient, auth: dict[str, str], spelled: str) -> None:
    post_links(client, auth, [A])
    response = client.delete(f"/api/v1/links/plivo/{spelled}", headers=auth)
    assert response.status_code == 202
    assert response.get_json() == {"number": A, "accepted": True, "reason": "unlink requested"}
    link = client.get(f"/api/v1/links/plivo/{A}", headers=auth).get_json()
    assert (link["state"], link["generation"]) == ("UNLINK_REQUESTED", 2)


def test_delete_twice_changes_nothing_the_second_time(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    post_links(client, auth, [A])
    client.delete(f"/api/v1/links/plivo/{A}", headers=auth)
    again = client.delete(f"/api/v1/links/plivo/{A}", headers=auth)
    assert again.status_code == 202
    assert again.get_json()["reason"] == "already UNLINK_REQUESTED"
    history = client.get(f"/api/v1/links/plivo/{A}/history", headers=auth).get_json()["items"]
    assert len(history) == 2


def test_delete_of_an_unlinked_number_is_202_and_changes_nothing(
    client: FlaskClient, auth: dict[str, str], app_engine: sa.Engine
) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with transaction(app_engine) as s:
        link_numbers(s, "plivo", "CMP1", [Entry(A)], source=Source.API, now=t0)
    with transaction(app_engine) as s:
        unlink_numbers(s, "plivo", [Entry(A)], source=Source.API, now=t0 + timedelta(1))
    with transaction(app_engine) as s:
        apply_observation(s, "plivo", A, poll(Signal.NOT_LINKED, t0 + timedelta(2), 2))
    assert client.get(f"/api/v1/links/plivo/{A}", headers=auth).get_json()["state"] == "UNLINKED"
    response = client.delete(f"/api/v1/links/plivo/{A}", headers=auth)
    assert response.status_code == 202
    assert response.get_json()["reason"] == "already UNLINKED"
    history = client.get(f"/api/v1/links/plivo/{A}/history", headers=auth).get_json()["items"]
    assert len(history) == 3


def test_delete_unknown_number_is_404(client: FlaskClient, auth: dict[str, str]) -> None:
    assert_error(client.delete(f"/api/v1/links/plivo/{A}", headers=auth), 404, "not_found")


@pytest.mark.parametrize("number", ["123", "abc", "+442079460000", "%2B", "+1" + "9" * 40])
def test_delete_invalid_number_is_400(
    client: FlaskClient, auth: dict[str, str], number: str
) -> None:
    assert_error(client.delete(f"/api/v1/links/plivo/{number}", headers=auth), 400)


# --- GET /links ----------------------------------------------------------------------------


def test_list_links_filters(client: FlaskClient, auth: dict[str, str]) -> None:
    post_links(client, auth, [A, B], campaign="CMP1")
    post_links(client, auth, [C], campaign="CMP2")
    client.delete(f"/api/v1/links/plivo/{B}", headers=auth)

    def numbers(query: str) -> list[str]:
        response = client.get(f"/api/v1/links?{query}", headers=auth)
        assert response.status_code == 200
        return [item["number"] for item in response.get_json()["items"]]

    assert numbers("") == [A, B, C]
    assert numbers("campaign_id=CMP1") == [A, B]
    assert numbers("state=UNLINK_REQUESTED") == [B]
    assert numbers("provider=plivo&campaign_id=CMP2") == [C]
    assert numbers("provider=telnyx") == []
    item = client.get("/api/v1/links?campaign_id=CMP2", headers=auth).get_json()["items"][0]
    assert set(item) == {
        "provider",
        "number",
        "campaign_id",
        "state",
        "generation",
        "provider_status",
        "failure_reason",
        "updated_at",
    }
    assert datetime.fromisoformat(item["updated_at"]).tzinfo is not None


def test_list_links_cursor_is_stable_while_rows_are_added(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    first = [f"+1202555{n:04d}" for n in range(110, 115)]
    later = [f"+1202555{n:04d}" for n in range(120, 123)]
    post_links(client, auth, first)
    page = client.get("/api/v1/links?limit=2", headers=auth).get_json()
    seen = [i["number"] for i in page["items"]]
    cursor = page["next_cursor"]
    assert cursor is not None and seen == first[:2]
    post_links(client, auth, later)  # rows added between pages
    while cursor is not None:
        page = client.get(f"/api/v1/links?limit=2&cursor={cursor}", headers=auth).get_json()
        seen += [i["number"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert seen == first + later


def test_list_links_last_page_has_no_cursor(client: FlaskClient, auth: dict[str, str]) -> None:
    post_links(client, auth, [A, B])
    page = client.get("/api/v1/links?limit=2", headers=auth).get_json()
    assert len(page["items"]) == 2 and page["next_cursor"] is None
    assert client.get("/api/v1/links", headers=auth).get_json() == {
        "items": page["items"],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "limit=1e3",
        "limit=" + "9" * 400,
        "state=linked",
        "state=" + "x" * 10_000,
        "cursor=nope",
        "cursor=" + "A" * 65,
        "cursor=djE6LTE",  # "v1:-1"
        "cursor=%00",
        "provider=twilio",
        "provider=%00",
        "campaign_id=bad%20id",
        "campaign_id=%FF%FE",
        "status=FAILED",  # a typo for state: refused, not ignored
    ],
)
def test_list_links_rejects_bad_queries(
    client: FlaskClient, auth: dict[str, str], query: str
) -> None:
    assert_error(client.get(f"/api/v1/links?{query}", headers=auth), 400)


def test_cursor_round_trip() -> None:
    for last_id in (0, 1, 99, 2**62):
        assert decode_cursor(encode_cursor(last_id)) == last_id


# --- GET /links/{provider}/{number} (and ?as_of=) ------------------------------------------


def poll(signal: Signal, at: datetime, generation: int, status: str = "x") -> Observation:
    return Observation(
        source=Source.POLL,
        provider_status=status,
        observed_at=at,
        signal=signal,
        generation=generation,
    )


def test_get_link(client: FlaskClient, auth: dict[str, str]) -> None:
    post_links(client, auth, [A])
    link = client.get(f"/api/v1/links/plivo/{A}", headers=auth).get_json()
    assert link["number"] == A and link["state"] == "LINK_REQUESTED"
    assert link["provider"] == "plivo" and link["campaign_id"] == "CMP1"
    assert link["provider_status"] is None and link["failure_reason"] is None
    assert_error(client.get(f"/api/v1/links/plivo/{B}", headers=auth), 404, "not_found")
    assert_error(client.get(f"/api/v1/links/telnyx/{A}", headers=auth), 404)
    assert_error(client.get("/api/v1/links/plivo/nonsense", headers=auth), 400, "invalid_number")
    assert_error(client.get(f"/api/v1/links/twilio/{A}", headers=auth), 400, "invalid_path")


def test_as_of_follows_a_hand_computed_timeline(
    client: FlaskClient, auth: dict[str, str], app_engine: sa.Engine
) -> None:
    t0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    t1, t2, t3, t4 = (t0 + timedelta(hours=h) for h in (1, 2, 3, 4))
    with transaction(app_engine) as s:
        link_numbers(s, "plivo", "CMP1", [Entry(A)], source=Source.API, now=t0)
    with transaction(app_engine) as s:
        apply_observation(s, "plivo", A, poll(Signal.PENDING, t1, 1, "PROCESSING"), now=t1)
    with transaction(app_engine) as s:
        apply_observation(s, "plivo", A, poll(Signal.LINKED, t2, 1, "COMPLETED"), now=t2)
    with transaction(app_engine) as s:
        unlink_numbers(s, "plivo", [Entry(A)], source=Source.API, now=t3)
    with transaction(app_engine) as s:
        obs = Observation(
            source=Source.POLL,
            provider_status="FAILED",
            observed_at=t4,
            signal=Signal.FAILED,
            direction=Direction.UNLINK,
            generation=2,
            reason="carrier said no",
        )
        apply_observation(s, "plivo", A, obs, now=t4)

    def as_of(at: str) -> Any:
        return client.get(f"/api/v1/links/plivo/{A}", query_string={"as_of": at}, headers=auth)

    assert_error(as_of("2024-03-01T11:59:59Z"), 404, "not_found")
    expected = [
        ("2024-03-01T12:00:00Z", "LINK_REQUESTED", 1, None),
        ("2024-03-01T12:59:59+00:00", "LINK_REQUESTED", 1, None),
        ("2024-03-01T13:00:00Z", "PROCESSING", 1, "PROCESSING"),
        ("2024-03-01T14:30:00+01:00", "PROCESSING", 1, "PROCESSING"),  # 13:30 UTC
        ("2024-03-01T14:00:00Z", "COMPLETED", 1, "COMPLETED"),
        ("2024-03-01T10:30:00-04:30", "UNLINK_REQUESTED", 2, None),  # 15:00 UTC
        ("2024-03-01T16:00:00Z", "UNLINK_FAILED", 2, "FAILED"),
        ("2030-01-01T00:00:00Z", "UNLINK_FAILED", 2, "FAILED"),
    ]
    for at, state, generation, status in expected:
        response = as_of(at)
        assert response.status_code == 200, (at, response.get_json())
        link = response.get_json()
        assert (link["state"], link["generation"], link["provider_status"]) == (
            state,
            generation,
            status,
        ), at
        assert link["campaign_id"] == "CMP1"
    failed = as_of("2024-03-01T16:00:00Z").get_json()
    assert failed["failure_reason"] == "carrier said no"
    assert failed["updated_at"] == "2024-03-01T16:00:00Z"
    current = client.get(f"/api/v1/links/plivo/{A}", headers=auth).get_json()
    assert current == failed


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-01T12:00:00",  # naive: refused, not guessed
        "yesterday",
        "2024-13-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC
        "9999-12-31T23:59:59-23:59",  # after datetime.max in UTC
        "",
    ],
)
def test_as_of_rejects_bad_times(client: FlaskClient, auth: dict[str, str], value: str) -> None:
    post_links(client, auth, [A])
    response = client.get(f"/api/v1/links/plivo/{A}", query_string={"as_of": value}, headers=auth)
    assert_error(response, 400, "invalid_query")


def test_as_of_for_an_unknown_number_is_404(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.get(f"/api/v1/links/plivo/{A}?as_of=2024-01-01T00:00:00Z", headers=auth)
    assert_error(response, 404)


# --- history -------------------------------------------------------------------------------


def test_history_is_oldest_first_and_paginated(client: FlaskClient, auth: dict[str, str]) -> None:
    post_links(client, auth, [A], campaign="CMP1")
    post_links(client, auth, [B], campaign="CMP1")
    post_links(client, auth, [A], campaign="CMP2")
    client.delete(f"/api/v1/links/plivo/{A}", headers=auth)
    page = client.get(f"/api/v1/links/plivo/{A}/history?limit=2", headers=auth).get_json()
    rows = page["items"]
    assert [(r["generation"], r["from_state"], r["to_state"]) for r in rows] == [
        (1, None, "LINK_REQUESTED"),
        (2, "LINK_REQUESTED", "LINK_REQUESTED"),
    ]
    assert set(rows[0]) == {
        "id",
        "provider",
        "number",
        "campaign_id",
        "generation",
        "from_state",
        "to_state",
        "source",
        "provider_status",
        "provider_time",
        "recorded_at",
        "reason",
        "drift",
    }
    assert rows[0]["source"] == "api" and rows[0]["drift"] is False
    post_links(client, auth, [A], campaign="CMP3")  # added between pages
    cursor = page["next_cursor"]
    rest = client.get(
        f"/api/v1/links/plivo/{A}/history?limit=2&cursor={cursor}", headers=auth
    ).get_json()
    assert [r["to_state"] for r in rest["items"]] == ["UNLINK_REQUESTED", "LINK_REQUESTED"]
    assert [r["campaign_id"] for r in rest["items"]] == ["CMP2", "CMP3"]
    assert rest["next_cursor"] is None
    assert all(r["number"] == A for r in rows + rest["items"])


def test_history_of_unknown_number_is_404(client: FlaskClient, auth: dict[str, str]) -> None:
    assert_error(client.get(f"/api/v1/links/plivo/{A}/history", headers=auth), 404)
    assert_error(client.get("/api/v1/links/plivo/12/history", headers=auth), 400)
    assert_error(client.get(f"/api/v1/links/plivo/{A}/history?limit=0", headers=auth), 400)


# --- campaign summary ----------------------------------------------------------------------


def test_counts_model_lists_every_state() -> None:
    assert set(Counts.model_fields) == {s.value for s in State}


def test_campaign_summary(client: FlaskClient, auth: dict[str, str]) -> None:
    post_links(client, auth, [A, B, C], campaign="CMP1")
    post_links(client, auth, ["+12025550104"], campaign="CMP2")
    client.delete(f"/api/v1/links/plivo/{C}", headers=auth)
    body = client.get("/api/v1/campaigns/plivo/CMP1/summary", headers=auth).get_json()
    expected = dict.fromkeys((s.value for s in State), 0)
    expected.update(LINK_REQUESTED=2, UNLINK_REQUESTED=1)
    assert body == {"provider": "plivo", "campaign_id": "CMP1", "counts": expected, "total": 3}
    empty = client.get("/api/v1/campaigns/telnyx/CMP1/summary", headers=auth).get_json()
    assert empty["total"] == 0 and set(empty["counts"].values()) == {0}
    assert len(empty["counts"]) == len(State)
    assert_error(client.get("/api/v1/campaigns/plivo/bad!id/summary", headers=auth), 400)
    assert_error(client.get("/api/v1/campaigns/nope/CMP1/summary", headers=auth), 400)


# --- events --------------------------------------------------------------------------------


def test_events_filters_and_pages(
    client: FlaskClient, auth: dict[str, str], app_engine: sa.Engine
) -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    with transaction(app_engine) as s:
        link_numbers(s, "plivo", "CMP1", [Entry(A), Entry(B)], source=Source.API, now=t0)
    with transaction(app_engine) as s:
        link_numbers(s, "telnyx", "CMP9", [Entry(C)], source=Source.CLI, now=t0 + timedelta(1))
    with transaction(app_engine) as s:
        unlink_numbers(s, "plivo", [Entry(A)], source=Source.API, now=t0 + timedelta(2))

    def numbers(query: str) -> list[tuple[str, str]]:
        response = client.get(f"/api/v1/events?{query}", headers=auth)
        assert response.status_code == 200, response.get_json()
        return [(e["number"], e["to_state"]) for e in response.get_json()["items"]]

    requested = [(A, "LINK_REQUESTED"), (B, "LINK_REQUESTED")]
    assert numbers("") == [*requested, (C, "LINK_REQUESTED"), (A, "UNLINK_REQUESTED")]
    assert numbers("provider=plivo") == [*requested, (A, "UNLINK_REQUESTED")]
    assert numbers("campaign_id=CMP9") == [(C, "LINK_REQUESTED")]
    assert numbers("state=UNLINK_REQUESTED") == [(A, "UNLINK_REQUESTED")]
    assert numbers("since=2024-05-02T00:00:00Z") == [(C, "LINK_REQUESTED"), (A, "UNLINK_REQUESTED")]
    assert numbers("until=2024-05-02T00:00:00%2B00:00") == requested
    assert numbers("since=2024-05-02T00:00:00Z&until=2024-05-03T00:00:00Z") == [
        (C, "LINK_REQUESTED")
    ]
    page = client.get("/api/v1/events?limit=3", headers=auth).get_json()
    assert len(page["items"]) == 3
    with transaction(app_engine) as s:  # added between pages
        link_numbers(s, "plivo", "CMP1", [Entry("+12025550199")], source=Source.API)
    rest = client.get(f"/api/v1/events?limit=3&cursor={page['next_cursor']}", headers=auth)
    assert [e["number"] for e in rest.get_json()["items"]] == [A, "+12025550199"]
    assert rest.get_json()["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        "since=2024-05-01",
        "until=noon",
        "until=0.5",
        "since=1700000000",
        "since=2024-05-01T00:00:00",
        "state=nope",
        "limit=5000",
    ],
)
def test_events_rejects_bad_queries(client: FlaskClient, auth: dict[str, str], query: str) -> None:
    assert_error(client.get(f"/api/v1/events?{query}", headers=auth), 400, "invalid_query")


# --- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("GET", "/api/v1/nope", 404),
        ("GET", "/api/v1/links/plivo", 404),
        ("PUT", "/api/v1/links", 405),
        ("PATCH", f"/api/v1/links/plivo/{A}", 405),
        ("GET", "/api/v1/links/plivo/%FF%FE", 400),
        ("GET", "/api/v1/links/plivo/%2B1202555%2F0101", 404),
        ("GET", "/api/v1/campaigns/plivo/%C0%AF/summary", 400),
        ("GET", "/api/v1/links/%00/%00", 400),
    ],
)
def test_odd_requests_get_the_error_shape(
    client: FlaskClient, auth: dict[str, str], method: str, url: str, status: int
) -> None:
    assert_error(client.open(url, method=method, headers=auth), status)


def test_database_unavailable_is_503(
    app_factory: Callable[..., Flask], auth: dict[str, str]
) -> None:
    client = app_factory("postgresql://postgres@127.0.0.1:1/nowhere").test_client()
    desired = {"links": [{"provider": "plivo", "number": A, "campaign_id": "C"}]}
    bodies = {"/api/v1/adopt": {"provider": "plivo"}, "/api/v1/plan": desired}
    bodies["/api/v1/apply"] = desired
    for method, url in PROTECTED:
        body = bodies.get(url, {"provider": "plivo", "campaign_id": "C", "numbers": [A]})
        response = client.open(url, method=method, headers=auth, json=body)
        assert_error(response, 503)
    assert client.get("/api/v1/openapi.json").status_code == 200
