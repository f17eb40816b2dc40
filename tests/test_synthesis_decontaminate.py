"""Decontamination of training data against evaluation sets (issue 15 §3)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medresearcher.evaluation.loaders import load_benchmark
from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.decontaminate import (
    DecontaminationReport,
    checked_training_sets,
    decontaminate,
    entity_terms,
)
from medresearcher.workspace import list_runs, read_jsonl
from tests.fakes.openai_server import Reply
from tests.test_cli import cli, config_for

# MedBrowseComp-style questions: long, multi-hop, naming drugs, genes and trials.
MBC_ROWS = [
    [
        "Among the drugs approved by the FDA for spinal muscular atrophy, consider the one "
        "delivered as a single intravenous infusion of an adeno-associated viral vector. "
        "What is the HGNC symbol of the gene it replaces?",
        "SMN1",
        "gene",
    ],
    [
        "A lysosomal storage disorder caused by deficiency of alpha-galactosidase A is treated "
        "with an oral pharmacological chaperone. In which year did the FDA first approve that "
        "chaperone for adults with an amenable GLA variant?",
        "2018",
        "approval_year",
    ],
    [
        "Which company sponsored the phase 3 trial NCT02122952 of the antisense oligonucleotide "
        "given intrathecally to infants with the most severe form of the disease?",
        "Biogen",
        "sponsor",
    ],
    [
        "For the inherited neuropathy most often caused by a duplication on chromosome 17p12, "
        "name the gene whose dosage is altered.",
        "PMP22",
        "gene",
    ],
]

PARAPHRASE = (
    "Consider, among the drugs the FDA approved for spinal muscular atrophy, the one given as "
    "a single intravenous infusion of an adeno-associated viral vector. What is the HGNC "
    "symbol of the gene that it replaces?"
)
UNRELATED = [
    "Start from a rare disorder with 8 phenotypes annotated in Orphanet and linked to a single "
    "gene. This disorder presents, in 5–29 % of patients, with a clinical feature annotated to "
    "9 disorders. Which disorder is it?",
    "Which gene is associated with the disorder classified under “Premature aging” that "
    "presents with short stature and cataract in 80–99 % of patients?",
    "What is the mode of inheritance of the rare disorder with onset in infancy that is linked "
    "to a single gene and presents with hypotonia?",
    "A rare disorder of the spinal cord presents with muscle weakness in 30–79 % of patients and "
    "is linked to two genes. Which clinical feature do all its subtypes share?",
    "Which drug is approved for the disorder caused by variants in the gene encoding "
    "alpha-galactosidase A, and what is its route of administration in adults?",
    # The same template as an eval question, about another disease: not a copy.
    "Among the drugs approved by the FDA for hereditary transthyretin amyloidosis, consider the "
    "one delivered as a small interfering RNA. What is the HGNC symbol of the gene it silences?",
]


def qa_record(record_id: str, question: str, answer: str, chain: list[str]) -> QARecord:
    return QARecord(
        id=record_id,
        question=question,
        answer=answer,
        chain=chain,
        sample_id=f"S:{record_id}",
        strategy="chain",
        hops=len(chain) // 2,
        created_at="2026-01-01T00:00:00Z",
    )


def training_records() -> list[QARecord]:
    records = [
        qa_record(f"Q:u{i}", q, "Fabry disease", ["ORPHA:324"]) for i, q in enumerate(UNRELATED)
    ]
    records.append(qa_record("Q:para", PARAPHRASE, "SMN1", ["ORPHA:70", "associated_gene", "SMN1"]))
    # Reworded beyond n-gram overlap, but the same answer about the same entity (the gene on
    # 17p12 behind Charcot-Marie-Tooth disease type 1A, named by its chromosome band).
    records.append(
        qa_record(
            "Q:answer",
            "Duplications at 17p12 cause a demyelinating neuropathy; its dosage-sensitive gene?",
            "PMP22",
            ["ORPHA:101081", "associated_gene", "HGNC:9118"],
        )
    )
    # Same answer as an eval item, but no entity in common: not flagged.
    records.append(
        qa_record(
            "Q:same-answer-only",
            "Which gene encodes peripheral myelin protein 22 in Schwann cells?",
            "PMP22",
            ["HGNC:9118"],
        )
    )
    return records


@pytest.fixture(scope="module")
def mbc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mbc") / "MBC.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["prompt", "gold", "task"], *MBC_ROWS])
    return path


@pytest.fixture(scope="module")
def report(mbc_file: Path) -> DecontaminationReport:
    return decontaminate(
        training_records(),
        {"medbrowsecomp": load_benchmark("medbrowsecomp", mbc_file)},
        eval_files={"medbrowsecomp": ("medbrowsecomp", mbc_file)},
    )


def test_a_planted_paraphrase_is_flagged_and_unrelated_questions_are_not(report) -> None:
    assert "Q:para" in report.flagged_train_ids
    assert not {f"Q:u{i}" for i in range(len(UNRELATED))} & set(report.flagged_train_ids)
    signals = {f.signal for f in report.flags if f.train_id == "Q:para"}
    # The paraphrase breaks most 8-grams; the content 3-grams still see it.
    assert "shingle" in signals
    flag = next(f for f in report.flags if f.train_id == "Q:para" and f.signal == "shingle")
    assert flag.eval_set == "medbrowsecomp" and flag.score >= 0.5
    assert flag.eval_item_id == load_benchmark_ids(report)[0]


def load_benchmark_ids(report: DecontaminationReport) -> list[str]:
    path = report.eval_sets["medbrowsecomp"].path
    return [item.item_id for item in load_benchmark("medbrowsecomp", path)]


def test_a_verbatim_copy_is_flagged_by_long_ngrams(mbc_file) -> None:
    copy = qa_record("Q:copy", "Context first. " + MBC_ROWS[2][0], "Biogen", ["X:1"])
    found = decontaminate([copy], {"mbc": load_benchmark("medbrowsecomp", mbc_file)})
    assert {f.signal for f in found.flags} >= {"ngram", "ngram13", "shingle"}
    assert found.eval_sets["mbc"].flagged_train == 1


def test_shared_answer_and_entity_is_flagged(report) -> None:
    flags = [f for f in report.flags if f.train_id == "Q:answer"]
    assert [f.signal for f in flags] == ["answer_entity"]
    assert "pmp22" in flags[0].detail and "17p12" in flags[0].detail
    assert "Q:same-answer-only" not in report.flagged_train_ids


def test_entity_terms_are_names_and_ids_not_question_words() -> None:
    terms = entity_terms("Which gene is mutated in Anderson-Fabry Disease (ORPHA:324)? Start here.")
    assert terms == {"anderson fabry disease", "orpha 324"}


def test_report_counts_and_hashes_the_eval_file(report, mbc_file) -> None:
    summary = report.eval_sets["medbrowsecomp"]
    assert summary.items == len(MBC_ROWS)
    assert summary.flagged_train == len(report.flagged_train_ids) == 2
    assert len(summary.sha256) == 64 and summary.benchmark == "medbrowsecomp"
    assert report.parameters["ngram"] == 8 and report.parameters["ngram13"] == 13


def test_trajectories_are_checked_by_question_and_final_answer(mbc_file) -> None:
    trajectory = Trajectory(
        id="T:1",
        qa_id="Q:para",
        policy="path_guided",
        question=PARAPHRASE,
        messages=[],
        final_answer="SMN1",
        termination="answer",
        created_at="2026-01-01T00:00:00Z",
    )
    found = decontaminate([trajectory], {"mbc": load_benchmark("medbrowsecomp", mbc_file)})
    assert found.flagged_train_ids == ["T:1"]
    assert {f.qa_id for f in found.flags} == {"Q:para"}


def test_cli_drops_flagged_items_and_eval_runs_record_the_check(
    tmp_path, mbc_file, fake_llm
) -> None:
    train = tmp_path / "train.jsonl"
    train.write_text(
        "".join(r.model_dump_json() + "\n" for r in training_records()), encoding="utf-8"
    )
    result = cli(
        "data", "decontaminate", str(train), "--against", f"medbrowsecomp:{mbc_file}", "--drop",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 of 9 training items flagged" in result.stdout
    kept = [r.id for r in read_jsonl(tmp_path / "train.clean.jsonl", QARecord)]
    assert sorted(kept) == sorted(
        r.id for r in training_records() if r.id not in ("Q:para", "Q:answer")
    )
    folder = tmp_path / "workspace" / "decontamination"
    saved = DecontaminationReport.model_validate_json((folder / "train.json").read_text("utf-8"))
    assert saved.flagged_train_ids == ["Q:answer", "Q:para"]
    assert "| medbrowsecomp | medbrowsecomp | 4 | 2 |" in (folder / "train.md").read_text("utf-8")

    checked = checked_training_sets(tmp_path / "workspace", mbc_file)
    assert [c["train_file"] for c in checked] == [str(train)]
    assert checked_training_sets(tmp_path / "workspace", train) == []

    fake_llm.default = Reply.text("<answer>SMN1</answer>")
    config_for(tmp_path, fake_llm)
    run = cli(
        "eval", "run", "-b", "medbrowsecomp", "-f", str(mbc_file), "--rollouts", "1",
        "--tools", "none", "--run", "mbc", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    from medresearcher.workspace import Workspace

    (manifest,) = [
        m for m in list_runs(Workspace(tmp_path / "workspace")) if m["command"] == "eval-run"
    ]
    recorded = manifest["eval"]["decontamination"]
    assert [(r["train_file"], r["flagged_train"]) for r in recorded] == [(str(train), 2)]
    assert json.loads(json.dumps(recorded)) == recorded
