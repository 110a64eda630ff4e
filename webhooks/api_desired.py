"""``/api/v1`` operations for starting from the carrier's truth and keeping a declared state.

``POST /adopt`` records a queued job (:mod:`models.jobs`) and enqueues its id by name; the
worker's ``dlcsync.adopt`` task runs the adoption of ``dlcsync adopt`` and keeps the job's
progress and summary, which ``GET /jobs/{id}`` reads. ``POST /plan`` and ``POST /apply`` take
the declared links of a desired-state file as JSON and answer :func:`models.desired.make_plan`'s
plan; ``apply`` records it in the same transaction (the worker sends the requests, so 202).
Any bad entry (not a US number, one number declared on two campaigns) answers 400 naming
every such entry, and nothing is recorded.
"""

from __future__ import annotations

import structlog
from sqlmodel import Session

from models import jobs
from models.db import transaction
from models.desired import BadLine, Desired, Plan, apply_plan, make_plan
from models.links import retry_concurrent
from models.statemachine import Source
from models.tables import Job
from webhooks.api import ApiError, answers, api, bp, configured, path_values, read_session
from webhooks.schemas import (
    KNOWN_PROVIDERS,
    AdoptRequest,
    DesiredState,
    JobCreated,
    JobOut,
    JobPath,
    PlanOut,
)
from webhooks.services import services
from worker.celery_app import ADOPT

log = structlog.get_logger(__name__)

#: Bad entries named one by one in a 400's message; the rest are counted.
MAX_NAMED = 20
BODY_ERRORS = {413: "body larger than 256 KiB", 415: "body is not application/json"}


@bp.post("/adopt", provide_automatic_options=False)
@api.validate(
    resp=answers(202, JobCreated, {**BODY_ERRORS, 503: "database or broker unavailable; retry"}),
    operation_id="adopt",
)
def adopt(json: AdoptRequest) -> tuple[JobCreated, int]:
    """Adopt existing links

    Record what the carrier already has linked (all of the account's campaigns, or those
    named), as `dlcsync adopt` does, in a background job. Answers its id at once; follow it
    with `GET /api/v1/jobs/{job_id}`.
    """
    provider = configured(json.provider)
    engine = services().engine
    params = {"provider": provider, "campaign_ids": list(json.campaign_ids)}
    with transaction(engine) as session:
        job_id = jobs.create_job(session, jobs.ADOPT, params).id
    assert job_id is not None
    try:
        services().enqueue(ADOPT, job_id)
    except Exception as exc:
        log.warning("api: adopt job not queued", job_id=job_id, error=str(exc)[:300])
        jobs.update_job(engine, job_id, state=jobs.FAILED, error="could not be queued")
        raise ApiError(503, "broker_unavailable", "the job could not be queued; retry") from None
    return JobCreated(job_id=job_id), 202


@bp.get("/jobs/<job_id>", provide_automatic_options=False)
@api.validate(resp=answers(200, JobOut, {404: "no such job"}), operation_id="get_job")
def get_job(job_id: str) -> JobOut:
    """Get job

    A background job (an adoption): `queued`, `running` with its progress, then `done` with
    its summary (adopted, already known, drift, errors, linked but not listed) or `failed`
    with why.
    """
    path: JobPath = path_values(JobPath, job_id=job_id)
    with read_session() as session:
        job = session.get(Job, path.job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {path.job_id}")
    return JobOut.of(job)


@bp.post("/plan", provide_automatic_options=False)
@api.validate(resp=answers(200, PlanOut, BODY_ERRORS), operation_id="plan")
def plan(json: DesiredState) -> PlanOut:
    """Plan a desired state

    What `POST /api/v1/apply` would do with these links: the numbers to link, to move to
    another campaign, to unlink (only with `prune`) and those unchanged, with counts per
    provider and campaign. Records nothing.
    """
    with read_session() as session:
        return PlanOut.of(_plan(session, json))


@bp.post("/apply", provide_automatic_options=False)
@api.validate(resp=answers(202, PlanOut, BODY_ERRORS), operation_id="apply")
def apply(json: DesiredState) -> tuple[PlanOut, int]:
    """Apply a desired state

    Make dlcsync hold these links: records the plan's links, moves and (with `prune`)
    unlinks as requests the worker sends, and answers the plan. Applying the same links
    again records nothing.
    """

    def record() -> Plan:
        with transaction(services().engine) as session:
            result = _plan(session, json)
            apply_plan(session, result, source=Source.API)
            return result

    return PlanOut.of(retry_concurrent(record)), 202


def _plan(session: Session, body: DesiredState) -> Plan:
    for provider in sorted({item.provider for item in body.links}):
        configured(provider)
    lines = [
        Desired(item.provider, item.number, item.campaign_id, line=index)
        for index, item in enumerate(body.links)
    ]
    result = make_plan(
        session,
        lines,
        providers=KNOWN_PROVIDERS,
        prune=body.prune,
        label=lambda index: f"links[{index}]",
    )
    if result.bad:
        raise ApiError(400, "invalid_links", _named(result.bad, body))
    return result


def _named(bad: list[BadLine], body: DesiredState) -> str:
    """Every bad entry up to :data:`MAX_NAMED`, by its index in ``links``, with why."""
    parts = []
    for entry in bad[:MAX_NAMED]:
        index = entry.line or 0
        parts.append(f"links[{index}] ({body.links[index].number[:40]!r}): {entry.reason}")
    more = f"; and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
    return f"{len(bad)} bad link(s), nothing recorded: " + "; ".join(parts) + more
