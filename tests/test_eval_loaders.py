"""Benchmark loaders on fixtures each test writes itself, including MedBrowseComp's encoding."""

from __future__ import annotations

import base64
import csv
import gzip
import json
from pathlib import Path

import pytest

from medresearcher.errors import ConfigError, InputError
from medresearcher.evaluation.items import BenchmarkItem
from medresearcher.evaluation.loaders import (
    BENCHMARK_NAMES,
    decode_shifted_base64,
    load_benchmark,
)
from medresearcher.schema import Difficulty, QARecord

SHARED_PUBMEDQA = Path("/work/shared/data/pubmedqa")


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def shift3_b64(text: str) -> str:
    """MedBrowseComp's published cell encoding, written independently of the loader."""
    shifted = "".join(chr(ord(char) + 3) for char in text)
    return base64.b64encode(shifted.encode("utf-8")).decode("ascii")


# -- qa ----------------------------------------------------------------------------------------


def qa_record(qa_id: str, **overrides) -> dict:
    fields = {
        "id": qa_id,
        "question": "Which lysosomal disorder is caused by GLA variants?",
        "answer": "Fabry disease",
        "answer_aliases": ["Anderson-Fabry disease"],
        "chain": ["ORPHA:324", "associated_gene", "HGNC:4296"],
        "sample_id": "s1",
        "strategy": "chain",
        "hops": 2,
        "paradigm": "identify",
        "specialties": ["genetics", "nephrology"],
        "difficulty": Difficulty(level=3),
        "created_at": "2026-01-01T00:00:00Z",
        **overrides,
    }
    return QARecord(**fields).model_dump(mode="json")


def test_qa_jsonl_keeps_ids_aliases_and_breakdown_metadata(tmp_path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [qa_record("qa-1"), qa_record("qa-2", hops=4)])
    items = load_benchmark("qa", path)
    assert [item.item_id for item in items] == ["qa-1", "qa-2"]
    first = items[0]
    assert (first.gold, first.aliases) == ("Fabry disease", ["Anderson-Fabry disease"])
    assert first.metadata["hops"] == 2 and items[1].metadata["hops"] == 4
    assert first.metadata["paradigm"] == "identify"
    assert first.metadata["specialties"] == ["genetics", "nephrology"]
    assert first.metadata["strategy"] == "chain"
    assert first.metadata["level"] == 3


def test_qa_jsonl_bad_record_names_file_line_and_field(tmp_path) -> None:
    bad = qa_record("qa-2")
    del bad["answer"]
    path = write_jsonl(tmp_path / "qa.jsonl", [qa_record("qa-1"), bad])
    with pytest.raises(InputError, match=r"qa\.jsonl:2: answer: Field required"):
        load_benchmark("qa", path)


def test_qa_jsonl_duplicate_id_names_both_lines(tmp_path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [qa_record("qa-1"), qa_record("qa-1")])
    with pytest.raises(InputError, match=r"qa\.jsonl:2: id 'qa-1' already used on line 1"):
        load_benchmark("qa", path)


# -- MedBrowseComp -------------------------------------------------------------------------------

MBC_ROWS = [
    [
        "\"For clinical trial NCT00000001. Find the ingredient starting with 'E'.\\nReturn "
        'only INGREDIENT: name."',
        "ETOPOSIDE",
        "Ingredient",
    ],
    ["Which company (Société Générale–like) holds it?", "ASTELLAS PHARMA US INC", "Applicant"],
    ["Patent expiry? Answer date: YYYY", "Aug 13, 2027", "Patent_Expire_Date_Text_prompt"],
    ["Exclusivity date? MM-DD-YYYY or DATE: NA", "NA", "Exclusivity_Date"],
    ["Opening price on approval, or NOT LISTED", "Not_Listed", "Open_on_Approval"],
]


def test_medbrowsecomp_plain_csv(tmp_path) -> None:
    path = write_csv(tmp_path / "mbc.csv", [["prompt", "gold", "task"], *MBC_ROWS])
    items = load_benchmark("medbrowsecomp", path)
    assert [i.gold for i in items] == [row[1] for row in MBC_ROWS]
    assert [i.metadata["hops"] for i in items] == [1, 2, 3, 4, 5]
    assert items[2].metadata["task"] == "Patent_Expire_Date_Text"
    assert [i.metadata["na_gold"] for i in items] == [False, False, False, True, True]
    first = items[0].question
    assert first.startswith("For clinical trial NCT00000001.") and first.endswith("name.")
    assert "\nReturn only" in first and "\\n" not in first
    assert len({i.item_id for i in items}) == 5 and all(i.item_id.startswith("mbc-") for i in items)


