"""A run holds its claims: renewed while it works, given back on an error or a shutdown."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
import sqlalchemy as sa
import time_machine
from sqlmodel import Session, select

from models.db import insert_many, transaction
from models.polling import CLAIM_LEASE, Cadence, claim_due
from models.statemachine import Signal
from models.tables import Link
from providers.base import NumberStatus, ProviderClient
from tests.stack import wait_for
from worker import leases
from worker.leases import HeldLease
from worker.reconcile import Reconciler

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_shutdown_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a fresh process as far as shutting down goes."""
    monkeypatch.setattr(leases, "_stopping", threading.Event())


def seed(engine: sa.Engine, campaigns: dict[str, int]) -> None:
    rows = [
        {
            "provider": "fake",
            "number": f"+1303{c:03d}{k:04d}",
            "campaign_id": campaign,
            "state": "PROCESSING",
            "generation": 1,
            "direction": "link",
            "drift": False,
            "observed_at": T0 - timedelta(hours=1),
            "generation_started_at": T0 - timedelta(hours=1),
            "next_poll_at": T0 - timedelta(seconds=len(campaigns) - c),
            "poll_attempts": 0,
            "request_attempts": 0,
            "needs_check": False,
            "created_at": T0,
            "updated_at": T0,
        }
        for c, (campaign, size) in enumerate(campaigns.items())
        for k in range(size)
    ]
    with transaction(engine) as s:
        insert_many(s, Link, rows)


def poll_times(engine: sa.Engine) -> dict[str, dict[str, datetime | None]]:
    with Session(engine) as s:
        links = s.exec(select(Link)).all()
    out: dict[str, dict[str, datetime | None]] = {}
    for link in links:
        out.setdefault(link.campaign_id, {})[link.number] = link.next_poll_at
    return out


class FakeCarrier(ProviderClient):
    """Every number linked; ``on_list`` runs when a campaign is listed (before it answers)."""

    name: ClassVar[str] = "fake"
    page_size = 20

    def __init__(self, engine: sa.Engine, on_list: Callable[[str], None]) -> None:
        self.engine = engine
        self.on_list = on_list
        self.listed: list[str] = []

    def link(self, campaign_id: str, numbers: list[str]) -> list[NumberStatus]:
        raise AssertionError("nothing is requested in these tests")

    def unlink(self, campaign_id: str, number: str) -> NumberStatus:
        raise AssertionError("nothing is requested in these tests")

    def get(self, campaign_id: str, number: str) -> NumberStatus:
        return NumberStatus(number, campaign_id, "COMPLETED", Signal.LINKED)

    def list_campaign(self, campaign_id: str) -> list[NumberStatus]:
        self.listed.append(campaign_id)
        self.on_list(campaign_id)
        with Session(self.engine) as s:
            numbers = s.exec(select(Link.number).where(Link.campaign_id == campaign_id)).all()
        return [NumberStatus(n, campaign_id, "COMPLETED", Signal.LINKED) for n in numbers]


def reconciler(engine: sa.Engine, on_list: Callable[[str], None]) -> tuple[Reconciler, FakeCarrier]:
    carrier = FakeCarrier(engine, on_list)
    return Reconciler(engine, {"fake": carrier}, Cadence(interval=60)), carrier


@time_machine.travel(T0, tick=False)
def test_a_shutdown_stops_the_run_between_campaigns_and_releases_the_rest(
    engine: sa.Engine,
) -> None:
    seed(engine, {"C0": 5, "C1": 5, "C2": 5})
    rec, carrier = reconciler(engine, lambda campaign: leases.request_stop())
    stats = rec.run_once(limit=500)
    assert stats.claimed == 15
    assert carrier.listed == ["C0"]  # stopped before the next campaign
    times = poll_times(engine)
    assert all(t is not None and t > T0 + CLAIM_LEASE for t in times["C0"].values())
    # Not worked: due now, not after the lease.
    assert all(t == T0 for c in ("C1", "C2") for t in times[c].values())


@time_machine.travel(T0, tick=False)
def test_a_run_that_fails_releases_its_claims(engine: sa.Engine) -> None:
    seed(engine, {"C0": 3, "C1": 3})

    def fail(campaign: str) -> None:
        if campaign == "C1":
            raise RuntimeError("the worker's code broke")

    rec, _ = reconciler(engine, fail)
    with pytest.raises(RuntimeError):
        rec.run_once(limit=500)
    times = poll_times(engine)
    assert all(t is not None and t > T0 + CLAIM_LEASE for t in times["C0"].values())
    assert all(t == T0 for t in times["C1"].values())


@time_machine.travel(T0, tick=False)
def test_a_run_that_finishes_keeps_its_schedule(engine: sa.Engine) -> None:
    seed(engine, {"C0": 3, "C1": 3})
    rec, carrier = reconciler(engine, lambda campaign: None)
    assert rec.run_once(limit=500).claimed == 6
    assert carrier.listed == ["C0", "C1"]
    times = poll_times(engine)
    assert all(t is not None and t > T0 + CLAIM_LEASE for c in times.values() for t in c.values())


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=10)  # every look at the clock is one heartbeat later
        return self.now


def test_the_heartbeat_renews_while_the_run_works(engine: sa.Engine) -> None:
    seed(engine, {"C0": 2})
    with transaction(engine) as s:
        ids = [c.link_id for c in claim_due(s, now=T0)]
    held = HeldLease(engine, ids, T0 + CLAIM_LEASE, clock=Clock())

    def renewed_twice() -> bool:
        times = poll_times(engine)["C0"].values()
        return all(t is not None and t >= T0 + timedelta(seconds=20) + CLAIM_LEASE for t in times)

    with held.kept(every=0.01):
        wait_for(renewed_twice, 10, "two renewals")  # real time: the heartbeat is a thread
    assert held.ids == set(ids)
    after = poll_times(engine)["C0"]
    assert set(after.values()) == {held.until}  # the last renewal's end, not released


@time_machine.travel(T0, tick=False)
def test_release_is_idempotent_and_renewing_nothing_is_harmless(engine: sa.Engine) -> None:
    seed(engine, {"C0": 2})
    with transaction(engine) as s:
        ids = [c.link_id for c in claim_due(s)]
    held = HeldLease(engine, ids, T0 + CLAIM_LEASE, clock=lambda: T0)
    assert held.release() == 2
    assert held.release() == 0
    held.renew()
    assert set(poll_times(engine)["C0"].values()) == {T0}
