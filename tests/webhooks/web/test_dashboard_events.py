"""Dashboard: campaign and carrier-mapping alerts under "needs attention"; the mapping in a
number's timeline; the API link's carrier_mapping field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask

from models import hygiene
from models.db import transaction
from models.links import apply_observation, load, request_link_of, request_unlink_of
from models.statemachine import Observation, Signal, Source
from models.tables import utcnow
from tests.webhooks.web.conftest import TOKEN, app_engine
from tests.webhooks.web.test_dashboard_auth import login

N = "+12025550177"


def test_attention_timeline_and_api_show_mapping_and_campaign_alerts(web_app: Flask) -> None:
    engine = app_engine(web_app)
    t0 = utcnow() - timedelta(days=20)
    with transaction(engine) as s:
        request_link_of(s, "telnyx", N, "TMAP", source=Source.API, now=t0)
        link = load(s, "telnyx", N)
        assert link is not None
        o = Observation(
            Source.POLL, "ASSIGNED", t0 + timedelta(seconds=1), Signal.LINKED,
            generation=link.generation, carrier_mapping=(("tmobile", "FAILED"),),
        )  # fmt: skip
        apply_observation(s, "telnyx", N, o, now=t0 + timedelta(seconds=1))
    api = web_app.test_client().get(
        f"/api/v1/links/telnyx/{N}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert api.status_code == 200 and api.get_json()["carrier_mapping"] == {"tmobile": "FAILED"}

    # Unlinked 16 days ago: the campaign has been empty for more than 14 days.
    with transaction(engine) as s:
        request_unlink_of(s, "telnyx", N, source=Source.API, now=t0 + timedelta(days=3))
        o = Observation(Source.POLL, "NOT_FOUND", t0 + timedelta(days=4), Signal.NOT_LINKED,
                        generation=2)  # fmt: skip
        apply_observation(s, "telnyx", N, o, now=t0 + timedelta(days=4))
        assert hygiene.detect_empty(s) == 1

    client = web_app.test_client()
    login(client)
    page = client.get("/").get_data(as_text=True)
    assert 'id="alerts-campaign_empty"' in page and "TMAP" in page
    assert 'id="alerts-carrier_mapping_failed"' in page and "T-Mobile mapping FAILED" in page
    timeline = client.get(f"/number?number={N}").get_data(as_text=True)
    assert 'id="mapping-history-telnyx"' in timeline and "T-Mobile" in timeline
    assert datetime.now(UTC) > t0
