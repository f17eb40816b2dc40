"""The offline path-guided policy (issue 8): accuracy on the demo's template questions.

Acceptance of issue 8: the path-guided policy answers at least 80 % of the demo's template
questions offline, and every failure records its reason. In a temporary workspace (the demo
bundle's lexical index and knowledge graph, each timed), ``--n`` template questions are
generated (``generate_qa``, strategy mixed, seeded), and each is run through the ReAct loop
with ``path_guided.policy_for(record, settings)`` and the real tools, ``max_turns`` 24; the
final answer is graded by the rules (``grade_by_rules`` with the record's aliases).

Reported: accuracy overall, by paradigm and by chain length; terminations; the failure
reasons, ids and names stripped and grouped (a hop's predicate; the paradigm and the counted
relation of a value that was not found); tool use from ``Trajectory.stats`` (calls per
question, first tool, switches between the general and the medical tools, errors recovered
later); how many runs fell back to the guidance naming an entity; wall time per question.

Baseline, in the same run: the same questions with ``medical_retriever`` as the only tool
(the policy skips what it is not offered); the ratio is ours / baseline accuracy.

    python benchmarks/bench_agent.py [--n 200] [--seed 7] [--language en] [--level 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from medresearcher.agent import run_agent
from medresearcher.agent.path_guided import policy_for
from medresearcher.config import Settings, load_settings
from medresearcher.data import bundle_dir, iter_documents
from medresearcher.errors import MedResearcherError
from medresearcher.grading.rules import RuleVerdict, grade_by_rules
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.prompts import render_prompt
from medresearcher.qa.batch import QABatchOptions, generate_qa
from medresearcher.retrieval import build_index
from medresearcher.sampling import GraphView
from medresearcher.schema import QARecord, Trajectory
from medresearcher.tools import build_toolbox
from medresearcher.workspace import JsonlWriter, Workspace, read_jsonl

SEED = 7
MAX_TURNS = 24
ACCURACY_GOAL = 0.80
BASELINE_TOOLS = ("medical_retriever",)
GUIDANCE_PARTS = ("start_from_guidance", "hop_guided", "hop_guided_search")
TOP_REASONS = 12

console = Console()


def goal(met: bool) -> str:
    return "[green]met[/green]" if met else "[red]NOT met[/red]"


def share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "–"


def ratio(ours: float, theirs: float) -> str:
    return f"×{ours / theirs:.2f}" if theirs else "∞"


@dataclass
class Outcome:
    """One question's run: the trajectory, its grade and its wall time."""

    record: QARecord
    trajectory: Trajectory
    verdict: RuleVerdict
    wall_s: float

    @property
    def correct(self) -> bool:
        return self.verdict.correct


@dataclass
class Arm:
    """One configuration of tools over all the questions."""

    name: str
    outcomes: list[Outcome] = field(default_factory=list)

    def accuracy(self, keep: Callable[[QARecord], bool] = lambda r: True) -> tuple[int, int]:
        chosen = [o for o in self.outcomes if keep(o.record)]
        return sum(o.correct for o in chosen), len(chosen)


def guidance_markers(language: str) -> dict[str, str]:
    """The fixed opening of each thought in which the guidance names an entity (the policy's
    fallback when searching did not establish a link), rendered from its prompt file."""
    blank = "\x00"
    markers = {}
    for part in GUIDANCE_PARTS:
        try:
            text = render_prompt(
                "path_guided", part, language, name=blank, relation=blank, target=blank
            )
        except MedResearcherError:  # a part this version of the prompts does not have
            continue
        marker = text.split(blank, 1)[0].strip()
        if marker:  # a thought that opens with the name has no fixed opening to look for
            markers[part] = marker
    return markers


def guided_parts(trajectory: Trajectory, markers: dict[str, str]) -> set[str]:
    thoughts = [
        str(m.get("content") or "") for m in trajectory.messages if m.get("role") == "assistant"
    ]
    return {part for part, marker in markers.items() if any(marker in t for t in thoughts)}


