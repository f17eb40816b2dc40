"""A dataset card for every export: what the training set holds and how it was made.

Synthetic QA and trajectories built from public knowledge are only reusable when a reader
can tell what is in them and where they came from (issue 15 item 4). :func:`dataset_card`
gathers, for one export folder:

- counts: trajectories read and exported, QA items, rows per format (from the export's
  ``manifest.json``, so the card and the files cannot disagree);
- shares of the exported trajectories by specialty, paradigm, hop count, guidance
  (MTG vs none, paper §3.2) and tool-failure augmentation;
- filter statistics (passed / rejected by rule) when the trajectories carry filter verdicts;
- behaviour statistics (paper §4.1, :func:`medresearcher.synthesis.stats.summarise`);
- sources and licences of the data bundle, with Orphanet's CC BY 4.0 credit line;
- the model endpoints used (model and host only, never a key);
- decontamination results against evaluation sets, or "not checked" said plainly;
- the recorded commands (``runs/<run>/manifest.json``: command and argv) that made it.

:func:`write_card` writes it as ``card.md`` (people) and ``card.json`` (machines).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.stats import BehaviourSummary, summarise

__all__ = [
    "CARD_JSON",
    "CARD_MD",
    "DISCLAIMER",
    "NOT_CHECKED",
    "CardTally",
    "DatasetCard",
    "dataset_card",
    "find_workspace",
    "write_card",
]

log = logging.getLogger(__name__)

CARD_MD = "card.md"
CARD_JSON = "card.json"
NOT_CHECKED = "not checked"
DISCLAIMER = (
    "Research software, not clinical advice. This data set is machine-generated from public "
    "knowledge bases and has not been reviewed by clinicians; do not use it to make medical "
    "decisions."
)
SHARE_KEYS = ("specialty", "paradigm", "hops", "guidance", "augmented")
# Workspace-level stages that made the KG, index and QA every export draws on.
_WORKSPACE_COMMANDS = ("demo", "kg-", "sample", "corpus-", "index-", "qa-")
# Stages tied to one trajectory run, matched by the run name in their argv.
_RUN_COMMANDS = ("traj-", "data-decontaminate")
_TOOL_TEXT_KEPT = 64  # enough of a tool result to tell an error observation


class Share(BaseModel):
    count: int
    share: float


class EndpointUse(BaseModel):
    """One model endpoint behind the data: where it is (host only) and what it served."""

    endpoint: str
    model: str | None = None
    host: str | None = None
    runs: list[str] = Field(default_factory=list, description="Run ids that used it.")
    calls: int | None = None
    total_tokens: int | None = None
    trajectories: int = Field(0, description="Exported trajectories whose policy it was.")


class CommandRecord(BaseModel):
    run_id: str
    command: str
    argv: list[str] = Field(default_factory=list)
    status: str | None = None
    started_at: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class Decontamination(BaseModel):
    status: str = Field(description="'checked' or 'not checked'.")
    statement: str
    reports: list[dict[str, Any]] = Field(default_factory=list)


class DatasetCard(BaseModel):
    """Everything the card says; ``card.json`` is this model dumped."""

    name: str
    created_at: str
    think: str | None = None
    counts: dict[str, Any]
    shares: dict[str, dict[str, Share]] = Field(
        description="Of the exported trajectories; a trajectory counts once for each of its "
        "specialties, so specialty shares may sum above 1."
    )
    filters: dict[str, Any] | None = Field(
        None, description="Verdicts the input carried; None when it carried none."
    )
    behaviour: BehaviourSummary
    sources: list[dict[str, str]]
    endpoints: list[EndpointUse]
    decontamination: Decontamination
    commands: list[CommandRecord]
    notes: list[str] = Field(default_factory=list)
    disclaimer: str = DISCLAIMER


class CardTally:
    """What the card needs of each trajectory, collected while an export streams them.

    Only a slim copy (tool-call names and ids, the first characters of tool results) is
    kept for the behaviour statistics, so a large export does not hold its messages twice.
    """

    def __init__(self) -> None:
        self.seen = 0
        self.exported: list[Trajectory] = []
        self.verdicts: list[dict[str, Any]] = []

    def add(self, trajectory: Trajectory, *, exported: bool) -> None:
        self.seen += 1
        if trajectory.filters:
            self.verdicts.append(trajectory.filters)
        if exported:
            self.exported.append(_slim(trajectory))


def _slim(trajectory: Trajectory) -> Trajectory:
    messages: list[dict[str, Any]] = []
    for message in trajectory.messages:
        role = message.get("role")
        if role == "assistant":
            calls = [
                {"id": c.get("id"), "function": {"name": (c.get("function") or {}).get("name")}}
                for c in message.get("tool_calls") or []
            ]
            messages.append({"role": role, "tool_calls": calls} if calls else {"role": role})
        elif role == "tool":
            text = str(message.get("content") or "")[:_TOOL_TEXT_KEPT]
            messages.append(
                {"role": role, "tool_call_id": message.get("tool_call_id"), "content": text}
            )
    stats = {k: trajectory.stats[k] for k in ("calls", "augmented") if k in trajectory.stats}
    tools = [
        {"function": {"name": (t.get("function") or {}).get("name")}} for t in trajectory.tools
    ]
    return trajectory.model_copy(update={"messages": messages, "stats": stats, "tools": tools})


def dataset_card(
    trajectories: Iterable[Trajectory] | CardTally,
    qa_records: Iterable[QARecord] | Mapping[str, QARecord] | None,
    export_manifest: Mapping[str, Any],
    *,
    workspace: str | os.PathLike[str] | None = None,
    run: str | None = None,
    bundle: str = "demo",
) -> DatasetCard:
    """The card of one export.

    Parameters
    ----------
    trajectories:
        Every trajectory the export read (or the :class:`CardTally` it collected); those that
        ``prepare_conversation`` accepts are the exported ones.
    qa_records:
        Their QA records (specialty, paradigm and hops come from them); may be ``None``.
    export_manifest:
        The export's ``manifest.json`` as a dict: counts and rows per format come from it.
    workspace, run:
        Where to look for run manifests and decontamination reports, and the trajectory run
        whose commands to list; without a workspace both sections say they found nothing.
    bundle:
        The data bundle whose sources and licences are listed.
    """
    tally = trajectories if isinstance(trajectories, CardTally) else _tally(trajectories)
    qa_by_id = _qa_index(qa_records)
    exported = tally.exported
    total = len(exported)
    qa_ids = {t.qa_id for t in exported if t.qa_id}
    counts = {
        "trajectories_read": export_manifest.get("trajectories", tally.seen),
        "trajectories_exported": export_manifest.get("exported", total),
        "not_exported": dict(export_manifest.get("skipped") or {}),
        "qa_items": len(qa_ids),
        "qa_records_given": len(qa_by_id),
        "rows": {f: i["rows"] for f, i in (export_manifest.get("formats") or {}).items()},
        "reasoning_turns": export_manifest.get("reasoning_turns"),
    }
    ws = Path(workspace) if workspace is not None else None
    runs = _related_runs(ws, run)
    notes = []
    if not tally.verdicts:
        notes.append("the input carried no filter verdicts (run `traj filter` to record them)")
    return DatasetCard(
        name=str(export_manifest.get("name") or run or "medresearcher"),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        think=export_manifest.get("think"),
        counts=counts,
        shares=_shares(exported, qa_by_id),
        filters=_filter_stats(tally.verdicts),
        behaviour=summarise(exported),
        sources=_sources(bundle),
        endpoints=_endpoints(exported, runs),
        decontamination=_decontamination(ws, run, qa_ids, {t.id for t in exported}),
        commands=[_command(m) for m in runs],
        notes=notes,
    )


def _tally(trajectories: Iterable[Trajectory]) -> CardTally:
    from medresearcher.synthesis.export_messages import ExportSkip, prepare_conversation

    tally = CardTally()
    for trajectory in trajectories:
        try:
            prepare_conversation(trajectory)
            ok = True
        except ExportSkip:
            ok = False
        tally.add(trajectory, exported=ok)
    return tally


def _qa_index(
    qa_records: Iterable[QARecord] | Mapping[str, QARecord] | None,
) -> dict[str, QARecord]:
    if qa_records is None:
        return {}
    values = qa_records.values() if isinstance(qa_records, Mapping) else qa_records
    return {r.id: r for r in values}


def _shares(
    exported: list[Trajectory], qa_by_id: Mapping[str, QARecord]
) -> dict[str, dict[str, Share]]:
    tallies: dict[str, Counter[str]] = {key: Counter() for key in SHARE_KEYS}
    for trajectory in exported:
        record = qa_by_id.get(trajectory.qa_id or "")
        specialties = (record.specialties if record else None) or ["unknown"]
        tallies["specialty"].update(dict.fromkeys(specialties, 1))
        tallies["paradigm"][record.paradigm if record else "unknown"] += 1
        tallies["hops"][str(record.hops) if record else "unknown"] += 1
        tallies["guidance"][trajectory.guidance] += 1
        tallies["augmented"]["yes" if trajectory.stats.get("augmented") else "no"] += 1
    total = len(exported)
    return {
        key: {
            name: Share(count=n, share=round(n / total, 4) if total else 0.0)
            for name, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
        }
        for key, counter in tallies.items()
    }


def _filter_stats(verdicts: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not verdicts:
        return None
    rejections: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    for verdict in verdicts:
        rules.update(verdict.get("rules") or [])
        if not verdict.get("passed", False):
            rejections.update({str(r.get("rule")) for r in verdict.get("reasons") or []})
    passed = sum(1 for v in verdicts if v.get("passed"))
    return {
        "checked": len(verdicts),
        "passed": passed,
        "rejected": len(verdicts) - passed,
        "rejected_by_rule": dict(rejections.most_common()),
        "rules": sorted(rules),
    }


def _sources(bundle: str) -> list[dict[str, str]]:
    """The bundle's licences as its build recorded them; the package's table otherwise."""
    from medresearcher.data import bundle_manifest
    from medresearcher.data.attribution import DATA_SOURCES

    try:
        licences = bundle_manifest(bundle).get("licences")
    except (OSError, ValueError, KeyError):
        licences = None
    if not licences:
        licences = [source.to_dict() for source in DATA_SOURCES]
    return [{str(k): str(v) for k, v in entry.items()} for entry in licences]


def find_workspace(out_dir: str | os.PathLike[str]) -> tuple[Path | None, str | None]:
    """``(workspace, run)`` of an export folder laid out as ``<workspace>/export/<run>``
    (the default of ``traj export``); ``(None, None)`` elsewhere."""
    out = Path(out_dir).resolve()
    root = out.parent.parent
    if out.parent.name == "export" and (root / "runs").is_dir():
        return root, out.name
    return None, None


def _related_runs(workspace: Path | None, run: str | None) -> list[dict[str, Any]]:
    """Run manifests that made this data: workspace stages (KG, index, QA) and the stages
    whose argv names the trajectory run, oldest first."""
    if workspace is None:
        return []
    from medresearcher.workspace import Workspace
    from medresearcher.workspace.manifest import list_runs

    related = []
    for manifest in list_runs(Workspace(workspace)):
        command = str(manifest.get("command") or "")
        if command.startswith(_WORKSPACE_COMMANDS) or (
            command.startswith(_RUN_COMMANDS) and run and _names_run(manifest, run)
        ):
            related.append(manifest)
    exports = [m for m in related if m.get("command") == "traj-export"]
    # Earlier exports of the run did not make this one: keep the latest (usually the current).
    return [m for m in related if m.get("command") != "traj-export" or m is exports[-1]]


def _names_run(manifest: Mapping[str, Any], run: str) -> bool:
    values = [str(a) for a in manifest.get("argv") or []]
    values += [str(v) for v in (manifest.get("params") or {}).values() if isinstance(v, str)]
    for value in values:
        name = Path(value).name
        if value == run or name == f"{run}.jsonl" or name.startswith(f"{run}."):
            return True
    return False


def _command(manifest: Mapping[str, Any]) -> CommandRecord:
    return CommandRecord(
        run_id=str(manifest.get("run_id")),
        command=str(manifest.get("command")),
        argv=[str(a) for a in manifest.get("argv") or []],
        status=manifest.get("status"),
        started_at=manifest.get("started_at"),
        params=dict(manifest.get("params") or {}),
    )


def _host(base_url: str | None) -> str | None:
    if not base_url:
        return None
    parts = urlsplit(base_url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else None


def _endpoints(exported: list[Trajectory], runs: list[dict[str, Any]]) -> list[EndpointUse]:
    uses: dict[str, EndpointUse] = {}
    for manifest in runs:
        llm = (manifest.get("config") or {}).get("llm") or {}
        for name, usage in (manifest.get("usage") or {}).items():
            if name == "total" or not isinstance(usage, Mapping) or not usage.get("calls"):
                continue
            config = llm.get(name) or {}
            use = uses.setdefault(name, EndpointUse(endpoint=name))
            use.model = use.model or usage.get("model") or config.get("model")
            use.host = use.host or _host(config.get("base_url"))
            use.runs.append(str(manifest.get("run_id")))
            use.calls = (use.calls or 0) + int(usage.get("calls") or 0)
            use.total_tokens = (use.total_tokens or 0) + int(usage.get("total_tokens") or 0)
    for trajectory in exported:
        if not trajectory.policy.startswith("llm:"):
            continue
        name = trajectory.policy.split(":", 1)[1]
        use = uses.setdefault(name, EndpointUse(endpoint=name))
        use.model = use.model or (trajectory.usage or {}).get("model")
        use.trajectories += 1
    return sorted(uses.values(), key=lambda u: u.endpoint)


def _decontamination(
    workspace: Path | None, run: str | None, qa_ids: set[str], trajectory_ids: set[str]
) -> Decontamination:
    """Reports under ``<workspace>/decontamination/`` for the QA file or this run's files
    (by file stem), or for any of the exported items (by flagged id)."""
    folder = workspace / "decontamination" if workspace is not None else None
    reports = []
    for path in sorted(folder.glob("*.json")) if folder and folder.is_dir() else []:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("unreadable decontamination report %s", path)
            continue
        stem = path.stem
        by_name = stem == "qa" or (run is not None and (stem == run or stem.startswith(run + ".")))
        if by_name or _flagged_ids(report) & (qa_ids | trajectory_ids):
            reports.append({"file": str(path), **_summary(report)})
    if not reports:
        return Decontamination(
            status=NOT_CHECKED,
            statement="not checked: no decontamination report against evaluation sets was "
            "found for this data (run `medresearcher data decontaminate --against FILE…`)",
        )
    return Decontamination(
        status="checked",
        statement=f"checked against evaluation sets: {len(reports)} report(s) below",
        reports=reports,
    )


def _flagged_ids(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, Mapping):
        for key, item in value.items():
            if "flagged" in str(key) and isinstance(item, list):
                found.update(str(i.get("id") if isinstance(i, Mapping) else i) for i in item)
            else:
                found |= _flagged_ids(item)
    elif isinstance(value, list):
        for item in value:
            found |= _flagged_ids(item)
    return found


def _summary(value: Any, depth: int = 0) -> Any:
    """A report with long lists replaced by their length (flagged ids stay in the report)."""
    if isinstance(value, Mapping):
        return {str(k): _summary(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return value if len(value) <= 10 and depth < 4 else {"count": len(value)}
    return value


def write_card(card: DatasetCard, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``card.md`` and ``card.json`` into ``out_dir``; returns their paths."""
    from medresearcher.synthesis.card_markdown import card_markdown
    from medresearcher.workspace.manifest import write_json_atomic

    out = Path(out_dir)
    json_path, md_path = out / CARD_JSON, out / CARD_MD
    write_json_atomic(json_path, card.model_dump_json(indent=2) + "\n")
    write_json_atomic(md_path, card_markdown(card))
    return md_path, json_path
