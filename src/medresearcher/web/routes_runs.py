"""The run monitor: recorded runs with their manifests, usage and cost, and live progress.

A run (:class:`medresearcher.workspace.Run`) rewrites ``runs/<run>/manifest.json`` at most once
a second while it counts and once when it ends. The page of a running run follows it through
server-sent events: the server re-reads the manifest, sends it when it changed (and the lines
the run's log gained), and ends the stream when the run has ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from medresearcher.errors import InputError
from medresearcher.web.state import web_state
from medresearcher.web.templating import templates
from medresearcher.workspace import Workspace, list_runs

__all__ = ["POLL_INTERVAL_S", "router", "run_summary"]

router = APIRouter()

#: Seconds between two reads of a manifest while a page follows a run.
POLL_INTERVAL_S = 0.5
#: Seconds without news after which the stream sends a comment, so a closed tab is noticed.
KEEPALIVE_S = 15.0
#: Most bytes of new log text sent in one event.
LOG_CHUNK = 64 * 1024
#: Log lines shown when the page of a run opens.
LOG_TAIL_LINES = 60


def usage_totals(usage: dict[str, Any] | None) -> dict[str, Any]:
    """Requests, tokens and cost of a manifest's ``usage`` (``LLMGateway.usage_report()``).

    The report's ``total`` is used when present; otherwise the endpoints are summed. Cost is
    None when no endpoint reported one (a price was not configured), not zero.
    """
    usage = usage or {}
    total = usage.get("total")
    parts = (
        [total] if isinstance(total, dict) else [v for v in usage.values() if isinstance(v, dict)]
    )
    out: dict[str, Any] = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
    cost: float | None = None
    for part in parts:
        for key in out:
            value = part.get(key)
            if isinstance(value, (int, float)):
                out[key] += value
        if isinstance(part.get("cost_usd"), (int, float)):
            cost = (cost or 0.0) + part["cost_usd"]
    out["total_tokens"] = out["prompt_tokens"] + out["completion_tokens"]
    out["cost_usd"] = cost
    return out


def run_summary(manifest: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """What the run list and the live page show of a manifest: status, counts, time, usage.

    ``elapsed_s`` is the recorded duration of an ended run, and the time since its start for
    a run still going.
    """
    elapsed = manifest.get("duration_s")
    if elapsed is None and manifest.get("started_at"):
        try:
            started = datetime.fromisoformat(str(manifest["started_at"]))
            elapsed = round(((now or datetime.now(timezone.utc)) - started).total_seconds(), 1)
        except ValueError:
            elapsed = None
    return {
        "run_id": manifest.get("run_id"),
        "command": manifest.get("command"),
        "status": manifest.get("status"),
        "started_at": manifest.get("started_at"),
        "ended_at": manifest.get("ended_at"),
        "updated_at": manifest.get("updated_at"),
        "elapsed_s": elapsed,
        "counts": manifest.get("counts") or {},
        "timings": manifest.get("timings") or {},
        "progress": manifest.get("progress"),
        "usage": usage_totals(manifest.get("usage")),
        "error": manifest.get("error"),
    }


def settings_digest(config: dict[str, Any] | None) -> str:
    """A short hash of the (redacted) settings: two runs with the same digest ran alike."""
    text = json.dumps(config or {}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def endpoints_of(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The LLM endpoints a run was configured with, without keys (the manifest has none)."""
    llm = (config or {}).get("llm") or {}
    rows = []
    for name, endpoint in sorted(llm.items()):
        if not isinstance(endpoint, dict):
            continue
        rows.append(
            {
                "name": name,
                "model": endpoint.get("model"),
                "base_url": endpoint.get("base_url"),
                "tool_dialect": endpoint.get("tool_dialect"),
            }
        )
    return rows


def _manifest_path(ws: Workspace, run_id: str) -> Path:
    """``runs/<run_id>/manifest.json``, or 404 when the id is not a plain name or not a run."""
    try:
        path = ws.run_dir(run_id) / "manifest.json"
    except InputError:
        raise HTTPException(status_code=404, detail="not found") from None
    if not path.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return path


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return _parse(path.read_text(encoding="utf-8"))
    except OSError:
        return None  # replaced between the check and the read; the next poll sees it


