"""The shared HTTP layer of the connectors, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medresearcher import __version__
from medresearcher.sources.errors import SourceError
from medresearcher.sources.http import SourceHttp, _retry_after, redact_query
from tests.fakes.api_server import ApiResponse, FakeApiServer

KEY = "ncbi-secret-key-123456"


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def make_http(**kw: object) -> SourceHttp:
    options: dict = {"backoff_s": 0.01, "max_attempts": 3, "timeout_s": 2.0, **kw}
    return SourceHttp(**options)


def run_get(http_kw: dict, url: str, params: dict | None = None, times: int = 1) -> list:
    async def go() -> list:
        async with make_http(**http_kw) as http:
            return [await http.get_json(url, params) for _ in range(times)]

    return asyncio.run(go())


def test_get_json_sends_params_and_user_agent(api: FakeApiServer) -> None:
    api.route("/q", ApiResponse.json({"ok": True}))
    assert run_get({}, f"{api.url}/q?fixed=1", {"term": "a b+c", "none": None, "n": 5}) == [
        {"ok": True}
    ]
    (req,) = api.requests
    assert req.query == {"fixed": ["1"], "term": ["a b+c"], "n": ["5"]}
    assert req.headers["user-agent"].startswith(f"medresearcher/{__version__}")


def test_429_waits_for_retry_after_then_succeeds(api: FakeApiServer) -> None:
    api.route("/q", ApiResponse.error(429, retry_after=0.4), ApiResponse.json({"n": 1}))
    assert run_get({}, f"{api.url}/q") == [{"n": 1}]
    first, second = api.requests
    assert second.received_at - first.received_at >= 0.38


def test_retry_after_as_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (_retry_after({"retry-after": when}) or 0) <= 31
    assert _retry_after({"retry-after": "2"}) == 2.0
    assert _retry_after({}) is None


def test_500_storm_fails_after_max_attempts(api: FakeApiServer) -> None:
    api.route("/q", fallback=ApiResponse.error(500, message="upstream overloaded"))
    with pytest.raises(SourceError) as info:
        run_get({"max_attempts": 4}, f"{api.url}/q", {"term": "x"})
    err = info.value
    assert len(api.requests) == 4
    assert (err.status, err.attempts, err.host) == (500, 4, "127.0.0.1")
    assert str(err) == (
        f"127.0.0.1 ({api.url}/q?term=x): HTTP 500 after 4 attempts: upstream overloaded"
    )


def test_client_error_fails_at_once(api: FakeApiServer) -> None:
    api.route("/q", fallback=ApiResponse.error(400, message="bad query syntax"))
    with pytest.raises(SourceError, match=r"HTTP 400: bad query syntax") as info:
        run_get({}, f"{api.url}/q")
    assert len(api.requests) == 1 and info.value.attempts == 1


def test_timeout_is_retried(api: FakeApiServer) -> None:
    api.route("/q", ApiResponse.json({"late": 1}, delay_s=0.6), ApiResponse.json({"n": 2}))
    assert run_get({"timeout_s": 0.2}, f"{api.url}/q") == [{"n": 2}]


def test_timeouts_end_in_one_line(api: FakeApiServer) -> None:
    api.route("/q", fallback=ApiResponse.json({}, delay_s=0.5))
    with pytest.raises(SourceError, match=r"failed after 2 attempts: timed out after 0.2 s"):
        run_get({"timeout_s": 0.2, "max_attempts": 2}, f"{api.url}/q")


def test_malformed_json_names_host_url_and_position(api: FakeApiServer) -> None:
    api.route("/q", fallback=ApiResponse.raw('{"a": [1, 2', content_type="application/json"))
    with pytest.raises(SourceError) as info:
        run_get({"max_attempts": 2}, f"{api.url}/q")
    message = str(info.value)
    assert message.startswith(f"malformed JSON from 127.0.0.1 ({api.url}/q): ")
    assert "line 1 column 12" in message


def test_truncated_body_is_retried_then_reported(api: FakeApiServer) -> None:
    body = b'{"results": [' + b'{"x": 1},' * 50 + b'{"x": 2}]}'
    api.route("/q", ApiResponse(body=body, truncate_at=40), ApiResponse(body=body))
    assert len(run_get({}, f"{api.url}/q")[0]["results"]) == 51
    api.route("/r", fallback=ApiResponse(body=body, truncate_at=40))
    with pytest.raises(SourceError, match=r"127.0.0.1 .*failed after 2 attempts: .*truncated"):
        run_get({"max_attempts": 2}, f"{api.url}/r")


def test_api_key_is_sent_but_never_shown(
    api: FakeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api.route("/ok", ApiResponse.json({"n": 1}))
    api.route("/bad", fallback=ApiResponse.error(503, message=f"bad key {KEY}"))
    cache = tmp_path / "http.sqlite"
    assert run_get({"cache_path": cache}, f"{api.url}/ok", {"api_key": KEY}) == [{"n": 1}]
    with pytest.raises(SourceError) as info:
        run_get({"cache_path": cache}, f"{api.url}/bad", {"api_key": KEY, "q": 1})
    assert api.requests[0].param("api_key") == KEY
    assert KEY not in str(info.value) and "api_key=***" in str(info.value)
    assert info.value.url == f"{api.url}/bad?api_key=***&q=1"
    assert "api_key=***" in caplog.text  # httpx2's own request lines are masked too
    assert KEY not in caplog.text
    assert KEY.encode() not in cache.read_bytes()
    with contextlib.closing(sqlite3.connect(cache)) as db:
        rows = db.execute("SELECT key, meta FROM http_responses").fetchall()
    assert rows and all(KEY not in f"{k}{m}" for k, m in rows)
    assert all("api_key=***" in m for _, m in rows)


def test_redact_query() -> None:
    assert redact_query("https://u:p@h/x?a=1&api_key=K&API_KEY=L") == (
        "https://***@h/x?a=1&api_key=***&API_KEY=***"
    )


def test_cache_serves_a_repeat_without_a_request(api: FakeApiServer, tmp_path: Path) -> None:
    api.route("/q", ApiResponse.json({"n": 1}), ApiResponse.json({"n": 2}))
    cache = tmp_path / "cache" / "http.sqlite"
    url = f"{api.url}/q"
    assert run_get({"cache_path": cache}, url, {"b": 2, "a": 1, "api_key": "k1-secret"}) == [
        {"n": 1}
    ]
    # Another client, params in another order, another key: still the same entry.
    assert run_get({"cache_path": cache}, url, {"a": 1, "b": 2, "api_key": "k2-secret"}) == [
        {"n": 1}
    ]
    assert len(api.requests) == 1
    assert run_get({"cache_path": cache, "cache_mode": "off"}, url, {"a": 1, "b": 2}) == [{"n": 2}]


def test_cache_ttl_expires_entries(api: FakeApiServer, tmp_path: Path) -> None:
    cache = tmp_path / "http.sqlite"
    api.route("/q", ApiResponse.json({"n": 1}), ApiResponse.json({"n": 2}))
    run_get({"cache_path": cache}, f"{api.url}/q")
    time.sleep(0.05)
    assert run_get({"cache_path": cache, "ttl_s": 0.01}, f"{api.url}/q") == [{"n": 2}]
    assert run_get({"cache_path": cache, "ttl_s": 60}, f"{api.url}/q") == [{"n": 2}]
    assert len(api.requests) == 2


def test_malformed_body_is_not_cached(api: FakeApiServer, tmp_path: Path) -> None:
    cache = tmp_path / "http.sqlite"
    api.route("/q", ApiResponse.raw("<html>maintenance</html>"), ApiResponse.json({"ok": 1}))
    with pytest.raises(SourceError, match="malformed JSON"):
        run_get({"cache_path": cache, "max_attempts": 1}, f"{api.url}/q")
    assert run_get({"cache_path": cache}, f"{api.url}/q", times=2) == [{"ok": 1}, {"ok": 1}]
    assert len(api.requests) == 2


def test_replay_mode_fails_on_a_miss(api: FakeApiServer, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="replay mode"):
        run_get({"cache_path": tmp_path / "c.sqlite", "cache_mode": "replay"}, f"{api.url}/q")
    assert api.requests == []


def test_rate_limit_paces_requests(api: FakeApiServer) -> None:
    api.route("/q", fallback=ApiResponse.json({}))

    async def go() -> None:
        async with make_http(rate_limits={"127.0.0.1": 10}) as http:
            await asyncio.gather(*(http.get_json(f"{api.url}/q", {"i": i}) for i in range(6)))

    asyncio.run(go())
    times = sorted(r.received_at for r in api.requests)
    assert len(times) == 6
    assert times[-1] - times[0] >= 0.45  # 5 gaps of 0.1 s


def test_default_rates_and_ncbi_key_bonus() -> None:
    async def go() -> None:
        async with SourceHttp() as http:
            periods = {
                "ncbi": http._limiter("eutils.ncbi.nlm.nih.gov", False).time_period,
                "ncbi_key": http._limiter("eutils.ncbi.nlm.nih.gov", True).time_period,
                "fda": http._limiter("api.fda.gov", True).time_period,
                "ctgov": http._limiter("clinicaltrials.gov", False).time_period,
            }
            assert periods == pytest.approx(
                {"ncbi": 1 / 3, "ncbi_key": 0.1, "fda": 0.25, "ctgov": 1.2}
            )
            assert http._limiter("example.org", False) is None
        async with SourceHttp(rate_limits={"api.fda.gov": None}) as http:
            assert http._limiter("api.fda.gov", False) is None

    asyncio.run(go())
