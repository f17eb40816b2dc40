"""``medresearcher llm``: talk to the configured model endpoints."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from medresearcher.cli.state import CliState, console, state_of
from medresearcher.errors import ConfigError
from medresearcher.workspace import Run

if TYPE_CHECKING:  # the gateway imports the openai SDK: only when a command runs
    from medresearcher.llm import ChatResult

app = typer.Typer(help="Check and use the configured LLM endpoints.", no_args_is_help=True)

PING_MESSAGES = [{"role": "user", "content": "Reply with the single word: pong"}]


@app.command("ping")
def ping(
    ctx: typer.Context,
    endpoint: str | None = typer.Option(
        None,
        "--endpoint",
        "-e",
        help="Endpoint name (\\[llm.<name>]); default: the only one, or 'agent'.",
    ),
    retries: int = typer.Option(0, help="Retries on 429/5xx/timeouts before giving up."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """One round trip to an endpoint (to each of its replicas): served model, latency and
    tokens. Recorded as a run."""
    state = state_of(ctx)
    name = endpoint or default_endpoint(state)
    # An unknown name fails here, listing the known ones.
    if len(state.settings.endpoint(name).replica_urls()) > 1:
        _ping_replicas(state, name, retries, as_json)
        return
    with Run(state.ws, "llm-ping", state.settings) as run:
        result, usage = asyncio.run(_ping(state, name, retries))
        run.count("calls")
        run.timing("latency_s", result.latency_s)
        run.record_usage(usage)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "endpoint": name,
                    "run": run.run_id,
                    **result.to_dict(),
                    "latency_s": round(result.latency_s, 4),
                }
            )
        )
        return
    table = Table(show_header=False, title=f"llm ping: {name}", title_justify="left")
    ep = state.settings.endpoint(name)
    rows = [
        ("url", ep.base_url),
        ("model", result.model or ep.model),
        ("latency", f"{result.latency_s * 1000:.0f} ms"),
        ("tokens", f"{result.prompt_tokens} in / {result.completion_tokens} out"),
        ("reply", (result.content or "").strip()[:80] or "(empty)"),
        ("run", run.run_id),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


async def _ping(state: CliState, name: str, retries: int) -> tuple[ChatResult, dict]:
    from medresearcher.llm import LLMGateway

    async with LLMGateway(state.settings, cache_mode="off") as gateway:
        result = await gateway.chat(name, PING_MESSAGES, max_tokens=8, max_retries=retries)
        return result, gateway.usage_report()


def _ping_replicas(state: CliState, name: str, retries: int, as_json: bool) -> None:
    """``llm ping`` of an endpoint with several base URLs: one row per replica."""
    with Run(state.ws, "llm-ping", state.settings) as run:
        outcomes, usage = asyncio.run(_ping_each(state, name, retries))
        for _, result in outcomes:
            run.count("calls")
            if not isinstance(result, Exception):
                run.timing("latency_s", result.latency_s)
        run.record_usage(usage)
        rows = [_replica_row(url, result) for url, result in outcomes]
        if as_json:
            console.print_json(json.dumps({"endpoint": name, "run": run.run_id, "replicas": rows}))
        else:
            table = Table(title=f"llm ping: {name} ({len(rows)} replicas)", title_justify="left")
            for column in ("replica", "model", "latency", "tokens", "reply"):
                table.add_column(column, overflow="fold")
            for row in rows:
                if row["error"]:
                    table.add_row(row["url"], "-", "-", "-", f"[red]{escape(row['error'])}[/]")
                    continue
                table.add_row(
                    row["url"],
                    row["model"],
                    f"{row['latency_s'] * 1000:.0f} ms",
                    f"{row['prompt_tokens']} in / {row['completion_tokens']} out",
                    (row["content"] or "").strip()[:80] or "(empty)",
                )
            console.print(table)
            console.print(f"run {run.run_id}")
        failed = [row for row in rows if row["error"]]
        if failed:
            from medresearcher.llm import LLMError

            raise LLMError(
                f"endpoint {name!r}: {len(failed)} of {len(rows)} replicas did not answer: "
                + "; ".join(f"{row['url']} ({row['error']})" for row in failed)
            )


async def _ping_each(
    state: CliState, name: str, retries: int
) -> tuple[list[tuple[str, ChatResult | Exception]], dict]:
    from medresearcher.llm import LLMError, LLMGateway

    async with LLMGateway(state.settings, cache_mode="off") as gateway:
        urls = gateway.endpoint(name).urls

        async def one(index: int) -> ChatResult | Exception:
            try:
                return await gateway.chat(
                    name, PING_MESSAGES, max_tokens=8, max_retries=retries, replica=index
                )
            except LLMError as exc:
                return exc

        results = await asyncio.gather(*(one(index) for index in range(len(urls))))
        return list(zip(urls, results, strict=True)), gateway.usage_report()


def _replica_row(url: str, result: ChatResult | Exception) -> dict:
    from medresearcher.llm import LLMCallError

    if isinstance(result, LLMCallError):
        status = f"HTTP {result.status}: " if result.status is not None else ""
        return {"url": url, "ok": False, "error": f"{status}{result.cause}"}
    if isinstance(result, Exception):
        return {"url": url, "ok": False, "error": str(result)}
    return {
        "url": url,
        "ok": True,
        "error": None,
        "model": result.model,
        "latency_s": round(result.latency_s, 4),
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "content": result.content,
    }


def default_endpoint(state: CliState) -> str:
    names = sorted(state.settings.llm)
    if len(names) == 1:
        return names[0]
    if "agent" in names:
        return "agent"
    if not names:
        state.settings.endpoint("agent")  # raises the "none configured" error
    raise ConfigError(
        f"several endpoints are configured ({', '.join(names)}): choose one with --endpoint"
    )
