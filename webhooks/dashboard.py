"""The read-only dashboard for people (``GET /``): server-rendered, no JavaScript needed.

Pages: ``/`` (counts per provider, campaign and state; failed, stuck and drifted links with
their reasons; transitions per hour as an inline SVG chart), ``/number?number=`` (a number's
links and audit timeline), ``/login`` and ``/logout``.

Auth is the API's: the login form takes ``API_TOKEN`` (compared with
:func:`hmac.compare_digest`). A login opens a server-side session (:mod:`models.logins`) whose
random token travels in a cookie signed with ``SECRET_KEY`` — a setting of its own, never
derived from ``API_TOKEN``. Logging out deletes the session, so a copied cookie is worthless
afterwards; a session also ends when ``API_TOKEN`` changes (it remembers a fingerprint of the
token). Failed logins are counted per client address in the database (shared by every web
worker): past :data:`models.logins.MAX_FAILURES` within the window, every login from that
address is refused with 429, right token or not, until the window has passed.

Without ``API_TOKEN`` or ``SECRET_KEY`` every page refuses with 403 and says which is missing
(without ``SECRET_KEY`` the API still works). Login and logout are POST forms carrying a
per-session CSRF token; the cookie is HttpOnly, SameSite=Lax, and Secure when ``PUBLIC_URL``
is https.

Every query is a plain function of :mod:`models.reports`, :mod:`models.problems` and
:mod:`models.history`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from sqlmodel import Session

from models import history, logins, mapping, reports
from models.alerts import outbox as alerts
from models.db import transaction
from models.numbers import InvalidNumber, lookup_e164
from models.problems import Problem, problem_counts, problem_links
from models.statemachine import PENDING, State
from models.tables import utcnow
from webhooks.services import services

bp = Blueprint("dashboard", __name__, template_folder="templates")

F = TypeVar("F", bound=Callable[..., Any])

#: How long a login lasts.
SESSION_SECONDS = 12 * 3600
#: Rows shown per problem list and campaign table (the totals are always exact).
PROBLEM_LIMIT = 200
CAMPAIGN_LIMIT = 500
CHART_HOURS = 24


@bp.record_once
def _configure(state: BlueprintSetupState) -> None:
    app = state.app
    settings = app.extensions["dlcsync"].settings
    if settings.secret_key is not None:
        app.config["SECRET_KEY"] = settings.secret_key.get_secret_value()
    app.config["SESSION_COOKIE_NAME"] = "dlcsync_session"
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SECURE"] = settings.public_url_is_https
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=SESSION_SECONDS)


def _api_token() -> str:
    token = services().settings.api_token
    return token.get_secret_value() if token is not None else ""


def _missing_setting() -> str | None:
    """The setting whose absence closes the dashboard, if any."""
    if not _api_token():
        return "API_TOKEN"
    if services().settings.secret_key is None:
        return "SECRET_KEY"
    return None


def _refused(missing: str) -> tuple[str, int]:
    return render_template("dashboard/refused.html", missing=missing), 403


def _token_fingerprint() -> str:
    """Which API_TOKEN a session was opened with (keyed, so the table does not leak it)."""
    secret_key = services().settings.secret_key
    key = secret_key.get_secret_value() if secret_key is not None else ""
    return hmac.new(key.encode(), _api_token().encode(), hashlib.sha256).hexdigest()


def client_key(address: str | None) -> str:
    """Whom failed logins are counted against: the address (an IPv6 address's /64)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _logged_in() -> bool:
    sid = session.get("sid")
    if not isinstance(sid, str):
        return False
    with Session(services().engine) as db:
        return logins.session_is_open(db, sid, token_fingerprint=_token_fingerprint(), now=utcnow())


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def _csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.form.get("csrf", "")
    return isinstance(expected, str) and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode()
    )


def _safe_next(target: str | None) -> str:
    """Only local paths: never redirect to another site after login. Control characters
    (CR/LF would split the Location header) are a 400, not a 503."""
    if not target:
        return url_for("dashboard.index")
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        abort(400, "the next parameter holds control characters")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.index")
    return target


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if missing := _missing_setting():
            return _refused(missing)
        if not _logged_in():
            return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapper)


