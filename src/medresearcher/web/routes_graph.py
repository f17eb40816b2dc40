"""The graph explorer: its page and the JSON API it reads (search, entity, neighbours,
samples).

Sample ids are looked up in a samples file of the workspace, never used as paths; the file
itself is named relative to the workspace and kept inside it by
:func:`medresearcher.web.paths.inside`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from medresearcher.schema import Sample
from medresearcher.web.graph_data import (
    entity_json,
    neighbourhood,
    sample_graph,
    search_entities,
)
from medresearcher.web.paths import inside
from medresearcher.web.state import GraphContext, web_state
from medresearcher.web.templating import templates
from medresearcher.workspace import read_jsonl

__all__ = ["router", "samples_file"]

router = APIRouter()

SAMPLES_HELP = "A samples file relative to the workspace (default samples.jsonl)."


@router.get("/graph", response_class=HTMLResponse)
async def graph_page(
    request: Request,
    entity: str | None = Query(None, max_length=200),
    sample: str | None = Query(None, max_length=200),
) -> HTMLResponse:
    """The explorer; ``?entity=ID`` opens on an entity (its relations are also rendered on
    the server, readable without scripts), ``?sample=ID`` highlights a sample."""
    initial = None
    if entity:

        def go(graph: GraphContext) -> dict[str, Any] | None:
            resolved = graph.store.resolve(entity)
            return neighbourhood(graph.store, resolved, limit=40) if resolved else None

        initial = await web_state(request).graph.run(go)
    names = {node["id"]: node["name"] for node in initial["nodes"]} if initial else {}
    return templates.TemplateResponse(
        request,
        "graph.html",
        {
            "entity": entity or "",
            "sample": sample or "",
            "initial": initial,
            "names": names,
            "active": "graph",
        },
    )


@router.get("/api/graph/search")
async def api_search(
    request: Request,
    q: str = Query("", max_length=200),
    limit: int = Query(20, ge=1, le=200),
) -> dict[str, Any]:
    """Entities by id or xref, exact name or alias, then name or alias substring."""

    def go(graph: GraphContext) -> list[dict[str, Any]]:
        return search_entities(graph.store, graph.names, q, limit=limit)

    return {"query": q, "results": await web_state(request).graph.run(go)}


@router.get("/api/graph/entity/{entity_id}")
async def api_entity(request: Request, entity_id: str) -> dict[str, Any]:
    """One entity with its attributes, xrefs, source and degree."""

    def go(graph: GraphContext) -> dict[str, Any] | None:
        resolved = graph.store.resolve(entity_id)
        entity = graph.store.entity(resolved) if resolved else None
        return None if entity is None else entity_json(entity, graph.store, full=True)

    found = await web_state(request).graph.run(go)
    if found is None:
        raise HTTPException(status_code=404, detail="no such entity")
    return found


@router.get("/api/graph/neighbours/{entity_id}")
async def api_neighbours(
    request: Request,
    entity_id: str,
    limit: int = Query(40, ge=1, le=200),
    predicate: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    """An entity, up to ``limit`` neighbours (round-robin over predicates) and the relations
    to them with clinical context (phenotype frequencies) and sources."""

    def go(graph: GraphContext) -> dict[str, Any] | None:
        resolved = graph.store.resolve(entity_id)
        if resolved is None:
            return None
        return neighbourhood(graph.store, resolved, limit=limit, predicates=predicate)

    found = await web_state(request).graph.run(go)
    if found is None:
        raise HTTPException(status_code=404, detail="no such entity")
    return found


def samples_file(request: Request, file: str) -> Path:
    """The samples file named relative to the workspace, or 404 (outside it, missing, or
    not a ``.jsonl`` file)."""
    path = inside(web_state(request).ws.root, file)
    if path.suffix != ".jsonl" or not path.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return path


@router.get("/api/samples")
async def api_samples(
    request: Request,
    file: str = Query("samples.jsonl", description=SAMPLES_HELP),
    limit: int = Query(200, ge=1, le=2000),
) -> dict[str, Any]:
    """The first ``limit`` samples of a samples file: id, strategy, anchor, hops."""
    path = samples_file(request, file)
    rows = []
    for sample in read_jsonl(path, Sample):
        rows.append(
            {
                "id": sample.id,
                "strategy": sample.strategy,
                "anchor": sample.anchor,
                "end": sample.chain[-1] if sample.chain else None,
                "hops": sample.hops,
                "nodes": len(sample.nodes),
            }
        )
        if len(rows) >= limit:
            break

    def names(graph: GraphContext) -> dict[str, str]:
        ids = {r["anchor"] for r in rows} | {r["end"] for r in rows if r["end"]}
        return {i: graph.store.names_of([i])[i][0] for i in ids}

    named = await web_state(request).graph.run(names)
    for row in rows:
        row["anchor_name"] = named.get(row["anchor"], row["anchor"])
        row["end_name"] = named.get(row["end"], row["end"]) if row["end"] else None
    return {"file": file, "samples": rows}


@router.get("/api/samples/{sample_id}")
async def api_sample(
    request: Request,
    sample_id: str,
    file: str = Query("samples.jsonl", description=SAMPLES_HELP),
) -> dict[str, Any]:
    """A sample's subgraph and chain, ready to highlight in the explorer."""
    path = samples_file(request, file)
    found = next((s for s in read_jsonl(path, Sample) if s.id == sample_id), None)
    if found is None:
        raise HTTPException(status_code=404, detail="no such sample")
    return await web_state(request).graph.run(lambda graph: sample_graph(graph.store, found))
