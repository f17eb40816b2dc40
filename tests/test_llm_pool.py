"""An endpoint with several base URLs: spread, stickiness, health and the cache, against
two or three real loopback servers (a replica "goes down" when its server stops)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from medresearcher.agent import LLMPolicy, run_agent
from medresearcher.config import EndpointSettings, Settings, load_settings
from medresearcher.errors import ConfigError
from medresearcher.llm import LLMCallError, LLMGateway
from medresearcher.llm.replicas import ReplicaPool, conversation_key
from medresearcher.tools.base import Observation, Tool, ToolBox
from tests.conftest import run
from tests.fakes.loopback import _QuietHTTPServer
from tests.fakes.openai_server import FakeOpenAIServer, Reply

# --------------------------------------------------------------------------- helpers


class _FixedPortHTTPServer(_QuietHTTPServer):
    def __init__(self, owner: Any, handler: Any, port: int) -> None:
        self.owner = owner
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", port), handler)


class Replica(FakeOpenAIServer):
    """A fake server that comes back on the same port after ``stop()``: a restarted replica."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fixed_port = 0

    def start(self) -> Replica:
        if self._httpd is None:
            self._stop_event.clear()
            self._httpd = _FixedPortHTTPServer(self, self.handler, self._fixed_port)
            self._fixed_port = self.port
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self


class Clock:
    """Monotonic time the test moves by hand, so a cool-down passes without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def servers() -> Iterator[list[Replica]]:
    started = [Replica().start() for _ in range(3)]
    yield started
    for server in started:
        server.stop()


def pool_settings(tmp_path: Path, urls: list[str], **endpoint: Any) -> Settings:
    fields = {
        "base_url": urls,
        "model": "fake-model",
        "retry_backoff_s": 0.01,
        "max_retries": 0,
        "timeout_s": 10.0,
        **endpoint,
    }
    return Settings(workspace=tmp_path / "ws", llm={"agent": EndpointSettings(**fields)})


def ask(n: int) -> list[dict[str, Any]]:
    """A one-turn conversation of its own (its own first user message)."""
    return [{"role": "user", "content": f"question {n}"}]


def counts(*servers: FakeOpenAIServer) -> list[int]:
    return [len(server.chat_requests) for server in servers]


def free_url() -> str:
    """A URL where nothing listens (a replica that never came up)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


