"""Prompts as data: one YAML file per purpose, English and Chinese side by side.

Each ``<purpose>.yaml`` holds ``version`` and one mapping per language (``en``, ``zh``) of
named Jinja templates (``system``, ``user``, ...). Keeping them out of Python lets them be
versioned, reviewed and translated on their own; the version goes into each record's
provenance so that a dataset says which prompt made it.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jinja2
import yaml

from medresearcher.errors import MedResearcherError

__all__ = ["PromptFile", "load_prompts", "render_prompt"]

_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False
)


class PromptFile:
    """The templates of one purpose, by language and part."""

    def __init__(self, purpose: str, data: dict[str, Any]) -> None:
        self.purpose = purpose
        self.version = str(data.get("version", "0"))
        self._languages: dict[str, dict[str, str]] = {
            lang: parts for lang, parts in data.items() if isinstance(parts, dict)
        }

    @property
    def languages(self) -> list[str]:
        return sorted(self._languages)

    def render(self, part: str, language: str = "en", **variables: Any) -> str:
        """Render ``part`` in ``language`` (falling back to English) with ``variables``."""
        parts = self._languages.get(language) or self._languages.get("en")
        if parts is None or part not in parts:
            raise MedResearcherError(
                f"prompts/{self.purpose}.yaml has no {part!r} for language {language!r}"
            )
        return _ENV.from_string(parts[part]).render(**variables).strip()


@functools.cache
def load_prompts(purpose: str) -> PromptFile:
    """Load ``prompts/<purpose>.yaml`` from the package."""
    path = resources.files(__name__) / f"{purpose}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MedResearcherError(f"no prompt file prompts/{purpose}.yaml") from exc
    return PromptFile(purpose, data or {})


def render_prompt(purpose: str, part: str, language: str = "en", **variables: Any) -> str:
    """Shortcut: ``load_prompts(purpose).render(part, language, **variables)``."""
    return load_prompts(purpose).render(part, language, **variables)
