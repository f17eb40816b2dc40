"""Token counting with the Qwen2.5 tokenizer that ships with the project (Apache-2.0).

Budgets (agent turns, trajectory length filters, tool output cuts) are stated in tokens of the
model that will read the text; MedResearcher-R1 is trained from Qwen2.5-32B, so its byte-level
BPE is the default. Without the ``tokenizers`` package a conservative estimate is used instead.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import math
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, Protocol

__all__ = [
    "TokenCounter",
    "count_message_tokens",
    "estimate_tokens",
    "qwen25_counter",
    "truncate_to_tokens",
]

logger = logging.getLogger(__name__)

# Qwen2's pre-tokenizer split (tokenizer.json of Qwen2.5, "Split" pre-tokenizer).
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Per chat message: <|im_start|>role\n ... <|im_end|>\n
_MESSAGE_OVERHEAD = 5


class TokenCounter(Protocol):
    """Anything that counts the tokens of a text."""

    name: str

    def count(self, text: str) -> int: ...


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: about 3.2 characters per token for English medical text,
    one token per CJK character. Errs high, so budgets stay safe."""
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    return math.ceil((len(text) - cjk) / 3.2) + cjk


class _EstimateCounter:
    name = "estimate"

    def count(self, text: str) -> int:
        return estimate_tokens(text)


class _HFCounter:
    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tokenizer = tokenizer
        self.name = name

    def count(self, text: str) -> int:
        if not text:
            return 0
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=False))


@functools.cache
def qwen25_counter() -> TokenCounter:
    """The bundled Qwen2.5 tokenizer, or the estimate when ``tokenizers`` is missing."""
    try:
        from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
        from tokenizers.models import BPE
    except ImportError:  # pragma: no cover - tokenizers is a core dependency
        logger.warning("the tokenizers package is missing; token counts are estimates")
        return _EstimateCounter()
    folder = resources.files("medresearcher.data") / "tokenizers" / "qwen2.5"
    vocab = json.loads(gzip.decompress((folder / "vocab.json.gz").read_bytes()))
    merges_text = gzip.decompress((folder / "merges.txt.gz").read_bytes()).decode("utf-8")
    merges = [
        tuple(line.split(" ", 1))
        for line in merges_text.splitlines()
        if line and not line.startswith("#version")
    ]
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    added = json.loads((folder / "added_tokens.json").read_text(encoding="utf-8"))
    tokenizer.add_special_tokens(sorted(added, key=added.__getitem__))
    return _HFCounter(tokenizer, "qwen2.5")


def count_message_tokens(
    messages: Iterable[Mapping[str, Any]], counter: TokenCounter | None = None
) -> int:
    """Tokens of a chat in ChatML framing: content, reasoning and tool-call arguments."""
    counter = counter or qwen25_counter()
    total = 0
    for message in messages:
        total += _MESSAGE_OVERHEAD
        for key in ("content", "reasoning_content"):
            value = message.get(key)
            if isinstance(value, str):
                total += counter.count(value)
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            total += (
                counter.count(str(function.get("name", "")))
                + counter.count(str(function.get("arguments", "")))
                + 4
            )
    return total


def truncate_to_tokens(
    text: str, budget: int, counter: TokenCounter | None = None, marker: str = " …[cut]"
) -> tuple[str, bool]:
    """Cut ``text`` to at most ``budget`` tokens (marker included); returns (text, was_cut)."""
    counter = counter or qwen25_counter()
    if counter.count(text) <= budget:
        return text, False
    keep = max(budget - counter.count(marker), 0)
    encode = getattr(counter, "encode", None)
    if encode is not None:
        ids = encode(text)[:keep]
        return counter.decode(ids) + marker, True  # type: ignore[attr-defined]
    # Estimate: shrink by characters until it fits.
    cut = text[: int(keep * 3.2)]
    while cut and counter.count(cut) > keep:
        cut = cut[: int(len(cut) * 0.9)]
    return cut + marker, True