async def until(condition: Any, what: str) -> None:
    """Wait for a condition the servers will reach (not a timing assertion)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


# --------------------------------------------------------------------------- settings


def test_base_url_takes_a_list_and_stays_the_first_url(tmp_path: Path) -> None:
    config = tmp_path / "medresearcher.toml"
    config.write_text(
        '[llm.agent]\nbase_url = ["http://a:8000/v1", "http://b:8000/v1"]\nmodel = "q"\n'
        '[llm.judge]\nbase_url = "http://j:8000/v1"\nmodel = "q"\n'
    )
    settings = load_settings(config)
    agent, judge = settings.llm["agent"], settings.llm["judge"]
    assert agent.base_url == "http://a:8000/v1"  # what manifests, cards and cache keys use
    assert agent.replica_urls() == ["http://a:8000/v1", "http://b:8000/v1"]
    assert EndpointSettings.model_validate(agent.model_dump()) == agent
    assert judge.replica_urls() == ["http://j:8000/v1"]
    assert "base_urls" not in judge.model_dump()  # one server: the dump is as before

    env = {"MEDRESEARCHER_LLM__JUDGE__BASE_URL": '["http://j1/v1", "http://j2/v1"]'}
    assert load_settings(config, environ=env).llm["judge"].replica_urls() == [
        "http://j1/v1",
        "http://j2/v1",
    ]
    for bad, message in [("[]", "empty list"), ('["http://a/v1", "http://a/v1/"]', "twice")]:
        config.write_text(f'[llm.agent]\nbase_url = {bad}\nmodel = "q"\n')
        with pytest.raises(ConfigError, match=rf"medresearcher.toml:1: llm.agent: .*{message}"):
            load_settings(config)


def test_the_deployment_guide_config_loads(tmp_path: Path) -> None:
    guide = (Path(__file__).parents[1] / "docs" / "deployment.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in guide.split("```toml\n")[1:]]
    example = next(b for b in blocks if "[executor]" in b)  # the whole set-up
    config = tmp_path / "medresearcher.toml"
    config.write_text(example, encoding="utf-8")
    settings = load_settings(config)
    assert len(settings.llm["agent"].replica_urls()) == 3
    assert settings.retrieval.backend == "milvus" and settings.graph.backend == "postgresql"
    assert settings.executor.kind == "ray" and settings.executor.ray_address == "auto"


# --------------------------------------------------------------------------- spreading


def test_load_spreads_over_replicas_within_each_replicas_limit(servers, tmp_path) -> None:
    a, b = servers[:2]
    for server in (a, b):
        server.latency_s = 0.2
    settings = pool_settings(tmp_path, [a.base_url, b.base_url], max_concurrency=3)

    async def go() -> list[str | None]:
        async with LLMGateway(settings) as gateway:
            results = await asyncio.gather(*(gateway.chat("agent", ask(n)) for n in range(16)))
            return [r.content for r in results]

    assert run(go()) == ["ok"] * 16
    sent = counts(a, b)
    assert sum(sent) == 16 and min(sent) >= 6, sent
    # max_concurrency is per replica: each server saw at most 3 at once, together more.
    assert a.peak_in_flight <= 3 and b.peak_in_flight <= 3
    assert a.peak_in_flight + b.peak_in_flight > 3


def test_a_slow_replica_gets_fewer_requests(servers, tmp_path) -> None:
    fast, slow = servers[:2]
    slow.latency_s = 0.4
    settings = pool_settings(tmp_path, [fast.base_url, slow.base_url])

    async def go() -> None:
        async with LLMGateway(settings) as gateway:

            async def worker(w: int) -> None:
                for n in range(8):
                    await gateway.chat("agent", ask(100 * w + n))

            await asyncio.gather(*(worker(w) for w in range(4)))

    run(go())
    to_fast, to_slow = counts(fast, slow)
    assert to_fast + to_slow == 32
    # Round-robin would send 16 to each; least in-flight sends new work to the idle server.
    assert to_slow >= 1 and to_fast >= 2 * to_slow, (to_fast, to_slow)


# --------------------------------------------------------------------------- stickiness


class Lookup(Tool):
    name = "lookup"
    description = "Look a term up."

    class Arguments(BaseModel):
        term: str

    async def run(self, arguments: Lookup.Arguments) -> Observation:
        return Observation(text=f"{arguments.term}: a rare disease", sources=["ORPHA:1"])


def agent_turn(body: dict) -> Reply:
    """Two tool turns, then an answer: each run makes three calls."""
    done = sum(1 for m in body["messages"] if m["role"] == "tool")
    if done < 2:
        return Reply.tools(("lookup", {"term": f"t{done}"}), content="Let me look it up.")
    return Reply.text("<answer>GLA</answer>")


def test_each_agent_conversation_stays_on_one_replica(servers, tmp_path) -> None:
    for server, latency in zip(servers, (0.0, 0.03, 0.06), strict=True):
        server.default = agent_turn
        server.latency_s = latency
    settings = pool_settings(tmp_path, [s.base_url for s in servers])
    questions = [f"Which gene causes disorder number {n}?" for n in range(12)]

    async def go() -> list[str | None]:
        async with LLMGateway(settings) as gateway:
            policy = LLMPolicy(gateway, "agent")

            def agent(question: str) -> Any:
                return run_agent(question, policy=policy, toolbox=ToolBox([Lookup()]))

            one_by_one = [await agent(q) for q in questions[:6]]
            together = await asyncio.gather(*(agent(q) for q in questions[6:]))
            return [t.final_answer for t in [*one_by_one, *together]]

    assert run(go()) == ["GLA"] * len(questions)
    homes: dict[str, set[int]] = {q: set() for q in questions}
    for index, server in enumerate(servers):
        for request in server.chat_requests:
            homes[request.json["messages"][1]["content"]].add(index)
    assert sum(counts(*servers)) == 3 * len(questions)
    assert all(len(home) == 1 for home in homes.values()), homes  # sticky: one replica each
    assert len(set().union(*homes.values())) == 3  # while conversations spread


def test_an_explicit_conversation_id_and_a_pinned_replica(servers, tmp_path) -> None:
    a, b = servers[:2]
    settings = pool_settings(tmp_path, [a.base_url, b.base_url])

    async def go() -> None:
        async with LLMGateway(settings) as gateway:
            for n in range(6):
                await gateway.chat("agent", ask(n), conversation_id="case-7")
            await gateway.chat("agent", ask(99), replica=1)
            await gateway.chat("agent", ask(98), replica=0)

    run(go())
    sent = counts(a, b)
    assert sorted(sent) == [1, 7], sent  # six on one replica, and one pinned to each


# --------------------------------------------------------------------------- health


def test_a_replica_that_goes_down_is_taken_out_and_comes_back(servers, tmp_path) -> None:
    a, b = servers[:2]
    settings = pool_settings(tmp_path, [a.base_url, b.base_url], replica_cooldown_s=5.0)
    clock = Clock()

    async def go() -> None:
        async with LLMGateway(settings) as gateway:
            client = gateway.endpoint("agent")
            client.pool.clock = clock
            await asyncio.gather(*(gateway.chat("agent", ask(n)) for n in range(8)))
            assert min(counts(a, b)) >= 1

            # A goes down with requests in flight: they fail over to B, with no retry left.
            a.default = Reply.text("late", delay_s=30)
            pending = [asyncio.ensure_future(gateway.chat("agent", ask(n))) for n in range(10, 16)]
            await until(lambda: a.in_flight >= 1, "a request in flight on replica A")
            a.stop()
            answers = await asyncio.gather(*pending)
            assert {r.content for r in answers} == {"ok"}
            for n in range(20, 28):  # the run goes on: B answers everything
                assert (await gateway.chat("agent", ask(n))).content == "ok"
            down, up = client.replica_stats()
            assert not down["in_service"] and up["in_service"]

            # A comes back: unused during its cool-down, used again once it has passed.
            a.start()
            a.reset()
            a.default = Reply.text("ok")
            for n in range(30, 36):
                await gateway.chat("agent", ask(n))
            assert counts(a) == [0]
            clock.now += 5.0
            await gateway.chat("agent", ask(40))  # the probe: one request tests A
            assert counts(a) == [1]
            await asyncio.gather(*(gateway.chat("agent", ask(n)) for n in range(41, 51)))
            assert counts(a)[0] >= 4  # back in service: its share of the load
            assert all(r["in_service"] for r in client.replica_stats())

    run(go())


def test_repeated_5xx_take_a_replica_out_after_the_threshold(servers, tmp_path) -> None:
    a, b = servers[:2]
    a.default = Reply.error(500, message="CUDA error")
    settings = pool_settings(
        tmp_path, [a.base_url, b.base_url], max_retries=3, replica_failure_threshold=2
    )

    async def go() -> list[str | None]:
        async with LLMGateway(settings) as gateway:
            return [(await gateway.chat("agent", ask(n))).content for n in range(10)]

    assert run(go()) == ["ok"] * 10
    assert counts(a, b) == [2, 10]  # two failures in a row, then out for the cool-down


def test_all_replicas_down_is_one_error_naming_each(tmp_path) -> None:
    urls = [free_url(), free_url()]
    settings = pool_settings(tmp_path, urls, max_retries=1)

    async def go() -> None:
        async with LLMGateway(settings) as gateway:
            await gateway.chat("agent", ask(1))

    with pytest.raises(LLMCallError) as err:
        run(go())
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"endpoint 'agent' ({urls[0]}, {urls[1]}): failed after")
    assert "all 2 replicas are out of service" in message
    assert all(f"{url} (cannot connect" in message for url in urls)


def test_one_url_keeps_the_single_server_behaviour(servers, tmp_path) -> None:
    a = servers[0]
    a.default = Reply.error(503, message="busy")
    settings = pool_settings(tmp_path, [a.base_url], max_retries=4, replica_failure_threshold=1)

    async def go() -> None:
        async with LLMGateway(settings) as gateway:
            await gateway.chat("agent", ask(1))

    with pytest.raises(LLMCallError) as err:
        run(go())
    assert str(err.value) == f"endpoint 'agent' ({a.base_url}): HTTP 503 after 5 attempts: busy"
    assert counts(a) == [5]  # never "taken out": with one server, retries are the policy


# --------------------------------------------------------------------------- the cache


def test_the_cache_key_does_not_depend_on_the_replica(servers, tmp_path) -> None:
    b = servers[1]
    b.default = Reply.text("from B")
    gone = free_url()  # the first replica never answers: B does
    pool = pool_settings(tmp_path, [gone, b.base_url], max_retries=0)
    single = pool_settings(tmp_path, [gone])

    async def go(settings: Settings, mode: str) -> str | None:
        async with LLMGateway(settings, cache_mode=mode) as gateway:  # type: ignore[arg-type]
            return (await gateway.chat("agent", ask(1), temperature=0)).content

    assert run(go(pool, "read-write")) == "from B"
    assert run(go(pool, "read-write")) == "from B"
    assert counts(b) == [1]  # the second answer came from the cache
    # Replay on the first URL alone (nothing listens there): the key is the endpoint's.
    assert run(go(single, "replay")) == "from B"


# --------------------------------------------------------------------------- llm ping


def test_llm_ping_reports_each_replica(servers, tmp_path) -> None:
    from medresearcher.cli import llm_cmd

    if not hasattr(llm_cmd, "_ping_replicas"):
        pytest.skip("llm ping per replica: apply the llm_cmd.py patch of the replica pool")
    a = servers[0]
    dead = free_url()
    (tmp_path / "medresearcher.toml").write_text(
        f'[llm.agent]\nbase_url = ["{a.base_url}", "{dead}"]\nmodel = "m"\nmax_retries = 0\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDRESEARCHER_")}
    result = subprocess.run(
        [sys.executable, "-m", "medresearcher", "llm", "ping", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1  # one replica did not answer
    rows = json.loads(result.stdout)["replicas"]
    assert [(r["url"], r["ok"]) for r in rows] == [(a.base_url, True), (dead, False)]
    assert rows[1]["error"].startswith("cannot connect")
    assert f"1 of 2 replicas did not answer: {dead} (cannot connect" in result.stderr
    assert counts(a) == [1]


# --------------------------------------------------------------------------- the policy alone


def test_the_pool_probes_one_request_at_a_time_and_frees_a_cancelled_probe() -> None:
    clock = Clock()
    pool = ReplicaPool(["a", "b"], failure_threshold=1, cooldown_s=10, clock=clock)
    lease = pool.acquire()
    assert lease is not None and lease.replica.index == 0
    assert pool.failed(lease, "boom")
    pool.release(lease)
    assert [pool.acquire().replica.index for _ in range(3)] == [1, 1, 1]  # type: ignore[union-attr]
    clock.now += 10
    probe = pool.acquire()
    assert probe is not None and probe.probe and probe.replica.index == 0
    assert pool.acquire().replica.index == 1  # type: ignore[union-attr]  # one probe at a time
    pool.release(probe)  # cancelled before an answer: another request may probe
    again = pool.acquire()
    assert again is not None and again.probe and again.replica.index == 0
    pool.succeeded(again)
    assert pool.replicas[0].in_service


def test_the_conversation_key_ignores_later_turns_and_keeps_rollouts_apart() -> None:
    first = [{"role": "system", "content": "You are a doctor."}, *ask(1)]
    later = [*first, {"role": "assistant", "content": "Let me search."}, *ask(2)]
    assert conversation_key(first) == conversation_key(later)
    assert conversation_key(first, 0) != conversation_key(first, 1)
    assert conversation_key(first) != conversation_key(ask(2))
    assert conversation_key([]) is None
