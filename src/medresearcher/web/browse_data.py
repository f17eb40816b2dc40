"""What the browse pages show, as plain functions over workspace files.

QA records and trajectories are read with :func:`medresearcher.workspace.read_jsonl` one line
at a time: a page keeps only the records it shows, so a file of a million trajectories is
browsed in constant memory. Evaluation runs are folders ``eval/<run>/`` holding
``metrics.json``, ``results.jsonl``, ``report.html`` and the report's plots
(:mod:`medresearcher.web.eval_data`).

Nothing here knows about HTTP; the routes validate run names and paths before calling in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, TypeVar

from medresearcher.errors import InputError
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import read_jsonl
from medresearcher.workspace.layout import check_run_name

__all__ = [
    "Observation",
    "Page",
    "QAQuery",
    "Step",
    "ToolCallView",
    "TrajectoryFile",
    "TrajectoryQuery",
    "find_qa",
    "find_trajectory",
    "list_trajectory_files",
    "page_of",
    "qa_facets",
    "search_qa",
    "search_trajectories",
    "trajectory_facets",
    "trajectory_steps",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of matching records, and how many matched in all."""

    items: list[T]
    total: int
    offset: int
    limit: int

    @property
    def prev_offset(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset > 0 else None

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < self.total else None


def page_of(records: Iterator[T], keep: Callable[[T], bool], offset: int, limit: int) -> Page[T]:
    """Stream ``records``, count those ``keep`` accepts, hold only ``[offset, offset+limit)``."""
    offset, limit = max(0, offset), max(1, limit)
    items: list[T] = []
    total = 0
    for record in records:
        if not keep(record):
            continue
        if offset <= total < offset + limit:
            items.append(record)
        total += 1
    return Page(items=items, total=total, offset=offset, limit=limit)


def _contains(needle: str, *texts: str | None) -> bool:
    return any(needle in text.casefold() for text in texts if text)


# --- QA records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QAQuery:
    """Search and filters of the QA browser; ``None`` or ``""`` means any."""

    text: str = ""
    strategy: str | None = None
    paradigm: str | None = None
    hops: int | None = None
    specialty: str | None = None
    checks: str | None = None  # "passed" | "failed"
    level: int | None = None

    def matches(self, record: QARecord) -> bool:
        """Whether ``record`` passes every filter and its question or answer holds the text."""
        if self.strategy and record.strategy != self.strategy:
            return False
        if self.paradigm and record.paradigm != self.paradigm:
            return False
        if self.hops is not None and record.hops != self.hops:
            return False
        if self.specialty and self.specialty not in record.specialties:
            return False
        if self.level is not None and record.difficulty.level != self.level:
            return False
        if self.checks == "passed" and not record.passed:
            return False
        if self.checks == "failed" and record.passed:
            return False
        needle = self.text.strip().casefold()
        return not needle or _contains(
            needle, record.question, record.answer, *record.answer_aliases, record.id
        )


def search_qa(path: Path, query: QAQuery, *, offset: int = 0, limit: int = 25) -> Page[QARecord]:
    """The QA records of ``path`` that ``query`` matches, one page of them."""
    if not path.is_file():
        return Page(items=[], total=0, offset=offset, limit=limit)
    return page_of(read_jsonl(path, QARecord), query.matches, offset, limit)


def find_qa(path: Path, qa_id: str) -> QARecord | None:
    """The record with id ``qa_id``, or None."""
    if not path.is_file():
        return None
    return next((r for r in read_jsonl(path, QARecord) if r.id == qa_id), None)


def qa_facets(path: Path) -> dict[str, list[Any]]:
    """The values each QA filter can take in ``path`` (cached until the file changes)."""
    if not path.is_file():
        return {"strategy": [], "paradigm": [], "hops": [], "specialty": [], "level": []}
    return _qa_facets(str(path), *_stamp(path))


@lru_cache(maxsize=16)
def _qa_facets(path: str, _mtime: int, _size: int) -> dict[str, list[Any]]:
    values: dict[str, set[Any]] = {k: set() for k in ("strategy", "paradigm", "hops", "level")}
    specialties: set[str] = set()
    for record in read_jsonl(path, QARecord):
        values["strategy"].add(record.strategy)
        values["paradigm"].add(record.paradigm)
        values["hops"].add(record.hops)
        values["level"].add(record.difficulty.level)
        specialties.update(record.specialties)
    facets = {k: sorted(v) for k, v in values.items()}
    facets["specialty"] = sorted(specialties)
    return facets


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


# --- trajectories ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrajectoryFile:
    """One trajectory file ``trajectories/<run>.jsonl``."""

    run: str
    path: Path
    records: int
    size: int
    modified: str


def list_trajectory_files(folder: Path) -> list[TrajectoryFile]:
    """The trajectory files of a workspace, by name; names a URL cannot carry are left out."""
    files = []
    if not folder.is_dir():
        return files
    for path in sorted(folder.glob("*.jsonl")):
        run = path.name[: -len(".jsonl")]
        try:
            check_run_name(run)
        except InputError:
            continue
        stat = path.stat()
        with path.open("rb") as handle:
            records = sum(1 for line in handle if line.strip())
        modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
        files.append(
            TrajectoryFile(run, path, records, stat.st_size, modified.isoformat(timespec="seconds"))
        )
    return files


def verdict_of(trajectory: Trajectory) -> str | None:
    """The judge's verdict (correct, incorrect, unjudgeable), or None when not judged."""
    return (trajectory.judge or {}).get("verdict")


def filter_status(trajectory: Trajectory) -> str:
    """``passed``, ``failed`` or ``unfiltered`` (the filter stage has not seen it)."""
    if trajectory.filters is None:
        return "unfiltered"
    return "passed" if trajectory.filters.get("passed") else "failed"


@dataclass(frozen=True)
class TrajectoryQuery:
    """Search and filters of the trajectory browser; ``None`` or ``""`` means any."""

    text: str = ""
    policy: str | None = None
    guidance: str | None = None
    termination: str | None = None
    verdict: str | None = None  # correct | incorrect | unjudgeable | unjudged
    filter: str | None = None  # passed | failed | unfiltered

    def matches(self, trajectory: Trajectory) -> bool:
        """Whether ``trajectory`` passes every filter and its question or answer holds the text."""
        if self.policy and trajectory.policy != self.policy:
            return False
        if self.guidance and trajectory.guidance != self.guidance:
            return False
        if self.termination and trajectory.termination != self.termination:
            return False
        if self.verdict and (verdict_of(trajectory) or "unjudged") != self.verdict:
            return False
        if self.filter and filter_status(trajectory) != self.filter:
            return False
        needle = self.text.strip().casefold()
        return not needle or _contains(
            needle, trajectory.question, trajectory.final_answer, trajectory.id, trajectory.qa_id
        )


def search_trajectories(
    path: Path, query: TrajectoryQuery, *, offset: int = 0, limit: int = 25
) -> Page[Trajectory]:
    """The trajectories of ``path`` that ``query`` matches, one page of them."""
    return page_of(read_jsonl(path, Trajectory), query.matches, offset, limit)


def find_trajectory(path: Path, trajectory_id: str) -> Trajectory | None:
    """The trajectory with id ``trajectory_id``, or None."""
    return next((t for t in read_jsonl(path, Trajectory) if t.id == trajectory_id), None)


def trajectory_facets(path: Path) -> dict[str, list[str]]:
    """The values each trajectory filter can take in ``path`` (cached until it changes)."""
    return _trajectory_facets(str(path), *_stamp(path))


@lru_cache(maxsize=16)
def _trajectory_facets(path: str, _mtime: int, _size: int) -> dict[str, list[str]]:
    values: dict[str, set[str]] = {k: set() for k in ("policy", "guidance", "termination")}
    for trajectory in read_jsonl(path, Trajectory):
        values["policy"].add(trajectory.policy)
        values["guidance"].add(trajectory.guidance)
        values["termination"].add(trajectory.termination)
    return {k: sorted(v) for k, v in values.items()}


@dataclass(frozen=True)
class ToolCallView:
    """One tool call as the model wrote it: its name and its arguments, pretty-printed."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Observation:
    """What a tool returned to one call, with the sources it cited (from ``stats.calls``)."""

    call_id: str
    name: str
    content: str
    sources: list[str] = field(default_factory=list)
    error: bool = False


@dataclass(frozen=True)
class Step:
    """One assistant turn of a ReAct trajectory (paper §2.2): thought, calls, observations."""

    number: int
    reasoning: str | None
    thought: str
    calls: list[ToolCallView]
    observations: list[Observation]


def trajectory_steps(trajectory: Trajectory) -> list[Step]:
    """The assistant turns of ``trajectory``, each with the tool results that answered it.

    ``reasoning_content`` (a reasoning parser's output) is the thought when present; the
    visible ``content`` is shown beside it. Tool messages are attached to the turn whose call
    they answer, by ``tool_call_id``; sources come from ``stats["calls"]``.
    """
    call_info = {c.get("call_id"): c for c in trajectory.stats.get("calls", []) or []}
    steps: list[Step] = []
    names: dict[str, str] = {}
    for message in trajectory.messages:
        role = message.get("role")
        if role == "assistant":
            calls = []
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                call_id = str(call.get("id") or "")
                names[call_id] = str(function.get("name") or "?")
                calls.append(
                    ToolCallView(call_id, names[call_id], _pretty(function.get("arguments")))
                )
            steps.append(
                Step(
                    number=len(steps) + 1,
                    reasoning=message.get("reasoning_content") or None,
                    thought=_text(message.get("content")),
                    calls=calls,
                    observations=[],
                )
            )
        elif role == "tool" and steps:
            call_id = str(message.get("tool_call_id") or "")
            info = call_info.get(call_id, {})
            steps[-1].observations.append(
                Observation(
                    call_id=call_id,
                    name=names.get(call_id) or str(message.get("name") or info.get("name") or "?"),
                    content=_text(message.get("content")),
                    sources=[str(s) for s in info.get("sources", []) or []],
                    error=bool(info.get("error")),
                )
            )
    return steps


def _pretty(arguments: Any) -> str:
    """Arguments as indented JSON when they parse; as written otherwise (a malformed call)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return arguments
    return json.dumps(arguments, indent=2, ensure_ascii=False)


def _text(content: Any) -> str:
    """Message content as text; multi-part content keeps its text parts."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)
