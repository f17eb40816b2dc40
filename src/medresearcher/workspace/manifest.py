"""Run folders: a manifest that says what ran, with what, and what it cost; and its log.

A :class:`Run` writes ``runs/<run>/manifest.json`` when it starts, at most once a second while
it counts (so a monitor such as the web UI's run page can follow a live run), and again when it
ends (atomically, so a reader never sees half a file), and routes the project's log records to
``runs/<run>/log.txt`` through the secret-redacting filter. The manifest holds the config
with secrets removed, package and git versions, timings, counts and token usage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import secrets as _random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medresearcher import __version__
from medresearcher.config import Settings
from medresearcher.errors import InputError
from medresearcher.secrets import RedactingFilter, redact, redacted_settings, secret_values
from medresearcher.workspace.layout import Workspace

__all__ = ["Run", "list_runs", "load_manifest", "write_json_atomic"]


class Run:
    """One invocation of a stage, recorded under ``runs/<run_id>/``.

    Use as a context manager; the status becomes ``ok``, ``failed`` or ``interrupted``
    according to how the block ends::

        with Run(workspace, "llm-ping", settings) as run:
            ...
            run.count("calls")
            run.record_usage(gateway.usage_report())

    While the block runs, :meth:`count`, :meth:`progress`, :meth:`timing` and
    :meth:`record_usage` save the manifest again when the last save is at least
    :attr:`SAVE_INTERVAL_S` old, so per-item counting costs at most one write a second.
    """

    #: Least seconds between two saves while the run is going.
    SAVE_INTERVAL_S = 1.0

    def __init__(
        self,
        workspace: Workspace,
        command: str,
        settings: Settings,
        *,
        run_id: str | None = None,
        argv: list[str] | None = None,
    ) -> None:
        self.workspace = workspace
        self.command = command
        self.settings = settings
        self.run_id = run_id or new_run_id(command)
        self.dir = workspace.run_dir(self.run_id)
        self._secrets = secret_values(settings)
        self.manifest: dict[str, Any] = {
            "run_id": self.run_id,
            "command": command,
            "argv": [redact(a, self._secrets) for a in (argv if argv is not None else sys.argv)],
            "status": "running",
            "started_at": _now(),
            "ended_at": None,
            "duration_s": None,
            "versions": {
                "medresearcher": __version__,
                "python": platform.python_version(),
                "git": git_revision(),
            },
            "config": redacted_settings(settings),
            "counts": {},
            "timings": {},
            "usage": {},
            "error": None,
        }
        self._t0 = 0.0
        self._last_save: float | None = None
        self._handler: logging.Handler | None = None

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    @property
    def log_path(self) -> Path:
        return self.dir / "log.txt"

    def __enter__(self) -> Run:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._t0 = time.perf_counter()
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter(self._secrets))
        logging.getLogger().addHandler(handler)
        self._handler = handler
        self.save()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc_type is None:
            self.manifest["status"] = "ok"
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.manifest["status"] = "interrupted"
        else:
            self.manifest["status"] = "failed"
            self.manifest["error"] = redact(f"{exc_type.__name__}: {exc}", self._secrets)
        self.manifest["ended_at"] = _now()
        self.manifest["duration_s"] = round(time.perf_counter() - self._t0, 3)
        self.save()
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()

    def count(self, name: str, n: int = 1) -> None:
        self.manifest["counts"][name] = self.manifest["counts"].get(name, 0) + n
        self._save_if_due()

    def progress(self, done: int, total: int | None = None, *, label: str | None = None) -> None:
        """Where a batch stands (``done`` of ``total`` items), for a monitor of the live run."""
        self.manifest["progress"] = {"done": done, "total": total, "label": label}
        self._save_if_due()

    def timing(self, name: str, seconds: float) -> None:
        self.manifest["timings"][name] = round(seconds, 4)
        self._save_if_due()

    def record_usage(self, usage: dict[str, Any]) -> None:
        """Token usage and cost per endpoint, as ``LLMGateway.usage_report()`` returns it."""
        self.manifest["usage"] = usage
        self._save_if_due()

    def _save_if_due(self) -> None:
        """Save while the run is going, unless the last save is under a second old."""
        if self._last_save is None or self.manifest["status"] != "running":
            return
        if time.perf_counter() - self._last_save >= self.SAVE_INTERVAL_S:
            self.save()

    def save(self) -> None:
        self._last_save = time.perf_counter()
        self.manifest["updated_at"] = _now()
        text = json.dumps(self.manifest, indent=2, ensure_ascii=False, default=str)
        write_json_atomic(self.manifest_path, redact(text, self._secrets))


def new_run_id(command: str) -> str:
    """A sortable, unique id: UTC time, the command, and 4 random hex digits."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    slug = "".join(c if c.isalnum() else "-" for c in command).strip("-") or "run"
    return f"{stamp}-{slug}-{_random.token_hex(2)}"


def load_manifest(workspace: Workspace, run_id: str) -> dict[str, Any]:
    path = workspace.run_dir(run_id) / "manifest.json"
    if not path.is_file():
        known = ", ".join(m["run_id"] for m in list_runs(workspace)[-5:]) or "none yet"
        raise InputError(f"no run {run_id!r} in {workspace.runs_root} (latest: {known})")
    return json.loads(path.read_text(encoding="utf-8"))


def list_runs(workspace: Workspace) -> list[dict[str, Any]]:
    """The manifests of every run, oldest first; unreadable ones are skipped."""
    manifests = []
    if not workspace.runs_root.is_dir():
        return manifests
    for path in sorted(workspace.runs_root.glob("*/manifest.json")):
        with contextlib.suppress(OSError, ValueError):
            manifests.append(json.loads(path.read_text(encoding="utf-8")))
    return sorted(manifests, key=lambda m: m.get("started_at") or "")


def write_json_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def git_revision() -> str | None:
    """The checkout's commit when the package runs from a git work tree, else None."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _now() -> str:
    # Milliseconds: two runs started in the same second still list in the order they ran.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
