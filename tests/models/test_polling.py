"""Claims: whole campaigns per claim, short leases that only their holder renews or releases."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import time_machine
from sqlmodel import Session, col, select

from models.db import insert_many, transaction
from models.polling import CLAIM_LEASE, claim_due, release_lease, renew_lease, reschedule
from models.tables import Link

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def seed(engine: sa.Engine, campaigns: dict[tuple[str, str], int], *, first_due: datetime) -> None:
    """``campaigns``: (provider, campaign) -> due links, in due order one second apart, each
    campaign's links due together, interleaved ids so id order does not give campaigns away."""
    rows = []
    for c, ((provider, campaign), size) in enumerate(campaigns.items()):
        for k in range(size):
            rows.append(
                {
                    "provider": provider,
                    "number": f"+1303{c:03d}{k:04d}",
                    "campaign_id": campaign,
                    "state": "PROCESSING",
                    "generation": 1,
                    "direction": "link",
                    "drift": False,
                    "observed_at": T0 - timedelta(hours=1),
                    "generation_started_at": T0 - timedelta(hours=1),
                    "next_poll_at": first_due + timedelta(seconds=c, milliseconds=k),
                    "poll_attempts": 0,
                    "request_attempts": 0,
                    "needs_check": False,
                    "created_at": T0,
                    "updated_at": T0,
                }
            )
    rows.sort(key=lambda r: r["number"][::-1])
    with transaction(engine) as s:
        insert_many(s, Link, rows)


def claim(engine: sa.Engine, **kw: object) -> Counter[tuple[str, str]]:
    with transaction(engine) as s:
        return Counter((c.provider, c.campaign_id) for c in claim_due(s, now=T0, **kw))  # type: ignore[arg-type]


def due_counts(engine: sa.Engine) -> Counter[tuple[str, str]]:
    with Session(engine) as s:
        links = s.exec(select(Link).where(col(Link.next_poll_at) <= T0)).all()
    return Counter((link.provider, link.campaign_id) for link in links)


def test_a_claim_takes_whole_campaigns_and_never_splits_one(engine: sa.Engine) -> None:
    sizes = {("plivo", f"C{i}"): 200 for i in range(4)} | {("telnyx", "T0"): 150}
    seed(engine, sizes, first_due=T0 - timedelta(minutes=5))
    rounds = []
    while taken := claim(engine, limit=500):
        rounds.append(taken)
    # 200 + 200 fit in 500, a third 200 would not: two campaigns a round, each whole.
    assert [sorted(r) for r in rounds] == [
        [("plivo", "C0"), ("plivo", "C1")],
        [("plivo", "C2"), ("plivo", "C3")],
        [("telnyx", "T0")],
    ]
    for taken in rounds:
        assert all(n == sizes[key] for key, n in taken.items())


def test_a_claim_of_one_provider_groups_its_campaigns_only(engine: sa.Engine) -> None:
    sizes = {("telnyx", "T0"): 300, ("plivo", "C0"): 300, ("plivo", "C1"): 150}
    seed(engine, sizes, first_due=T0 - timedelta(minutes=5))
    assert claim(engine, limit=500, provider="plivo") == {
        ("plivo", "C0"): 300,
        ("plivo", "C1"): 150,
    }


def test_a_campaign_alone_over_the_limit_is_claimed_in_slices_oldest_first(
    engine: sa.Engine,
) -> None:
    seed(
        engine,
        {("plivo", "BIG"): 120, ("plivo", "SMALL"): 10},
        first_due=T0 - timedelta(minutes=5),
    )
    first = claim(engine, limit=50)
    assert first == {("plivo", "BIG"): 50}
    assert claim(engine, limit=50) == {("plivo", "BIG"): 50}
    # The big campaign's last 20 and the small one fit together.
    assert claim(engine, limit=50) == {("plivo", "BIG"): 20, ("plivo", "SMALL"): 10}
    assert due_counts(engine) == Counter()


