"""The sandbox's HTTP surface: Plivo and Telnyx APIs on one port plus the ``/_sandbox/`` control
API. A plain WSGI application on werkzeug (no Flask request overhead: it must serve ~1000
small requests per second)."""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import random
import re
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule
from werkzeug.wrappers import Request, Response

from sandbox import telnyx_spec
from sandbox.callbacks import Dispatcher, is_shared_campaign, tcr_campaign_id
from sandbox.campaigns import CampaignConfigError, plivo_campaign, telnyx_campaign
from sandbox.config import ConfigError, SandboxConfig
from sandbox.events import EventReceiver
from sandbox.signing import TelnyxSigner
from sandbox.state import (
    LINK_FAILED,
    LINKED,
    PENDING_LINK,
    PROVIDERS,
    UNLINK_FAILED,
    Carrier,
    CarrierError,
    Record,
)

TELNYX_BRAND_ID = "7ba705b7-22af-493f-addc-ac04b7ca071c"
TELNYX_TCR_BRAND_ID = "BSANDBX"
#: The brand of the other CSP that shares its campaigns with the sandbox account.
TELNYX_PARTNER_TCR_BRAND_ID = "BPARTNR"
_NANP = re.compile(r"^1[2-9]\d{9}$")
_TELNYX_PATHS = ("phone_number_campaigns", "phoneNumberCampaign")

StartResponse = Callable[..., Any]


def nanp_e164(raw: object, *, plus: str = "optional") -> str | None:
    """``+1NXXNXXXXXX`` for a valid US number, else None. ``plus``: "optional" or "required"."""
    if not isinstance(raw, str):
        return None
    s = raw.strip()
    if s.startswith("+"):
        s = s[1:]
    elif plus == "required":
        return None
    return "+" + s if _NANP.match(s) else None


