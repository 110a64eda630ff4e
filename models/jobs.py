"""Background jobs (``POST /api/v1/adopt``): a row per job with its progress and summary.

The API inserts a queued row and enqueues its id; the worker marks it running, moves
``progress`` as it goes and ends it ``done`` (with the summary) or ``failed`` (with why).
Each update is its own short transaction, so ``GET /api/v1/jobs/{id}`` sees progress live.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from models.db import transaction
from models.tables import Job, utcnow

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
#: Job kinds.
ADOPT = "adopt"


def create_job(session: Session, kind: str, params: dict[str, Any]) -> Job:
    job = Job(kind=kind, state=QUEUED, params=params)
    session.add(job)
    session.flush()
    return job


def update_job(engine: sa.Engine, job_id: int, **values: Any) -> None:
    """Set fields of a job in a transaction of its own (progress is visible at once)."""
    with transaction(engine) as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id)
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