_HOP = re.compile(r"^hop \d+: .* -(\^?[\w-]+)-> \?: (.*)$", re.S)
_VALUE = re.compile(r"^the answer's value \(.*\) was not in what (\S+) returned for ", re.S)
_TRIED = re.compile(r"^[\w, ]+ did not show it$")
_IDS = re.compile(r"\b(?:Q|T|ORPHA|DOID|HP|HGNC|MONDO|OMIM|UMLS|MESH):[\w.-]+")


def failure_reason(outcome: Outcome) -> str:
    """The failure's reason with its ids and names stripped, so that like groups with like."""
    record, trajectory = outcome.record, outcome.trajectory
    if trajectory.termination == "answer":
        verdict = outcome.verdict
        graded = verdict.verdict or "undecided"
        return f"answered, graded {graded} (rule {verdict.rule}; {record.paradigm})"
    detail = (trajectory.termination_detail or "").strip()
    if not detail:
        return f"{trajectory.termination}: (no reason recorded)"
    detail = re.sub(r"^QA record \S+: ", "", detail)
    if match := _HOP.match(detail):
        what = _TRIED.sub("… did not show it", match.group(2).strip())
        return f"hop N: … -{match.group(1)}-> ?: {what}"
    if match := _VALUE.match(detail):
        source = record.provenance.get("answer_source") or {}
        counted = source.get("count_of") or source.get("attribute") or "?"
        return (
            f"the answer's value … was not in what {match.group(1)} returned "
            f"({record.paradigm}: {counted})"
        )
    if detail.startswith("the start: "):
        return "the start: " + _TRIED.sub("… did not show it", detail[len("the start: ") :])
    return f"{trajectory.termination}: {_IDS.sub('…', detail)[:120]}"


async def run_arm(
    name: str,
    records: Sequence[QARecord],
    settings: Settings,
    ws: Workspace,
    tool_names: Sequence[str] | None,
) -> Arm:
    """Every record through ``run_agent`` with one toolbox (``tool_names``: all by default)."""
    arm = Arm(name)
    limits = settings.agent.model_copy(update={"max_turns": MAX_TURNS})
    toolbox = build_toolbox(settings, ws, names=tool_names)
    try:
        for record in records:
            policy = policy_for(record, settings)
            started = time.perf_counter()
            trajectory = await run_agent(
                record.question, policy=policy, toolbox=toolbox, limits=limits, qa_id=record.id
            )
            wall = time.perf_counter() - started
            verdict = grade_by_rules(
                trajectory.final_answer or "", record.answer, record.answer_aliases
            )
            arm.outcomes.append(Outcome(record, trajectory, verdict, wall))
    finally:
        await toolbox.aclose()
    return arm


