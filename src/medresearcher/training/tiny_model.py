"""A tiny Qwen2-architecture model with random weights and the real Qwen2.5 tokenizer.

Why: the SFT and GRPO launchers must be tested end to end (tokenisation, masking, a real
optimiser step, generation) on a laptop CPU and without downloading anything. MedResearcher-R1
trains Qwen2.5-32B (paper §4.1); this model has the same architecture class
(``Qwen2ForCausalLM``), the same vocabulary, special tokens and chat template — the Qwen2.5 files
shipped in ``medresearcher/data/tokenizers/qwen2.5`` — and a few hundred thousand weights
outside the embedding. Its outputs are noise; it exists to prove the plumbing, never to answer.

::

    path = build_tiny_model(tmp_path / "tiny")      # a folder from_pretrained() reads
    tokenizer = load_qwen25_tokenizer()             # the bundled tokenizer alone
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["TINY_DEFAULTS", "build_tiny_model", "load_qwen25_tokenizer", "write_qwen25_tokenizer"]

#: The shape of the smoke-test model: 2 layers, hidden 48 (GQA 4 heads / 2 KV heads).
TINY_DEFAULTS: dict[str, int] = {
    "hidden_size": 48,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 96,
    "max_position_embeddings": 1024,
}

_FILES = ("added_tokens.json", "special_tokens_map.json", "tokenizer_config.json")


def write_qwen25_tokenizer(folder: str | os.PathLike[str]) -> Path:
    """Write the bundled Qwen2.5 tokenizer files (un-gzipped) and chat template into ``folder``.

    The result is a folder ``transformers.AutoTokenizer.from_pretrained`` loads without the
    network: ``vocab.json``, ``merges.txt``, the configs and ``chat_template.jinja``.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    source = resources.files("medresearcher.data") / "tokenizers" / "qwen2.5"
    for name in ("vocab.json", "merges.txt"):
        (out / name).write_bytes(gzip.decompress((source / f"{name}.gz").read_bytes()))
    for name in _FILES:
        (out / name).write_bytes((source / name).read_bytes())
    (out / "chat_template.jinja").write_text(
        (source / "chat_template.jinja").read_text(encoding="utf-8"), encoding="utf-8"
    )
    return out


def load_qwen25_tokenizer() -> Any:
    """The bundled Qwen2.5 tokenizer as a ``transformers`` fast tokenizer, with its chat template.

    Loaded from a temporary copy of the shipped files; nothing is downloaded.
    """
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="qwen25-tok-") as folder:
        write_qwen25_tokenizer(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.chat_template is None:  # older transformers read it from the config only
        source = resources.files("medresearcher.data") / "tokenizers" / "qwen2.5"
        tokenizer.chat_template = (source / "chat_template.jinja").read_text(encoding="utf-8")
    return tokenizer


def build_tiny_model(out_dir: str | os.PathLike[str], *, seed: int = 0, **shape: int) -> Path:
    """Save a random-weight ``Qwen2ForCausalLM`` and the Qwen2.5 tokenizer into ``out_dir``.

    Parameters
    ----------
    out_dir:
        The model folder (made when missing; an existing model there is replaced). Pass it as
        ``--model`` to ``medresearcher train sft|grpo``.
    seed:
        Seeds the weight initialisation, so two builds are identical.
    **shape:
        Overrides of :data:`TINY_DEFAULTS` (``hidden_size``, ``num_hidden_layers``, ...).

    Returns
    -------
    Path
        ``out_dir``.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    unknown = set(shape) - set(TINY_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown tiny-model shape field(s): {', '.join(sorted(unknown))}")
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    tokenizer = load_qwen25_tokenizer()
    dims = {**TINY_DEFAULTS, **shape}
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,  # the embedding is most of the weights: keep one copy
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=True,
        **dims,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "TINY_MODEL.json").write_text(
        json.dumps({"purpose": "smoke tests only: random weights", "seed": seed, **dims}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    return out
