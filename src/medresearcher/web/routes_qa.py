"""The QA lab: its page, the strategies it offers and one question at a time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from medresearcher.web.qa_lab import (
    STRATEGY_NAMES,
    QALabRequest,
    lab_question,
    llm_writer_needed,
    strategy_parameters,
)
from medresearcher.web.state import GraphContext, web_state
from medresearcher.web.templating import templates

__all__ = ["router"]

router = APIRouter()


@router.get("/qa-lab", response_class=HTMLResponse)
async def qa_lab_page(request: Request, anchor: str | None = None) -> HTMLResponse:
    """The lab's form, with the model endpoints this server knows of."""
    settings = web_state(request).settings
    return templates.TemplateResponse(
        request,
        "qa_lab.html",
        {
            "active": "qa-lab",
            "anchor": anchor or "",
            "strategies": STRATEGY_NAMES,
            "parameters": strategy_parameters(),
            "endpoints": sorted(settings.llm),
            "llm_note": llm_writer_needed(settings, "writer"),
        },
    )


@router.get("/api/qa-lab/strategies")
async def api_strategies() -> dict[str, Any]:
    """Every strategy and its own parameters with their defaults."""
    return {"strategies": strategy_parameters()}


@router.post("/api/qa-lab/generate")
async def api_generate(request: Request, body: QALabRequest) -> dict[str, Any]:
    """Sample → write → check one question; 409 when the LLM writer has no model."""
    state = web_state(request)
    if body.writer == "llm":
        why = llm_writer_needed(state.settings, body.endpoint)
        if why:
            raise HTTPException(status_code=409, detail=why)

    def go(graph: GraphContext) -> dict[str, Any]:
        return lab_question(graph, body, state.settings)

    return await state.graph.run(go)  # bad anchors or parameters: InputError → 422
