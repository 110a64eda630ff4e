"""The carrier's listings (an index rebuilt on membership changes) follow every change."""

from __future__ import annotations

from sandbox.config import SandboxConfig
from sandbox.state import Carrier, Event


def carrier() -> tuple[Carrier, list[float]]:
    now = [0.0]
    events: list[Event] = []
    return Carrier(lambda: SandboxConfig(delay=1.0), events.append, lambda: now[0]), now


def numbers(c: Carrier, provider: str, campaign: str | None) -> list[str]:
    return [r.number for r in c.campaign_records(provider, campaign)]


def test_listings_follow_preload_link_move_and_unlink() -> None:
    c, now = carrier()
    c.preload("telnyx", [(f"+1202555100{i}", f"C{i % 2}", False) for i in range(4)])
    assert numbers(c, "telnyx", None) == [f"+1202555100{i}" for i in range(4)]
    assert numbers(c, "telnyx", "C0") == ["+12025551000", "+12025551002"]

    c.telnyx_assign("+12025551009", "C0")  # a new record joins
    c.telnyx_update("+12025551000", "C1")  # a move
    assert numbers(c, "telnyx", "C0") == ["+12025551002", "+12025551009"]
    assert numbers(c, "telnyx", "C1") == ["+12025551000", "+12025551001", "+12025551003"]
    assert c.campaign_ids("telnyx") == {"C0", "C1"} and c.campaign_ids("plivo") == set()

    c.telnyx_delete("+12025551002")
    now[0] = 5.0  # the unassignment completes: the record leaves every listing
    assert numbers(c, "telnyx", "C0") == ["+12025551009"]
    assert "+12025551002" not in numbers(c, "telnyx", None)


def test_records_page_copies_only_the_page_in_the_asked_order() -> None:
    c, _ = carrier()
    c.preload("telnyx", [(f"+1202555100{i}", "C0", False) for i in range(5)])
    total, page = c.records_page("telnyx", "C0", 1, 2)
    assert total == 5 and [r.number for r in page] == ["+12025551001", "+12025551002"]
    total, page = c.records_page("telnyx", None, 0, 2, reverse=True)
    assert [r.number for r in page] == ["+12025551004", "+12025551003"]
    total, page = c.records_page(
        "telnyx", None, 0, 10, keep=lambda r: r.number.endswith(("1", "3"))
    )
    assert total == 2 and [r.number for r in page] == ["+12025551001", "+12025551003"]
    page[0].status = "changed"  # a copy: the carrier's record is untouched
    assert c.campaign_records("telnyx", "C0")[1].status == "linked"
