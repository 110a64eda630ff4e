"""Dashboard logins kept in the database: server-side sessions and the failed-login throttle.

Both live in the database so that every gunicorn worker (and every host) sees the same
sessions and the same count of failures; neither needs Redis. Both tables stay small: expired
sessions and failures older than the throttle window are deleted whenever a row is added, and
a throttled client's attempts are refused before they are counted, so at most
:data:`MAX_FAILURES` rows exist per client address.

A session's token is random (256 bits) and travels only in the signed cookie; the table holds
its SHA-256, so a database dump opens no session.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from models.tables import DashboardSession, LoginFailure

#: Failed logins allowed per client address within :data:`FAILURE_WINDOW`.
MAX_FAILURES = 10
FAILURE_WINDOW = timedelta(minutes=15)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def open_session(db: Session, *, token_fingerprint: str, lifetime: timedelta, now: datetime) -> str:
    """A new session; returns the token to put in the cookie (never stored as is)."""
    db.execute(sa.delete(DashboardSession).where(col(DashboardSession.expires_at) <= now))
    token = secrets.token_urlsafe(32)
    db.add(
        DashboardSession(
            id=_digest(token),
            token_fingerprint=token_fingerprint,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return token


def session_is_open(db: Session, token: str, *, token_fingerprint: str, now: datetime) -> bool:
    """True while the session exists, has not expired and was opened with today's API_TOKEN."""
    row = db.get(DashboardSession, _digest(token))
    return row is not None and row.expires_at > now and row.token_fingerprint == token_fingerprint


def close_session(db: Session, token: str) -> None:
    db.execute(sa.delete(DashboardSession).where(col(DashboardSession.id) == _digest(token)))


def failures_within_window(db: Session, client: str, *, now: datetime) -> int:
    query = select(sa.func.count()).where(
        col(LoginFailure.client) == client, col(LoginFailure.failed_at) > now - FAILURE_WINDOW
    )
    return int(db.exec(query).one())


def is_throttled(db: Session, client: str, *, now: datetime) -> bool:
    return failures_within_window(db, client, now=now) >= MAX_FAILURES


def record_failure(db: Session, client: str, *, now: datetime) -> None:
    db.execute(sa.delete(LoginFailure).where(col(LoginFailure.failed_at) <= now - FAILURE_WINDOW))
    db.add(LoginFailure(client=client, failed_at=now))


def clear_failures(db: Session, client: str) -> None:
    """After a successful login the client starts afresh."""
    db.execute(sa.delete(LoginFailure).where(col(LoginFailure.client) == client))
