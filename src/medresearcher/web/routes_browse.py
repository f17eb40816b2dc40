"""The browsers: QA records, trajectories (step by step) and evaluation reports with plots.

Every run name a request carries is checked with
:func:`medresearcher.workspace.layout.check_run_name` and every file it names is resolved with
:func:`medresearcher.web.paths.inside`; anything else is a 404. Records are shown through the
autoescaped templates, so model, KG and user text is always text.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from medresearcher.errors import MedResearcherError
from medresearcher.web import browse_data as data
from medresearcher.web import eval_data
from medresearcher.web.paths import inside
from medresearcher.web.state import GraphContext, WebState, has_graph, web_state
from medresearcher.web.templating import templates
from medresearcher.workspace import Workspace
from medresearcher.workspace.layout import check_run_name

__all__ = ["router"]

router = APIRouter()

PAGE_SIZE = 25
#: Files of an evaluation folder the browser serves, by suffix, with their media type.
EVAL_FILE_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".jsonl": "application/json",
    ".md": "text/plain; charset=utf-8",
}
#: The report is the evaluation's own page, with its own styles: shown in a sandboxed frame
#: under a policy that runs no script and loads nothing but itself and inline images.
REPORT_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'"
)


def _not_found() -> HTTPException:
    return HTTPException(status_code=404, detail="not found")


def _run_name(name: str) -> str:
    """``name`` when it is a plain run name, else 404 (never a path)."""
    try:
        return check_run_name(name)
    except MedResearcherError:
        raise _not_found() from None


def _int(value: str | None) -> int | None:
    """A filter's number; empty or not a number means no filter."""
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _offset(value: str | None) -> int:
    return max(0, _int(value) or 0)


def _error_page(request: Request, error: MedResearcherError) -> HTMLResponse:
    """A workspace file the browser could not read: its message, not a traceback."""
    return templates.TemplateResponse(
        request, "browse_error.html", {"message": str(error)}, status_code=422
    )


def _query_string(params: dict[str, Any], **override: Any) -> str:
    """The page's filters as a query string, with ``override`` applied (for paging links)."""
    from urllib.parse import urlencode

    merged = {**params, **override}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


# --- QA records ------------------------------------------------------------------------------


@router.get("/qa", response_class=HTMLResponse)
async def qa_list(
    request: Request,
    q: str = "",
    strategy: str = "",
    paradigm: str = "",
    hops: str = "",
    specialty: str = "",
    checks: str = "",
    level: str = "",
    offset: str = "",
) -> HTMLResponse:
    """QA records with search over question and answer, filters and pages."""
    ws = web_state(request).ws
    query = data.QAQuery(
        text=q,
        strategy=strategy or None,
        paradigm=paradigm or None,
        hops=_int(hops),
        specialty=specialty or None,
        checks=checks if checks in ("passed", "failed") else None,
        level=_int(level),
    )
    try:
        page = data.search_qa(ws.qa_path, query, offset=_offset(offset), limit=PAGE_SIZE)
        facets = data.qa_facets(ws.qa_path)
    except MedResearcherError as error:
        return _error_page(request, error)
    params = {
        "q": q,
        "strategy": strategy,
        "paradigm": paradigm,
        "hops": hops,
        "specialty": specialty,
        "checks": checks,
        "level": level,
    }
    return templates.TemplateResponse(
        request,
        "browse_qa.html",
        {
            "page": page,
            "facets": facets,
            "params": params,
            "exists": ws.qa_path.is_file(),
            "prev_qs": _query_string(params, offset=page.prev_offset),
            "next_qs": _query_string(params, offset=page.next_offset),
        },
    )


@router.get("/qa/{qa_id}", response_class=HTMLResponse)
async def qa_record(request: Request, qa_id: str) -> HTMLResponse:
    """One QA record: question, answer, cheat sheet, chain, checks, calibration, provenance."""
    state = web_state(request)
    ws = state.ws
    try:
        record = data.find_qa(ws.qa_path, qa_id)
    except MedResearcherError as error:
        return _error_page(request, error)
    if record is None:
        raise _not_found()
    return templates.TemplateResponse(
        request,
        "qa_record.html",
        {
            "record": record,
            "names": await _entity_names(state, record.chain),
            "provenance_json": json.dumps(record.provenance, indent=2, ensure_ascii=False),
        },
    )


async def _entity_names(state: WebState, chain: list[str]) -> dict[str, str]:
    """Names of the chain's entities from the graph, when there is one."""
    if not has_graph(state.settings):
        return {}

    def names(context: GraphContext) -> dict[str, str]:
        return {k: v[0] for k, v in context.store.names_of(chain[::2]).items() if v}

    with contextlib.suppress(Exception):
        return await state.graph.run(names)
    return {}


# --- trajectories ----------------------------------------------------------------------------


def _trajectory_file(ws: Workspace, run: str) -> Path:
    return inside(ws.trajectories_dir, f"{_run_name(run)}.jsonl")


