"""``dlcsync sandbox``: run the fake Plivo + Telnyx carrier until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from sandbox.config import (
    DEFAULT_PLIVO_AUTH_ID,
    DEFAULT_PLIVO_AUTH_TOKEN,
    DEFAULT_TELNYX_API_KEY,
    DEFAULT_TELNYX_SEED,
    ConfigError,
    SandboxConfig,
)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8900, show_default=True, type=int, help="0 picks a free port.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for outcomes.")
@click.option(
    "--delay", default=2.0, show_default=True, type=float, help="Seconds until a link settles."
)
@click.option(
    "--failure-ratio",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of link and unlink requests that fail.",
)
@click.option("--telnyx-webhook-url", default=None, help="Where Telnyx callbacks go.")
@click.option("--plivo-auth-id", default=DEFAULT_PLIVO_AUTH_ID, show_default=True)
@click.option("--plivo-auth-token", default=DEFAULT_PLIVO_AUTH_TOKEN, show_default=True)
@click.option("--telnyx-api-key", default=DEFAULT_TELNYX_API_KEY, show_default=True)
@click.option(
    "--telnyx-seed",
    default=DEFAULT_TELNYX_SEED,
    help="32-byte Ed25519 seed (64 hex digits) that signs Telnyx callbacks.",
)
def sandbox(
    host: str,
    port: int,
    seed: int,
    delay: float,
    failure_ratio: float,
    telnyx_webhook_url: str | None,
    plivo_auth_id: str,
    plivo_auth_token: str,
    telnyx_api_key: str,
    telnyx_seed: str,
) -> None:
    """Local simulated Plivo and Telnyx 10DLC APIs (one port), with callbacks and faults."""
    from sandbox.server import SandboxHandle, build_server

    try:
        config = SandboxConfig().updated(
            {
                "host": host,
                "port": port,
                "seed": seed,
                "delay": delay,
                "link_failure_ratio": failure_ratio,
                "unlink_failure_ratio": failure_ratio,
                "telnyx_webhook_url": telnyx_webhook_url,
                "plivo_auth_id": plivo_auth_id,
                "plivo_auth_token": plivo_auth_token,
                "telnyx_api_key": telnyx_api_key,
                "telnyx_seed": telnyx_seed,
            },
            runtime=False,
        )
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc
    try:
        sb, server = build_server(config)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    handle = SandboxHandle(sb, server)
    click.echo(f"dlcsync sandbox listening on {handle.url}")
    click.echo(f"  Plivo API:   {handle.url}/v1/Account/{config.plivo_auth_id}/10dlc/...")
    click.echo(f"  Telnyx API:  {handle.url}/v2/10dlc/phone_number_campaigns")
    click.echo(f"  control API: {handle.url}/_sandbox/config (counters, numbers, drift, ...)")
    click.echo(f"  Telnyx callbacks go to: {config.telnyx_webhook_url or '(not set)'}")
    click.echo("Environment for dlcsync:")
    for key, value in handle.env().items():
        click.echo(f"  export {key}={value}")

    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
    handle._start()
    try:
        while not done.wait(0.5):
            pass
    finally:
        click.echo("dlcsync sandbox: shutting down")
        handle.stop()
        for s, h in previous.items():
            signal.signal(s, h)
