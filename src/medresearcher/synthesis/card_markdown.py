"""``card.md``: a :class:`~medresearcher.synthesis.card.DatasetCard` written for people.

Every number here is read from the card itself, so the Markdown and ``card.json`` agree.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medresearcher.synthesis.card import DatasetCard

__all__ = ["card_markdown"]


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _cell(value: Any) -> str:
    text = "-" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f} %"


def card_markdown(card: DatasetCard) -> str:
    """The card as Markdown: counts, shares, filters, behaviour, sources, endpoints,
    decontamination, commands, then the disclaimer."""
    counts = card.counts
    lines = [
        f"# Dataset card: {card.name}",
        "",
        f"> {card.disclaimer}",
        "",
        f"Created {card.created_at}; reasoning mode `{card.think}`.",
        "",
        "## Counts",
        "",
        f"- Trajectories read: {counts.get('trajectories_read')}",
        f"- Trajectories exported: {counts.get('trajectories_exported')}",
        f"- QA items covered: {counts.get('qa_items')}",
        f"- Not exported: {_pairs(counts.get('not_exported'))}",
        "",
        *_table(["format", "rows"], sorted((counts.get("rows") or {}).items())),
        "## Shares (exported trajectories)",
        "",
    ]
    for key, shares in card.shares.items():
        lines += [f"### {key}", ""]
        lines += _table(
            [key, "trajectories", "share"],
            ((name, s.count, _percent(s.share)) for name, s in shares.items()),
        )
    lines += ["## Filters", ""]
    if card.filters is None:
        lines += ["The input carried no filter verdicts.", ""]
    else:
        f = card.filters
        lines += [
            f"Checked {f['checked']}: passed {f['passed']}, rejected {f['rejected']} "
            f"(rules: {', '.join(f['rules']) or '-'}).",
            "",
            *_table(["rule", "rejected"], f["rejected_by_rule"].items()),
        ]
    b = card.behaviour
    lines += [
        "## Behaviour (paper §4.1)",
        "",
        *_table(
            ["measure", "value"],
            [
                ("tool calls (mean / median)", f"{b.tool_calls_mean:.2f} / {b.tool_calls_median}"),
                ("start with the medical retriever", _percent(b.start_medical_retriever)),
                ("switch general ↔ medical tools", _percent(b.switching)),
                ("with a tool error", _percent(b.with_errors)),
                ("recover from an error", _percent(b.error_recovery)),
                ("calls by tool", _pairs(b.tool_calls_by_tool)),
                ("terminations", _pairs(b.terminations)),
            ],
        ),
        "## Sources and licences",
        "",
    ]
    for source in card.sources:
        lines += [
            f"- **{source.get('name')}** ({source.get('release')}), {source.get('licence')}. "
            f"{source.get('credit')} <{source.get('url')}>"
        ]
    lines += ["", "## Model endpoints", ""]
    if card.endpoints:
        lines += _table(
            ["endpoint", "model", "host", "calls", "tokens", "trajectories", "runs"],
            (
                (e.endpoint, e.model, e.host, e.calls, e.total_tokens, e.trajectories,
                 ", ".join(e.runs))
                for e in card.endpoints
            ),
        )  # fmt: skip
    else:
        lines += ["No model endpoint was recorded (offline, path-guided data).", ""]
    d = card.decontamination
    lines += ["## Decontamination", "", d.statement, ""]
    for report in d.reports:
        lines += ["```json", json.dumps(report, indent=2, ensure_ascii=False), "```", ""]
    lines += ["## Commands that made it", ""]
    if card.commands:
        for c in card.commands:
            argv = shlex.join(c.argv) if c.argv else c.command
            lines += [f"- `{c.run_id}` ({c.status}): `{argv}`"]
        lines += [""]
    else:
        lines += ["No run manifests were found for this export.", ""]
    if card.notes:
        lines += ["## Notes", "", *(f"- {n}" for n in card.notes), ""]
    return "\n".join(lines)


def _pairs(mapping: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (mapping or {}).items()) or "none"
