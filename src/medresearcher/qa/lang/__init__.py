"""Language packs of the template QA writer: ``qa/lang/<language>.yaml`` (en, zh).

Every phrase the offline writer produces — type nouns, clue phrases, one step per
predicate and direction, the question frames of each paradigm, cheat-sheet steps — lives in
a YAML pack, so that a language is added by translating one file (paper §3.1.2; the
public release wrote prompts and UI strings in one language, inline in code).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import Any

import yaml

from medresearcher.errors import ConfigError

__all__ = ["Phrases", "phrases"]


class Phrases:
    """One language pack (``qa/lang/<language>.yaml``): nouns, clue and step templates."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.version = str(data.get("version", "0"))
        self.language = str(data.get("language", "en"))

    def get(self, *path: str, default: Any = None) -> Any:
        node: Any = self.data
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def text(self, *path: str, **fields: Any) -> str:
        template = self.get(*path)
        if not isinstance(template, str):
            raise ConfigError(f"qa/lang/{self.language}.yaml: no template at {'.'.join(path)}")
        return template.format_map(fields)

    def noun(self, type_: str, kind: str = "noun") -> str:
        entry = self.get("types", type_) or self.get("types", "entity")
        return str(entry.get(kind) or entry["noun"])

    def value(self, family: str, raw: str) -> str:
        """The display form of an attribute value (``values.<family>.<raw>``, else raw)."""
        table = self.get("values", family) or {}
        return str(table.get(raw, table.get(raw.lower(), raw)))

    def join(self, texts: Sequence[str], sep_key: str = "clue_sep") -> str:
        texts = list(texts)
        if len(texts) <= 1:
            return "".join(texts)
        sep, last = self.get("compose", sep_key), self.get("compose", "clue_last")
        return sep.join(texts[:-1]) + last + texts[-1]

    def either(self, values: Sequence[str]) -> str:
        return str(self.get("compose", "value_or")).join(values)

    def described(
        self, type_: str, kind: str, clue_texts: Sequence[str], *, nested: bool = False
    ) -> str:
        """``a disorder inherited as X and with onset in Y`` / ``一种呈X遗传、Y起病的疾病``;
        ``nested`` (a neighbour inside another clue, with several clues of its own) uses
        ``compose.nested`` where the pack has it ("a gene (implicated in 2 disorders and …)")
        so that the reader can tell whose clues are whose."""
        head = self.noun(type_, kind)
        if not clue_texts:
            return self.text("compose", "bare", head=head)
        template = "nested" if nested and len(clue_texts) > 1 else "described"
        return self.text(
            "compose",
            template if self.get("compose", template) else "described",
            head=head,
            lead=self.get("compose", "lead", kind, default=""),
            noun=self.noun(type_, f"{kind}_noun") if kind == "rare" else self.noun(type_),
            clues=self.join(clue_texts),
        )

    def sentence(self, text: str) -> str:
        text = text[:1].upper() + text[1:]
        end = str(self.get("compose", "sentence_end"))
        return text if text.endswith((end, "?", "？", ".", "。")) else text + end


@functools.cache
def phrases(language: str) -> Phrases:
    """The language pack for ``language`` (``en`` or ``zh``), loaded once."""
    path = resources.files("medresearcher.qa.lang").joinpath(f"{language}.yaml")
    if not path.is_file():
        raise ConfigError(f"qa/lang/{language}.yaml: no such language pack (en, zh)")
    return Phrases(yaml.safe_load(path.read_text(encoding="utf-8")))