def _parse(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _log_tail(path: Path, lines: int) -> tuple[str, int]:
    """The last ``lines`` lines of a log and its size (where following it starts)."""
    if not path.is_file():
        return "", 0
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - LOG_CHUNK))
        text = handle.read(size).decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:]), size


@router.get("/runs", response_class=HTMLResponse)
async def runs_page(request: Request, command: str = "", status: str = "") -> HTMLResponse:
    """Every recorded run, newest first, filtered by command prefix and status."""
    ws = web_state(request).ws
    manifests = list(reversed(list_runs(ws)))
    rows = [run_summary(m) for m in manifests]
    commands = sorted({r["command"] for r in rows if r["command"]})
    statuses = sorted({r["status"] for r in rows if r["status"]})
    if command:
        rows = [r for r in rows if (r["command"] or "").startswith(command)]
    if status:
        rows = [r for r in rows if r["status"] == status]
    return templates.TemplateResponse(
        request,
        "runs.html",
        {
            "rows": rows,
            "commands": commands,
            "statuses": statuses,
            "command": command,
            "status": status,
        },
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str) -> HTMLResponse:
    """One run: argv, settings digest, endpoints, counts, timings, usage; live while running."""
    ws = web_state(request).ws
    path = _manifest_path(ws, run_id)
    manifest = _read_manifest(path)
    if manifest is None:
        raise HTTPException(status_code=404, detail="not found")
    log_text, _ = _log_tail(path.parent / "log.txt", LOG_TAIL_LINES)
    return templates.TemplateResponse(
        request,
        "run.html",
        {
            "manifest": manifest,
            "summary": run_summary(manifest),
            "digest": settings_digest(manifest.get("config")),
            "endpoints": endpoints_of(manifest.get("config")),
            "config_json": json.dumps(manifest.get("config") or {}, indent=2, ensure_ascii=False),
            "usage_json": json.dumps(manifest.get("usage") or {}, indent=2, ensure_ascii=False),
            "log_text": log_text,
        },
    )


@router.get("/api/runs/{run_id}")
async def run_json(request: Request, run_id: str) -> dict[str, Any]:
    """The summary of one run, as the live page receives it."""
    manifest = _read_manifest(_manifest_path(web_state(request).ws, run_id))
    if manifest is None:
        raise HTTPException(status_code=404, detail="not found")
    return run_summary(manifest)


@router.get("/api/runs/{run_id}/events")
async def run_events(request: Request, run_id: str) -> StreamingResponse:
    """Server-sent events of one run: ``manifest`` on every change, ``log`` with new log
    lines, and ``end`` once the run has ended (then the stream closes)."""
    path = _manifest_path(web_state(request).ws, run_id)
    return StreamingResponse(
        follow_run(path, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def sse(event: str, data: Any) -> str:
    """One server-sent event; ``data`` as one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


async def follow_run(path: Path, request: Request | None = None) -> AsyncIterator[str]:
    """Follow ``runs/<run>/manifest.json`` until the run ends or the client goes away."""
    log_path = path.parent / "log.txt"
    _, log_offset = _log_tail(log_path, 0)
    last_text: str | None = None
    quiet = 0.0
    while True:
        if request is not None and await request.is_disconnected():
            return
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            text = last_text or ""
        if log_path.is_file() and log_path.stat().st_size > log_offset:
            with log_path.open("rb") as handle:
                handle.seek(log_offset)
                chunk = handle.read(LOG_CHUNK)
            cut = chunk.rfind(b"\n") + 1  # whole lines only; the rest comes next time
            if cut:
                log_offset += cut
                quiet = 0.0
                yield sse("log", chunk[:cut].decode("utf-8", errors="replace"))
        if text and text != last_text:
            manifest = _parse(text)
            if manifest is not None:
                last_text = text
                quiet = 0.0
                summary = run_summary(manifest)
                yield sse("manifest", summary)
                if summary["status"] != "running":
                    yield sse("end", {"status": summary["status"]})
                    return
        if quiet >= KEEPALIVE_S:
            quiet = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_INTERVAL_S)
        quiet += POLL_INTERVAL_S