@bp.after_request
def _no_store(response: Any) -> Any:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "form-action 'self'; frame-ancestors 'none'",
    )
    return response


# --- login / logout ------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if missing := _missing_setting():
        return _refused(missing)
    error = None
    status = 200
    if request.method == "POST":
        if not _csrf_ok():
            error, status = "The form expired; please try again.", 400
        else:
            outcome, sid = _check_login(
                request.form.get("token", ""), client_key(request.remote_addr)
            )
            if outcome == "wrong":
                error, status = "Wrong token.", 401
            elif outcome == "throttled":
                error, status = _throttled_message(), 429
            else:
                session.clear()
                session.permanent = True
                session["sid"] = sid
                session["csrf"] = secrets.token_urlsafe(32)  # a fresh token after login
                return redirect(_safe_next(request.form.get("next")))
    page = render_template(
        "dashboard/login.html",
        csrf=_csrf_token(),
        next=_safe_next(request.values.get("next")),
        error=error,
    )
    headers = {"Retry-After": str(int(logins.FAILURE_WINDOW.total_seconds()))}
    return page, status, headers if status == 429 else {}


def _check_login(given: str, client: str) -> tuple[Literal["ok", "wrong", "throttled"], str]:
    """``("ok", new session token)``, ``("wrong", "")`` or ``("throttled", "")``.

    The throttle is checked first: while it holds, even the right token is refused, or it
    would not slow down guessing at all.
    """
    now = utcnow()
    with transaction(services().engine) as db:
        if logins.is_throttled(db, client, now=now):
            return "throttled", ""
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), _api_token().encode()):
            logins.record_failure(db, client, now=now)
            return "wrong", ""
        logins.clear_failures(db, client)
        sid = logins.open_session(
            db,
            token_fingerprint=_token_fingerprint(),
            lifetime=timedelta(seconds=SESSION_SECONDS),
            now=now,
        )
        return "ok", sid