def test_medbrowsecomp_encoded_file_decodes_like_the_plain_one(tmp_path) -> None:
    # The 50 set names its third column after a task; every cell, header included, is encoded,
    # and the file ends with a blank line.
    header = ["prompt", "gold", "Applicant_Full_Name_prompt"]
    encoded = [[shift3_b64(cell) for cell in row] for row in [header, *MBC_ROWS]]
    path = write_csv(tmp_path / "final5_cell_combo_shift3_b64.csv", encoded)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n")
    assert "ETOPOSIDE" not in path.read_text("utf-8")
    items = load_benchmark("medbrowsecomp", path)
    plain = load_benchmark(
        "medbrowsecomp", write_csv(tmp_path / "plain.csv", [["prompt", "gold", "task"], *MBC_ROWS])
    )
    assert [(i.item_id, i.question, i.gold) for i in items] == [
        (i.item_id, i.question, i.gold) for i in plain
    ]
    assert items[1].question == MBC_ROWS[1][0]  # non-ASCII survives the shift
    assert [i.metadata["task"] for i in items][:2] == ["Ingredient", "Applicant"]
    assert items[4].metadata["hops"] == 5


def test_decode_shifted_base64_round_trip_and_rejection() -> None:
    assert decode_shifted_base64(shift3_b64("vitamin B12 – 5 mg")) == "vitamin B12 – 5 mg"
    with pytest.raises(ValueError, match="not a shifted base64 cell"):
        decode_shifted_base64("not base64!")


def test_medbrowsecomp_bad_encoded_cell_names_its_line(tmp_path) -> None:
    rows = [[shift3_b64(c) for c in row] for row in [["prompt", "gold", "task"], *MBC_ROWS[:2]]]
    rows[2][1] = "%%%"
    path = write_csv(tmp_path / "mbc.csv", rows)
    with pytest.raises(InputError, match=r"mbc\.csv:3: a cell is not encoded"):
        load_benchmark("medbrowsecomp", path)


def test_medbrowsecomp_unknown_columns_are_named(tmp_path) -> None:
    path = write_csv(tmp_path / "mbc.csv", [["question", "answer"], ["q", "a"]])
    with pytest.raises(InputError, match=r"mbc\.csv:1: columns \['question', 'answer'\]"):
        load_benchmark("medbrowsecomp", path)
    items = load_benchmark("medbrowsecomp", path, question_field="question", answer_field="answer")
    assert (items[0].question, items[0].gold) == ("q", "a")


def test_csv_row_with_a_missing_cell_names_its_line(tmp_path) -> None:
    path = write_csv(tmp_path / "mbc.csv", [["prompt", "gold", "task"], MBC_ROWS[0], ["only"]])
    with pytest.raises(InputError, match=r"mbc\.csv:3: 1 cells, the header has 3"):
        load_benchmark("medbrowsecomp", path)


# -- GAIA ----------------------------------------------------------------------------------------


def gaia_line(task_id: str, **overrides) -> dict:
    return {
        "task_id": task_id,
        "Question": "How many studio albums did the band release?",
        "Level": 1,
        "Final answer": "3",
        "file_name": "",
        "Annotator Metadata": {"Steps": "secret"},
        **overrides,
    }


def test_gaia_folder_with_attachment(tmp_path) -> None:
    folder = tmp_path / "gaia" / "validation"
    folder.mkdir(parents=True)
    (folder / "table.xlsx").write_bytes(b"PK")
    write_jsonl(
        folder / "metadata.jsonl",
        [gaia_line("t-1"), gaia_line("t-2", Level="3", file_name="table.xlsx")],
    )
    items = load_benchmark("gaia", folder)
    assert [(i.item_id, i.gold, i.metadata["level"]) for i in items] == [
        ("t-1", "3", 1),
        ("t-2", "3", 3),
    ]
    assert items[0].file_name is None and items[0].metadata["has_file"] is False
    assert items[1].file_name == "table.xlsx"
    assert items[1].metadata["file_path"] == str(folder / "table.xlsx")
    assert "secret" not in items[1].model_dump_json()


