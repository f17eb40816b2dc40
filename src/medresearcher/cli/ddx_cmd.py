"""``medresearcher ddx``: Bayesian differential diagnosis from findings (paper §2.2)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from medresearcher.cli.state import console
from medresearcher.errors import InputError

if TYPE_CHECKING:  # the clinical engine imports numpy and scipy: only when ddx runs
    from medresearcher.clinical import (
        ClinicalContext,
        Differential,
        FindingMatch,
        UnmatchedFinding,
    )

__all__ = ["ddx"]

_SEXES = {"f": "F", "female": "F", "m": "M", "male": "M"}


def ddx(
    findings: str = typer.Argument(
        ...,
        help='Findings, e.g. "fever, splenomegaly; no hepatomegaly" (HPO labels, plain '
        "words or HP ids; 'no X', 'without X', 'absent X' mark X absent).",
    ),
    absent: list[str] = typer.Option(
        [], "--absent", "-a", help="Findings checked and absent (comma-separated; repeatable)."
    ),
    age: float | None = typer.Option(None, "--age", min=0, max=130, help="Age in years."),
    sex: str | None = typer.Option(None, "--sex", help="F or M."),
    onset: str | None = typer.Option(
        None,
        "--onset",
        help="Age at onset: Antenatal, Neonatal, Infancy, Childhood, Adolescent, Adult, "
        "Elderly, or years.",
    ),
    top: int = typer.Option(10, "--top", "-k", min=1, max=50, help="How many diseases."),
    bundle: str = typer.Option("demo", "--bundle", help="Data bundle: demo or tiny."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Rank rare diseases by posterior probability given the findings, and say what to check
    next. Research software, not clinical advice."""
    from medresearcher.clinical import (
        DISCLAIMER,
        diagnose,
        load_clinical_knowledge,
        read_findings,
    )

    context = _context(age, sex, onset)
    started = time.perf_counter()
    knowledge = load_clinical_knowledge(bundle)
    load_s = time.perf_counter() - started
    present, absent_matches, unmatched = read_findings([findings], absent, knowledge.vocabulary)
    if not present and not absent_matches:
        raise InputError(
            "none of the findings matched an HPO term: "
            + "; ".join(_unmatched_text(u) for u in unmatched)
        )
    result = diagnose(
        knowledge.model,
        [m.hpo_id for m in present],
        [m.hpo_id for m in absent_matches],
        context=context,
        top_k=top,
        unmatched=[u.text for u in unmatched],
    )
    if as_json:
        payload = result.model_dump(mode="json")
        payload["findings"] = [{**asdict(m), "observed": "present"} for m in present] + [
            {**asdict(m), "observed": "absent"} for m in absent_matches
        ]
        payload["unmatched"] = [
            {"text": u.text, "suggestions": [list(s) for s in u.suggestions]} for u in unmatched
        ]
        payload["disclaimer"] = DISCLAIMER
        console.print_json(json.dumps(payload))
        return
    print_differential(result, [*present, *absent_matches], unmatched)
    console.print(
        f"[dim]{result.n_diseases:,} diseases; query {result.elapsed_ms:.1f} ms "
        f"(tables loaded in {load_s:.1f} s)[/]"
    )


def print_differential(
    result: Differential, matches: list[FindingMatch], unmatched: list[UnmatchedFinding]
) -> None:
    """The ranked table, what was read, what to check next, then the disclaimer and credits."""
    from medresearcher.clinical import DISCLAIMER

    for match in matches:
        if match.method != "exact":
            console.print(
                f"[dim]read '{escape(match.text)}' as {escape(match.label)} ({match.hpo_id}, "
                f"{match.method})[/]"
            )
    present = ", ".join(result.terms[h] for h in result.present) or "none"
    absent = ", ".join(result.terms[h] for h in result.absent) or "none"
    title = f"differential: {present}" + (f"; absent: {absent}" if result.absent else "")
    table = Table(title=escape(title), title_justify="left")
    for column, justify in (
        ("#", "right"),
        ("disease", "left"),
        ("id", "left"),
        ("posterior", "right"),
        ("supporting", "left"),
        ("against", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")
    for disease in result.diseases:
        table.add_row(
            str(disease.rank),
            escape(disease.name),
            disease.disease_id,
            f"{disease.posterior:.3f}",
            escape(", ".join(f"{e.term} ({_short(e.frequency)})" for e in disease.supporting)),
            escape(", ".join(f"{e.term} {e.observed}" for e in disease.against)),
        )
    console.print(table)
    if (nxt := result.next_finding) is not None:
        console.print(
            f"next finding to check: [bold]{escape(nxt.term)}[/] ({nxt.hpo_id}), "
            f"expected gain {nxt.expected_gain_bits:.2f} bits"
        )
    for item in unmatched:
        console.print(f"[yellow]unmatched, not used:[/] {escape(_unmatched_text(item))}")
    console.print(f"[dim]{DISCLAIMER} Posteriors are relative to the diseases in the bundle.[/]")
    for credit in result.sources:
        console.print(f"[dim]{escape(credit)}[/]")


def _context(age: float | None, sex: str | None, onset: str | None) -> ClinicalContext | None:
    from medresearcher.clinical import ClinicalContext, onset_class

    if sex is not None and sex.strip().lower() not in _SEXES:
        raise InputError(f"--sex {sex!r}: use F or M")
    if age is None and sex is None and onset is None:
        return None
    return ClinicalContext(
        age_years=age,
        sex=_SEXES[sex.strip().lower()] if sex else None,  # type: ignore[arg-type]
        onset=onset_class(onset) if onset else None,
    )


def _short(frequency: str) -> str:
    """``Very frequent (99-80%)`` → ``99-80%``."""
    return frequency[frequency.find("(") + 1 : -1] if frequency.endswith(")") else frequency


def _unmatched_text(item: UnmatchedFinding) -> str:
    near = ", ".join(f"{label} ({hpo_id})" for hpo_id, label in item.suggestions)
    return f"'{item.text}'" + (f" (nearest: {near})" if near else "")
