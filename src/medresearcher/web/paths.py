"""Paths named by a request, kept inside the workspace.

The public release took file paths from request bodies and opened them as given, so
``../../etc/passwd`` read any file the server could. Here a request names a run or a file
relative to a workspace folder, and anything that resolves outside it is refused.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException

__all__ = ["inside"]


def inside(root: Path, relative: str) -> Path:
    """``root / relative`` resolved, or HTTP 404 when it leaves ``root`` or does not exist.

    404 rather than 403 so that a probe learns nothing about files outside the workspace.
    """
    base = root.resolve()
    if not relative or "\x00" in relative:
        raise HTTPException(status_code=404, detail="not found")
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise HTTPException(status_code=404, detail="not found")
    if not target.exists():
        raise HTTPException(status_code=404, detail="not found")
    return target
