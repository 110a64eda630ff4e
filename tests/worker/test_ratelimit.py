"""The per-account rate limiter: in-process with a fake clock, and shared through Redis."""

from __future__ import annotations

import threading
import time
import uuid

import redis

from worker.ratelimit import LocalRateLimiter, RedisRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_local_limiter_allows_rate_per_second_and_five_times_rate_per_five_seconds() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(2, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(20):
        limiter.acquire()
        stamps.append(clock.t)
    for i, t in enumerate(stamps):
        assert sum(1 for u in stamps[i:] if u < t + 1.0) <= 2
        assert sum(1 for u in stamps[i:] if u < t + 5.0) <= 10
    assert stamps[-1] - stamps[0] >= 9.0  # 20 requests at 2/s


def test_local_limiter_honours_penalties() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(50, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.penalize(7.5)  # a 429 with Retry-After: 7.5
    assert limiter.try_acquire() == 7.5
    limiter.acquire()
    assert clock.t >= 1007.5


def test_redis_limiter_is_shared_by_every_client(redis_url: str) -> None:
    """Eight threads with their own connections never exceed 5 requests in any second."""
    account = f"test-{uuid.uuid4().hex}"
    stamps: list[float] = []
    lock = threading.Lock()

    def hammer() -> None:
        limiter = RedisRateLimiter(redis.Redis.from_url(redis_url), account, 5)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            if limiter.try_acquire() == 0:
                with lock:
                    stamps.append(time.monotonic())
            else:
                time.sleep(0.01)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stamps.sort()
    assert len(stamps) >= 10  # it let requests through
    for i, t in enumerate(stamps):
        # Redis's clock and ours differ slightly: allow 20 ms at the window edge.
        assert sum(1 for u in stamps[i:] if u < t + 0.98) <= 5


def test_redis_limiter_penalty_blocks_every_client(redis_url: str) -> None:
    account = f"test-{uuid.uuid4().hex}"
    a = RedisRateLimiter(redis.Redis.from_url(redis_url), account, 50)
    b = RedisRateLimiter(redis.Redis.from_url(redis_url), account, 50)
    assert a.try_acquire() == 0
    a.penalize(3)
    wait = b.try_acquire()
    assert 2.0 < wait <= 3.0
