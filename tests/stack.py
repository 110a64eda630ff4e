"""Real processes for integration tests: gunicorn, Celery worker and beat, the sandbox.

Every process gets its own process group and is stopped by its recorded id, never by name.
Logs go to files under the test's directory and are printed when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from common.settings import Settings

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    """Poll until ``predicate`` holds (real processes: there is no clock to advance)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: S110  (the thing waited for may not answer yet)
            pass
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def web_command(port: int, workers: int, app: str = "webhooks.wsgi:app") -> list[str]:
    """gunicorn as the Procfile runs it, on 127.0.0.1."""
    return [
        str(BIN / "gunicorn"),
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--timeout",
        "30",
        "--graceful-timeout",
        "10",
    ]


def worker_command(name: str, concurrency: int, app: str = "worker.main") -> list[str]:
    """A Celery worker on the dlcsync queue, named so several can share a log directory."""
    return [
        str(BIN / "celery"),
        "-A",
        app,
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        str(concurrency),
        "--queues",
        "dlcsync",
        "--hostname",
        f"{name}@%h",
        "--without-mingle",
        "--without-gossip",
    ]


def beat_command(schedule: Path) -> list[str]:
    return [
        str(BIN / "celery"),
        "-A",
        "worker.main",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        str(schedule),
    ]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(5)
        # Children that outlived their parent (a killed prefork master's pool).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the whole group: the master and every child."""
        self.signal(signal.SIGKILL)
        self.popen.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    workdir: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    web_port: int = 0

    @classmethod
    def create(cls, workdir: Path, env: Mapping[str, str]) -> Stack:
        workdir.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("DLCSYNC_", "PYTEST"))}
        base |= {"PYTHONUNBUFFERED": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
        base["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
        stack = cls(workdir, base | dict(env))
        stack.web_port = free_port()
        stack.env.setdefault("PUBLIC_URL", f"http://127.0.0.1:{stack.web_port}")
        return stack

    def settings(self) -> Settings:
        """The settings the stack's processes read from their environment."""
        fields = {k.lower(): v for k, v in self.env.items() if k.lower() in Settings.model_fields}
        return Settings(_env_file=None, **fields)  # type: ignore[call-arg]

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def spawn(self, name: str, args: list[str]) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args,
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group
            )
        proc = Proc(name, popen, log)
        self.procs[name] = proc
        return proc

    def start_web(
        self,
        workers: int = 2,
        extra: list[str] | None = None,
        app: str = "webhooks.wsgi:app",
        name: str = "web",
    ) -> Proc:
        proc = self.spawn(name, [*web_command(self.web_port, workers, app), *(extra or [])])
        wait_for(
            lambda: httpx.get(f"{self.web_url}/healthz", timeout=1).status_code == 200,
            30,
            f"gunicorn on {self.web_url}\n{proc.tail()}",
        )
        return proc

    def start_worker(
        self, name: str = "worker", concurrency: int = 2, app: str = "worker.main"
    ) -> Proc:
        proc = self.spawn(name, worker_command(name, concurrency, app))
        wait_for(lambda: b" ready." in proc.log.read_bytes(), 60, f"{name} ready\n{proc.tail()}")
        return proc

    def start_beat(self, name: str = "beat") -> Proc:
        return self.spawn(name, beat_command(self.workdir / f"{name}-schedule"))

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.tail(60)}" for p in self.procs.values())


class RedisServer:
    """A Redis server of a test's own (no persistence, like production's broker), so tests
    that stop Redis disturb nothing else. ``stop``/``start`` keep the port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tempfile.gettempdir(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: redis.Redis(port=self.port).ping(), 10, f"redis-server on {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
