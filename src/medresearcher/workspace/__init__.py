"""Where each artefact lives, and how stages write it so that runs resume after a crash.

See ARCHITECTURE.md §4. The pieces, one concept each:

- :class:`Workspace` — the folder layout;
- :class:`JsonlWriter` / :func:`read_jsonl` — append-only, keyed, crash-safe records;
- :class:`Run` — a run folder with its manifest and log;
- :func:`progress_bar` — the one progress display every batch uses.
"""

from medresearcher.workspace.jsonl import JsonlWriter, read_jsonl
from medresearcher.workspace.layout import Workspace
from medresearcher.workspace.manifest import Run, list_runs, load_manifest
from medresearcher.workspace.progress import progress_bar

__all__ = [
    "JsonlWriter",
    "Run",
    "Workspace",
    "list_runs",
    "load_manifest",
    "progress_bar",
    "read_jsonl",
]