def _telnyx_time(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _api_id() -> str:
    return str(uuid.uuid1())


class _Reply:
    __slots__ = ("body", "headers", "raw", "status")

    def __init__(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.raw = raw


class _AccountStats:
    """Arrivals per account: the max seen in any 1 s / 5 s window, and the limiter window."""

    __slots__ = ("accepted", "last1", "last5", "max_1s", "max_5s", "rate_limited", "requests")

    def __init__(self) -> None:
        self.last1: deque[float] = deque()
        self.last5: deque[float] = deque()
        self.accepted: deque[float] = deque()
        self.max_1s = 0
        self.max_5s = 0
        self.requests = 0
        self.rate_limited = 0

    def arrive(self, now: float) -> None:
        self.requests += 1
        for dq, span in ((self.last1, 1.0), (self.last5, 5.0)):
            dq.append(now)
            while dq and dq[0] <= now - span:
                dq.popleft()
        self.max_1s = max(self.max_1s, len(self.last1))
        self.max_5s = max(self.max_5s, len(self.last5))


class Sandbox:
    """Carrier + callbacks + HTTP. ``wsgi`` is the WSGI entry point."""

    def __init__(self, config: SandboxConfig) -> None:
        config.validate()
        telnyx_spec.load()
        self._initial = config.copy()
        self._cfg = config.copy()
        self._cfg_lock = threading.Lock()
        self._signer = TelnyxSigner.from_hex(config.telnyx_seed)
        self.stopping = threading.Event()
        self._rng = random.Random(config.seed)
        self._rng_lock = threading.Lock()
        self.dispatcher = Dispatcher(self.config, self.signer, workers=config.callback_workers)
        self.dispatcher.seed(config.seed)
        self.carrier = Carrier(self.config, self.dispatcher.submit)
        self._stats_lock = threading.Lock()
        self._requests: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self._faults: dict[str, int] = defaultdict(int)
        self._accounts: dict[str, _AccountStats] = {}
        self.events = EventReceiver()
        self._ticker = threading.Thread(target=self._tick, name="sandbox-ticker", daemon=True)
        self._ticker.start()
        self.url_map = self._build_map()

    # ---- config ----
    def config(self) -> SandboxConfig:
        return self._cfg

    def signer(self) -> TelnyxSigner:
        return self._signer

    @property
    def telnyx_public_key(self) -> str:
        return self._signer.public_key_b64

    def update_config(self, changes: dict[str, Any]) -> SandboxConfig:
        with self._cfg_lock:
            new = self._cfg.updated(changes)
            if new.telnyx_seed != self._cfg.telnyx_seed:
                self._signer = TelnyxSigner.from_hex(new.telnyx_seed)
            if new.seed != self._cfg.seed:
                self._reseed(new.seed)
            self._cfg = new
        with self.carrier.lock:
            self.carrier.changed.notify_all()
        return new

    def _reseed(self, seed: int) -> None:
        with self._rng_lock:
            self._rng.seed(seed)
        self.dispatcher.seed(seed)

    def reset(self, config: bool = False) -> None:
        if config:
            with self._cfg_lock:
                self._cfg = self._initial.copy()
                self._signer = TelnyxSigner.from_hex(self._cfg.telnyx_seed)
        self.carrier.reset()
        self.dispatcher.reset()
        self.events.reset()
        self._reseed(self._cfg.seed)
        with self._stats_lock:
            self._requests.clear()
            self._faults.clear()
            self._accounts.clear()

    def _chance(self, ratio: float) -> bool:
        if ratio <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < ratio

    # ---- background transitions ----
    def _tick(self) -> None:
        carrier = self.carrier
        while not self.stopping.is_set():
            with carrier.lock:
                carrier.advance()
                due = carrier.next_due()
                wait = 0.5 if due is None else min(0.5, max(0.0, due - time.monotonic()))
                carrier.changed.wait(max(wait, 0.001))

    def stop(self) -> None:
        self.stopping.set()
        with self.carrier.lock:
            self.carrier.changed.notify_all()
        self._ticker.join(timeout=2.0)
        self.dispatcher.stop()

    # ---- counters ----
    def counters(self) -> dict[str, Any]:
        with self._stats_lock:
            requests: dict[str, Any] = {}
            for (prov, endpoint, method, result), n in sorted(self._requests.items()):
                node = requests.setdefault(prov, {}).setdefault(endpoint, {})
                node.setdefault(method, {})[result] = n
            faults = dict(self._faults)
            accounts = {
                key: {
                    "requests": st.requests,
                    "max_1s": st.max_1s,
                    "max_5s": st.max_5s,
                    "rate_limited": st.rate_limited,
                }
                for key, st in self._accounts.items()
            }
        return {
            "requests": requests,
            "faults": faults,
            "http_429": faults.get("rate_limited", 0) + faults.get("injected_429", 0),
            "accounts": accounts,
            "callbacks": self.dispatcher.counters_snapshot(),
        }

    # ---- routing ----
    def _build_map(self) -> Map:
        rules = [
            Rule(
                "/v1/Account/<auth_id>/10dlc/Campaign/<cid>/Number/",
                endpoint="plivo.campaign_numbers",
                methods=["GET", "POST"],
            ),
            Rule(
                "/v1/Account/<auth_id>/10dlc/Campaign/<cid>/Number/<number>/",
                endpoint="plivo.campaign_number",
                methods=["GET", "DELETE"],
            ),
            Rule(
                "/v1/Account/<auth_id>/10dlc/Campaign/",
                endpoint="plivo.campaigns",
                methods=["GET"],
            ),
            Rule(
                "/v1/Account/<auth_id>/10dlc/Campaign/<cid>/",
                endpoint="plivo.campaign",
                methods=["GET"],
            ),
            Rule(
                "/v1/Account/<auth_id>/Number/<number>/",
                endpoint="plivo.account_number",
                methods=["GET"],
            ),
        ]
        for name in _TELNYX_PATHS:
            rules.append(
                Rule(
                    f"/v2/10dlc/{name}",
                    endpoint="telnyx.phone_number_campaigns",
                    methods=["GET", "POST"],
                )
            )
            rules.append(
                Rule(
                    f"/v2/10dlc/{name}/<number>",
                    endpoint="telnyx.phone_number_campaign",
                    methods=["GET", "PUT", "DELETE"],
                )
            )
        rules.append(Rule("/v2/10dlc/campaign/<cid>", endpoint="telnyx.campaign", methods=["GET"]))
        rules.append(
            Rule(
                "/v2/10dlc/partner_campaigns/<cid>",
                endpoint="telnyx.partner_campaign",
                methods=["GET"],
            )
        )
        for name, methods in (
            ("campaigns", ["GET", "POST"]),
            ("preload", ["POST"]),
            ("config", ["GET", "POST"]),
            ("counters", ["GET"]),
            ("reset", ["POST"]),
            ("numbers", ["GET"]),
            ("drift", ["POST"]),
            ("settle", ["POST"]),
            ("resend", ["POST"]),
            ("keys", ["GET"]),
            ("callbacks", ["GET"]),
            ("health", ["GET"]),
            ("env", ["GET"]),
            ("events", ["GET", "POST"]),
        ):
            rules.append(Rule(f"/_sandbox/{name}", endpoint=f"control.{name}", methods=methods))
        return Map(rules, strict_slashes=True, merge_slashes=False)

    # ---- WSGI ----
    def wsgi(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path
        provider = (
            "plivo"
            if path.startswith("/v1/")
            else "telnyx"
            if path.startswith("/v2/")
            else "control"
        )
        try:
            endpoint, args = self.url_map.bind_to_environ(environ).match()
        except RequestRedirect:
            reply = self._not_found(provider)
            endpoint, args = "unrouted", {}
        except MethodNotAllowed:
            reply = self._error(provider, 405, "method not allowed", "10015")
            endpoint, args = "unrouted", {}
        except (NotFound, HTTPException):
            reply = self._not_found(provider)
            endpoint, args = "unrouted", {}
        else:
            if endpoint == "control.events" and request.method == "POST":
                status, answer = self.events.receive(
                    request.get_data(),
                    {k.lower(): v for k, v in request.headers.items()},
                    self._cfg.event_secret,
                    lambda: self._chance(self._cfg.event_refuse_ratio),
                )
                return self._respond(_Reply(status, answer))(environ, start_response)
            if provider == "control":
                reply = self._control(endpoint.split(".", 1)[1], request)
                return self._respond(reply)(environ, start_response)
            return self._provider_request(provider, endpoint, dict(args), request, environ)(
                environ, start_response
            )
        if provider != "control":
            self._count(provider, endpoint, request.method, str(reply.status))
        return self._respond(reply)(environ, start_response)

    def _respond(self, reply: _Reply) -> Response:
        raw = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        resp = Response(raw, status=reply.status, content_type="application/json")
        for k, v in reply.headers.items():
            resp.headers[k] = v
        return resp

    def _count(self, provider: str, endpoint: str, method: str, result: str) -> None:
        with self._stats_lock:
            self._requests[(provider, endpoint.split(".", 1)[-1], method, result)] += 1

    def _fault(self, name: str) -> None:
        with self._stats_lock:
            self._faults[name] += 1

    # ---- errors ----
    def _error(
        self,
        provider: str,
        status: int,
        message: str,
        code: str = "10015",
        title: str | None = None,
        pointer: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> _Reply:
        if provider == "plivo":
            return _Reply(status, {"api_id": _api_id(), "error": message}, headers)
        if provider == "telnyx":
            err: dict[str, Any] = {
                "code": code,
                "title": title or _TELNYX_TITLES.get(code, "Bad Request"),
                "detail": message,
            }
            if pointer:
                err["source"] = {"pointer": pointer}
            return _Reply(status, {"errors": [err]}, headers)
        return _Reply(status, {"error": message}, headers)

    def _not_found(self, provider: str) -> _Reply:
        return self._error(
            provider, 404, "The requested resource or URL could not be found.", "10005"
        )

    # ---- provider requests ----
    def _authenticate(self, provider: str, args: dict[str, str], request: Request) -> str | None:
        """The account key, or None when the credentials are wrong."""
        cfg = self._cfg
        if provider == "plivo":
            auth = request.authorization
            if auth is None or auth.type != "basic":
                return None
            ok = (
                hmac.compare_digest(str(auth.username or ""), cfg.plivo_auth_id)
                & hmac.compare_digest(str(auth.password or ""), cfg.plivo_auth_token)
                & (args.get("auth_id") == cfg.plivo_auth_id)
            )
            return f"plivo:{cfg.plivo_auth_id}" if ok else None
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), cfg.telnyx_api_key.encode()
        ):
            return None
        return f"telnyx:{cfg.telnyx_api_key[:8]}"

    def _rate_limit(self, provider: str, account: str) -> tuple[bool, dict[str, str], int]:
        """(allowed, telnyx headers, retry_after)."""
        cfg = self._cfg
        limit = cfg.plivo_rate_limit if provider == "plivo" else cfg.telnyx_rate_limit
        window = cfg.plivo_rate_window if provider == "plivo" else cfg.telnyx_rate_window
        now = time.monotonic()
        with self._stats_lock:
            st = self._accounts.get(account)
            if st is None:
                st = self._accounts[account] = _AccountStats()
            st.arrive(now)
            acc = st.accepted
            while acc and acc[0] <= now - window:
                acc.popleft()
            if limit <= 0:
                acc.clear()
                return (
                    True,
                    {
                        "x-ratelimit-limit": "1000",
                        "x-ratelimit-remaining": "1000",
                        "x-ratelimit-reset": "1",
                    },
                    0,
                )
            allowed = len(acc) < limit
            if allowed:
                acc.append(now)
            else:
                st.rate_limited += 1
            reset = max(1, math.ceil(acc[0] + window - now)) if acc else 1
            headers = {
                "x-ratelimit-limit": str(limit),
                "x-ratelimit-remaining": str(max(0, limit - len(acc))),
                "x-ratelimit-reset": str(reset),
            }
        return allowed, headers, reset

    def _provider_request(
        self,
        provider: str,
        endpoint: str,
        args: dict[str, str],
        request: Request,
        environ: dict[str, Any],
    ) -> Response:
        cfg = self._cfg
        method = request.method
        account = self._authenticate(provider, args, request)
        if account is None:
            if provider == "plivo":
                reply = _Reply(401, {"api_id": _api_id(), "error": "authentication failed"})
                reply.headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
            else:
                reply = self._error(provider, 401, "The API key is missing or invalid.", "10009")
            self._count(provider, endpoint, method, "401")
            return self._respond(reply)
        allowed, rl_headers, reset = self._rate_limit(provider, account)
        extra = rl_headers if provider == "telnyx" else {}
        if not allowed:
            self._fault("rate_limited")
            reply = self._too_many(provider, reset, extra)
            self._count(provider, endpoint, method, "429")
            return self._respond(reply)
        faulty = provider in cfg.fault_providers
        if faulty and self._chance(cfg.rate_429_ratio):
            self._fault("injected_429")
            headers = dict(extra)
            if provider == "telnyx":
                headers["x-ratelimit-remaining"] = "0"
                headers["x-ratelimit-reset"] = str(cfg.retry_after)
            reply = self._too_many(provider, cfg.retry_after, headers)
            self._count(provider, endpoint, method, "429")
            return self._respond(reply)
        if faulty and self._chance(cfg.error_5xx_ratio):
            self._fault("injected_5xx")
            reply = self._error(
                provider, cfg.error_5xx_status, "internal server error", "10007", headers=extra
            )
            self._count(provider, endpoint, method, str(cfg.error_5xx_status))
            return self._respond(reply)
        if provider == "telnyx":
            violation = telnyx_spec.check(request)
            if violation is not None:
                # Refused as Telnyx refuses what its published spec does not allow.
                self._count(provider, endpoint, method, str(violation.status))
                return self._respond(_Reply(violation.status, violation.body(), extra))
        hang = faulty and self._chance(cfg.hang_ratio)
        try:
            handler = getattr(self, "_" + endpoint.replace(".", "_"))
            reply = handler(method, args, request)
        except CarrierError as exc:
            reply = self._carrier_error(provider, exc)
        except Exception as exc:  # never a bare 500 without a provider-shaped body
            reply = self._error(provider, 500, f"sandbox error: {exc!r}", "10007")
        reply.headers.update(extra)
        if 200 <= reply.status < 300 and faulty and self._chance(cfg.malformed_json_ratio):
            self._fault("malformed_json")
            text = json.dumps(reply.body).encode()
            reply.raw = text[: max(1, len(text) // 2)] + b"\x00<<"
        if hang:
            self._fault("hang")
            self._count(provider, endpoint, method, f"hang_{cfg.hang_mode}")
            self.stopping.wait(cfg.hang_seconds)
            if cfg.hang_mode == "close":
                sock = environ.get("werkzeug.socket")
                if isinstance(sock, socket.socket):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return Response(b"", status=500)
        else:
            self._count(provider, endpoint, method, str(reply.status))
        return self._respond(reply)

    def _too_many(self, provider: str, retry_after: int, headers: dict[str, str]) -> _Reply:
        headers = {**headers, "Retry-After": str(retry_after)}
        if provider == "plivo":
            return _Reply(429, {"api_id": _api_id(), "error": "too many requests"}, headers)
        return self._error(
            provider,
            429,
            "You have exceeded the maximum number of allowed requests.",
            "10011",
            headers=headers,
        )

    def _carrier_error(self, provider: str, exc: CarrierError) -> _Reply:
        if exc.kind == "not_found":
            if provider == "plivo":
                return self._error(provider, 404, exc.message)
            return self._error(provider, 404, exc.message, "10005")
        if exc.kind == "busy":
            return self._error(provider, 409, exc.message, "10036")
        return self._error(provider, 400, exc.message, "10015")

    def _status_of(self, rec: Record) -> str:
        status = rec.provider_status()
        if rec.provider in self._cfg.fault_providers and self._chance(
            self._cfg.unknown_status_ratio
        ):
            self._fault("unknown_status")
            return self._cfg.unknown_status_value
        return status

    @staticmethod
    def _json(request: Request) -> Any:
        data = request.get_data(cache=True)
        if not data.strip():
            return {}
        try:
            return json.loads(data)
        except ValueError:
            if request.mimetype == "application/x-www-form-urlencoded":
                form = request.form
                out: dict[str, Any] = {k: form.get(k) for k in form}
                if "numbers" in form:
                    out["numbers"] = form.getlist("numbers")
                return out
            raise

    # ---- Plivo ----
    def _plivo_page_header(self, cid: str) -> dict[str, Any]:
        return {
            "api_id": _api_id(),
            "campaign_alias": f"Sandbox campaign {cid}",
            "campaign_id": cid,
        }

    def _plivo_callback_args(self, body: dict[str, Any]) -> tuple[str | None, str]:
        url = body.get("url") or None
        method = str(body.get("method") or "POST").upper()
        return (str(url) if url else None), ("GET" if method == "GET" else "POST")

    def _plivo_campaign_numbers(
        self, method: str, args: dict[str, str], request: Request
    ) -> _Reply:
        cid = args["cid"]
        if method == "POST":
            try:
                body = self._json(request)
            except ValueError:
                return self._error("plivo", 400, "invalid JSON body")
            if not isinstance(body, dict):
                return self._error("plivo", 400, "invalid JSON body")
            raw = body.get("numbers")
            if isinstance(raw, str):
                raw = [x for x in raw.split(",") if x]
            if not isinstance(raw, list) or not raw:
                return self._error("plivo", 400, "numbers is a required parameter")
            numbers: list[str] = []
            for item in raw:
                e164 = nanp_e164(item)
                if e164 is None:
                    return self._error("plivo", 400, f"The number {item} is not a valid number")
                if e164 not in numbers:
                    numbers.append(e164)
            url, cb_method = self._plivo_callback_args(body)
            self.carrier.plivo_link(cid, numbers, url, cb_method)
            listed = ", ".join(n[1:] for n in numbers)
            return _Reply(
                202,
                {
                    "api_id": _api_id(),
                    "message": f"Request to link {listed} to campaign {cid} "
                    "was received and is being processed",
                },
            )
        cfg = self._cfg
        try:
            limit = int(request.args.get("limit", 20))
            offset = int(request.args.get("offset", 0))
        except ValueError:
            return self._error("plivo", 400, "limit and offset must be integers")
        if limit < 1 or limit > cfg.plivo_max_limit:
            return self._error("plivo", 400, f"limit should be between 1 and {cfg.plivo_max_limit}")
        if offset < 0:
            return self._error("plivo", 400, "offset should be >= 0")
        if cfg.plivo_page_cap:  # a provider that serves fewer numbers than asked
            limit = min(limit, cfg.plivo_page_cap)
        recs = self.carrier.campaign_records("plivo", cid)
        summary: dict[str, int] = {}
        for r in recs:
            summary[r.provider_status()] = summary.get(r.provider_status(), 0) + 1
        page = [
            {"number": r.number[1:], "status": self._status_of(r)}
            for r in recs[offset : offset + limit]
        ]
        return _Reply(
            200,
            {
                **self._plivo_page_header(cid),
                "phone_numbers": page,
                "phone_numbers_summary": summary,
                "number_pool_limit": 49,
                "usecase": "MIXED",
            },
        )

    def _plivo_campaign_number(self, method: str, args: dict[str, str], request: Request) -> _Reply:
        cid, raw = args["cid"], args["number"]
        number = nanp_e164(raw)
        if number is None:
            return self._error("plivo", 400, f"The number {raw} is not a valid number")
        if method == "DELETE":
            try:
                body = self._json(request)
            except ValueError:
                body = {}
            url, cb_method = self._plivo_callback_args(body if isinstance(body, dict) else {})
            self.carrier.plivo_unlink(cid, number, url, cb_method)
            return _Reply(
                202,
                {
                    "api_id": _api_id(),
                    "message": f"Request to unlink {number[1:]} from campaign {cid} "
                    "was received and is being processed",
                },
            )
        rec = self.carrier.get("plivo", number)
        if rec is None or rec.campaign_id != cid:
            return self._error(
                "plivo", 404, f"The number {number[1:]} is not linked to this campaign"
            )
        return _Reply(
            200,
            {
                **self._plivo_page_header(cid),
                "phone_numbers": [{"number": number[1:], "status": self._status_of(rec)}],
                "usecase": "MIXED",
            },
        )

    def _plivo_account_number(self, method: str, args: dict[str, str], request: Request) -> _Reply:
        raw = args["number"]
        number = nanp_e164(raw)
        if number is None:
            return self._error("plivo", 404, "Phone number not found")
        rec = self.carrier.get("plivo", number)
        if rec is None or rec.status == LINK_FAILED:
            campaign, status = None, "UNREGISTERED"
        else:
            campaign, status = rec.campaign_id, self._status_of(rec)
        return _Reply(
            200,
            {
                "api_id": _api_id(),
                "number": number[1:],
                "number_type": "local",
                "sms_enabled": True,
                "resource_uri": f"/v1/Account/{args['auth_id']}/Number/{number[1:]}/",
                "tendlc_campaign_id": campaign,
                "tendlc_registration_status": status,
            },
        )

    def _plivo_campaigns(self, method: str, args: dict[str, str], request: Request) -> _Reply:
        """Plivo's campaign list: configured campaigns and those holding numbers, paged."""
        cfg = self._cfg
        try:
            limit = int(request.args.get("limit", 20))
            offset = int(request.args.get("offset", 0))
        except ValueError:
            return self._error("plivo", 400, "limit and offset must be integers")
        if limit < 1 or limit > cfg.plivo_max_limit or offset < 0:
            return self._error("plivo", 400, f"limit should be between 1 and {cfg.plivo_max_limit}")
        ids = {c.campaign_id for c in self.carrier.campaigns.configured("plivo") if c.exists}
        ids |= self.carrier.campaign_ids("plivo")
        page = sorted(ids)[offset : offset + limit]
        base = f"/v1/Account/{args['auth_id']}/10dlc/Campaign/"
        after = offset + limit
        return _Reply(
            200,
            {
                "api_id": _api_id(),
                "meta": {
                    "limit": limit,
                    "offset": offset,
                    "next": f"{base}?limit={limit}&offset={after}" if after < len(ids) else None,
                    "previous": None
                    if offset == 0
                    else f"{base}?limit={limit}&offset={max(0, offset - limit)}",
                    "total_count": len(ids),
                },
                "campaigns": [
                    plivo_campaign(self.carrier.campaigns.get("plivo", cid), args["auth_id"])
                    for cid in page
                ],
            },
        )

    def _plivo_campaign(self, method: str, args: dict[str, str], request: Request) -> _Reply:
        campaign = self.carrier.campaigns.get("plivo", args["cid"])
        if not campaign.exists:
            return self._error("plivo", 404, "campaign not found")
        return _Reply(
            200, {"api_id": _api_id(), "campaign": plivo_campaign(campaign, args["auth_id"])}
        )

    # ---- Telnyx ----
    def _telnyx_campaign(self, method: str, args: dict[str, str], request: Request) -> _Reply:
        campaign = self.carrier.campaigns.get("telnyx", args["cid"])
        if not campaign.exists:
            return self._not_found("telnyx")
        return _Reply(200, telnyx_campaign(campaign, shared=False))

    def _telnyx_partner_campaign(
        self, method: str, args: dict[str, str], request: Request
    ) -> _Reply:
        campaign = self.carrier.campaigns.get("telnyx", args["cid"])
        if not campaign.exists:
            return self._not_found("telnyx")
        return _Reply(200, telnyx_campaign(campaign, shared=True))

    def _telnyx_record(self, rec: Record) -> dict[str, Any]:
        # A campaign id that is not a UUID is the TCR id of a campaign shared with the account
        # by another CSP: its records carry that id as campaignId and no Telnyx ids (REFERENCE §12).
        shared = is_shared_campaign(rec.campaign_id)
        out: dict[str, Any] = {
            "phoneNumber": rec.number,
            "campaignId": rec.campaign_id,
            "createdAt": _telnyx_time(rec.created_at),
            "updatedAt": _telnyx_time(rec.updated_at),
            "brandId": "" if shared else TELNYX_BRAND_ID,
            "tcrBrandId": TELNYX_PARTNER_TCR_BRAND_ID if shared else TELNYX_TCR_BRAND_ID,
            "tcrCampaignId": tcr_campaign_id(rec.campaign_id),
            "telnyxCampaignId": "" if shared else rec.campaign_id,
            "assignmentStatus": self._status_of(rec),
        }
        if rec.status in (LINK_FAILED, UNLINK_FAILED) and rec.failure_reason:
            out["failureReasons"] = rec.failure_reason
        out |= self._telnyx_mapping(rec)
        return out

    def _telnyx_mapping(self, rec: Record) -> dict[str, str]:
        """Per-carrier mapping statuses: PENDING while assigning, ADDED once assigned, except
        the carrier ``telnyx_mapping_failures`` names for this number (or "*"): FAILED."""
        if rec.status not in (PENDING_LINK, LINKED):
            return {}
        failures = self._cfg.telnyx_mapping_failures
        failed = failures.get(rec.number, failures.get("*"))
        done = rec.status == LINKED
        return {
            field: ("FAILED" if carrier == failed else "ADDED") if done else "PENDING"
            for field, carrier in TELNYX_MAPPING_FIELDS.items()
        }

    def _telnyx_body(self, request: Request) -> tuple[str, str] | _Reply:
        try:
            body = self._json(request)
        except ValueError:
            return self._error("telnyx", 400, "The request body is not valid JSON.", "10015")
        if not isinstance(body, dict):
            return self._error("telnyx", 400, "The request body is not valid JSON.", "10015")
        for key in ("phoneNumber", "campaignId"):
            if not isinstance(body.get(key), str) or not body[key]:
                return self._error(
                    "telnyx",
                    400,
                    f"The '{key}' parameter is required.",
                    "10004",
                    pointer=f"/{key}",
                )
        number = nanp_e164(body["phoneNumber"], plus="required")
        if number is None:
            return self._invalid_number("/phoneNumber")
        return number, body["campaignId"]

    def _invalid_number(self, pointer: str) -> _Reply:
        return self._error(
            "telnyx",
            400,
            "The specified phone number parameter must be in +E.164 format.",
            "10016",
            pointer=pointer,
        )

    def _telnyx_phone_number_campaigns(
        self, method: str, args: dict[str, str], request: Request
    ) -> _Reply:
        if method == "POST":
            parsed = self._telnyx_body(request)
            if isinstance(parsed, _Reply):
                return parsed
            rec = self.carrier.telnyx_assign(*parsed)
            return _Reply(200, self._telnyx_record(rec))
        cfg = self._cfg
        q = request.args
        try:
            page = int(q.get("page", q.get("page[number]", 1)))
            per_page = int(q.get("recordsPerPage", q.get("page[size]", 20)))
        except ValueError:
            return self._error("telnyx", 400, "page and recordsPerPage must be integers")
        if page < 1 or per_page < 1 or per_page > cfg.telnyx_max_records_per_page:
            return self._error(
                "telnyx",
                400,
                f"page must be >= 1 and recordsPerPage between 1 and "
                f"{cfg.telnyx_max_records_per_page}",
            )
        # The guides' filter[campaignId] is not in the spec (accepted: unknown keys are).
        campaign = q.get("filter[campaignId]") or q.get("filter[campaign_id]")
        telnyx_id = q.get("filter[telnyx_campaign_id]")
        tcr = q.get("filter[tcr_campaign_id]")

        def keep(r: Record) -> bool:
            if telnyx_id and (
                is_shared_campaign(r.campaign_id) or r.campaign_id.lower() != telnyx_id.lower()
            ):
                return False
            return not tcr or tcr_campaign_id(r.campaign_id) == tcr

        sort = q.get("sort", "-createdAt")
        field = sort.lstrip("-")
        keys: dict[str, Callable[[Record], Any] | None] = {
            "createdAt": None,  # the carrier's own order (by seq)
            "phoneNumber": lambda r: r.number,
            "assignmentStatus": lambda r: (r.provider_status(), r.seq),
        }
        if field not in keys:
            return self._error("telnyx", 400, f"unsupported sort {sort!r}", pointer="/sort")
        if cfg.telnyx_page_cap:  # a provider that serves fewer records than asked
            per_page = min(per_page, cfg.telnyx_page_cap)
        total, recs = self.carrier.records_page(
            "telnyx",
            campaign,
            (page - 1) * per_page,
            per_page,
            keep=keep if telnyx_id or tcr else None,
            order=keys[field],
            reverse=sort.startswith("-"),
        )
        return _Reply(
            200,
            {
                "page": page,
                "totalRecords": total,
                "records": [self._telnyx_record(r) for r in recs],
            },
        )

    def _telnyx_phone_number_campaign(
        self, method: str, args: dict[str, str], request: Request
    ) -> _Reply:
        number = nanp_e164(args["number"], plus="required")
        if number is None:
            return self._invalid_number("/phoneNumber")
        if method == "GET":
            rec = self.carrier.get("telnyx", number)
            if rec is None:
                return self._not_found("telnyx")
            return _Reply(200, self._telnyx_record(rec))
        if method == "PUT":
            parsed = self._telnyx_body(request)
            if isinstance(parsed, _Reply):
                return parsed
            if parsed[0] != number:
                return self._error(
                    "telnyx", 400, "phoneNumber does not match the path", pointer="/phoneNumber"
                )
            return _Reply(200, self._telnyx_record(self.carrier.telnyx_update(*parsed)))
        try:
            rec = self.carrier.telnyx_delete(number)
        except CarrierError as exc:
            if exc.kind == "not_found":
                return self._not_found("telnyx")
            raise
        return _Reply(200, self._telnyx_record(rec))

    # ---- control API ----
    def env(self, base_url: str) -> dict[str, str]:
        cfg = self._cfg
        return {
            "PLIVO_API_URL": base_url,
            "PLIVO_AUTH_ID": cfg.plivo_auth_id,
            "PLIVO_AUTH_TOKEN": cfg.plivo_auth_token,
            "TELNYX_API_URL": base_url,
            "TELNYX_API_KEY": cfg.telnyx_api_key,
            "TELNYX_PUBLIC_KEY": self.telnyx_public_key,
        }

    def _control(self, name: str, request: Request) -> _Reply:
        try:
            body = self._json(request) if request.method == "POST" else {}
        except ValueError:
            return _Reply(400, {"error": "invalid JSON body"})
        if not isinstance(body, dict):
            return _Reply(400, {"error": "the body must be a JSON object"})
        try:
            return self._control_dispatch(name, request, body)
        except ConfigError as exc:
            return _Reply(400, {"error": str(exc)})
        except CarrierError as exc:
            return _Reply(404 if exc.kind == "not_found" else 400, {"error": exc.message})

    def _control_dispatch(self, name: str, request: Request, body: dict[str, Any]) -> _Reply:
        if name == "config":
            if request.method == "POST":
                self.update_config(body)
            return _Reply(200, {**self._cfg.to_dict(), "telnyx_public_key": self.telnyx_public_key})
        if name == "counters":
            return _Reply(200, self.counters())
        if name in ("campaigns", "preload"):
            return self._control_campaigns(name, request, body)
        if name == "reset":
            self.reset(config=bool(body.get("config", False)))
            return _Reply(200, {"reset": True})
        if name == "numbers":
            provider = request.args.get("provider") or None
            if provider is not None and provider not in PROVIDERS:
                return _Reply(400, {"error": "provider must be plivo or telnyx"})
            return _Reply(200, {"numbers": self.carrier.snapshot(provider)})
        if name == "drift":
            provider = body.get("provider")
            if provider not in PROVIDERS:
                return _Reply(400, {"error": "provider must be plivo or telnyx"})
            number = nanp_e164(body.get("number"))
            if number is None:
                return _Reply(400, {"error": "number must be a US number"})
            result = self.carrier.drift(
                provider,
                number,
                str(body.get("action")),
                body.get("campaign_id"),
                callback=bool(body.get("callback", False)),
            )
            return _Reply(200, {"drift": body.get("action"), "number": number, "record": result})
        if name == "settle":
            settled = self.carrier.settle()
            idle = None
            if body.get("wait_callbacks"):
                idle = self.dispatcher.wait_idle(float(body.get("timeout", 10.0)))
            return _Reply(200, {"settled": settled, "callbacks_idle": idle})
        if name == "resend":
            since = _parse_since(body.get("since"))
            provider = body.get("provider") or None
            return _Reply(200, {"resent": self.dispatcher.resend(since, provider)})
        if name == "keys":
            return _Reply(200, {"telnyx_public_key": self.telnyx_public_key})
        if name == "callbacks":
            try:
                since_id = int(request.args.get("since_id", 0))
                limit = int(request.args.get("limit", 1000))
            except ValueError:
                return _Reply(400, {"error": "since_id and limit must be integers"})
            provider = request.args.get("provider") or None
            return _Reply(200, {"callbacks": self.dispatcher.log(provider, since_id, limit)})
        if name == "health":
            return _Reply(200, {"ok": True, "callbacks_pending": self.dispatcher.pending()})
        if name == "env":
            return _Reply(200, self.env(request.host_url.rstrip("/")))
        if name == "events":
            try:
                since_seq = int(request.args.get("since_seq", 0))
                limit = int(request.args.get("limit", 1000))
            except ValueError:
                return _Reply(400, {"error": "since_seq and limit must be integers"})
            return _Reply(200, self.events.log(since_seq, limit))
        return _Reply(404, {"error": "unknown control endpoint"})

    def _control_campaigns(self, name: str, request: Request, body: dict[str, Any]) -> _Reply:
        """``/_sandbox/campaigns`` (change one campaign, or list the configured ones) and
        ``/_sandbox/preload`` (links that existed before dlcsync, created silently)."""
        provider = (
            body.get("provider") if request.method == "POST" else request.args.get("provider")
        )
        if provider not in PROVIDERS:
            return _Reply(400, {"error": "provider must be plivo or telnyx"})
        campaigns = self.carrier.campaigns
        if name == "campaigns" and request.method == "GET":
            return _Reply(200, {"campaigns": [vars(c) for c in campaigns.configured(provider)]})
        if name == "campaigns":
            cid = body.get("campaign_id")
            if not isinstance(cid, str) or not cid:
                return _Reply(400, {"error": "campaign_id is required"})
            changes = {k: v for k, v in body.items() if k not in ("provider", "campaign_id")}
            try:
                return _Reply(200, vars(campaigns.update(provider, cid, changes)))
            except CampaignConfigError as exc:
                return _Reply(400, {"error": str(exc)})
        links = body.get("links")
        if not isinstance(links, list):
            return _Reply(400, {"error": "links must be a list"})
        parsed: list[tuple[str, str, bool]] = []
        for i, item in enumerate(links):
            number = nanp_e164(item.get("number")) if isinstance(item, dict) else None
            cid = item.get("campaign_id") if isinstance(item, dict) else None
            if number is None or not isinstance(cid, str) or not cid:
                return _Reply(400, {"error": f"links[{i}] needs a US number and a campaign_id"})
            parsed.append((number, cid, item.get("status") == "pending"))
        return _Reply(200, {"preloaded": self.carrier.preload(provider, parsed)})


#: Assignment record fields of the per-carrier mapping statuses -> carrier names.
TELNYX_MAPPING_FIELDS = {
    "tmobileNumberMappingStatus": "tmobile",
    "nonTmobileNumberMappingStatus": "non_tmobile",
    "attNumberMappingStatus": "att",
}

_TELNYX_TITLES = {
    "10004": "Missing required parameter",
    "10005": "Resource not found",
    "10007": "Unexpected error",
    "10009": "Authentication failed",
    "10011": "Too many requests",
    "10015": "Bad Request",
    "10016": "Phone number must be in +E.164 format",
    "10036": "Resource is being processed",
}


def _parse_since(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            pass
        try:
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError("since must be an ISO 8601 time or unix seconds") from exc
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    raise ConfigError("since must be an ISO 8601 time or unix seconds")
