"""``medresearcher traj export``: trajectories as training sets for TRL, LLaMA-Factory and verl.

Registered by :mod:`medresearcher.cli.traj_cmd`; the work is
:func:`medresearcher.synthesis.export.export_trajectories`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from medresearcher.cli.state import CliState, console, state_of
from medresearcher.errors import InputError
from medresearcher.schema import QARecord, Trajectory
from medresearcher.workspace import Run, read_jsonl

__all__ = ["export", "input_file"]

# medresearcher.synthesis.export.FORMATS, spelled out so that --help need not import the
# exporters (they load pyarrow); the command itself checks --format against the real one.
_FORMATS_HELP = ("openai", "sharegpt", "verl-sft", "verl-rl", "text")


def input_file(state: CliState, run: str, choice: str | None) -> Path:
    """The trajectories to export: ``filtered`` (``<run>.filtered.jsonl``), ``rewritten``
    (``<run>.rewritten.jsonl``), ``mix`` (``<run>.mix.jsonl``, from ``traj mix``), ``raw``
    (``<run>.jsonl``), a path, or by default the filtered file when there is one, else the
    raw one."""
    raw = state.ws.trajectories_path(run)
    named = {
        "raw": raw,
        "filtered": raw.with_name(f"{raw.stem}.filtered.jsonl"),
        "rewritten": raw.with_name(f"{raw.stem}.rewritten.jsonl"),
        "mix": raw.with_name(f"{raw.stem}.mix.jsonl"),
    }
    if choice is None:
        path = named["filtered"] if named["filtered"].is_file() else raw
    else:
        path = named.get(choice) or Path(choice)
    if not path.is_file():
        hints = {
            "filtered": "traj filter",
            "rewritten": "traj rewrite",
            "mix": "traj mix",
            "raw": "traj generate",
        }
        stage = next((hints[k] for k, v in named.items() if v == path), None)
        hint = f"run `medresearcher {stage}` first" if stage else "check the path"
        raise InputError(f"{path} does not exist: {hint}")
    return path


def export(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="Trajectory run: <workspace>/trajectories/<run>.jsonl."),
    formats: str = typer.Option(
        ",".join(_FORMATS_HELP),
        "--format",
        "-f",
        help=f"Comma-separated: {', '.join(_FORMATS_HELP)}.",
    ),
    input_choice: str | None = typer.Option(
        None,
        "--input",
        help="filtered, rewritten, mix, raw or a JSONL path (default: <run>.filtered.jsonl when "
        "present, else <run>.jsonl).",
    ),
    think: str = typer.Option(
        "separate",
        "--think",
        help="separate: reasoning_content kept apart; inline: as <think>…</think> in content.",
    ),
    qa: Path | None = typer.Option(
        None, "--qa", dir_okay=False, help="QA records (default: <workspace>/qa.jsonl)."
    ),
    out: Path | None = typer.Option(
        None, "--out", file_okay=False, help="Output folder (default: <workspace>/export/<run>)."
    ),
) -> None:
    """Write a run's trajectories as training sets: OpenAI messages, ShareGPT, verl, text."""
    from medresearcher.synthesis.export import (
        FORMATS,
        MANIFEST_NAME,
        THINK_MODES,
        export_trajectories,
    )

    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise typer.BadParameter(f"--format takes {', '.join(FORMATS)}", param_hint="--format")
    if think not in THINK_MODES:
        raise typer.BadParameter(f"--think is {' or '.join(THINK_MODES)}", param_hint="--think")
    state = state_of(ctx)
    ws = state.ws.ensure()
    source = input_file(state, run, input_choice)
    qa_path = qa or ws.qa_path
    records: list[QARecord] | None = None
    if qa_path.is_file():
        records = list(read_jsonl(qa_path, QARecord))
    elif "verl-rl" in wanted:
        raise InputError(
            f"{qa_path} does not exist: verl-rl takes its ground truth from the QA records "
            "(pass --qa, or leave verl-rl out of --format)"
        )
    out_dir = out or ws.export_dir / run
    with Run(ws, "traj-export", state.settings) as record:
        record.manifest["params"] = {
            "input": str(source),
            "qa": str(qa_path) if records is not None else None,
            "formats": wanted,
            "think": think,
            "out": str(out_dir),
        }
        paths = export_trajectories(
            read_jsonl(source, Trajectory),
            records,
            out_dir,
            wanted,
            think=think,
            name=f"medresearcher_{run}",
        )
        manifest = json.loads((out_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
        for fmt, info in manifest["formats"].items():
            record.count(f"rows_{fmt}", info["rows"])
        record.count("trajectories", manifest["trajectories"])
        record.count("exported", manifest["exported"])
    _print_summary(source, out_dir, paths, manifest)


def _print_summary(
    source: Path, out_dir: Path, paths: dict[str, Path], manifest: dict[str, Any]
) -> None:
    table = Table(title=f"export → {escape(str(out_dir))}", title_justify="left")
    for column in ("format", "file", "rows", "size", "left out"):
        table.add_column(column, justify="right" if column in ("rows", "size") else "left")
    for fmt, path in paths.items():
        info = manifest["formats"][fmt]
        left_out = ", ".join(f"{k} {v}" for k, v in sorted(info["skipped"].items())) or "-"
        table.add_row(fmt, path.name, str(info["rows"]), _size(path), escape(left_out))
    info_file = out_dir / "dataset_info.json"
    if "sharegpt" in paths and info_file.is_file():
        table.add_row("", info_file.name, "", _size(info_file), "")
    console.print(table)
    skipped = manifest.get("skipped") or {}
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none"
    console.print(
        f"{manifest['exported']} of {manifest['trajectories']} trajectories from "
        f"{escape(str(source))} exported (not exported: {escape(reasons)})",
        highlight=False,
    )
    for note in manifest.get("notes") or []:
        console.print(f"[dim]{escape(str(note))}[/]", highlight=False)


def _size(path: Path) -> str:
    size = path.stat().st_size
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024**2:.1f} MB"
