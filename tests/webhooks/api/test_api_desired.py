"""``/api/v1/adopt``, ``/jobs``, ``/plan`` and ``/apply`` through the Flask test client, on
SQLite and PostgreSQL; the adopt job run as the worker's task runs it, against the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from common.settings import Settings
from models.batch import Entry, link_numbers
from models.db import transaction
from models.links import apply_observation
from models.polling import Cadence
from models.statemachine import Observation, Signal, Source
from models.tables import Job, Link, LinkEvent, utcnow
from providers.registry import build_clients
from sandbox import SandboxHandle, start_sandbox
from tests.webhooks.api.conftest import TOKEN
from tests.webhooks.api.test_api_endpoints import assert_error
from worker.adopt import run_adopt_job
from worker.celery_app import ADOPT

A, B, C, D = "+12025550201", "+12025550202", "+12025550203", "+12025550204"


def rows(engine: sa.Engine, table: type) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(table.__table__)))  # type: ignore[attr-defined]


def completed(engine: sa.Engine, provider: str, campaign: str, numbers: list[str]) -> None:
    """Links dlcsync requested and the carrier confirmed."""
    with transaction(engine) as s:
        link_numbers(s, provider, campaign, [Entry(n) for n in numbers], source=Source.API)
        for n in numbers:
            obs = Observation(Source.POLL, "ASSIGNED", utcnow(), Signal.LINKED, generation=1)
            apply_observation(s, provider, n, obs)


def declared(*links: tuple[str, str, str], prune: bool = False) -> dict[str, Any]:
    return {
        "links": [{"provider": p, "number": n, "campaign_id": c} for p, n, c in links],
        "prune": prune,
    }


# --- plan and apply --------------------------------------------------------------------------


@pytest.fixture
def held(app_engine: sa.Engine) -> sa.Engine:
    """A on CMP1 and B on CMP1 (Plivo), C on CMP2 (Telnyx): all linked."""
    completed(app_engine, "plivo", "CMP1", [A, B])
    completed(app_engine, "telnyx", "CMP2", [C])
    return app_engine


def test_plan_groups_the_changes_and_records_nothing(
    client: FlaskClient, auth: dict[str, str], held: sa.Engine
) -> None:
    before = len(rows(held, LinkEvent))
    body = declared(("plivo", A, "CMP1"), ("plivo", B, "CMP9"), ("plivo", D, "CMP1"), prune=True)
    response = client.post("/api/v1/plan", json=body, headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    plan = response.get_json()
    assert [(e["number"], e["campaign_id"], e["index"]) for e in plan["unchanged"]] == [
        (A, "CMP1", 0)
    ]
    assert [(e["number"], e["from_campaign_id"], e["campaign_id"]) for e in plan["move"]] == [
        (B, "CMP1", "CMP9")
    ]
    assert [(e["number"], e["campaign_id"]) for e in plan["link"]] == [(D, "CMP1")]
    # C is on Telnyx, a provider the links do not name: pruning leaves it alone.
    assert plan["unlink"] == []
    assert plan["counts"] == {"link": 1, "move": 1, "unlink": 0, "unchanged": 1}
    groups = ("link", "move", "unlink", "unchanged")
    assert {
        (c["provider"], c["campaign_id"]): tuple(c[g] for g in groups) for c in plan["per_campaign"]
    } == {("plivo", "CMP1"): (1, 0, 0, 1), ("plivo", "CMP9"): (0, 1, 0, 0)}
    assert plan["prune"] is True
    assert len(rows(held, LinkEvent)) == before


def test_apply_records_the_plan_once_and_again_changes_nothing(
    client: FlaskClient, auth: dict[str, str], held: sa.Engine
) -> None:
    body = declared(("telnyx", D, "CMP2"), ("plivo", B, "CMP9"), prune=True)
    response = client.post("/api/v1/apply", json=body, headers=auth)
    assert response.status_code == 202, response.get_data(as_text=True)
    plan = response.get_json()
    assert plan["counts"] == {"link": 1, "move": 1, "unlink": 2, "unchanged": 0}
    assert {(e["provider"], e["number"]) for e in plan["unlink"]} == {("plivo", A), ("telnyx", C)}
    links = {(r.provider, r.number): r for r in rows(held, Link)}
    assert (links[("plivo", A)].state, links[("telnyx", C)].state) == ("UNLINK_REQUESTED",) * 2
    assert (links[("plivo", B)].campaign_id, links[("plivo", B)].prior_campaign_id) == (
        "CMP9",
        "CMP1",
    )
    assert links[("telnyx", D)].state == "LINK_REQUESTED"
    assert {e.source for e in rows(held, LinkEvent) if e.generation > 1 or e.number == D} == {"api"}

    events = len(rows(held, LinkEvent))
    again = client.post("/api/v1/apply", json=body, headers=auth)
    assert again.status_code == 202
    assert again.get_json()["counts"] == {"link": 0, "move": 0, "unlink": 0, "unchanged": 2}
    assert len(rows(held, LinkEvent)) == events


def test_bad_entries_are_all_named_and_nothing_is_recorded(
    client: FlaskClient, auth: dict[str, str], held: sa.Engine
) -> None:
    before = len(rows(held, LinkEvent))
    body = declared(
        ("plivo", D, "CMP1"),
        ("plivo", "+1 555 0100", "CMP1"),  # not a US number (555-01xx is fictional)
        ("telnyx", "12345", "CMP2"),
        ("plivo", D, "CMP7"),  # the same number on another campaign
        prune=True,
    )
    for path in ("/api/v1/plan", "/api/v1/apply"):
        error = assert_error(client.post(path, json=body, headers=auth), 400, "invalid_links")
        message = error["message"]
        assert message.startswith("3 bad link(s)")
        assert "links[1]" in message and "links[2]" in message
        assert "links[3]" in message and "links[0] differently" in message
        assert "links[0] (" not in message
    assert len(rows(held, LinkEvent)) == before


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"links": []}, "links"),
        ({"links": [{"provider": "sinch", "number": A, "campaign_id": "C1"}]}, "provider"),
        ({"links": [{"provider": "plivo", "number": A, "campaign_id": "a b"}]}, "campaign_id"),
        ({"links": [{"provider": "plivo", "number": A}]}, "campaign_id"),
        ({"links": [{"provider": "plivo", "number": A, "campaign_id": "C1"}], "prune": 3}, "prune"),
        ({"links": "all of them"}, "links"),
        ({"numbers": [A]}, "numbers"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field(
    client: FlaskClient, auth: dict[str, str], body: dict[str, Any], where: str
) -> None:
    for path in ("/api/v1/plan", "/api/v1/apply"):
        error = assert_error(client.post(path, json=body, headers=auth), 400, "invalid_body")
        assert where in error["message"]


def test_a_provider_not_configured_is_400(
    db_url: str, app_factory: Callable[..., Flask], auth: dict[str, str]
) -> None:
    client = app_factory(db_url, telnyx_api_key=None).test_client()
    body = declared(("plivo", A, "CMP1"), ("telnyx", B, "CMP2"))
    for path in ("/api/v1/plan", "/api/v1/apply", "/api/v1/adopt"):
        payload = body if path != "/api/v1/adopt" else {"provider": "telnyx"}
        error = assert_error(client.post(path, json=payload, headers=auth), 400)
        assert error["code"] == "provider_not_configured" and "telnyx" in error["message"]


# --- adoption jobs ---------------------------------------------------------------------------


@pytest.fixture
def carrier() -> Iterator[SandboxHandle]:
    handle = start_sandbox(delay=60, callbacks_enabled=False, telnyx_rate_limit=0)
    yield handle
    handle.stop()


@pytest.fixture
def queued(db_url: str, carrier: SandboxHandle) -> Iterator[tuple[FlaskClient, list[tuple]]]:
    """An app on the sandbox's credentials whose enqueue remembers what it was given."""
    sent: list[tuple] = []
    env = {k.lower(): v for k, v in carrier.env().items()}
    app = create(db_url, env, enqueue=lambda *args: sent.append(args))
    yield app.test_client(), sent
    app.extensions["dlcsync"].engine.dispose()


