"""Cheat sheets and masked chains: the path to an answer, with every entity hidden.

Masked Trajectory Guidance (paper §3.2) shows the agent the structure of the reasoning
chain — which relation to follow, what to look up, what to verify — without the entities
that would give the answer away. ``masked_chain`` keeps only the predicates
(``[MASK], predicate, [MASK]`` per hop); ``cheat_sheet`` writes the ordered steps with
placeholders ``[E1]``, ``[E2]``, … that :func:`placeholder_map` ties to entity ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medresearcher.errors import InputError
from medresearcher.qa.lang import phrases
from medresearcher.schema import MASK, QAParadigm

__all__ = ["cheat_sheet", "masked_chain", "placeholder_map"]


def _check_chain(chain: Sequence[str]) -> None:
    if len(chain) < 3 or len(chain) % 2 == 0:
        raise InputError(
            f"chain: expected entity, predicate, entity, ... (odd length >= 3), got {len(chain)}"
        )


def masked_chain(chain: Sequence[str]) -> list[list[str]]:
    """``[[MASK, predicate, MASK], ...]``, one triple per hop; a ``^predicate`` (followed
    against its direction) keeps its caret, so the masked path still says which way to go.

    Examples
    --------
    >>> masked_chain(["ORPHA:324", "associated_gene", "HGNC:4296"])
    [['[MASK]', 'associated_gene', '[MASK]']]
    """
    _check_chain(chain)
    return [[MASK, predicate, MASK] for predicate in chain[1::2]]


def placeholder_map(*chains: Sequence[str]) -> dict[str, str]:
    """``{"E1": id, "E2": id, ...}`` over the entities of ``chains`` in order of first
    appearance (a second chain that meets the first reuses its placeholder)."""
    ids: list[str] = []
    for chain in chains:
        for entity_id in chain[0::2]:
            if entity_id not in ids:
                ids.append(entity_id)
    return {f"E{index}": entity_id for index, entity_id in enumerate(ids, start=1)}


def cheat_sheet(
    chain: Sequence[str],
    paradigm: QAParadigm,
    language: str = "en",
    *,
    types: Mapping[str, str] | None = None,
    clues: Mapping[str, Sequence[str]] | None = None,
    constraints: Sequence[str] = (),
    answer_key: str | None = None,
    second_chain: Sequence[str] | None = None,
) -> list[str]:
    """The ordered steps that solve a question built on ``chain`` (placeholders only).

    Parameters
    ----------
    chain:
        ``[e0, p1, e1, ...]``; the answer is its last entity.
    paradigm:
        identify, attribute, count or intersect; sets the last step.
    language:
        Language pack of the steps (``en``, ``zh``).
    types:
        Entity id → type, for the noun after each placeholder (default: "entity").
    clues:
        Entity id → the clue texts the question gives for it (already free of names);
        they become "keep only candidates that match" checks.
    constraints:
        Clue texts the answer must satisfy; one "verify" step.
    answer_key:
        The attribute (``inheritance``, ``symbol``, …) or counted relation
        (``has_phenotype``, ``^associated_gene``, …) the answer is.
    second_chain:
        For ``intersect``: a chain from elsewhere that ends at the same entity.

    Returns
    -------
    list[str]
        Steps naming entities only as ``[E1]``, ``[E2]``, … (see :func:`placeholder_map`).
    """
    _check_chain(chain)
    ph = phrases(language)
    types = types or {}
    clues = clues or {}
    ids = {v: k for k, v in placeholder_map(chain, second_chain or []).items()}
    sep = ph.get("cheatsheet", "clue_sep")

    def noun(entity_id: str) -> str:
        return ph.noun(types.get(entity_id, "entity"))

    def walk(path: Sequence[str], first_template: str) -> list[str]:
        start = path[0]
        if clues.get(start):
            out = [
                ph.text(
                    "cheatsheet",
                    first_template,
                    ph=ids[start],
                    noun=noun(start),
                    clues=sep.join(clues[start]),
                )
            ]
        else:
            bare = "find_start_bare" if first_template == "find_start" else "second_line_bare"
            out = [ph.text("cheatsheet", bare, ph=ids[start], noun=noun(start))]
        for index in range(1, len(path), 2):
            a, predicate, b = path[index - 1], path[index], path[index + 1]
            forward = not predicate.startswith("^")
            shown = ph.text(
                "cheatsheet", "forward" if forward else "reverse", pred=predicate.lstrip("^")
            )
            found = clues.get(b) if b != chain[-1] else None
            out.append(
                ph.text(
                    "cheatsheet",
                    "follow_check" if found else "follow",
                    a=ids[a],
                    b=ids[b],
                    pred=shown,
                    noun=noun(b),
                    clues=sep.join(found or []),
                )
            )
        return out

    steps = walk(chain, "find_start")
    answer = ids[chain[-1]]
    if paradigm == "intersect" and second_chain:
        steps += walk(second_chain, "second_line")
        steps.append(ph.text("cheatsheet", "meet", ph=answer))
    if constraints:
        steps.append(ph.text("cheatsheet", "verify", ph=answer, clues=sep.join(constraints)))
    if paradigm == "attribute":
        label = ph.get("attribute_labels", answer_key or "", default=answer_key)
        steps.append(ph.text("cheatsheet", "answer_attribute", ph=answer, label=label))
    elif paradigm == "count":
        label = ph.get("count_labels", answer_key or "", default=answer_key)
        steps.append(ph.text("cheatsheet", "answer_count", ph=answer, label=label))
    else:
        steps.append(ph.text("cheatsheet", "answer_identify", ph=answer))
    return steps
