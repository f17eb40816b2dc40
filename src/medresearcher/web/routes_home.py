"""The home page: what the workspace holds, with links to each page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from medresearcher.web.state import GraphContext, has_graph, web_state
from medresearcher.web.templating import templates
from medresearcher.workspace import Workspace

__all__ = ["router", "workspace_summary"]

router = APIRouter()


def _lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def workspace_summary(ws: Workspace) -> dict[str, Any]:
    """Counts of the workspace's files: questions, samples, trajectory and evaluation runs."""
    trajectories = (
        sorted(ws.trajectories_dir.glob("*.jsonl")) if ws.trajectories_dir.is_dir() else []
    )
    evaluations = (
        sorted(p.name for p in ws.eval_root.iterdir() if p.is_dir())
        if ws.eval_root.is_dir()
        else []
    )
    runs = sum(1 for p in ws.runs_root.iterdir() if p.is_dir()) if ws.runs_root.is_dir() else 0
    return {
        "root": str(ws.root.resolve()),
        "questions": _lines(ws.qa_path),
        "samples": _lines(ws.samples_path),
        "trajectory_runs": {p.stem: _lines(p) for p in trajectories},
        "evaluations": evaluations,
        "runs": runs,
    }


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> HTMLResponse:
    """The workspace at a glance."""
    state = web_state(request)
    summary = workspace_summary(state.ws)
    graph: dict[str, Any] | None = None
    if has_graph(state.settings):

        def stats(context: GraphContext) -> dict[str, Any]:
            return context.store.stats()

        graph = await state.graph.run(stats)
    return templates.TemplateResponse(
        request,
        "home.html",
        {
            "active": "home",
            "summary": summary,
            "graph": graph,
            "endpoints": sorted(state.settings.llm),
        },
    )


@router.get("/api/health")
async def health() -> dict[str, str]:
    """For scripts waiting on the server."""
    return {"status": "ok"}
