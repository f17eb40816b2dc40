"""Gateway throughput and CPU cost against the fake server at 100 ms latency.

2,000 calls with concurrency 64 should reach at least 85 % of the ideal throughput
(concurrency / latency = 640 calls/s), at under 1 ms of gateway CPU per call. The
baseline, measured in the same run, is raw httpx2 posting the same request with the same
concurrency: the difference is what the gateway (SDK, limits, retries, parsing) costs.
Both use httpx2, the HTTP stack of the openai 3.x SDK: httpcore 1.x's pool rescans every
connection per request, which at 64 connections cost ~10 ms of CPU per call here.

The server runs in its own process so that its CPU time is not counted as ours.

A third row sends the same load to a pool of two replicas (two server processes behind one
endpoint, ``base_url = [a, b]``, 32 in flight per replica): the same ideal, so the
difference is what least in-flight choice, conversation keys and health bookkeeping cost.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from rich.console import Console
from rich.table import Table

from medresearcher.config import EndpointSettings, Settings
from medresearcher.llm import LLMGateway

ROOT = Path(__file__).resolve().parents[1]
CALLS = 2000
CONCURRENCY = 64
LATENCY_S = 0.1
MESSAGES = [{"role": "user", "content": "Which enzyme is deficient in Fabry disease?"}]


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "fakes" / "openai_server.py"),
            "--latency",
            str(LATENCY_S),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().split() if proc.stdout else []
    if len(line) != 2 or line[0] != "PORT":
        proc.kill()
        raise SystemExit(f"fake server did not start: {line}")
    return proc, f"http://127.0.0.1:{line[1]}/v1"


async def gateway_run(base_url: str | list[str], calls: int) -> tuple[float, float]:
    replicas = len(base_url) if isinstance(base_url, list) else 1
    settings = Settings(
        llm={
            "bench": EndpointSettings(
                base_url=base_url,
                model="fake-model",
                max_concurrency=CONCURRENCY // replicas,  # per replica: 64 in flight in all
                max_retries=0,
                timeout_s=30,
            )
        }
    )
    async with LLMGateway(settings, cache_mode="off") as gateway:
        await asyncio.gather(*(gateway.chat("bench", MESSAGES) for _ in range(CONCURRENCY)))
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(gateway.chat("bench", MESSAGES) for _ in range(calls)))
        return time.perf_counter() - wall, time.process_time() - cpu


async def raw_httpx_run(base_url: str, calls: int) -> tuple[float, float]:
    limits = httpx2.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    semaphore = asyncio.Semaphore(CONCURRENCY)
    body = {"model": "fake-model", "messages": MESSAGES}
    async with httpx2.AsyncClient(limits=limits, timeout=30) as client:

        async def one() -> None:
            async with semaphore:
                response = await client.post(f"{base_url}/chat/completions", json=body)
                response.json()

        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one() for _ in range(calls)))
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    console = Console()
    servers = [start_server(), start_server()]
    base_url = servers[0][1]
    try:
        results = {
            "raw httpx2 (baseline)": asyncio.run(raw_httpx_run(base_url, CALLS)),
            "medresearcher gateway": asyncio.run(gateway_run(base_url, CALLS)),
            "gateway, pool of 2 replicas": asyncio.run(
                gateway_run([url for _, url in servers], CALLS)
            ),
        }
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=10)
    ideal = CONCURRENCY / LATENCY_S
    table = Table(
        title=f"{CALLS} calls, concurrency {CONCURRENCY}, server latency "
        f"{LATENCY_S * 1000:.0f} ms (ideal {ideal:.0f} calls/s)",
        title_justify="left",
    )
    for column in ("client", "wall s", "calls/s", "of ideal", "CPU ms/call"):
        table.add_column(column, justify="right")
    for name, (wall, cpu) in results.items():
        rate = CALLS / wall
        table.add_row(
            name, f"{wall:.2f}", f"{rate:.0f}", f"{rate / ideal:.1%}", f"{cpu / CALLS * 1000:.2f}"
        )
    console.print(table)
    g_wall, g_cpu = results["medresearcher gateway"]
    b_cpu = results["raw httpx2 (baseline)"][1]
    ratio = (CALLS / g_wall) / ideal
    console.print(
        f"gateway throughput: {ratio:.1%} of ideal (target ≥ 85 %) — "
        f"{'met' if ratio >= 0.85 else 'NOT met'}"
    )
    per_call, overhead = g_cpu / CALLS * 1000, (g_cpu - b_cpu) / CALLS * 1000
    console.print(
        f"gateway CPU per call: {per_call:.2f} ms in all, {overhead:.2f} ms above raw "
        f"HTTP ({g_cpu / b_cpu:.2f}× the baseline); goal < 1 ms — "
        f"{'met' if per_call < 1 else 'met above raw HTTP only' if overhead < 1 else 'NOT met'}"
    )
    p_wall, p_cpu = results["gateway, pool of 2 replicas"]
    console.print(
        f"pool of 2 replicas: {(CALLS / p_wall) / ideal:.1%} of ideal, "
        f"{(p_cpu - g_cpu) / CALLS * 1000:+.2f} ms CPU per call against one server"
    )


if __name__ == "__main__":
    main()
