"""The workspace folder layout (ARCHITECTURE.md §4), in one place."""

from __future__ import annotations

import os
import re
from pathlib import Path

from medresearcher.errors import InputError

__all__ = ["Workspace"]

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Workspace:
    """Paths of every artefact a stage reads or writes.

    Nothing is created on construction; :meth:`ensure` makes the folders. Run names are
    checked so that no name given on the command line can point outside the workspace.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def ensure(self) -> Workspace:
        for folder in (
            self.root,
            self.index_dir,
            self.trajectories_dir,
            self.export_dir,
            self.eval_root,
            self.runs_root,
            self.cache_dir,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def kg_path(self) -> Path:
        return self.root / "kg.sqlite"

    @property
    def corpus_dir(self) -> Path:
        """Ingested documents: one JSONL per source run, and the merged corpus."""
        return self.root / "corpus"

    def corpus_path(self, name: str) -> Path:
        return self.corpus_dir / f"{check_run_name(name)}.jsonl"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def samples_path(self) -> Path:
        return self.root / "samples.jsonl"

    @property
    def qa_path(self) -> Path:
        return self.root / "qa.jsonl"

    @property
    def trajectories_dir(self) -> Path:
        return self.root / "trajectories"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    @property
    def eval_root(self) -> Path:
        return self.root / "eval"

    @property
    def runs_root(self) -> Path:
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def llm_cache_path(self) -> Path:
        return self.cache_dir / "llm.sqlite"

    @property
    def http_cache_path(self) -> Path:
        return self.cache_dir / "http.sqlite"

    def trajectories_path(self, run: str) -> Path:
        return self.trajectories_dir / f"{check_run_name(run)}.jsonl"

    def eval_dir(self, run: str) -> Path:
        return self.eval_root / check_run_name(run)

    def run_dir(self, run: str) -> Path:
        return self.runs_root / check_run_name(run)


def check_run_name(name: str) -> str:
    """``name`` if it is a plain file name (letters, digits, ``._-``), else ``InputError``."""
    if not _RUN_NAME.match(name) or name in {".", ".."}:
        raise InputError(f"invalid run name {name!r}: use letters, digits, '.', '_' and '-'")
    return name
