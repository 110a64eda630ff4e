"""``dlcsync run``: everything on one machine, for trying dlcsync out.

Starts the sandbox carrier (when no provider credentials are configured), migrates the
database, starts web (gunicorn), worker and beat (Celery) as the Procfile does, links a few
dozen sample numbers on both providers, and prints where to watch them move. Ctrl-C stops
every process it started (each in its own process group, stopped by recorded id).
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import click
import httpx

from common.settings import Settings
from providers.registry import enabled_providers

BIN = Path(sys.executable).parent
SAMPLE_CAMPAIGNS = {"plivo": ["CSAMPL1", "CSAMPL2"], "telnyx": ["TSAMPLE-1", "TSAMPLE-2"]}


class Supervisor:
    def __init__(self, logdir: Path, env: dict[str, str]) -> None:
        self.logdir = logdir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        logdir.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def process_secrets(env: dict[str, str]) -> dict[str, str]:
    """``API_TOKEN`` and ``SECRET_KEY`` for the processes: the environment's, else random
    (256 bits each, and independent: the cookie key is never derived from the token)."""
    return {
        name: env.get(name) or secrets.token_urlsafe(32) for name in ("API_TOKEN", "SECRET_KEY")
    }


def _wait_http(url: str, timeout: float, sup: Supervisor, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sup.procs[name].poll() is not None:
            raise click.ClickException(f"{name} exited; see {sup.logdir / (name + '.log')}")
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise click.ClickException(f"{name} did not answer {url} in {timeout:.0f}s")


@click.command("run")
@click.option("--port", type=int, default=None, help="Web port (default: PORT or 8000).")
@click.option("--sandbox-port", type=int, default=8900, show_default=True)
@click.option(
    "--samples/--no-samples",
    default=True,
    show_default=True,
    help="Link a few dozen sample numbers on each provider.",
)
@click.option("--worker-concurrency", type=int, default=2, show_default=True)
def run(port: int | None, sandbox_port: int, samples: bool, worker_concurrency: int) -> None:
    """Start web, worker, beat (and the sandbox) and link sample numbers."""
    from models.migrate import upgrade

    env = dict(os.environ)
    port = port or int(env.get("PORT", "8000"))
    env.setdefault("PUBLIC_URL", f"http://127.0.0.1:{port}")
    env.update(process_secrets(env))
    logdir = Path("var/log").resolve()
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        # Multiprocess metrics (web workers + Celery): this run owns every process, so it
        # starts from an empty directory.
        metrics_dir = Path("var/metrics").resolve()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    sup = Supervisor(logdir, env)
    settings = Settings()
    use_sandbox = not enabled_providers(settings)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        if use_sandbox:
            sandbox_url = f"http://127.0.0.1:{sandbox_port}"
            sup.spawn(
                "sandbox",
                [
                    str(BIN / "dlcsync"),
                    "sandbox",
                    "--port",
                    str(sandbox_port),
                    "--delay",
                    "8",
                    "--failure-ratio",
                    "0.15",
                    "--telnyx-webhook-url",
                    f"{env['PUBLIC_URL']}/webhooks/telnyx",
                ],
            )
            _wait_http(f"{sandbox_url}/_sandbox/health", 30, sup, "sandbox")
            env.update(httpx.get(f"{sandbox_url}/_sandbox/env", trust_env=False).json())
            click.echo(f"sandbox carrier (fake Plivo + Telnyx) on {sandbox_url}")
            if not env.get("EVENT_WEBHOOK_URLS"):
                # The sandbox also receives dlcsync's outbound events and checks their
                # signatures with a secret made for this run.
                secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
                httpx.post(
                    f"{sandbox_url}/_sandbox/config",
                    json={"event_secret": secret},
                    trust_env=False,
                ).raise_for_status()
                env["EVENT_WEBHOOK_URLS"] = f"{sandbox_url}/_sandbox/events"
                env["EVENT_WEBHOOK_SECRET"] = secret
        for key in (
            "PLIVO_API_URL",
            "TELNYX_API_URL",
            "PLIVO_AUTH_ID",
            "PLIVO_AUTH_TOKEN",
            "TELNYX_API_KEY",
            "TELNYX_PUBLIC_KEY",
            "EVENT_WEBHOOK_URLS",
            "EVENT_WEBHOOK_SECRET",
        ):
            if key in env:
                os.environ[key] = env[key]
        settings = Settings()
        upgrade(settings.database_url)
        sup.spawn(
            "web",
            [
                str(BIN / "gunicorn"),
                "--config",
                "python:webhooks.gunicorn_conf",
                "webhooks.wsgi:app",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--timeout",
                "30",
            ],
        )
        sup.spawn(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "worker.main",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                str(worker_concurrency),
                "--queues",
                "dlcsync",
            ],
        )
        sup.spawn(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "worker.main",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(Path("var/celerybeat-schedule").resolve()),
            ],
        )
        _wait_http(f"http://127.0.0.1:{port}/healthz", 60, sup, "web")
        if samples:
            _link_samples(settings)
        _print_where_to_look(env, port, logdir, settings, use_sandbox)
        while not (dead := sup.dead()):
            time.sleep(0.5)
        raise click.ClickException(f"{', '.join(dead)} exited; see the logs in {logdir}")
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        sup.stop()


def _link_samples(settings: Settings) -> None:
    from models.batch import Entry, link_numbers
    from models.db import make_engine, transaction
    from models.statemachine import Source

    engine = make_engine(settings.database_url)
    total = 0
    with transaction(engine) as session:
        for p, provider in enumerate(enabled_providers(settings)):
            for c, campaign in enumerate(SAMPLE_CAMPAIGNS.get(provider, ["SAMPLE1"])):
                numbers = [f"+1312{5 + p}{c}{i:05d}" for i in range(15)]
                results = link_numbers(
                    session, provider, campaign, [Entry(n) for n in numbers], source=Source.CLI
                )
                total += sum(r.changed for r in results)
    engine.dispose()
    click.echo(f"requested links for {total} sample numbers")


def _print_where_to_look(
    env: dict[str, str], port: int, logdir: Path, settings: Settings, sandbox: bool
) -> None:
    web = f"http://127.0.0.1:{port}"
    token = env["API_TOKEN"]
    db = urlsplit(settings.database_url)
    events = ""
    if settings.event_webhook_url_list:
        where = " ".join(settings.event_webhook_url_list)
        events = f"\n  events      signed POSTs to {where}   (.venv/bin/dlcsync events)"
    click.echo(
        f"""
dlcsync is running.
  dashboard   {web}/            (token: {token})
  API         curl -H 'Authorization: Bearer {token}' {web}/api/v1/links
  CLI         .venv/bin/dlcsync status      .venv/bin/dlcsync history +13125000000
  health      {web}/readyz      metrics {web}/metrics
  database    {db.scheme}:{db.path}
  logs        {logdir}/(web|worker|beat{"|sandbox" if sandbox else ""}).log{events}
Links move LINK_REQUESTED -> PROCESSING -> COMPLETED or FAILED over the next minute.
Press Ctrl-C to stop."""
    )
