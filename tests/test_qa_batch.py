"""Batch QA synthesis (issue 7 §7): checks recorded, resume, worker-independence, duplicates,
bad input, and the LLM writer path against the fake model server.

The tiny bundle is imported once per module; every test writes its own files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from medresearcher.config import EndpointSettings, Settings
from medresearcher.data import bundle_dir
from medresearcher.errors import InputError
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.llm import LLMGateway
from medresearcher.qa.batch import (
    QABatchCounts,
    QABatchOptions,
    chain_names,
    check_record,
    generate_qa,
    harder_question,
    sampler_of,
)
from medresearcher.qa.checks import CHECK_NAMES
from medresearcher.qa.template_writer import write_template_question
from medresearcher.sampling import STRATEGIES, GraphView
from medresearcher.schema import CheckResult, QARecord, Sample
from medresearcher.workspace import JsonlWriter, read_jsonl
from tests.fakes.openai_server import FakeOpenAIServer, Reply

ALL_CHECKS = (*CHECK_NAMES, "near_duplicate")


@dataclass
class Tiny:
    store: GraphStore
    view: GraphView
    anchors: list[str]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    folder = tmp_path_factory.mktemp("qa-batch")
    store = GraphStore(folder / "kg.sqlite")
    import_records(store, bundle_dir("tiny"))
    anchors = sorted(
        e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
    )
    assert len(anchors) >= 20
    yield Tiny(store, GraphView.from_store(store), anchors)
    store.close()


def generate(
    tiny: Tiny,
    folder: Path,
    options: QABatchOptions,
    *,
    anchors: list[str] | None = None,
    gateway: LLMGateway | None = None,
) -> QABatchCounts:
    """One batch into ``folder``/qa.jsonl (+ rejected and samples files), as the CLI runs it."""

    async def go() -> QABatchCounts:
        with (
            JsonlWriter(folder / "qa.jsonl") as out,
            JsonlWriter(folder / "qa.rejected.jsonl", key="sample_id") as rejected,
            JsonlWriter(folder / "samples.jsonl") as samples,
        ):
            return await generate_qa(
                tiny.store,
                tiny.view,
                tiny.anchors if anchors is None else anchors,
                options,
                out=out,
                rejected=rejected,
                samples=samples,
                gateway=gateway,
            )

    return asyncio.run(go())


def records(folder: Path, name: str = "qa.jsonl") -> list[QARecord]:
    path = folder / name
    return list(read_jsonl(path, QARecord)) if path.exists() else []


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def fingerprint(rows: list[QARecord]) -> list[tuple[Any, ...]]:
    """What must not depend on workers or resumption (``created_at`` is the wall clock)."""
    return [
        (r.id, r.sample_id, r.question, r.answer, r.paradigm, r.chain, r.checks, r.specialties)
        for r in rows
    ]


# -- template writer: checks, resume, workers --------------------------------------------------


def test_writes_n_records_with_every_check_recorded(tiny: Tiny, tmp_path: Path) -> None:
    counts = generate(tiny, tmp_path, QABatchOptions(n=6, workers=4))
    written = records(tmp_path)
    assert counts.written == 6 and len(written) == 6 and counts.already_done == 0
    assert len({r.id for r in written}) == 6
    samples = {s.id: s for s in read_jsonl(tmp_path / "samples.jsonl", Sample)}
    for record in written:
        assert set(ALL_CHECKS) <= set(record.checks), record.checks
        assert all(isinstance(c, CheckResult) for c in record.checks.values())
        assert record.provenance["writer"] == "template"
        # The recorded checks are the real ones: recomputing them from scratch agrees.
        sample = samples[record.sample_id]
        assert record.chain == sample.chain
        fresh = check_record(
            record.model_copy(update={"checks": {}}), tiny.store, sample=sample, min_hops=2
        )
        assert fresh.checks == {k: v for k, v in record.checks.items() if k != "near_duplicate"}
    assert counts.passed == sum(r.passed for r in written)
    failed = {name for r in written for name, c in r.checks.items() if not c.passed}
    assert set(counts.failed_checks) == failed


def test_failing_checks_are_recorded_not_dropped(tiny: Tiny, tmp_path: Path) -> None:
    # Chains of at most 3 hops cannot pass a 4-hop minimum: every record says so.
    counts = generate(tiny, tmp_path, QABatchOptions(n=4, max_hops=3, min_hops=4, workers=2))
    written = records(tmp_path)
    assert counts.written == 4 and len(written) == 4
    assert counts.failed_checks["min_hops"] == 4 and counts.passed == 0
    for record in written:
        assert record.hops <= 3 and not record.passed
        assert record.checks["min_hops"].passed is False and record.checks["min_hops"].detail


def test_rerun_writes_nothing_new_and_a_larger_n_adds_the_difference(
    tiny: Tiny, tmp_path: Path
) -> None:
    options = QABatchOptions(n=4, workers=3, seed=5)
    first = generate(tiny, tmp_path, options)
    before = lines(tmp_path / "qa.jsonl")
    assert first.written == 4 and len(before) == 4

    again = generate(tiny, tmp_path, options)
    assert (again.written, again.already_done) == (0, 4)
    assert lines(tmp_path / "qa.jsonl") == before  # byte for byte: nothing rewritten

    more = generate(tiny, tmp_path, replace(options, n=7))
    after = lines(tmp_path / "qa.jsonl")
    assert (more.written, more.already_done) == (3, 4)
    assert len(after) == 7 and after[:4] == before

    # Resumed in three steps or written at once: the same questions.
    fresh = tmp_path / "fresh"
    generate(tiny, fresh, replace(options, n=7))
    assert fingerprint(records(fresh)) == fingerprint(records(tmp_path))


def test_output_does_not_depend_on_the_number_of_workers(tiny: Tiny, tmp_path: Path) -> None:
    options = QABatchOptions(n=9, seed=2)
    generate(tiny, tmp_path / "one", replace(options, workers=1))
    generate(tiny, tmp_path / "eight", replace(options, workers=8))
    one, eight = records(tmp_path / "one"), records(tmp_path / "eight")
    assert len(one) == 9
    assert fingerprint(one) == fingerprint(eight)
    assert lines(tmp_path / "one" / "samples.jsonl") == lines(tmp_path / "eight" / "samples.jsonl")


def test_near_duplicates_are_dropped_and_counted(tiny: Tiny, tmp_path: Path) -> None:
    options = QABatchOptions(n=3, workers=2, seed=7)
    generate(tiny, tmp_path / "plain", options)
    plain = records(tmp_path / "plain")
    copied = plain[1]
    # Another sample already gave (almost) the same question: one word differs.
    planted = copied.model_copy(
        update={
            "id": "Q:planted",
            "sample_id": "S:planted",
            "question": copied.question.rstrip("?") + " exactly?",
        }
    )
    target = tmp_path / "planted"
    with JsonlWriter(target / "qa.jsonl") as out:
        out.write(planted)

    counts = generate(tiny, target, options)
    written = records(target)
    assert counts.near_duplicates == 1
    assert counts.written == 3 and counts.already_done == 0  # the planted one is not ours
    assert written[0].id == "Q:planted" and len(written) == 4
    assert copied.id not in {r.id for r in written}  # the copy was dropped...
    assert {plain[0].id, plain[2].id} <= {r.id for r in written}  # ...and replaced
    assert all(r.checks["near_duplicate"].passed for r in written[1:])


def test_an_unknown_strategy_fails_clearly_and_writes_nothing(tiny: Tiny, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown sampling strategy 'nonsense'") as error:
        sampler_of("nonsense")
    for known in ("max_chain", "dual_core_bridge", "mixed"):
        assert known in str(error.value)

    out = JsonlWriter(tmp_path / "qa.jsonl")  # not opened: any write attempt would fail
    options = QABatchOptions(n=2, strategy="nonsense")
    with pytest.raises(InputError, match="unknown sampling strategy 'nonsense'"):
        asyncio.run(generate_qa(tiny.store, tiny.view, tiny.anchors, options, out=out))
    assert not (tmp_path / "qa.jsonl").exists()


def test_a_sample_without_a_chain_fails_naming_it_and_writes_no_record(
    tiny: Tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chainless = Sample(
        id="S:no-chain",
        strategy="chainless",
        seed=0,
        anchor=tiny.anchors[0],
        nodes=[tiny.anchors[0]],
        edges=[],
        chain=[],
        hops=2,
    )
    with pytest.raises(InputError, match="S:no-chain"):
        write_template_question(chainless, tiny.store)

    def chainless_strategy(view: GraphView, anchor: str, **_: Any) -> Sample:
        return chainless

    # A strategy registered by a plug-in that returns a broken sample.
    monkeypatch.setitem(STRATEGIES, "chainless", chainless_strategy)
    with pytest.raises(InputError, match="sample S:no-chain: chain"):
        generate(tiny, tmp_path, QABatchOptions(n=2, strategy="chainless", workers=1))
    assert lines(tmp_path / "qa.jsonl") == []
    assert lines(tmp_path / "samples.jsonl") == []


def test_harder_question_is_longer_or_deeper_and_passes(tiny: Tiny, tmp_path: Path) -> None:
    generate(tiny, tmp_path, QABatchOptions(n=4, seed=1, workers=4))
    harder = []
    for record in records(tmp_path):
        result = asyncio.run(harder_question(record, 2, tiny.store, tiny.view))
        if result is None:
            continue
        harder.append(result)
        assert result.difficulty.level == 2 and result.passed
        assert result.chain[0] == record.chain[0] and result.hops >= record.hops
        assert result.id != record.id
    assert harder


# -- LLM writer through the batch --------------------------------------------------------------

_CARD = re.compile(r"^- \[(E\d+)\] (\S+) \(", re.MULTILINE)
_NAME_TARGET = re.compile(r"^- name: (.+)$", re.MULTILINE)


class ScriptedWriter:
    """A writer model that answers from the prompt it is shown (validly), except for the
    second chain it sees, to which it answers without JSON every time."""

    def __init__(self) -> None:
        self.starts: list[str] = []

    def __call__(self, body: dict) -> Reply:
        prompt = "\n".join(str(m.get("content")) for m in body["messages"])
        cards = dict(_CARD.findall(prompt))
        start = cards["E1"]
        if start not in self.starts:
            self.starts.append(start)
        if self.bad == start:
            return Reply.text("I would rather not write JSON today.")
        # A question that names nothing and differs per chain (no near duplicates).
        digest = hashlib.sha256(" ".join(cards.values()).encode()).hexdigest()
        words = " ".join(digest[i : i + 5] for i in range(0, 40, 5))
        last = max(cards, key=lambda p: int(p[1:]))
        payload = {
            "question": f"Puzzle {words}: which rare condition ends this chain of relations?",
            "answer": _NAME_TARGET.findall(prompt)[0].strip(),
            "cheat_sheet": ["Identify [E1] from its clues.", f"Follow the chain to [{last}]."],
            "entity_mapping": cards,
        }
        return Reply.text(json.dumps(payload))

    @property
    def bad(self) -> str | None:
        return self.starts[1] if len(self.starts) > 1 else None


def _writer_settings(server: FakeOpenAIServer, folder: Path) -> Settings:
    endpoint = EndpointSettings(
        base_url=server.base_url, model="writer-model", retry_backoff_s=0.01, max_retries=0
    )
    return Settings(workspace=folder / "ws", llm={"writer": endpoint})


def _llm_generate(tiny: Tiny, folder: Path, server: FakeOpenAIServer, **options: Any):
    settings = _writer_settings(server, folder)
    batch = QABatchOptions(writer="llm", paradigm="identify", workers=1, **options)

    async def go() -> QABatchCounts:
        async with LLMGateway(settings) as gateway:
            with (
                JsonlWriter(folder / "qa.jsonl") as out,
                JsonlWriter(folder / "qa.rejected.jsonl", key="sample_id") as rejected,
            ):
                return await generate_qa(
                    tiny.store,
                    tiny.view,
                    tiny.anchors[:8],
                    batch,
                    out=out,
                    rejected=rejected,
                    gateway=gateway,
                )

    return asyncio.run(go())


def test_llm_writer_records_and_rejections(tiny: Tiny, tmp_path: Path, fake_llm) -> None:
    script = ScriptedWriter()
    fake_llm.default = script
    counts = _llm_generate(tiny, tmp_path, fake_llm, n=2, strategy="max_chain")

    written = records(tmp_path)
    assert counts.written == 2 and len(written) == 2
    assert counts.rejected == 1
    for record in written:
        assert record.provenance["writer"] == "llm:writer-model"
        assert record.chain[0] != script.bad and record.paradigm == "identify"
        assert record.answer_id == record.chain[-1]
        assert record.answer == tiny.store.entity(record.chain[-1]).name
        assert set(ALL_CHECKS) <= set(record.checks), record.checks
        for name in ("answer_not_in_question", "no_intermediate_names", "answer_is_chain_end",
                     "cheat_sheet_placeholders_only"):  # fmt: skip
            assert record.checks[name].passed, (name, record.checks[name])
        assert record.specialties  # tagged from the KG when the model gave none
    rejected = [json.loads(line) for line in lines(tmp_path / "qa.rejected.jsonl")]
    assert len(rejected) == 1
    assert rejected[0]["reason"].startswith("malformed output")
    assert rejected[0]["raw_output"] == "I would rather not write JSON today."
    assert rejected[0]["writer"] == "llm:writer-model"
    assert sum(counts.rejection_reasons.values()) == 1
    # The malformed chain got exactly one repair round: two requests.
    asked = [
        r
        for r in fake_llm.chat_requests
        if f"[E1] {script.bad} (" in r.json["messages"][1]["content"]
    ]
    assert len(asked) == 2


def test_llm_batch_cut_short_after_a_rejection_is_finished_by_a_rerun(
    tiny: Tiny, tmp_path: Path, fake_llm
) -> None:
    script = ScriptedWriter()
    fake_llm.default = script
    _llm_generate(tiny, tmp_path / "whole", fake_llm, n=2, strategy="max_chain")
    whole = records(tmp_path / "whole")
    assert len(whole) == 2

    # The same run, cut by a crash after the rejection and before the last record.
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "qa.jsonl").write_text(lines(tmp_path / "whole" / "qa.jsonl")[0] + "\n")
    (cut / "qa.rejected.jsonl").write_text(
        (tmp_path / "whole" / "qa.rejected.jsonl").read_text(encoding="utf-8")
    )
    asked_before = len(fake_llm.chat_requests)
    counts = _llm_generate(tiny, cut, fake_llm, n=2, strategy="max_chain")
    assert [r.id for r in records(cut)] == [r.id for r in whole]
    assert (counts.written, counts.already_done) == (1, 1)
    # The rejected sample is not asked again.
    again = fake_llm.chat_requests[asked_before:]
    assert all(f"[E1] {script.bad} (" not in r.json["messages"][1]["content"] for r in again)


def test_chain_names_cover_every_chain_entity(tiny: Tiny) -> None:
    sample = sampler_of("max_chain")(tiny.view, tiny.anchors[0], max_hops=3, seed=0)
    names = chain_names(tiny.store, sample.chain)
    assert list(names) == list(dict.fromkeys(sample.chain[0::2]))
    for entity_id, found in names.items():
        entity = tiny.store.entity(entity_id)
        assert found == [entity.name, *entity.aliases]
