"""The reliability harness: a supervised stack of real processes, a callback storm, and chaos.

- :class:`RelStack` extends :class:`tests.stack.Stack`: the sandbox runs as a subprocess
  (``dlcsync sandbox``), every process has its own process group and is stopped or killed by
  its recorded pid, and a supervisor thread restarts any process that died (a SIGKILL, a
  crash point's ``os._exit(137)``, a graceful SIGTERM), as a platform's process manager would.
- :class:`Storm` turns the sandbox's truth into signed Telnyx and Plivo callbacks, delivers
  each one 1-5 times in shuffled order from many threads, retries every non-2xx like a
  provider does, and records every answer with the delivery's dedupe key (for the oracle).
- Chaos actions: kill the worker every few seconds, SIGKILL the scenario's private Redis
  (found by the pid it reports), stop PostgreSQL for a while, restart web and worker gracefully.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from providers.plivo import compute_signature_v3
from tests.stack import (
    BIN,
    Proc,
    RedisServer,
    Stack,
    beat_command,
    free_port,
    wait_for,
    web_command,
    worker_command,
)

# --- the stack --------------------------------------------------------------------------


@dataclass
class Spec:
    """How to (re)start one supervised process."""

    args: list[str]
    env: dict[str, str]
    ready: bytes | None = None  # a log line that says the process is up


@dataclass
class RelStack(Stack):
    specs: dict[str, Spec] = field(default_factory=dict)
    sandbox_url: str = ""
    #: Figures for the report: kills by chaos, restarts by the supervisor, exit codes seen.
    kills: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    exit_codes: Counter[str] = field(default_factory=Counter)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _supervisor: threading.Thread | None = None
    _log_offsets: dict[str, int] = field(default_factory=dict)

    # -- processes --
    def launch(
        self, name: str, args: list[str], extra_env: dict[str, str] | None = None, ready=None
    ) -> Proc:
        spec = Spec(args, self.env | (extra_env or {}), ready)
        with self._lock:
            self.specs[name] = spec
            return self._spawn(name, spec)

    def _spawn(self, name: str, spec: Spec) -> Proc:
        log = self.workdir / f"{name}.log"
        self._log_offsets[name] = log.stat().st_size if log.exists() else 0
        with log.open("ab") as out:
            popen = subprocess.Popen(
                spec.args,
                cwd=self.workdir,
                env=spec.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped by its pid
            )
        proc = Proc(name, popen, log)
        self.procs[name] = proc
        return proc

    def is_ready(self, name: str) -> bool:
        spec, proc = self.specs[name], self.procs[name]
        if not proc.alive():
            return False
        if spec.ready is None:
            return True
        with proc.log.open("rb") as f:
            f.seek(self._log_offsets.get(name, 0))
            return spec.ready in f.read()

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        wait_for(lambda: self.is_ready(name), timeout, f"{name} ready\n{self.procs[name].tail()}")

    def supervise(self) -> None:
        """Restart whatever dies, from now until :meth:`stop`."""
        if self._supervisor is None:
            self._supervisor = threading.Thread(target=self._watch, daemon=True)
            self._supervisor.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                for name, spec in list(self.specs.items()):
                    proc = self.procs[name]
                    code = proc.popen.poll()
                    if code is None:
                        continue
                    self.exit_codes[f"{name}:{code}"] += 1
                    # Leftover children of a dead master (its pool) die with their group.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    self._spawn(name, spec)
                    self.restarts[name] += 1

    def kill(self, name: str) -> None:
        """SIGKILL the process group (the master and its children); the supervisor restarts."""
        with self._lock:
            self.procs[name].signal(signal.SIGKILL)
            self.kills[name] += 1

    def terminate(self, name: str) -> None:
        """A graceful stop (SIGTERM to the group); the supervisor restarts it when it exits."""
        with self._lock:
            self.procs[name].signal(signal.SIGTERM)
            self.kills[f"{name}_sigterm"] += 1

    def stop(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(5)
        with self._lock:
            for proc in reversed(list(self.procs.values())):
                proc.stop()

    # -- the pieces --
    def start_sandbox(self, *, seed: int, delay: float, failure_ratio: float) -> None:
        port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{port}"
        self.launch(
            "sandbox",
            [
                str(BIN / "dlcsync"),
                "sandbox",
                "--port",
                str(port),
                "--seed",
                str(seed),
                "--delay",
                str(delay),
                "--failure-ratio",
                str(failure_ratio),
            ],
            ready=b"listening on",
        )
        wait_for(
            lambda: self.sandbox("GET", "health")["ok"],
            30,
            f"sandbox\n{self.procs['sandbox'].tail()}",
        )
        self.env |= self.sandbox("GET", "env")
        # Only the sandbox is not restarted: its state is in memory (the carrier's truth).
        self.specs.pop("sandbox")

    def sandbox(self, method: str, name: str, body: dict | None = None) -> dict:
        r = httpx.request(method, f"{self.sandbox_url}/_sandbox/{name}", json=body, timeout=60)
        r.raise_for_status()
        return dict(r.json())

    def launch_web(self, workers: int = 3, extra_env: dict[str, str] | None = None) -> None:
        self.launch(
            "web",
            web_command(self.web_port, workers),
            extra_env,
            ready=b"Booting worker",
        )
        wait_for(
            lambda: httpx.get(f"{self.web_url}/healthz", timeout=1).status_code == 200,
            30,
            f"gunicorn on {self.web_url}\n{self.procs['web'].tail()}",
        )

    def launch_worker(
        self, name: str = "worker", concurrency: int = 2, extra_env: dict[str, str] | None = None
    ) -> None:
        self.launch(
            name,
            worker_command(name, concurrency),
            extra_env,
            ready=b" ready.",
        )
        self.wait_ready(name)

    def launch_beat(self, name: str) -> None:
        self.launch(name, beat_command(self.workdir / f"{name}-schedule"))

    def crash_exits(self) -> dict[str, int]:
        """Crash points reached, counted from exit codes 137 (children are in the logs)."""
        found: Counter[str] = Counter()
        for name, proc in self.procs.items():
            try:
                text = proc.log.read_text(errors="replace")
            except OSError:
                continue
            # gunicorn's arbiter and Celery's prefork master both log a child's exit code.
            found[name] += len(re.findall(r"exited with code 137", text))
            found[name] += len(re.findall(r"exited with 'exitcode 137'", text))
        for key, n in self.exit_codes.items():
            if key.endswith(":137"):
                found[key.split(":")[0]] += n
        return {k: v for k, v in found.items() if v}


# --- the storm --------------------------------------------------------------------------


@dataclass(frozen=True)
class Callback:
    """One provider event; it may be delivered several times (same dedupe key each time)."""

    provider: str
    dedupe_key: str
    body: bytes
    number: str
    nonce: str = ""  # Plivo: the signature nonce (part of dlcsync's dedupe key)
    params: tuple[tuple[str, str], ...] = ()


@dataclass
class Result:
    provider: str
    dedupe_key: str
    status: int  # 0: no answer (connection refused/reset, timeout)
    attempt: int


def _iso(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def telnyx_callback(
    number: str, campaign: str, kind: str, status: str, at: datetime, event_type: str | None = None
) -> Callback:
    event_id = str(uuid.uuid4())
    body = {
        "data": {
            "event_type": event_type or "10dlc.phone_number.update",
            "id": event_id,
            "occurred_at": at.isoformat(),
            "payload": {
                "campaignId": campaign,
                "phoneNumber": number,
                "status": status,
                "type": kind,
                "reasons": [] if status != "failed" else [{"description": "carrier refused"}],
            },
            "record_type": "event",
        },
        "meta": {"attempt": 1},
    }
    return Callback("telnyx", event_id, json.dumps(body).encode(), number)


def plivo_callback(number: str, campaign: str, event: str, status: str) -> Callback:
    params = (
        ("campaign_id", campaign),
        ("number", number.lstrip("+")),
        ("event", event),
        ("status", status),
    )
    nonce = f"{random.getrandbits(64):020d}"
    body = urlencode(params).encode()
    key = hashlib.sha256(nonce.encode() + body).hexdigest()  # as providers/plivo.py dedupes
    return Callback("plivo", key, body, number, nonce, params)


def callbacks_for_truth(truth: list[dict]) -> list[Callback]:
    """The events a provider would have sent for each number, plus noise dlcsync must ignore.

    Telnyx (6 per number): PENDING status update, the assignment result, the matching status
    update, a result about another campaign, a DELETION (another operation), an event of
    another type. Plivo (3): created, the result, the result again under a new nonce.
    """
    out: list[Callback] = []
    for rec in truth:
        number, campaign = rec["number"], rec["campaign_id"]
        ok = rec["status"] == "linked"
        created, updated = _iso(rec["created_at"]), _iso(rec["updated_at"])
        if rec["provider"] == "telnyx":
            out += [
                telnyx_callback(number, campaign, "STATUS_UPDATE", "PENDING", created),
                telnyx_callback(
                    number, campaign, "ASSIGNMENT", "success" if ok else "failed", updated
                ),
                telnyx_callback(
                    number,
                    campaign,
                    "STATUS_UPDATE",
                    "ADDED" if ok else "FAILED",
                    updated + timedelta(milliseconds=1),
                ),
                telnyx_callback(number, campaign + "X", "ASSIGNMENT", "success", updated),
                telnyx_callback(number, campaign, "DELETION", "success", created),
                telnyx_callback(
                    number, campaign, "OTHER", "x", updated, event_type="10dlc.campaign.update"
                ),
            ]
        else:
            final = "success" if ok else "failed"
            out += [
                plivo_callback(number, campaign, "number_linking", "created"),
                plivo_callback(number, campaign, "number_linking", final),
                plivo_callback(number, campaign, "number_linking", final),
            ]
    return out


@dataclass
class Storm:
    """Deliver callbacks from ``senders`` threads, retrying non-2xx until 2xx or ``deadline``."""

    web_url: str
    public_url: str
    telnyx_seed: bytes
    plivo_token: str
    senders: int = 32
    results: list[Result] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deliveries(self, callbacks: list[Callback], rng: random.Random) -> list[Callback]:
        """Each callback 1-5 times, all shuffled together (reordered and duplicated)."""
        items = [cb for cb in callbacks for _ in range(rng.randint(1, 5))]
        rng.shuffle(items)
        return items

    def _headers(self, cb: Callback) -> dict[str, str]:
        if cb.provider == "telnyx":
            ts = int(time.time())  # each (re)delivery is signed anew, as Telnyx does
            sig = Ed25519PrivateKey.from_private_bytes(self.telnyx_seed).sign(
                f"{ts}|".encode() + cb.body
            )
            return {
                "content-type": "application/json",
                "telnyx-timestamp": str(ts),
                "telnyx-signature-ed25519": base64.b64encode(sig).decode(),
            }
        url = f"{self.public_url}/webhooks/plivo"
        sig = compute_signature_v3(self.plivo_token, "POST", url, dict(cb.params), cb.nonce)
        return {
            "content-type": "application/x-www-form-urlencoded",
            "x-plivo-signature-v3": sig,
            "x-plivo-signature-v3-nonce": cb.nonce,
        }

    def run(self, items: list[Callback], *, deadline: float = 600.0) -> None:
        work: queue.SimpleQueue[Callback | None] = queue.SimpleQueue()
        for cb in items:
            work.put(cb)
        for _ in range(self.senders):
            work.put(None)
        stop_at = time.monotonic() + deadline
        threads = [
            threading.Thread(target=self._sender, args=(work, stop_at), daemon=True)
            for _ in range(self.senders)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _sender(self, work: queue.SimpleQueue[Callback | None], stop_at: float) -> None:
        with httpx.Client(timeout=10) as client:
            while (cb := work.get()) is not None:
                attempt, backoff = 0, 0.2
                while True:
                    attempt += 1
                    try:
                        r = client.post(
                            f"{self.web_url}/webhooks/{cb.provider}",
                            content=cb.body,
                            headers=self._headers(cb),
                        )
                        status = r.status_code
                    except httpx.HTTPError:
                        status = 0
                    with self._lock:
                        self.results.append(Result(cb.provider, cb.dedupe_key, status, attempt))
                    if 200 <= status < 300 or time.monotonic() > stop_at:
                        break
                    # A provider retries non-2xx answers with backoff.
                    time.sleep(backoff * random.uniform(0.5, 1.5))
                    backoff = min(backoff * 2, 3.0)


# --- chaos ------------------------------------------------------------------------------


class Chaos:
    """Background actions during the storm; ``with Chaos(action, every): ...``."""

    def __init__(
        self, name: str, action: Callable[[], None], every: float, times: int | None = None
    ):
        self.name, self.action, self.every, self.times = name, action, every, times
        self.done = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            if self.times is not None and self.done >= self.times:
                return
            try:
                self.action()
                self.done += 1
            except Exception as exc:
                self.errors.append(repr(exc))

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.times is not None:  # a fixed number of actions: let them all happen
            deadline = time.monotonic() + 120
            while self._thread.is_alive() and self.done < self.times:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        self._stop.set()
        self._thread.join(120)


def kill_worker_when_up(stack: RelStack, name: str = "worker") -> Callable[[], None]:
    """SIGKILL the worker group once it is up again (so each incarnation gets some work done)."""

    def act() -> None:
        with contextlib.suppress(TimeoutError):
            stack.wait_ready(name, 30)
        stack.kill(name)

    return act


def redis_pid(port: int) -> int:
    """The pid the Redis server on ``port`` reports (``INFO server``: process_id)."""
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "server"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    match = re.search(r"^process_id:(\d+)", out, re.MULTILINE)
    if not match:
        raise RuntimeError(f"no process_id in redis INFO: {out[:200]!r}")
    return int(match.group(1))


def kill_redis(server: RedisServer, down_for: float = 1.0) -> Callable[[], None]:
    """SIGKILL the scenario's Redis by the pid it reports, then start it again on the same
    port, empty (no persistence: every queue and rate-limit window is gone)."""

    def act() -> None:
        pid = redis_pid(server.port)
        os.kill(pid, signal.SIGKILL)
        if server.proc is not None and server.proc.pid == pid:
            server.proc.wait(10)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 10, "redis gone")
        time.sleep(down_for)
        server.start()

    return act


def pg_cluster() -> list[str]:
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    version, name = out.stdout.split()[:2]
    return [version, name]


def pg_online() -> bool:
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    return out.stdout.split()[3] == "online"


def stop_postgres_for(seconds: float) -> Callable[[], None]:
    def act() -> None:
        cluster = pg_cluster()
        cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster]
        subprocess.run([*cmd, "stop", "-m", "fast"], check=True, timeout=60)
        try:
            time.sleep(seconds)
        finally:
            # Exit code 2 means "already running" (someone else started it): fine too.
            subprocess.run([*cmd, "start"], check=False, timeout=60)
            wait_for(pg_online, 60, "PostgreSQL back online")

    return act
