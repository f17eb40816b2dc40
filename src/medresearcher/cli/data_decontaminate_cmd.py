"""``medresearcher data decontaminate``: training items too close to evaluation items (issue 15 §3).

Registered by :mod:`medresearcher.cli.data_cmd`; the work is
:func:`medresearcher.synthesis.decontaminate.decontaminate`.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from medresearcher.cli.state import console, state_of
from medresearcher.config import Settings
from medresearcher.errors import InputError

__all__ = ["decontaminate", "read_training"]


def read_training(path: Path) -> tuple[str, list[Any]]:
    """The records of a QA or trajectory JSONL file, told apart by the first record's fields."""
    from medresearcher.schema import QARecord, Trajectory
    from medresearcher.workspace import read_jsonl

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    first = next(iter(read_jsonl(path)), None)
    if first is None:
        raise InputError(f"{path}: no records")
    kind, model = ("trajectories", Trajectory) if "messages" in first else ("qa", QARecord)
    return kind, list(read_jsonl(path, model))


def _against(pairs: list[str]) -> list[tuple[str, str, Path]]:
    """(label, benchmark, path) of each NAME:PATH; a repeated name gets -2, -3… as its label."""
    parsed: list[tuple[str, str, Path]] = []
    seen: dict[str, int] = {}
    for pair in pairs:
        name, sep, path = pair.partition(":")
        if not sep or not name.strip() or not path.strip():
            raise typer.BadParameter(f"--against takes NAME:PATH, got {pair!r}")
        name = name.strip().lower()
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}-{seen[name]}"
        parsed.append((label, name, Path(path).expanduser()))
    return parsed


def _names(settings: Settings, stack: ExitStack) -> Any:
    """KG id → name from the configured graph, when there is one (None otherwise)."""
    from medresearcher.kg import graph_exists, open_graph_store

    if not graph_exists(settings):
        return None
    store = stack.enter_context(open_graph_store(settings))

    def name_of(entity_id: str) -> str | None:
        entity = store.entity(entity_id)
        return entity.name if entity is not None else None

    return name_of


def decontaminate(
    ctx: typer.Context,
    train: Path = typer.Argument(..., help="QA JSONL (qa.jsonl) or trajectory JSONL."),
    against: list[str] = typer.Option(
        ...,
        "--against",
        "-a",
        help="NAME:PATH of an evaluation set, NAME one of qa, medbrowsecomp, gaia, xbench, "
        "pubmedqa, jsonl (e.g. medbrowsecomp:MBC.csv); repeat for several.",
    ),
    drop: bool = typer.Option(
        False, "--drop/--list", help="Write <train>.clean.jsonl without the flagged items."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Report folder (default: <workspace>/decontamination)."
    ),
    ngram: int = typer.Option(8, "--ngram", min=1, help="Word n-gram size."),
    overlap: float = typer.Option(
        0.5, "--overlap", min=0.01, max=1.0, help="Share of the eval question's n-grams."
    ),
    shingle: float = typer.Option(
        0.5, "--shingle", min=0.01, max=1.0, help="Share of its content 3-grams."
    ),
    shared_13gram: bool = typer.Option(
        True, "--ngram13/--no-ngram13", help="Flag any shared 13-gram (GPT-3's rule)."
    ),
    answer_entity: bool = typer.Option(
        True, "--answer-entity/--no-answer-entity", help="Flag same answer + shared entity."
    ),
) -> None:
    """Flag training items that copy, paraphrase or share answer and entity with an eval item."""
    from medresearcher.evaluation.loaders import load_benchmark
    from medresearcher.synthesis.decontaminate import decontaminate as run_check
    from medresearcher.synthesis.decontaminate import report_markdown

    state = state_of(ctx)
    ws = state.ws
    sets = _against(against)
    kind, records = read_training(train)
    eval_sets = {label: load_benchmark(name, path) for label, name, path in sets}
    with ExitStack() as stack:
        report = run_check(
            records,
            eval_sets,
            ngram=ngram,
            overlap_threshold=overlap,
            shingle_threshold=shingle,
            shared_13gram=shared_13gram,
            answer_entity=answer_entity,
            names=_names(state.settings, stack) if kind == "qa" else None,
            eval_files={label: (name, path) for label, name, path in sets},
            train_file=train,
        )
    folder = out or ws.root / "decontamination"
    folder.mkdir(parents=True, exist_ok=True)
    stem = train.name.removesuffix(".gz").removesuffix(".jsonl")
    json_path = folder / f"{stem}.json"
    json_path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (folder / f"{stem}.md").write_text(report_markdown(report), encoding="utf-8")

    table = Table(title=f"decontamination of {escape(train.name)} ({len(records)} {kind})")
    for column in ("eval set", "items", "flagged training", "eval items hit", "by signal"):
        table.add_column(column, justify="left" if column in ("eval set", "by signal") else "right")
    for s in report.eval_sets.values():
        signals = ", ".join(f"{k} {v}" for k, v in sorted(s.by_signal.items())) or "-"
        table.add_row(
            escape(s.name), str(s.items), str(s.flagged_train), str(s.flagged_eval), signals
        )
    console.print(table)
    console.print(
        f"{len(report.flagged_train_ids)} of {len(records)} training items flagged; "
        f"report: {escape(str(json_path))}",
        highlight=False,
    )
    if drop:
        flagged = set(report.flagged_train_ids)
        clean = train.with_name(f"{stem}.clean.jsonl")
        with clean.open("w", encoding="utf-8") as handle:
            for record in records:
                if record.id not in flagged:
                    handle.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False))
                    handle.write("\n")
        console.print(
            f"clean copy without them: {escape(str(clean))} ({len(records) - len(flagged)} items)",
            highlight=False,
        )
