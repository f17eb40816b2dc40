"""The one Jinja environment of the web UI: autoescaped, so graph, model and user text is
always shown as text (an entity named ``<script>`` renders as those characters)."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

__all__ = ["STATIC_DIR", "templates"]

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
# Escape every template, whatever its file name ends with.
templates.env.autoescape = True
