"""Adoption: list what the carrier has linked (list endpoints only) and record it.

Used by ``dlcsync adopt`` and by the adopt job behind ``POST /api/v1/adopt``. Listing is the
adapter's (one request per page, never one per number); recording is
:mod:`models.adopt`'s, one transaction per chunk, so a crash part-way is finished by a rerun.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

import sqlalchemy as sa
import structlog
from sqlmodel import Session

from models import jobs
from models.adopt import CHUNK, AdoptSummary, Found, adopt_chunk, linked_not_listed
from models.polling import Cadence
from models.tables import Job
from providers.base import NumberStatus, ProviderClient, ProviderError

log = structlog.get_logger(__name__)

#: (numbers done, numbers listed)
Progress = Callable[[int, int], None]


def list_found(
    client: ProviderClient, campaign_ids: Sequence[str]
) -> tuple[list[Found], list[tuple[str, str]], bool]:
    """(what is linked, listing errors, whether every asked campaign was listed)."""
    statuses: list[NumberStatus] = []
    errors: list[tuple[str, str]] = []
    if not campaign_ids:
        try:
            statuses = client.list_account()
        except ProviderError as exc:
            errors.append(("account", str(exc)))
    for campaign_id in campaign_ids:
        try:
            statuses += client.list_campaign(campaign_id)
        except ProviderError as exc:
            errors.append((f"campaign {campaign_id}", str(exc)))
    found = {
        s.number: Found(
            number=s.number,
            campaign_id=s.campaign_id or "",
            provider_status=s.provider_status,
            signal=s.signal,
            direction=s.direction,
            provider_time=s.provider_time,
        )
        for s in statuses
    }
    return list(found.values()), errors, not errors


def run_adopt(
    engine: sa.Engine,
    client: ProviderClient,
    campaign_ids: Sequence[str] = (),
    *,
    cadence: Cadence,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> AdoptSummary:
    provider = client.name
    found, errors, complete = list_found(client, campaign_ids)
    summary = AdoptSummary(errors=list(errors))
    rng = random.Random()
    if progress:
        progress(0, len(found))
    for start in range(0, len(found), CHUNK):
        chunk = found[start : start + CHUNK]
        with Session(engine, expire_on_commit=False) as session:
            try:
                adopt_chunk(
                    session, provider, chunk, summary, cadence=cadence, dry_run=dry_run, rng=rng
                )
                if dry_run:
                    session.rollback()
                else:
                    session.commit()
            except BaseException:
                session.rollback()
                raise
        if progress:
            progress(start + len(chunk), len(found))
    if complete:
        with Session(engine) as session:
            summary.not_listed = linked_not_listed(
                session, provider, (f.number for f in found), campaign_ids or None
            )
    log.info(
        "adopted",
        provider=provider,
        **{k: v for k, v in summary.as_dict().items() if not k.endswith("samples")},
    )
    return summary


def run_adopt_job(
    engine: sa.Engine, clients: Mapping[str, ProviderClient], job_id: int, cadence: Cadence
) -> None:
    """The adopt job: progress and summary in its ``jobs`` row (a failure is recorded too)."""
    with Session(engine) as session:
        job = session.get(Job, job_id)
    # A redelivered job runs again (adoption is idempotent); a finished one does not.
    if job is None or job.kind != jobs.ADOPT or job.state not in (jobs.QUEUED, jobs.RUNNING):
        return
    provider = str(job.params.get("provider"))
    client = clients.get(provider)
    if client is None:
        jobs.update_job(engine, job_id, state=jobs.FAILED, error=f"{provider} is not configured")
        return
    jobs.update_job(engine, job_id, state=jobs.RUNNING)

    def advance(done: int, total: int) -> None:
        jobs.update_job(engine, job_id, progress=done, total=total)

    try:
        summary = run_adopt(
            engine,
            client,
            [str(c) for c in job.params.get("campaign_ids") or []],
            cadence=cadence,
            progress=advance,
        )
    except Exception as exc:
        jobs.update_job(engine, job_id, state=jobs.FAILED, error=str(exc)[:2000])
        raise
    jobs.update_job(engine, job_id, state=jobs.DONE, summary=summary.as_dict())