def _throttled_message() -> str:
    minutes = int(logins.FAILURE_WINDOW.total_seconds() // 60)
    return f"Too many failed logins from your address; try again in {minutes} minutes."


@bp.post("/logout")
def logout() -> Any:
    if missing := _missing_setting():
        return _refused(missing)
    if not _csrf_ok():
        abort(400, "missing or wrong CSRF token")
    sid = session.get("sid")
    if isinstance(sid, str):
        with transaction(services().engine) as db:
            logins.close_session(db, sid)
    session.clear()
    return redirect(url_for("dashboard.login"))


# --- pages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignRow:
    provider: str
    campaign_id: str
    counts: dict[str, int]
    total: int


@bp.get("/")
@login_required
def index() -> Any:
    svc = services()
    now = utcnow()
    stuck_after = timedelta(seconds=svc.settings.stuck_after_seconds)
    with Session(svc.engine) as db:
        counts = reports.state_counts(db)
        problems, problem_total = problem_links(
            db, stuck_after=stuck_after, limit=PROBLEM_LIMIT, now=now
        )
        kind_counts = problem_counts(db, stuck_after=stuck_after, now=now)
        buckets = reports.transitions_per_hour(db, hours=CHART_HOURS, now=now)
        attention_alerts = {
            kind: list(alerts.recent_alerts(db, since=now - ATTENTION_WINDOW, kind=kind, limit=20))
            for kind in ATTENTION_ALERT_KINDS
        }

    rows: dict[tuple[str, str], dict[str, int]] = {}
    for c in counts:
        rows.setdefault((c.provider, c.campaign_id), {})[c.state] = c.count
    campaigns = [
        CampaignRow(p, cid, per_state, sum(per_state.values()))
        for (p, cid), per_state in sorted(rows.items())
    ]
    totals = {s.value: sum(r.counts.get(s.value, 0) for r in campaigns) for s in State}
    by_kind: dict[str, list[Problem]] = {"failed": [], "stuck": [], "drifted": []}
    for problem in problems:
        by_kind.setdefault(problem.kind, []).append(problem)
    return render_template(
        "dashboard/index.html",
        states=[s.value for s in State],
        campaigns=campaigns[:CAMPAIGN_LIMIT],
        campaign_count=len(campaigns),
        totals=totals,
        grand_total=sum(totals.values()),
        by_kind=by_kind,
        kind_counts=kind_counts,
        problem_total=problem_total,
        attention_alerts=attention_alerts,
        chart=transition_chart(buckets, now=now, hours=CHART_HOURS),
        stuck_after=stuck_after,
        csrf=_csrf_token(),
        logged_in=True,
        now=now,
    )


#: Alerts about campaigns and carrier mappings, shown under "needs attention" (links that
#: failed, are stuck or drifted are listed from the links themselves).
ATTENTION_ALERT_KINDS = ("campaign_failing", "campaign_empty", "carrier_mapping_failed")
ATTENTION_WINDOW = timedelta(days=30)


@bp.get("/number")
@login_required
def number() -> Any:
    raw = request.args.get("number", "").strip()
    provider = request.args.get("provider") or None
    if not raw:
        return redirect(url_for("dashboard.index"))
    try:
        e164 = lookup_e164(raw)
    except InvalidNumber as exc:
        return (
            render_template(
                "dashboard/number.html",
                raw=raw,
                error=str(exc),
                timelines=[],
                csrf=_csrf_token(),
                logged_in=True,
            ),
            400,
        )
    svc = services()
    with Session(svc.engine) as db:
        links = reports.links_of_number(db, e164, provider)
        timelines = [(link, history.link_history(db, link.provider, e164)) for link in links]
        mappings: dict[int, list[Any]] = {}
        for change in mapping.history(db, [link.id for link in links if link.id is not None]):
            mappings.setdefault(change.link_id, []).append(change)
    return (
        render_template(
            "dashboard/number.html",
            raw=raw,
            number=e164,
            error=None,
            timelines=timelines,
            mappings=mappings,
            carrier_names=mapping.CARRIER_NAMES,
            csrf=_csrf_token(),
            logged_in=True,
        ),
        200 if timelines else 404,
    )


# --- the chart -----------------------------------------------------------------------------

#: Bar colour per kind of destination state.
CHART_SERIES = (
    ("linked / unlinked", "#2e7d32", {State.COMPLETED.value, State.UNLINKED.value}),
    ("failed", "#c62828", {State.FAILED.value, State.UNLINK_FAILED.value}),
    ("requested / in progress", "#1565c0", {s.value for s in PENDING}),
)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    color: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bar_width: float
    bars: list[Bar]
    max_count: int
    labels: list[tuple[float, str]]
    total: int
    legend: list[tuple[str, str]]


def transition_chart(
    buckets: list[reports.TransitionBucket], *, now: datetime, hours: int
) -> Chart:
    """Stacked bars of audit rows per hour (server-side SVG: no script, no CDN)."""
    width, height, top = 720, 160, 10
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    per_hour: list[dict[str, int]] = [{} for _ in range(hours)]
    for b in buckets:
        index = int((b.start - start).total_seconds() // 3600)
        if 0 <= index < hours:
            series = next(
                (name for name, _, states in CHART_SERIES if b.to_state in states),
                CHART_SERIES[-1][0],
            )
            per_hour[index][series] = per_hour[index].get(series, 0) + b.count
    max_count = max([sum(h.values()) for h in per_hour] + [1])
    slot = width / hours
    bars: list[Bar] = []
    for i, counts in enumerate(per_hour):
        y = float(height)
        hour = start + timedelta(hours=i)
        for name, color, _ in CHART_SERIES:
            n = counts.get(name, 0)
            if not n:
                continue
            h = (height - top) * n / max_count
            y -= h
            title = f"{hour:%Y-%m-%d %H}:00 UTC: {n} {name}"
            bars.append(Bar(i * slot + 1, y, h, color, title))
    labels = [
        (i * slot, f"{(start + timedelta(hours=i)):%H}:00")
        for i in range(0, hours, max(1, hours // 6))
    ]
    return Chart(
        width=width,
        height=height,
        bar_width=max(1.0, slot - 2),
        bars=bars,
        max_count=max_count,
        labels=labels,
        total=sum(sum(h.values()) for h in per_hour),
        legend=[(name, color) for name, color, _ in CHART_SERIES],
    )