def test_gaia_hidden_test_answers_and_missing_fields_are_errors(tmp_path) -> None:
    hidden = write_jsonl(tmp_path / "m1.jsonl", [gaia_line("t-1", **{"Final answer": "?"})])
    with pytest.raises(InputError, match=r"m1\.jsonl:1: Final answer: '\?'"):
        load_benchmark("gaia", hidden)
    broken = gaia_line("t-2")
    del broken["Question"]
    missing = write_jsonl(tmp_path / "m2.jsonl", [gaia_line("t-1"), broken])
    with pytest.raises(InputError, match=r"m2\.jsonl:2: Question: missing"):
        load_benchmark("gaia", missing)
    bad_json = tmp_path / "m3.jsonl"
    bad_json.write_text(json.dumps(gaia_line("t-1")) + "\n{not json\n", "utf-8")
    with pytest.raises(InputError, match=r"m3\.jsonl:2:2: not valid JSON"):
        load_benchmark("gaia", bad_json)


# -- xbench-DeepSearch ---------------------------------------------------------------------------


def test_xbench_decrypted_csv(tmp_path) -> None:
    path = write_csv(
        tmp_path / "DeepSearch-2505.csv",
        [
            ["id", "prompt", "answer", "reference_steps", "canary"],
            ["1", "哪种罕见病由GLA基因突变引起？", "法布里病", "步骤：查找GLA", "c"],
            ["2", "Which enzyme is deficient in Pompe disease?", "acid maltase", "steps", "c"],
        ],
    )
    items = load_benchmark("xbench", path)
    assert [(i.item_id, i.gold, i.metadata["language"]) for i in items] == [
        ("1", "法布里病", "zh"),
        ("2", "acid maltase", "en"),
    ]
    assert "步骤" not in items[0].model_dump_json()  # the reference solution is never read


def test_xbench_still_encrypted_is_refused(tmp_path) -> None:
    rows = [["id", "prompt", "answer", "canary"]]
    rows += [
        [str(k), base64.b64encode(f"q{k}".encode() * 12).decode(), "eHl6", "c"] for k in range(3)
    ]
    path = write_csv(tmp_path / "xb.csv", rows)
    with pytest.raises(InputError, match=r"xb\.csv:2: prompt: the questions look encrypted"):
        load_benchmark("xbench", path)


def test_xbench_custom_columns(tmp_path) -> None:
    path = write_csv(tmp_path / "xb.csv", [["qid", "问题", "答案"], ["a7", "问？", "答"]])
    items = load_benchmark("xbench", path, id_field="qid")
    assert [(i.item_id, i.question, i.gold) for i in items] == [("a7", "问？", "答")]
    with pytest.raises(InputError, match=r"xb\.csv:1: no column text"):
        load_benchmark("xbench", path, question_field="text")


# -- PubMedQA ------------------------------------------------------------------------------------


def pqal_record(question: str, decision: str) -> dict:
    return {
        "QUESTION": question,
        "CONTEXTS": ["We studied 40 patients.", "Outcomes improved."],
        "LABELS": ["METHODS", "RESULTS"],
        "MESHES": ["Humans"],
        "YEAR": "2010",
        "final_decision": decision,
        "LONG_ANSWER": "The conclusion that must not leak.",
    }


def test_pubmedqa_folder_layout_with_test_split(tmp_path) -> None:
    data = {"111": pqal_record("Does X help?", "yes"), "222": pqal_record("Is Y safe?", "Maybe")}
    with gzip.open(tmp_path / "ori_pqal.json.gz", "wt", encoding="utf-8") as handle:
        json.dump(data, handle)
    (tmp_path / "test_ground_truth.json").write_text(json.dumps({"222": "maybe"}), "utf-8")
    items = load_benchmark("pubmedqa", tmp_path)
    assert [(i.item_id, i.gold, i.metadata["split"]) for i in items] == [
        ("111", "yes", "dev"),
        ("222", "maybe", "test"),
    ]
    question = items[0].question
    assert question.startswith("Does X help?")
    assert "METHODS: We studied 40 patients." in question and "yes, no or maybe" in question
    assert "must not leak" not in question