@router.get("/trajectories", response_class=HTMLResponse)
async def trajectory_list(
    request: Request,
    run: str = "",
    q: str = "",
    policy: str = "",
    guidance: str = "",
    termination: str = "",
    verdict: str = "",
    filter: str = "",
    offset: str = "",
) -> HTMLResponse:
    """Trajectory files of the workspace, and the records of one with search and filters."""
    ws = web_state(request).ws
    files = data.list_trajectory_files(ws.trajectories_dir)
    chosen = run or (files[0].run if files else "")
    page = None
    facets: dict[str, list[str]] = {}
    query = data.TrajectoryQuery(
        text=q,
        policy=policy or None,
        guidance=guidance or None,
        termination=termination or None,
        verdict=verdict or None,
        filter=filter or None,
    )
    if chosen:
        path = _trajectory_file(ws, chosen)
        try:
            page = data.search_trajectories(path, query, offset=_offset(offset), limit=PAGE_SIZE)
            facets = data.trajectory_facets(path)
        except MedResearcherError as error:
            return _error_page(request, error)
    params = {
        "run": chosen,
        "q": q,
        "policy": policy,
        "guidance": guidance,
        "termination": termination,
        "verdict": verdict,
        "filter": filter,
    }
    return templates.TemplateResponse(
        request,
        "browse_trajectories.html",
        {
            "files": files,
            "run": chosen,
            "page": page,
            "facets": facets,
            "params": params,
            "verdict_of": data.verdict_of,
            "filter_status": data.filter_status,
            "prev_qs": _query_string(params, offset=page.prev_offset if page else None),
            "next_qs": _query_string(params, offset=page.next_offset if page else None),
        },
    )


@router.get("/trajectories/{run}/{trajectory_id}", response_class=HTMLResponse)
async def trajectory_page(request: Request, run: str, trajectory_id: str) -> HTMLResponse:
    """One trajectory step by step: thought, tool calls, observations, answer and grade."""
    ws = web_state(request).ws
    path = _trajectory_file(ws, run)
    try:
        trajectory = data.find_trajectory(path, trajectory_id)
    except MedResearcherError as error:
        return _error_page(request, error)
    if trajectory is None:
        raise _not_found()
    messages = trajectory.messages
    system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
    guidance = (trajectory.stats.get("generation") or {}).get("guidance")
    stats = {k: v for k, v in trajectory.stats.items() if k not in ("calls", "generation")}
    return templates.TemplateResponse(
        request,
        "trajectory.html",
        {
            "run": run,
            "t": trajectory,
            "steps": data.trajectory_steps(trajectory),
            "system_prompt": system,
            "guidance": guidance,
            "verdict": data.verdict_of(trajectory),
            "filter_status": data.filter_status(trajectory),
            "stats_json": json.dumps(stats, indent=2, ensure_ascii=False),
            "usage_json": json.dumps(trajectory.usage, indent=2, ensure_ascii=False),
        },
    )


# --- evaluation ------------------------------------------------------------------------------


def _eval_folder(ws: Workspace, run: str) -> Path:
    folder = inside(ws.eval_root, _run_name(run))
    if not folder.is_dir():
        raise _not_found()
    return folder


@router.get("/eval", response_class=HTMLResponse)
async def eval_list(request: Request) -> HTMLResponse:
    """Evaluation runs of the workspace with their headline numbers."""
    ws = web_state(request).ws
    return templates.TemplateResponse(
        request, "browse_eval.html", {"runs": eval_data.list_eval_runs(ws.eval_root)}
    )


@router.get("/eval/{run}", response_class=HTMLResponse)
async def eval_page(
    request: Request, run: str, verdict: str = "", offset: str = ""
) -> HTMLResponse:
    """One evaluation: summary, accuracy by each dimension, tool use, plots and results."""
    ws = web_state(request).ws
    folder = _eval_folder(ws, run)
    info = eval_data.load_eval_run(folder, ws.trajectories_dir)
    wanted = verdict if verdict in ("correct", "incorrect", "unjudgeable") else None
    try:
        results = eval_data.eval_results(folder, verdict=wanted, offset=_offset(offset), limit=50)
    except MedResearcherError as error:
        return _error_page(request, error)
    params = {"verdict": wanted}
    return templates.TemplateResponse(
        request,
        "eval_run.html",
        {
            "info": info,
            "metrics": info.metrics or {},
            "results": results,
            "verdict": wanted or "",
            "prev_qs": _query_string(params, offset=results.prev_offset),
            "next_qs": _query_string(params, offset=results.next_offset),
            "metrics_json": json.dumps(info.metrics or {}, indent=2, ensure_ascii=False),
        },
    )


@router.get("/eval/{run}/report")
async def eval_report(request: Request, run: str) -> Response:
    """The run's ``report.html`` as written, under a sandbox policy (no script runs)."""
    path = inside(_eval_folder(web_state(request).ws, run), "report.html")
    return FileResponse(
        path,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get("/eval/{run}/files/{name}")
async def eval_file(request: Request, run: str, name: str) -> Response:
    """A plot or data file of an evaluation folder; other kinds of file are not served."""
    folder = _eval_folder(web_state(request).ws, run)
    media_type = EVAL_FILE_TYPES.get(Path(name).suffix.lower())
    if media_type is None:
        raise _not_found()
    path = inside(folder, name)
    if not path.is_file() or path.parent != folder.resolve():
        raise _not_found()
    headers = {"X-Content-Type-Options": "nosniff"}
    if media_type.startswith("image/svg"):
        headers["Content-Security-Policy"] = (
            "sandbox; default-src 'none'; style-src 'unsafe-inline'"
        )
    return FileResponse(path, media_type=media_type, headers=headers)
