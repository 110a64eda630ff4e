"""The batch publisher: one task per interval under load, at once after a quiet spell, never
a lost thread when the broker fails."""

from __future__ import annotations

import threading

from structlog.testing import capture_logs

from webhooks.publisher import MAX_BATCH, BatchPublisher
from worker.celery_app import PROCESS_INBOX

WAIT = 10.0  # seconds; only a broken publisher waits this long


class Broker:
    """A fake enqueue: records each task; ``fail`` makes the next calls raise."""

    def __init__(self, fail: int = 0) -> None:
        self.tasks: list[list[int]] = []
        self.fail = fail
        self.called = threading.Event()

    def __call__(self, name: str, ids: list[int]) -> None:
        assert name == PROCESS_INBOX
        try:
            if self.fail:
                self.fail -= 1
                raise ConnectionError("broker down")
            self.tasks.append(list(ids))
        finally:
            self.called.set()

    def wait(self) -> None:
        assert self.called.wait(WAIT), "the publisher never called enqueue"
        self.called.clear()


def test_a_lone_delivery_is_published_at_once_and_later_ones_wait_for_the_interval() -> None:
    broker = Broker()
    publisher = BatchPublisher(broker, interval=3600)
    publisher.submit(1)
    broker.wait()  # not after the hour: the first publish does not wait
    assert broker.tasks == [[1]]
    for i in (2, 3, 4):
        publisher.submit(i)
    # The thread sleeps out its interval; what arrived meanwhile is still waiting, in order.
    assert publisher.flush() == 3
    assert broker.tasks == [[1], [2, 3, 4]]


def test_a_backlog_goes_in_tasks_of_max_batch_ids() -> None:
    broker = Broker()
    publisher = BatchPublisher(broker, interval=3600)
    publisher.submit(0)
    broker.wait()
    ids = list(range(1, MAX_BATCH + 2))
    for i in ids:
        publisher.submit(i)
    assert publisher.flush() == len(ids)
    assert broker.tasks[1:] == [ids[:MAX_BATCH], ids[MAX_BATCH:]]


def test_a_failed_publish_is_logged_and_the_thread_goes_on() -> None:
    broker = Broker(fail=1)
    publisher = BatchPublisher(broker, interval=0)
    with capture_logs() as logs:
        publisher.submit(1)
        broker.wait()  # raised: row 1 is left to the sweeper
        publisher.submit(2)
        broker.wait()
    assert broker.tasks == [[2]]
    assert [(e["event"], e["rows"]) for e in logs] == [
        ("publish failed; the sweeper will retry", 1)
    ]
