"""Rate limits per API key: over HTTP, shared by web processes through Redis, or in the
process on a broker without Redis; off unless turned on.

The windows are set to an hour, so no test depends on how fast it runs: a window never
ends during one (the counters' own tests move a clock instead)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
import redis

from api.auth import issue_key
from api.errors import MEDIA_TYPE
from api.rate_limits import (
    EndpointClass,
    MemoryCounters,
    RateLimiter,
    RedisCounters,
    Window,
    endpoint_class,
)
from config import Settings, get_settings
from models import ApiKey, Mode
from tests.api.errors import assert_error
from tests.api.web import web_processes
from tests.services import free_port

HOUR = "3600"
#: A test key's read burst (25) and average (100) times this: 3 and 12.
SCALE = "0.12"
BURST = 3
LIMITED = {
    "rate_limits": "on",
    "rate_limit_scale": SCALE,
    "rate_limit_burst_seconds": HOUR,
    "rate_limit_average_seconds": HOUR,
}


def use(settings_env, **values: str) -> None:
    settings_env.update({f"ORDERCOPY_{name.upper()}": value for name, value in values.items()})
    get_settings.cache_clear()


#: The suite's Redis and key prefix (tests/conftest.py), whatever a test sets.
SUITE_BROKER = os.environ["ORDERCOPY_BROKER_URL"]
SUITE_PREFIX = os.environ["ORDERCOPY_BROKER_KEY_PREFIX"]


def redis_keys() -> list[bytes]:
    client = redis.Redis.from_url(SUITE_BROKER)
    try:
        return list(client.scan_iter(f"{SUITE_PREFIX}ratelimit:*"))
    finally:
        client.close()


@pytest.fixture
def no_counters_left() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(SUITE_BROKER)
    for key in redis_keys():
        client.delete(key)
    client.close()


def get(url: str, token: str) -> tuple[int, dict[str, str], dict]:
    request = Request(url, headers={"Accept": MEDIA_TYPE, "Authorization": f"Bearer {token}"})
    try:
        with urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), json.load(answer)
    except HTTPError as error:
        return error.code, dict(error.headers), json.load(error)


# --- over HTTP, two web processes, one Redis ----------------------------------------------


def test_two_web_processes_share_a_keys_limits_through_redis(committed, tmp_path, no_counters_left):
    with committed.begin() as session:
        _, token = issue_key(session, name="limited", mode=Mode.TEST)
        _, live_token = issue_key(session, name="limited live", mode=Mode.LIVE)

    with web_processes(2, LIMITED, tmp_path) as (one, two):
        served = [get(f"{url}/api/customers", token) for url in (one, two, one)]
        refused = get(f"{two}/api/customers", token)
        other_endpoint = get(f"{two}/api/orders", token)
        live = [get(f"{url}/api/customers", live_token) for url in (one, two) * BURST]

    assert [status for status, _, _ in served] == [200] * BURST
    assert [h["x-ratelimit-remaining"] for _, h, _ in served] == ["2", "1", "0"]
    assert {h["x-ratelimit-limit"] for _, h, _ in served} == {str(BURST)}
    assert all(1 <= int(h["x-ratelimit-reset"]) <= 3600 for _, h, _ in served)
    status, headers, document = refused
    assert status == 429
    assert headers["content-type"] == MEDIA_TYPE
    assert document["errors"][0]["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(headers["retry-after"]) <= 3600
    assert headers["x-ratelimit-remaining"] == "0"
    assert headers["x-ratelimit-limit"] == str(BURST)
    assert other_endpoint[0] == 200  # a burst is per endpoint
    assert [status for status, _, _ in live] == [200] * (2 * BURST)  # a live key: twice
    assert redis_keys()  # the counters are Redis's, not either process's


# --- in the process (no Redis) ------------------------------------------------------------


def test_without_redis_the_limits_are_kept_in_the_process(api, settings_env, no_counters_left):
    use(settings_env, broker_url="memory://", **LIMITED)

    served = [api.get("/api/customers") for _ in range(BURST)]
    refused = api.get("/api/customers")

    assert [r.status_code for r in served] == [200] * BURST
    assert_error(refused, 429, code="TOO_MANY_REQUESTS", detail="too many read requests")
    assert refused.headers["retry-after"]
    assert not redis_keys()


def test_a_refused_request_is_not_read_nor_counted_as_made(api, settings_env):
    use(settings_env, broker_url="memory://", **{**LIMITED, "rate_limit_scale": "0.04"})
    customer = {"data": {"type": "customers", "attributes": {"email": "a@example.com"}}}

    made = api.post("/api/customers", customer)  # a test key's write burst: 25 * 0.04 = 1
    refused = api.post("/api/customers", customer)
    broken = api.client.post("/api/customers", content=b"{not json", headers=api.headers())

    assert made.status_code == 201
    assert_error(refused, 429)
    assert_error(broken, 429)  # not a 400: the body was never read
    assert api.ids("/api/customers") == [made.json()["data"]["id"]]


def test_a_key_is_limited_alone(http, committed, settings_env):
    use(settings_env, broker_url="memory://", **LIMITED)
    with committed.begin() as session:
        tokens = [issue_key(session, name=f"k{n}", mode=Mode.TEST)[1] for n in range(2)]
    headers = [{"Accept": MEDIA_TYPE, "Authorization": f"Bearer {t}"} for t in tokens]

    first = [http.get("/api/skus", headers=headers[0]) for _ in range(BURST * 5 + 1)]
    second = http.get("/api/skus", headers=headers[1])

    # skus are cacheable: their reads have five times the limits (125 * 0.12 = 15)
    assert [r.status_code for r in first] == [200] * (BURST * 5) + [429]
    assert second.status_code == 200


def test_unreachable_counters_let_requests_through(api, settings_env):
    use(settings_env, broker_url=f"redis://127.0.0.1:{free_port()}/0", **LIMITED)

    responses = [api.get("/api/customers") for _ in range(BURST + 1)]

    assert [r.status_code for r in responses] == [200] * (BURST + 1)
    assert "x-ratelimit-limit" not in responses[0].headers


def test_rate_limits_are_off_unless_turned_on(api, settings_env):
    response = api.get("/api/customers")

    assert response.status_code == 200
    assert "x-ratelimit-limit" not in response.headers
    assert not get_settings().rate_limited
    assert Settings(env="production").rate_limited
    assert not Settings(env="production", rate_limits="off").rate_limited
    assert Settings(rate_limits="on").rate_limited


# --- the counters -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def windows(average: int = 5, burst: int = 2, prefix: str = "") -> list[Window]:
    return [
        Window(f"{prefix}ratelimit:{{t}}:*", average, 60),
        Window(f"{prefix}ratelimit:{{t}}:orders", burst, 10),
    ]


@pytest.fixture(params=["memory", "redis"])
def counters(request, no_counters_left):
    if request.param == "memory":
        return MemoryCounters()
    return RedisCounters(SUITE_BROKER)


def test_counters_count_each_window_and_refuse_the_full_one_without_counting(counters):
    both = windows(prefix=SUITE_PREFIX)

    taken = [counters.take(both) for _ in range(3)]

    assert [refused for refused, _ in taken] == [0, 0, 2]  # the burst window is full
    assert [counts for _, counts in taken[:2]] == [
        [(1, pytest.approx(60, abs=5)), (1, pytest.approx(10, abs=5))],
        [(2, pytest.approx(60, abs=5)), (2, pytest.approx(10, abs=5))],
    ]
    assert taken[2][1][0][0] == 2  # not counted again
    average_only = [both[0]]
    assert [counters.take(average_only)[0] for _ in range(4)] == [0, 0, 0, 1]  # 2 + 3 of 5


def test_memory_counters_start_again_when_a_window_ends():
    clock = Clock()
    counters = MemoryCounters(clock)
    both = windows()
    assert [counters.take(both)[0] for _ in range(3)] == [0, 0, 2]

    clock.now += 10  # the burst window ended; the average one holds 2 of 5

    assert [counters.take(both)[0] for _ in range(3)] == [0, 0, 2]
    clock.now += 10
    assert [counters.take(both)[0] for _ in range(2)] == [0, 1]  # 5 of 5 in the minute
    clock.now += 40
    assert counters.take(both) == (0, [(1, 60.0), (1, 10.0)])


def key(mode: Mode) -> ApiKey:
    return ApiKey(id="K", name="k", mode=mode, token_hash="x")


def test_a_verdict_describes_the_window_closest_to_refusing():
    limiter = RateLimiter(MemoryCounters(), Settings())

    verdicts = [limiter.take(key(Mode.TEST), "POST", "orders") for _ in range(2)]

    assert verdicts[0] is not None
    assert (verdicts[0].limit, verdicts[0].remaining) == (25, 24)  # the burst: 25 per 10 s
    assert verdicts[0].endpoint_class == EndpointClass.WRITE
    assert verdicts[0].headers()["X-RateLimit-Reset"] == "10"
    assert "Retry-After" not in verdicts[0].headers()
    assert verdicts[1] is not None
    assert verdicts[1].remaining == 23


def test_limits_follow_the_class_the_mode_and_the_scale():
    limiter = RateLimiter(MemoryCounters(), Settings(rate_limit_scale=2))

    def limits(mode: Mode, method: str, endpoint: str) -> list[int]:
        kind = endpoint_class(method, endpoint)
        return [w.limit for w in limiter.windows(key(mode), kind, endpoint)]

    assert limits(Mode.TEST, "GET", "orders") == [200, 50]
    assert limits(Mode.LIVE, "GET", "orders") == [400, 100]
    assert limits(Mode.TEST, "GET", "skus") == [1000, 250]
    assert limits(Mode.TEST, "DELETE", "skus") == [200, 50]
