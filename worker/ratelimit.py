"""One rate limiter per provider account, shared by every worker process.

A sliding-window log: at most ``rate`` requests in any 1 s window and ``5 x rate`` in any
5 s window (DESIGN §3 counts over 5 s; the 1 s window keeps bursts off a provider that
counts per second). The provider's own signals (429, Retry-After, x-ratelimit-reset) block
the account for the time it asked.

In production the log lives in Redis (one Lua script, Redis's clock, atomic across
processes); in the embedded mode it lives in the process.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

import redis

WINDOWS = (1.0, 5.0)
MAX_WAIT = 60.0

_LUA = """
local key, block_key = KEYS[1], KEYS[2]
local rate = tonumber(ARGV[1])
local member = ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local blocked = tonumber(redis.call('GET', block_key) or '0')
if blocked > now then return blocked - now end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 5000)
local cap1 = math.max(1, math.floor(rate))
local cap5 = math.max(1, math.floor(rate * 5))
local in1 = redis.call('ZCOUNT', key, now - 999, '+inf')
if in1 >= cap1 then
  local oldest = redis.call('ZRANGEBYSCORE', key, now - 999, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return math.max(1, tonumber(oldest[2]) + 1000 - now)
end
local in5 = redis.call('ZCARD', key)
if in5 >= cap5 then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + 5000 - now)
end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, 6000)
return 0
"""


class RedisRateLimiter:
    def __init__(
        self,
        client: redis.Redis,
        account: str,
        rate: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._key = f"dlcsync:rate:{account}"
        self._block_key = f"dlcsync:rate-block:{account}"
        self._rate = rate
        self._sleep = sleep
        self._script = client.register_script(_LUA)

    def try_acquire(self) -> float:
        """0 if a request may go now, else seconds to wait."""
        wait_ms = int(
            self._script(keys=[self._key, self._block_key], args=[self._rate, uuid.uuid4().hex])
        )
        return wait_ms / 1000

    def acquire(self) -> None:
        while (wait := self.try_acquire()) > 0:
            self._sleep(min(wait, MAX_WAIT))

    def penalize(self, seconds: float) -> None:
        if seconds <= 0:
            return
        until_ms = int((time.time() + min(seconds, MAX_WAIT)) * 1000)
        # Keep the later of the current and the new block.
        current = self._client.get(self._block_key)
        if current is None or int(current) < until_ms:
            self._client.set(
                self._block_key, until_ms, px=int(min(seconds, MAX_WAIT) * 1000) + 1000
            )


class LocalRateLimiter:
    """The same policy inside one process (embedded mode, tests)."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._log: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        with self._lock:
            now = self._clock()
            if self._blocked_until > now:
                return self._blocked_until - now
            while self._log and self._log[0] <= now - WINDOWS[1]:
                self._log.popleft()
            cap1 = max(1, math.floor(self._rate))
            recent = [t for t in self._log if t > now - WINDOWS[0]]
            if len(recent) >= cap1:
                return max(recent[0] + WINDOWS[0] - now, 0.001)
            if len(self._log) >= max(1, math.floor(self._rate * WINDOWS[1])):
                return max(self._log[0] + WINDOWS[1] - now, 0.001)
            self._log.append(now)
            return 0.0

    def acquire(self) -> None:
        while (wait := self.try_acquire()) > 0:
            self._sleep(min(wait, MAX_WAIT))

    def penalize(self, seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + min(seconds, MAX_WAIT))