def create(db_url: str, env: dict[str, str], **services: Any) -> Flask:
    from webhooks.app import create_app

    settings = Settings(database_url=db_url, api_token=TOKEN, **env)  # type: ignore[arg-type]
    return create_app(settings, broker_ping=lambda: None, **services)


def test_adopt_answers_a_job_that_the_worker_runs_to_its_summary(
    queued: tuple[FlaskClient, list[tuple]], carrier: SandboxHandle, auth: dict[str, str]
) -> None:
    client, sent = queued
    preload = [{"number": n, "campaign_id": "CAMPA"} for n in (A, B, C)]
    r = httpx.post(
        f"{carrier.url}/_sandbox/preload", json={"provider": "plivo", "links": preload}, timeout=10
    )
    assert r.status_code == 200, r.text

    response = client.post("/api/v1/adopt", json={"provider": "plivo"}, headers=auth)
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["job_id"]
    assert sent == [(ADOPT, job_id)]
    job = client.get(f"/api/v1/jobs/{job_id}", headers=auth).get_json()
    assert (job["state"], job["kind"], job["summary"]) == ("queued", "adopt", None)
    assert job["params"] == {"provider": "plivo", "campaign_ids": []}

    app = client.application
    engine: sa.Engine = app.extensions["dlcsync"].engine
    clients = build_clients(app.extensions["dlcsync"].settings)
    run_adopt_job(engine, clients, job_id, Cadence())  # what the dlcsync.adopt task does
    job = client.get(f"/api/v1/jobs/{job_id}", headers=auth).get_json()
    assert (job["state"], job["progress"], job["total"], job["error"]) == ("done", 3, 3, None)
    assert job["summary"]["adopted"] == 3 and job["summary"]["errors"] == 0
    assert {r.number for r in rows(engine, Link)} == {A, B, C}

    again = client.post("/api/v1/adopt", json={"provider": "plivo"}, headers=auth).get_json()
    run_adopt_job(engine, clients, again["job_id"], Cadence())
    job = client.get(f"/api/v1/jobs/{again['job_id']}", headers=auth).get_json()
    assert (job["summary"]["adopted"], job["summary"]["already_known"]) == (0, 3)
    assert len(rows(engine, LinkEvent)) == 3