def test_links_not_yet_due_are_not_claimed_with_their_campaign(engine: sa.Engine) -> None:
    seed(engine, {("plivo", "C0"): 5}, first_due=T0 - timedelta(seconds=1))
    with transaction(engine) as s:
        s.execute(
            sa.update(Link)
            .where(col(Link.number).in_(["+13030000003", "+13030000004"]))
            .values(next_poll_at=T0 + timedelta(minutes=1))
        )
    assert claim(engine, limit=500) == {("plivo", "C0"): 3}


def test_claimed_links_are_leased_for_the_short_lease_only(engine: sa.Engine) -> None:
    seed(engine, {("plivo", "C0"): 3}, first_due=T0 - timedelta(seconds=1))
    assert claim(engine) == {("plivo", "C0"): 3}
    with transaction(engine) as s:
        assert claim_due(s, now=T0 + CLAIM_LEASE - timedelta(seconds=1)) == []
        again = claim_due(s, now=T0 + CLAIM_LEASE)
    assert timedelta(seconds=30) >= CLAIM_LEASE
    assert len(again) == 3  # its holder died without renewing: due again after one lease


@time_machine.travel(T0, tick=False)
def test_renewal_extends_only_the_links_still_leased_to_the_holder(engine: sa.Engine) -> None:
    seed(engine, {("plivo", "C0"): 3}, first_due=T0 - timedelta(seconds=1))
    with transaction(engine) as s:
        claims = claim_due(s)
    until = T0 + CLAIM_LEASE
    done = claims[0]
    with transaction(engine) as s:
        reschedule(s, done, delay=600)  # its work is done: the next poll is in 10 minutes

    with time_machine.travel(T0 + timedelta(seconds=40), tick=False):
        # The lease lapsed (no renewal for 40 s); another claimer takes one of the two links
        # still leased, not the rescheduled one.
        with transaction(engine) as s:
            (taken,) = claim_due(s, limit=1)
        assert taken.link_id in {claims[1].link_id, claims[2].link_id}
        (working,) = [c for c in claims[1:] if c.link_id != taken.link_id]
        # The first holder renews late: it keeps only the link nobody else took.
        with transaction(engine) as s:
            held, new_until = renew_lease(s, [c.link_id for c in claims], until)
        assert held == {working.link_id}
        assert new_until == T0 + timedelta(seconds=40) + CLAIM_LEASE

    with Session(engine) as s:
        poll_at = {link.id: link.next_poll_at for link in s.exec(select(Link)).all()}
    assert poll_at[done.link_id] == T0 + timedelta(seconds=600)
    assert poll_at[taken.link_id] == T0 + timedelta(seconds=40) + CLAIM_LEASE
    assert poll_at[working.link_id] == T0 + timedelta(seconds=40) + CLAIM_LEASE


@time_machine.travel(T0, tick=False)
def test_a_renewed_lease_keeps_links_from_other_claimers(engine: sa.Engine) -> None:
    seed(engine, {("plivo", "C0"): 2}, first_due=T0 - timedelta(seconds=1))
    with transaction(engine) as s:
        ids = [c.link_id for c in claim_due(s)]
    until = T0 + CLAIM_LEASE
    for beat in range(1, 10):  # renewed every 10 s for 90 s: never claimable meanwhile
        with (
            time_machine.travel(T0 + timedelta(seconds=10 * beat), tick=False),
            transaction(engine) as s,
        ):
            held, until = renew_lease(s, ids, until)
            assert held == set(ids)
            assert claim_due(s) == []
    with time_machine.travel(until, tick=False), transaction(engine) as s:
        assert len(claim_due(s)) == 2  # renewals stopped (the holder died): one lease later


@time_machine.travel(T0, tick=False)
def test_release_makes_only_the_holders_unfinished_links_due_now(engine: sa.Engine) -> None:
    seed(engine, {("plivo", "C0"): 3}, first_due=T0 - timedelta(seconds=1))
    with transaction(engine) as s:
        claims = claim_due(s)
        reschedule(s, claims[0], delay=600)
    with time_machine.travel(T0 + timedelta(seconds=5), tick=False):
        with transaction(engine) as s:
            released = release_lease(s, [c.link_id for c in claims], T0 + CLAIM_LEASE)
        assert released == 2
        with transaction(engine) as s:
            again = claim_due(s)
        assert sorted(c.link_id for c in again) == sorted(c.link_id for c in claims[1:])
