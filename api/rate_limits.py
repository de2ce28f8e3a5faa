"""Rate limits per API key, in the shape Commerce Layer documents for its API.

Every ``/api/*`` request falls in one class: a read of a cacheable resource (the
catalog), another read, or a write. Two limits apply to a key in each class:

- *average*: all the endpoints of the class together, per ``rate_limit_average_seconds``
  (a minute);
- *burst*: each endpoint (resource type) alone, per ``rate_limit_burst_seconds`` (10 s).

A live key gets twice a test key's limits; ``rate_limit_scale`` multiplies them all.
Windows are fixed and start at a key's first request in them. A refused request does
not count, so a client that waits its ``Retry-After`` is served.

The counters live in Redis when the broker is Redis (one atomic script per request,
so every web process shares them), otherwise in the process. A counter store that does
not answer lets the request through (logged): the limits protect the API, they are not
a reason to refuse all of it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import redis
import structlog

from config import Settings
from models import ApiKey, Mode

log = structlog.get_logger("ordercopy.rate_limits")


class EndpointClass(StrEnum):
    CACHEABLE_READ = "cacheable_read"
    READ = "read"
    WRITE = "write"


#: A test key's requests per average window (every endpoint of the class) and per burst
#: window (each endpoint); a live key gets ``LIVE_FACTOR`` times as many.
LIMITS: dict[EndpointClass, tuple[int, int]] = {
    EndpointClass.CACHEABLE_READ: (500, 125),
    EndpointClass.READ: (100, 25),
    EndpointClass.WRITE: (100, 25),
}
LIVE_FACTOR = 2
#: Resource types whose reads are cacheable (they change rarely): the catalog.
CACHEABLE = frozenset({"skus"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Seconds a Redis call of the limiter may take before the request goes through unlimited.
REDIS_TIMEOUT = 0.5


@dataclass(frozen=True)
class Window:
    key: str
    limit: int
    seconds: int


@dataclass(frozen=True)
class Verdict:
    """``limit``/``remaining``/``reset`` describe the window closest to refusing (the one
    that refused, when ``allowed`` is false); ``reset`` is in seconds from now."""

    allowed: bool
    limit: int
    remaining: int
    reset: float
    endpoint_class: EndpointClass

    def headers(self) -> dict[str, str]:
        reset = str(max(math.ceil(self.reset), 1))
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": reset,
        }
        if not self.allowed:
            headers["Retry-After"] = reset
        return headers


class Counters(Protocol):
    def take(self, windows: Sequence[Window]) -> tuple[int, list[tuple[int, float]]]:
        """Atomically: if some window is full, ``(its index + 1, [(count, seconds left)])``
        without counting; else count one in each and ``(0, [(count, seconds left), …])``."""


class MemoryCounters:
    """Counters of this process (the embedded default: one web process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.counts: dict[str, tuple[int, float]] = {}  # key → (count, ends at)
        self.lock = threading.Lock()
        self.next_purge = 0.0

    def take(self, windows: Sequence[Window]) -> tuple[int, list[tuple[int, float]]]:
        now = self.clock()
        with self.lock:
            if now >= self.next_purge:  # ended windows go, so the dict stays small
                self.counts = {k: v for k, v in self.counts.items() if v[1] > now}
                self.next_purge = now + min(w.seconds for w in windows)
            current = []
            for window in windows:
                count, ends = self.counts.get(window.key, (0, now + window.seconds))
                if ends <= now:
                    count, ends = 0, now + window.seconds
                current.append((count, ends))
            for index, (window, (count, ends)) in enumerate(zip(windows, current, strict=True)):
                if count >= window.limit:
                    return index + 1, [(count, ends - now)]
            taken = []
            for window, (count, ends) in zip(windows, current, strict=True):
                self.counts[window.key] = (count + 1, ends)
                taken.append((count + 1, ends - now))
            return 0, taken


#: KEYS: the windows; ARGV: limit and milliseconds of each. Same answer as MemoryCounters.
TAKE = """
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, ARGV[2 * i])
      ttl = tonumber(ARGV[2 * i])
    end
    return {i, count, ttl}
  end
end
local taken = {0}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, ARGV[2 * i])
    ttl = tonumber(ARGV[2 * i])
  end
  table.insert(taken, count)
  table.insert(taken, ttl)
end
return taken
"""


class RedisCounters:
    """Counters every web process on this Redis shares."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        self.script = self.client.register_script(TAKE)

    def take(self, windows: Sequence[Window]) -> tuple[int, list[tuple[int, float]]]:
        arguments: list[int] = []
        for window in windows:
            arguments += [window.limit, window.seconds * 1000]
        answer = self.script(keys=[w.key for w in windows], args=arguments)
        first, *rest = (int(value) for value in answer)
        pairs = list(zip(rest[::2], rest[1::2], strict=True))
        return first, [(count, ttl / 1000) for count, ttl in pairs]


def endpoint_class(method: str, endpoint: str) -> EndpointClass:
    if method not in READ_METHODS:
        return EndpointClass.WRITE
    return EndpointClass.CACHEABLE_READ if endpoint in CACHEABLE else EndpointClass.READ


class RateLimiter:
    def __init__(self, counters: Counters, settings: Settings, prefix: str = "") -> None:
        self.counters = counters
        self.scale = settings.rate_limit_scale
        self.average_seconds = settings.rate_limit_average_seconds
        self.burst_seconds = settings.rate_limit_burst_seconds
        self.prefix = prefix

    def windows(self, api_key: ApiKey, kind: EndpointClass, endpoint: str) -> list[Window]:
        average, burst = LIMITS[kind]
        factor = self.scale * (LIVE_FACTOR if api_key.mode == Mode.LIVE else 1)
        # {…}: one Redis Cluster slot for every counter of a key (one script touches them).
        base = f"{self.prefix}ratelimit:{{{api_key.id}}}:{kind}"
        return [
            Window(f"{base}:*", max(1, round(average * factor)), self.average_seconds),
            Window(f"{base}:{endpoint}", max(1, round(burst * factor)), self.burst_seconds),
        ]

    def take(self, api_key: ApiKey, method: str, endpoint: str) -> Verdict | None:
        """Count this request, or refuse it; None when the counters cannot be reached."""
        kind = endpoint_class(method, endpoint)
        windows = self.windows(api_key, kind, endpoint)
        try:
            refused, counts = self.counters.take(windows)
        except redis.RedisError as error:
            log.warning("rate_limit_unavailable", error=type(error).__name__)
            return None
        if refused:
            window = windows[refused - 1]
            _, left = counts[0]
            log.info(
                "rate_limited",
                api_key_id=api_key.id,
                endpoint_class=kind.value,
                endpoint=endpoint,
                limit=window.limit,
                window_seconds=window.seconds,
            )
            return Verdict(False, window.limit, 0, left, kind)
        window, (count, left) = min(
            zip(windows, counts, strict=True), key=lambda taken: taken[0].limit - taken[1][0]
        )
        return Verdict(True, window.limit, max(window.limit - count, 0), left, kind)


_current: tuple[Settings, RateLimiter | None] | None = None


def limiter(settings: Settings) -> RateLimiter | None:
    """This process's limiter for ``settings``, or None when rate limits are off."""
    global _current
    if _current is None or _current[0] is not settings:
        made: RateLimiter | None = None
        if settings.rate_limited:
            url = settings.resolved_broker_url
            if url.startswith(("redis://", "rediss://")):
                made = RateLimiter(RedisCounters(url), settings, settings.broker_key_prefix)
            else:
                made = RateLimiter(MemoryCounters(), settings)
        _current = (settings, made)
    return _current[1]
