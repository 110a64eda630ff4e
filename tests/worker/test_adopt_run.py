"""``worker.adopt.run_adopt`` over several chunks: set-based recording, drift, progress."""

from __future__ import annotations

from typing import ClassVar

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from models import adopt
from models.polling import Cadence
from models.statemachine import Signal
from models.tables import Alert, Link, LinkEvent
from providers.base import NumberStatus, ProviderClient
from worker.adopt import run_adopt

NUMBERS = [f"+1202555{1000 + i:04d}" for i in range(7)]


class Listing(ProviderClient):
    """An account listing: ``campaigns`` maps each number to its campaign, all linked."""

    name: ClassVar[str] = "fake"
    page_size = 20

    def __init__(self, campaigns: dict[str, str]) -> None:
        self.campaigns = campaigns

    def link(self, campaign_id: str, numbers: list[str]) -> list[NumberStatus]:
        raise AssertionError("adopting sends no request")

    def unlink(self, campaign_id: str, number: str) -> NumberStatus:
        raise AssertionError("adopting sends no request")

    def get(self, campaign_id: str, number: str) -> NumberStatus:
        raise AssertionError("adopting lists, it never gets a number")

    def list_campaign(self, campaign_id: str) -> list[NumberStatus]:
        return [s for s in self.list_account() if s.campaign_id == campaign_id]

    def list_account(self) -> list[NumberStatus]:
        return [NumberStatus(n, c, "COMPLETED", Signal.LINKED) for n, c in self.campaigns.items()]


def stored(engine: sa.Engine) -> tuple[dict[str, Link], list[LinkEvent], list[Alert]]:
    with Session(engine) as s:
        links = {link.number: link for link in s.exec(select(Link))}
        return links, list(s.exec(select(LinkEvent))), list(s.exec(select(Alert)))


def test_adopt_in_chunks_records_once_then_reports_drift_set_based(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.adopt.CHUNK", 3)
    carrier = Listing({n: "C0" for n in NUMBERS})
    progress: list[tuple[int, int]] = []

    first = run_adopt(
        engine, carrier, cadence=Cadence(), progress=lambda d, t: progress.append((d, t))
    )
    assert (first.adopted, first.known, first.drift) == (7, 0, 0)
    assert progress == [(0, 7), (3, 7), (6, 7), (7, 7)]  # one report per chunk
    links, events, alerts = stored(engine)
    assert {(n, link.state, link.campaign_id) for n, link in links.items()} == {
        (n, "COMPLETED", "C0") for n in NUMBERS
    }
    assert sorted(e.number for e in events) == NUMBERS  # one audit row per link
    assert {(e.source, e.from_state, e.to_state, e.reason) for e in events} == {
        ("adopted", None, "COMPLETED", adopt.ADOPTED_REASON)
    }
    assert all(e.link_id == links[e.number].id for e in events)

    # Behind dlcsync's back, four numbers (across two chunks) moved to another campaign.
    moved = NUMBERS[1:5]
    carrier.campaigns.update({n: "C1" for n in moved})
    second = run_adopt(engine, carrier, cadence=Cadence())
    assert (second.adopted, second.known, second.drift) == (0, 3, 4)
    links, events, alerts = stored(engine)
    assert {n for n, link in links.items() if link.campaign_id == "C1" and link.drift} == set(moved)
    drift_rows = [e for e in events if e.drift]
    assert sorted(e.number for e in drift_rows) == moved
    assert {(e.source, e.campaign_id) for e in drift_rows} == {("adopted", "C1")}
    assert sorted(a.kind for a in alerts) == ["drift"] * 4

    third = run_adopt(engine, carrier, cadence=Cadence())
    assert (third.adopted, third.known, third.drift) == (0, 7, 0)
    assert len(stored(engine)[1]) == 11  # nothing written again


def test_adopt_dry_run_counts_drift_and_writes_nothing(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("worker.adopt.CHUNK", 2)
    carrier = Listing({n: "C0" for n in NUMBERS[:3]})
    run_adopt(engine, carrier, cadence=Cadence())
    carrier.campaigns.update({NUMBERS[0]: "C1", NUMBERS[5]: "C0"})
    dry = run_adopt(engine, carrier, cadence=Cadence(), dry_run=True)
    assert (dry.adopted, dry.known, dry.drift) == (1, 2, 1)
    links, events, alerts = stored(engine)
    assert len(links) == 3 and len(events) == 3 and alerts == []
    assert links[NUMBERS[0]].campaign_id == "C0"
