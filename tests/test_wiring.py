"""Guard rails for the wiring: tasks, beat, queues and the Procfile agree."""

from __future__ import annotations

import re
from pathlib import Path

from common.settings import Settings
from worker.celery_app import create_celery
from worker.tasks import register

ROOT = Path(__file__).resolve().parents[1]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip())


def test_procfile_has_the_four_processes() -> None:
    entries = procfile()
    assert set(entries) == {"release", "web", "worker", "beat"}
    assert "dlcsync db upgrade" in entries["release"]
    assert re.search(r"gunicorn .*webhooks\.wsgi:app .*\$\{?PORT", entries["web"])
    assert "celery -A worker.main worker" in entries["worker"]
    assert "celery -A worker.main beat" in entries["beat"]


def test_every_beat_entry_is_a_registered_task() -> None:
    app = register(create_celery(Settings(_env_file=None)))  # type: ignore[call-arg]
    beat = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert beat and beat <= set(app.tasks)


def test_every_queue_is_consumed_by_a_procfile_line() -> None:
    app = register(create_celery(Settings(_env_file=None)))  # type: ignore[call-arg]
    queues = {app.conf.task_default_queue} | {
        route.get("queue") for route in (app.conf.task_routes or {}).values() if route
    }
    consumed = set(re.findall(r"--queues\s+(\S+)", procfile()["worker"]))
    consumed = {q for group in consumed for q in group.split(",")}
    assert queues - {None} <= consumed


def test_task_names_are_stable() -> None:
    app = register(create_celery(Settings(_env_file=None)))  # type: ignore[call-arg]
    ours = {name for name in app.tasks if name.startswith("dlcsync.")}
    assert {"dlcsync.process_inbox", "dlcsync.sweep_inbox", "dlcsync.reconcile"} <= ours


def test_reliability_settings() -> None:
    conf = create_celery(Settings(_env_file=None)).conf  # type: ignore[call-arg]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.result_backend is None
    redis_conf = create_celery(
        Settings(_env_file=None, redis_url="redis://127.0.0.1:1/0")  # type: ignore[call-arg]
    ).conf
    assert redis_conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_no_import_cycle_between_modules() -> None:
    """Every module of every package, imports inside functions included: no circle."""
    import grimp

    packages = ("common", "models", "providers", "worker", "webhooks", "dlcsync", "sandbox")
    graph = grimp.build_graph(*packages, include_external_packages=False, cache_dir=None)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    # Depth-first search for a back edge; a found circle is reported as a path.
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(imports[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(imports):
        if module not in state:
            assert visit(module) is None, " -> ".join(path)
