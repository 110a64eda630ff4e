"""dlcsync's Plivo requests equal the official SDK's (issue 12 §1).

Both are pointed at one local recording HTTP server (a real socket): for link, list, get and
unlink, the method, path (with its trailing slash), query and JSON body must be the same. Where
they differ on purpose, the test says why. ``plivo`` is a test-only dependency.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import plivo
import plivo.rest.client
import pytest

from providers.plivo import PlivoClient, make_plivo_http

AUTH_ID = "MAWIRE0000000000000A"
TOKEN = "wire-token"
CAMPAIGN = "CUOGHIN"
CALLBACK = "https://dlcsync.example.com/webhooks/plivo"
NUMBERS = ["12025551111", "12025552222"]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class Recorder(ThreadingHTTPServer):
    """Records every request; answers what both clients accept. A list answer holds
    ``page_size`` numbers of a campaign of ``page_size + 1``, so dlcsync asks a second page."""

    page_size = 20

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[Seen] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def take(self) -> list[Seen]:
        seen, self.seen = self.seen, []
        return seen


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _answer(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        body = json.loads(raw) if raw else None
        self.server.seen.append(Seen(self.command, parts.path, parse_qs(parts.query), body))
        if self.command == "GET":
            offset = int(parse_qs(parts.query).get("offset", ["0"])[0])
            size = 1 if parts.path.endswith("/Number/") else 0
            count = max(0, self.server.page_size + size - offset) if size else 1
            numbers = [f"1202555{1111 + offset + i:04d}" for i in range(count)][
                : self.server.page_size
            ]
            answer: dict[str, Any] = {
                "api_id": "wire",
                "campaign_id": CAMPAIGN,
                "phone_numbers": [{"number": n, "status": "COMPLETED"} for n in numbers],
            }
            if size:
                answer["phone_numbers_summary"] = {"COMPLETED": self.server.page_size + 1}
        else:
            answer = {"api_id": "wire", "message": "Request was received and is being processed"}
        data = json.dumps(answer).encode()
        self.send_response(202 if self.command in ("POST", "DELETE") else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def sdk(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> plivo.RestClient:
    # The SDK rebuilds its base URI from this module constant before every non-voice request.
    monkeypatch.setattr(plivo.rest.client, "PLIVO_API_BASE_URI", f"{recorder.url}/v1/Account")
    client = plivo.RestClient(AUTH_ID, TOKEN)
    client.session.trust_env = False  # no proxy between the SDK and the local server
    return client


@pytest.fixture
def ours(recorder: Recorder) -> Iterator[PlivoClient]:
    http = make_plivo_http(recorder.url, AUTH_ID, TOKEN)
    yield PlivoClient(http, AUTH_ID, CALLBACK)
    http.close()


def only(seen: list[Seen]) -> Seen:
    assert len(seen) == 1, seen
    return seen[0]


def test_link(recorder: Recorder, sdk: plivo.RestClient, ours: PlivoClient) -> None:
    sdk.campaign.number_link(CAMPAIGN, url=CALLBACK, method="POST", numbers=NUMBERS)
    theirs = only(recorder.take())
    ours.link(CAMPAIGN, ["+" + n for n in NUMBERS])
    mine = only(recorder.take())
    assert (mine.method, mine.path, mine.query) == (theirs.method, theirs.path, theirs.query)
    assert mine.path == f"/v1/Account/{AUTH_ID}/10dlc/Campaign/{CAMPAIGN}/Number/"
    # On purpose: the SDK repeats campaign_id in the body, which the path already names;
    # Plivo's documented request body is numbers, url and method only (REFERENCE §1.1).
    assert theirs.body.pop("campaign_id") == CAMPAIGN
    assert mine.body == theirs.body == {"numbers": NUMBERS, "url": CALLBACK, "method": "POST"}


def test_list(recorder: Recorder, sdk: plivo.RestClient, ours: PlivoClient) -> None:
    listed = ours.list_campaign(CAMPAIGN)
    first, second = recorder.take()
    assert len(listed) == recorder.page_size + 1
    sdk.campaign.get_numbers(CAMPAIGN, limit=20, offset=20)
    theirs = only(recorder.take())
    assert (second.method, second.path, second.query, second.body) == (
        theirs.method,
        theirs.path,
        theirs.query,
        theirs.body,
    )
    assert theirs.query == {"limit": ["20"], "offset": ["20"]}
    sdk.campaign.get_numbers(CAMPAIGN, limit=20, offset=0)
    theirs = only(recorder.take())
    assert (first.method, first.path) == (theirs.method, theirs.path)
    # On purpose: the SDK drops a zero offset (``if offset:``); we send offset=0, which is the
    # documented default, so that every page request has the same shape.
    assert theirs.query == {"limit": ["20"]}
    assert first.query == {"limit": ["20"], "offset": ["0"]}
    assert first.body is None and theirs.body is None


def test_get(recorder: Recorder, sdk: plivo.RestClient, ours: PlivoClient) -> None:
    sdk.campaign.get_number(CAMPAIGN, NUMBERS[0])
    theirs = only(recorder.take())
    ours.get(CAMPAIGN, "+" + NUMBERS[0])
    mine = only(recorder.take())
    assert mine == theirs
    assert mine.path == f"/v1/Account/{AUTH_ID}/10dlc/Campaign/{CAMPAIGN}/Number/{NUMBERS[0]}/"
    assert mine.query == {} and mine.body is None


def test_unlink(recorder: Recorder, sdk: plivo.RestClient, ours: PlivoClient) -> None:
    sdk.campaign.number_unlink(CAMPAIGN, NUMBERS[0], url=CALLBACK, method="POST")
    theirs = only(recorder.take())
    ours.unlink(CAMPAIGN, "+" + NUMBERS[0])
    mine = only(recorder.take())
    assert mine == theirs
    assert mine.method == "DELETE"
    assert mine.path == f"/v1/Account/{AUTH_ID}/10dlc/Campaign/{CAMPAIGN}/Number/{NUMBERS[0]}/"
    assert mine.body == {"url": CALLBACK, "method": "POST"}