def test_pubmedqa_original_file_and_bad_labels(tmp_path) -> None:
    path = tmp_path / "ori_pqal.json"
    path.write_text(json.dumps({"1": pqal_record("Q?", "no")}), "utf-8")
    items = load_benchmark("pubmedqa", path)
    assert items[0].gold == "no" and "split" not in items[0].metadata
    path.write_text(json.dumps({"1": pqal_record("Q?", "probably")}), "utf-8")
    with pytest.raises(InputError, match=r"ori_pqal\.json: 1\.final_decision: 'probably'"):
        load_benchmark("pubmedqa", path)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"1": "yes"}), "utf-8")
    with pytest.raises(InputError, match="label file"):
        load_benchmark("pubmedqa", labels)


@pytest.mark.skipif(not SHARED_PUBMEDQA.exists(), reason="shared PubMedQA data not present")
def test_pubmedqa_shared_data() -> None:
    items = load_benchmark("pubmedqa", SHARED_PUBMEDQA)
    assert len(items) == 1000
    assert sum(i.metadata["split"] == "test" for i in items) == 500
    assert {i.gold for i in items} == {"yes", "no", "maybe"}


# -- any JSONL -----------------------------------------------------------------------------------


def test_jsonl_with_custom_and_nested_fields(tmp_path) -> None:
    path = write_jsonl(
        tmp_path / "any.jsonl",
        [
            {"q": "Gene of Fabry disease?", "a": {"text": ["GLA", "alpha-Gal A"]}, "topic": "x"},
            {"q": "Year?", "a": {"text": 1998}, "metadata": {"category": "dates"}},
        ],
    )
    items = load_benchmark("jsonl", path, question_field="q", answer_field="a.text")
    assert [(i.gold, i.aliases) for i in items] == [("GLA", ["alpha-Gal A"]), ("1998", [])]
    assert items[0].metadata == {"topic": "x"}
    assert items[1].metadata == {"category": "dates"}
    assert items[0].item_id.startswith("jsonl-") and items[0].item_id != items[1].item_id
    again = load_benchmark("jsonl", path, question_field="q", answer_field="a.text")
    assert [i.item_id for i in again] == [i.item_id for i in items]  # content ids are stable


def test_jsonl_defaults_and_errors(tmp_path) -> None:
    good = write_jsonl(tmp_path / "a.jsonl", [{"id": 7, "question": "Q?", "answer": "A"}])
    assert load_benchmark("jsonl", good)[0] == BenchmarkItem(item_id="7", question="Q?", gold="A")
    missing = write_jsonl(tmp_path / "b.jsonl", [{"question": "Q?", "answer": "A"}, {"x": 1}])
    with pytest.raises(InputError, match=r"b\.jsonl:2: question: missing or not a text"):
        load_benchmark("jsonl", missing)
    blank = write_jsonl(tmp_path / "c.jsonl", [{"question": "Q?", "answer": "  "}])
    with pytest.raises(InputError, match=r"c\.jsonl:1: answer: missing"):
        load_benchmark("jsonl", blank)
    no_id = write_jsonl(tmp_path / "d.jsonl", [{"question": "Q?", "answer": "A"}])
    with pytest.raises(InputError, match=r"d\.jsonl:1: uid: missing"):
        load_benchmark("jsonl", no_id, id_field="uid")
    twice = write_jsonl(tmp_path / "e.jsonl", [{"question": "Q?", "answer": "A"}] * 2)
    with pytest.raises(
        InputError, match=r"e\.jsonl:2: id 'jsonl-[0-9a-f]+' already used on line 1"
    ):
        load_benchmark("jsonl", twice)


# -- the entry point -----------------------------------------------------------------------------


def test_entry_point_errors(tmp_path) -> None:
    assert set(BENCHMARK_NAMES) == {"qa", "medbrowsecomp", "gaia", "xbench", "pubmedqa", "jsonl"}
    with pytest.raises(ConfigError, match="unknown benchmark 'hle'; known: qa, medbrowsecomp"):
        load_benchmark("hle", tmp_path)
    with pytest.raises(ConfigError, match="fixed fields"):
        load_benchmark("gaia", tmp_path, question_field="Question")
    with pytest.raises(InputError, match="no such file"):
        load_benchmark("jsonl", tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", "utf-8")
    with pytest.raises(InputError, match=r"empty\.jsonl: no items"):
        load_benchmark("jsonl", empty)