def accuracy_table(arms: Sequence[Arm]) -> Table:
    table = Table(
        title=f"1. Accuracy (rule-graded); baseline: {', '.join(BASELINE_TOOLS)} only; "
        f"goal ≥ {ACCURACY_GOAL:.0%}"
    )
    table.add_column("questions", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for arm in arms:
        table.add_column(arm.name, justify="right", no_wrap=True)
    if len(arms) == 2:
        table.add_column("ratio", justify="right", no_wrap=True)
    records = [o.record for o in arms[0].outcomes]
    groups: list[tuple[str, Callable[[QARecord], bool]]] = [("all", lambda r: True)]
    groups.append(("passing every QA check", lambda r: r.passed))
    for paradigm in sorted({r.paradigm for r in records}):
        groups.append((f"paradigm {paradigm}", lambda r, p=paradigm: r.paradigm == p))
    for hops in sorted({r.hops for r in records}):
        groups.append((f"{hops} hops", lambda r, h=hops: r.hops == h))
    for label, keep in groups:
        results = [arm.accuracy(keep) for arm in arms]
        n = results[0][1]
        cells = [share(correct, n) for correct, _ in results]
        if len(arms) == 2:
            cells.append(ratio(results[0][0], results[1][0]))
        table.add_row(label, str(n), *cells)
    return table


def terminations_table(arms: Sequence[Arm]) -> Table:
    table = Table(title="2. Terminations")
    table.add_column("termination", no_wrap=True)
    for arm in arms:
        table.add_column(arm.name, justify="right")
    counts = [Counter(o.trajectory.termination for o in arm.outcomes) for arm in arms]
    for key in sorted(set().union(*counts)):
        table.add_row(key, *(str(c[key]) for c in counts))
    return table


def reasons_table(arms: Sequence[Arm]) -> tuple[Table, list[tuple[int, int]]]:
    table = Table(title=f"3. Failure reasons, grouped (top {TOP_REASONS})")
    table.add_column("reason", overflow="fold")
    for arm in arms:
        table.add_column(arm.name, justify="right", no_wrap=True)
    counts = [Counter(failure_reason(o) for o in arm.outcomes if not o.correct) for arm in arms]
    total = sum(counts, Counter())
    for reason, _ in total.most_common(TOP_REASONS):
        table.add_row(escape(reason), *(str(c[reason]) for c in counts))
    rest = [sum(c.values()) - sum(c[r] for r, _ in total.most_common(TOP_REASONS)) for c in counts]
    if any(rest):
        table.add_row("(other reasons)", *map(str, rest))
    recorded = []
    for arm in arms:
        failures = [o for o in arm.outcomes if not o.correct]
        with_reason = [
            o
            for o in failures
            if o.trajectory.termination == "answer"
            or (o.trajectory.termination_detail or "").strip()
        ]
        recorded.append((len(with_reason), len(failures)))
    return table, recorded


def behaviour_table(arms: Sequence[Arm], markers: dict[str, str]) -> Table:
    table = Table(title="4. Tool use (Trajectory.stats) and guidance")
    table.add_column("per trajectory", no_wrap=True)
    for arm in arms:
        table.add_column(arm.name, justify="right", no_wrap=True)
    rows: dict[str, list[str]] = {}
    for arm in arms:
        stats = [o.trajectory.stats for o in arm.outcomes]
        n = len(stats)
        guided = [guided_parts(o.trajectory, markers) for o in arm.outcomes]
        by_tool = sum((Counter(s.get("tool_calls_by_tool", {})) for s in stats), Counter())
        values = {
            "tool calls, mean": f"{statistics.mean(s.get('tool_calls', 0) for s in stats):.2f}",
            "turns, mean": f"{statistics.mean(s.get('turns', 0) for s in stats):.2f}",
            "first tool medical_retriever": share(
                sum(s.get("first_tool") == "medical_retriever" for s in stats), n
            ),
            "switched general ↔ medical": share(sum(bool(s.get("switched")) for s in stats), n),
            "had an error observation": share(sum(s.get("errors", 0) > 0 for s in stats), n),
            "… and recovered later": share(sum(s.get("recovered_errors", 0) > 0 for s in stats), n),
            "guidance named an entity": share(sum(bool(g) for g in guided), n),
            "… for the start": share(sum("start_from_guidance" in g for g in guided), n),
            "… for a hop": share(sum(bool(g - {"start_from_guidance"}) for g in guided), n),
            "wall s per question, mean": f"{statistics.mean(o.wall_s for o in arm.outcomes):.3f}",
            "wall s per question, p95": f"{_p95([o.wall_s for o in arm.outcomes]):.3f}",
        }
        for tool in ("medical_retriever", "document_read", "web_search", "clinical_reasoning"):
            values[f"calls of {tool}, mean"] = f"{by_tool[tool] / max(n, 1):.2f}"
        for key, value in values.items():
            rows.setdefault(key, []).append(value)
    for key, cells in rows.items():
        table.add_row(key, *cells)
    return table


def errors_table(arms: Sequence[Arm]) -> Table:
    """Error observations (tool results that start with "Error:"), ids stripped, grouped by
    tool and message."""
    table = Table(title="5. Error observations, grouped (ids stripped)")
    table.add_column("tool: observation", overflow="fold")
    for arm in arms:
        table.add_column(arm.name, justify="right", no_wrap=True)
    counts: list[Counter[str]] = []
    for arm in arms:
        counter: Counter[str] = Counter()
        for outcome in arm.outcomes:
            names = {}
            for message in outcome.trajectory.messages:
                for call in message.get("tool_calls") or []:
                    names[call.get("id")] = call.get("function", {}).get("name", "?")
                content = str(message.get("content") or "")
                if message.get("role") == "tool" and content.startswith("Error"):
                    tool = names.get(message.get("tool_call_id"), "?")
                    text = re.sub(r"'[^']*'", "'…'", _IDS.sub("…", content))
                    counter[f"{tool}: {text[:110]}"] += 1
        counts.append(counter)
    for key, _ in sum(counts, Counter()).most_common(8):
        table.add_row(escape(key), *(str(c[key]) for c in counts))
    return table


def _p95(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="template questions")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--language", choices=("en", "zh"), default="en")
    parser.add_argument("--level", type=int, default=1, help="obfuscation level of the questions")
    parser.add_argument("--no-baseline", action="store_true", help="skip the retriever-only run")
    args = parser.parse_args()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    console.print(f"os.cpu_count() = {os.cpu_count()}, usable by this process: {affinity}")

    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        report(args, Path(tmp))


def report(args: argparse.Namespace, root: Path) -> None:
    ws = Workspace(root).ensure()
    started = time.perf_counter()
    manifest = build_index(iter_documents("demo"), ws.index_dir, source="bundle:demo")
    index_s = time.perf_counter() - started
    with GraphStore(ws.kg_path) as store:
        started = time.perf_counter()
        imported = import_records(store, bundle_dir("demo"))
        import_s = time.perf_counter() - started
        view = GraphView.from_store(store)
        anchors = sorted(
            e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
        )
        options = QABatchOptions(
            n=args.n, strategy="mixed", seed=args.seed, language=args.language, level=args.level
        )
        started = time.perf_counter()
        with JsonlWriter(ws.qa_path) as out:
            counts = asyncio.run(generate_qa(store, view, anchors, options, out=out))
        qa_s = time.perf_counter() - started
    records = list(read_jsonl(ws.qa_path, QARecord))
    console.print(
        f"demo workspace: lexical index of {manifest['n_docs']:,} documents in {index_s:.1f} s; "
        f"graph of {imported['entities']:,} entities, {imported['relations']:,} relations in "
        f"{import_s:.1f} s; {len(records)} template questions ({args.language}, level "
        f"{args.level}, seed {args.seed}) in {qa_s:.1f} s, {counts.passed} passing every check"
    )

    # Offline whatever a local config says: the corpus as web search, no live sources.
    settings = load_settings(
        overrides={
            "workspace": str(root),
            "tools.web_search_backend": "local",
            "tools.live_sources": False,
            "tools.document_read_endpoint": None,
        }
    )
    arms = []
    for name, tools in (("path-guided", None), ("baseline", BASELINE_TOOLS)):
        if name == "baseline" and args.no_baseline:
            continue
        started = time.perf_counter()
        arms.append(asyncio.run(run_arm(name, records, settings, ws, tools)))
        console.print(f"{name}: {len(records)} runs in {time.perf_counter() - started:.1f} s")
    console.print(accuracy_table(arms))
    correct, n = arms[0].accuracy()
    console.print(
        f"   path-guided: {correct}/{n} = {share(correct, n)} "
        f"(goal ≥ {ACCURACY_GOAL:.0%}: {goal(n > 0 and correct / n >= ACCURACY_GOAL)})"
    )
    console.print(terminations_table(arms))
    table, recorded = reasons_table(arms)
    console.print(table)
    console.print(
        "   failures with a recorded reason: "
        + ", ".join(
            f"{arm.name} {k}/{m} {goal(k == m)}" for arm, (k, m) in zip(arms, recorded, strict=True)
        )
    )
    markers = guidance_markers(args.language)
    console.print(behaviour_table(arms, markers))
    console.print(
        "   general tools: web_search, document_read; medical: medical_retriever, "
        "clinical_reasoning. 'guidance named an entity': a thought "
        "in which the policy, searching having failed, takes the next entity from the guidance "
        "and checks it with a tool."
    )
    console.print(errors_table(arms))


if __name__ == "__main__":
    main()