def test_adopt_names_campaigns_and_a_failed_listing_is_in_the_summary(
    queued: tuple[FlaskClient, list[tuple]], auth: dict[str, str], carrier: SandboxHandle
) -> None:
    client, _ = queued
    body = {"provider": "telnyx", "campaign_ids": ["NOSUCHCAMPAIGN"]}
    job_id = client.post("/api/v1/adopt", json=body, headers=auth).get_json()["job_id"]
    engine: sa.Engine = client.application.extensions["dlcsync"].engine
    clients = build_clients(client.application.extensions["dlcsync"].settings)
    carrier.configure(error_5xx_ratio=1.0)
    run_adopt_job(engine, clients, job_id, Cadence())
    job = client.get(f"/api/v1/jobs/{job_id}", headers=auth).get_json()
    assert job["state"] == "done" and job["params"]["campaign_ids"] == ["NOSUCHCAMPAIGN"]
    assert job["summary"]["errors"] == 1
    assert "NOSUCHCAMPAIGN" in job["summary"]["error_samples"][0]["what"]


def test_adopt_when_the_broker_is_down_is_503_and_the_job_is_failed(
    db_url: str, auth: dict[str, str]
) -> None:
    def down(*_: Any) -> None:
        raise ConnectionError("broker unreachable")

    env = {"plivo_auth_id": "MAXXXXXXXXXXXXXXXXXX", "plivo_auth_token": "t"}
    app = create(db_url, env, enqueue=down)
    try:
        response = app.test_client().post("/api/v1/adopt", json={"provider": "plivo"}, headers=auth)
        assert_error(response, 503, "broker_unavailable")
        (job,) = rows(app.extensions["dlcsync"].engine, Job)
        assert (job.state, job.error) == ("failed", "could not be queued")
    finally:
        app.extensions["dlcsync"].engine.dispose()


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/v1/jobs/999", 404, "not_found"),
        ("/api/v1/jobs/abc", 400, "invalid_path"),
        ("/api/v1/jobs/0", 400, "invalid_path"),
        (f"/api/v1/jobs/{2**64}", 400, "invalid_path"),
    ],
)
def test_unknown_or_malformed_job_ids(
    client: FlaskClient, auth: dict[str, str], url: str, status: int, code: str
) -> None:
    assert_error(client.get(url, headers=auth), status, code)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "provider"),
        ({"provider": "sinch"}, "provider"),
        ({"provider": "plivo", "campaign_ids": ["ok", "not ok"]}, "campaign_ids.1"),
        ({"provider": "plivo", "campaign_ids": "CMP1"}, "campaign_ids"),
        ({"provider": "plivo", "dry_run": True}, "dry_run"),
    ],
)
def test_malformed_adopt_bodies_are_400(
    client: FlaskClient, auth: dict[str, str], body: dict[str, Any], where: str
) -> None:
    error = assert_error(client.post("/api/v1/adopt", json=body, headers=auth), 400, "invalid_body")
    assert where in error["message"]
