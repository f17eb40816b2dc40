"""Rare-entity mining (paper §3.1.1): mention matching, rate and τ, the LLM filter, seeds."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import pytest

from medresearcher.data import iter_documents, iter_entities
from medresearcher.kg.rarity import (
    MentionMatcher,
    RareCandidate,
    RareVerdict,
    filter_candidates,
    mine_rare_entities,
    write_seeds,
)
from medresearcher.llm.gateway import LLMGateway
from medresearcher.schema import Document, Entity
from medresearcher.workspace.jsonl import read_jsonl
from tests.conftest import run
from tests.fakes.openai_server import Reply


def entity(id: str, type: str, name: str, *aliases: str) -> Entity:
    return Entity(id=id, type=type, name=name, aliases=list(aliases), source="test")


FABRY = entity(
    "ORPHA:324",
    "disease",
    "Fabry disease",
    "Alpha-galactosidase A deficiency",
    "Anderson-Fabry disease",
    "FD",
)
GLA = entity("HGNC:4296", "gene", "GLA", "galactosidase alpha")
CAT = entity("HGNC:1516", "gene", "CAT", "catalase")
ANGIO = entity("HP:0001014", "phenotype", "Angiokeratoma")
CANDLE = entity("ORPHA:325004", "disease", "Chronic atypical neutrophilic dermatosis", "CANDLE")


@pytest.fixture
def matcher() -> MentionMatcher:
    return MentionMatcher([FABRY, GLA, CAT, ANGIO, CANDLE])


# -- matching --------------------------------------------------------------------------------


def test_matches_only_at_word_boundaries(matcher: MentionMatcher) -> None:
    text = "GLAD GLA1 xGLA GLAx 3GLA angiokeratomas (GLA) GLA-related GLA"
    assert matcher.count(text) == Counter({"HGNC:4296": 3})
    # no stemming: a plural is another word (add it as an alias when it matters)
    assert "HP:0001014" not in matcher.count("multiple angiokeratomas")
    assert matcher.count("Angiokeratoma.")["HP:0001014"] == 1


def test_gene_symbols_are_case_sensitive_other_names_are_not(matcher: MentionMatcher) -> None:
    assert matcher.count("gla Gla cat Cat the cat sat") == Counter()
    assert matcher.count("GLA and CAT") == Counter({"HGNC:4296": 1, "HGNC:1516": 1})
    counts = matcher.count("FABRY DISEASE, fabry disease and Fabry Disease; Catalase.")
    assert counts == Counter({"ORPHA:324": 3, "HGNC:1516": 1})


def test_gene_symbols_are_exact_even_when_not_upper_case() -> None:
    c9 = entity("HGNC:28337", "gene", "C9orf72")
    for m in (MentionMatcher([c9, GLA]), MentionMatcher([c9, GLA], exact_acronyms=False)):
        assert m.count("C9orf72 c9orf72 C9ORF72 GLA gla") == Counter(
            {"HGNC:28337": 1, "HGNC:4296": 1}
        )


def test_upper_case_acronyms_match_exactly_unless_disabled() -> None:
    assert MentionMatcher([CANDLE]).count("a candle, CANDLE") == Counter({"ORPHA:325004": 1})
    loose = MentionMatcher([CANDLE], exact_acronyms=False)
    assert loose.count("a candle, CANDLE") == Counter({"ORPHA:325004": 2})


def test_aliases_count_for_their_entity_and_overlapping_names_once(
    matcher: MentionMatcher,
) -> None:
    text = "Anderson-Fabry disease (alpha-galactosidase A deficiency) differs from Fabry disease."
    assert matcher.count(text)["ORPHA:324"] == 3  # "Fabry disease" inside the alias: once
    matches = [m for m in matcher.iter_matches(text) if m.entity_id == "ORPHA:324"]
    assert [m.term for m in matches] == [
        "Anderson-Fabry disease",
        "alpha-galactosidase A deficiency",
        "Fabry disease",
    ]
    assert all(text[m.start : m.end] == m.term for m in matches)


def test_separators_are_interchangeable_and_unicode_is_handled(matcher: MentionMatcher) -> None:
    text = "Anderson–Fabry\u00a0disease’s course; ÉGLA and GLAé are words, «GLA» is one"
    assert matcher.count(text) == Counter({"ORPHA:324": 1, "HGNC:4296": 1})


def test_overlapping_names_of_different_entities_both_count() -> None:
    m = MentionMatcher(
        [("spinal muscular atrophy", "SMA"), ("childhood spinal muscular atrophy", "CSMA")]
    )
    assert m.count("Childhood spinal muscular atrophy.") == Counter({"SMA": 1, "CSMA": 1})


def test_a_name_that_overlaps_itself_counts_once_per_overlap() -> None:
    m = MentionMatcher([("type 1 type", "X")])
    assert m.count("type 1 type 1 type") == Counter({"X": 1})
    assert m.count("type 1 type, type 1 type") == Counter({"X": 2})


def test_short_terms_and_numbers_are_skipped() -> None:
    pairs = [("FD", "A"), ("1234", "B"), ("12-3", "C"), ("abc", "D")]
    assert MentionMatcher(pairs).count("FD 1234 12-3 abc") == Counter({"D": 1})
    assert MentionMatcher(pairs, min_length=2).count("FD 1234 abc") == Counter({"A": 1, "D": 1})
    assert len(MentionMatcher(pairs)) == 1


def _reference_count(pairs: list[tuple[str, str]], text: str) -> Counter[str]:
    """A slow, obvious matcher: one regex per name, then leftmost-longest per entity."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for term, entity_id in pairs:
        body = r"[^\w]".join(re.escape(part) for part in re.split(r"[^\w]", term))
        pattern = re.compile(rf"(?<![^\W_])(?=({body})(?![^\W_]))", re.IGNORECASE)
        for found in pattern.finditer(text):
            spans.setdefault(entity_id, []).append((found.start(1), found.end(1)))
    counts: Counter[str] = Counter()
    for entity_id, found in spans.items():
        last_end = -1
        for start, end in sorted(found, key=lambda s: (s[0], -s[1])):
            if start >= last_end:
                counts[entity_id] += 1
                last_end = end
    return counts


def test_count_agrees_with_a_naive_reference_on_random_text() -> None:
    rng = random.Random(3)
    words = ["ab", "cd", "ef", "abc", "cde", "fab", "abcd"]
    pairs = []
    for k in range(40):
        name = " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        if len(name) >= 3:
            pairs.append((name, f"E{k % 25}"))  # several names per entity
    m = MentionMatcher(pairs)
    for _ in range(200):
        text = rng.choice([" ", "-", ", "]).join(rng.choice(words) for _ in range(30))
        assert m.count(text) == _reference_count(pairs, text), text
        assert m.count(text) == Counter(x.entity_id for x in m.iter_matches(text))


# -- rates and τ ------------------------------------------------------------------------------


def _corpus() -> list[str]:
    """1,000 tokens in 10 texts: Fabry disease 1 time, GLA 4 times, angiokeratoma 9 times."""
    texts = ["filler " * 100 for _ in range(10)]
    texts[0] = "Fabry disease " + "filler " * 98
    texts[1] = "GLA GLA GLA GLA " + "filler " * 96
    texts[2] = "angiokeratoma " * 9 + "filler " * 91
    return texts


def test_rate_and_tau_select_candidates_sorted_by_rate() -> None:
    entities = [FABRY, GLA, ANGIO, CAT]
    report = mine_rare_entities(_corpus(), entities, tau=5e-3)
    assert (report.tokens, report.documents) == (1000, 10)
    assert "keeps 1 to 4 mentions: 2 candidates" in report.describe()
    assert report.counts == {"ORPHA:324": 1, "HGNC:4296": 4, "HP:0001014": 9}
    assert report.candidates == [
        RareCandidate("ORPHA:324", "Fabry disease", "disease", 1, 1e-3),
        RareCandidate("HGNC:4296", "GLA", "gene", 4, 4e-3),
    ]
    # rate < τ is strict; never-mentioned entities (CAT) are not candidates
    assert [c.entity_id for c in mine_rare_entities(_corpus(), entities, tau=4e-3).candidates] == [
        "ORPHA:324"
    ]
    wide = mine_rare_entities(_corpus(), entities, tau=1.0, min_mentions=2)
    assert [c.entity_id for c in wide.candidates] == ["HGNC:4296", "HP:0001014"]


def test_allowed_types_and_the_rate_scale() -> None:
    report = mine_rare_entities(_corpus(), [FABRY, GLA, ANGIO], tau=1.0, allowed_types=["gene"])
    assert [c.entity_id for c in report.candidates] == ["HGNC:4296"]
    assert report.rate_of_one == pytest.approx(1e-3)
    assert "1 mention = 1.00e-03" in report.describe()
    paper = mine_rare_entities(_corpus(), [FABRY], tau=1e-6)
    assert paper.candidates == []
    assert "nothing can qualify" in paper.describe()


def test_documents_count_title_and_text() -> None:
    doc = Document(
        doc_id="PMID:1",
        title="Fabry disease",
        text="GLA variants cause it.",
        source="pubmed",
        source_type="article",
    )
    report = mine_rare_entities([doc], [FABRY, GLA], tau=1.0)
    assert report.tokens == 6
    assert report.counts == {"ORPHA:324": 1, "HGNC:4296": 1}


def test_streaming_over_the_tiny_bundle() -> None:
    report = mine_rare_entities(iter_documents("tiny"), iter_entities("tiny"), tau=1e-3)
    assert report.documents > 100 and report.tokens > 10_000
    assert report.counts["ORPHA:324"] > 0  # Fabry disease
    assert report.candidates
    rates = [(c.rate, c.entity_id) for c in report.candidates]
    assert rates == sorted(rates)
    assert all(0 < c.rate < 1e-3 and c.type != "category" for c in report.candidates)


# -- the LLM filter and the seeds file ------------------------------------------------------

CANDIDATES = [
    RareCandidate("ORPHA:324", "Fabry disease", "disease", 1, 1e-6),
    RareCandidate("X:1", "Fabyr disaese", "disease", 1, 1e-6),
    RareCandidate("X:2", "patient", "phenotype", 1, 1e-6),
    RareCandidate("HGNC:4296", "GLA", "gene", 2, 2e-6),
]


def _answer(**keep: bool) -> Reply:
    verdicts = [{"id": k.replace("_", ":"), "keep": v, "reason": f"r-{k}"} for k, v in keep.items()]
    return Reply.text(json.dumps({"verdicts": verdicts}))


def test_filter_keeps_and_drops_as_answered(fake_llm, make_settings) -> None:
    fake_llm.enqueue(_answer(ORPHA_324=True, X_1=False, X_2=False, HGNC_4296=True, Z_9=True))

    async def main() -> list[RareVerdict]:
        async with LLMGateway(make_settings(fake_llm)) as gateway:
            return await filter_candidates(
                CANDIDATES, gateway, "agent", context={"X:1": "a  misspelling"}
            )

    verdicts = run(main())
    assert [(v.entity_id, v.keep, v.status) for v in verdicts] == [
        ("ORPHA:324", True, "kept"),
        ("X:1", False, "dropped"),
        ("X:2", False, "dropped"),
        ("HGNC:4296", True, "kept"),
    ]  # Z:9 was not asked about: ignored
    prompt = json.dumps(fake_llm.chat_requests[0].json["messages"])
    assert "Fabyr disaese" in prompt and "context: a misspelling" in prompt


def test_a_failed_batch_is_recorded_and_the_run_goes_on(fake_llm, make_settings) -> None:
    def asks_for(entity_id: str):
        return lambda body: f"id: {entity_id} " in json.dumps(body["messages"])

    fake_llm.add_rule(asks_for("ORPHA:324"), Reply.text("not json at all"))  # and its repair
    fake_llm.add_rule(asks_for("X:2"), _answer(X_2=False))  # leaves HGNC:4296 out

    async def main() -> list[RareVerdict]:
        async with LLMGateway(make_settings(fake_llm)) as gateway:
            return await filter_candidates(CANDIDATES, gateway, "agent", batch_size=2)

    verdicts = run(main())
    assert [v.keep for v in verdicts] == [None, None, False, None]
    assert verdicts[0].status == "failed" and verdicts[0].reason.startswith("filter failed:")
    assert "no verdict" in verdicts[3].reason
    assert len(fake_llm.chat_requests) == 3  # the failed batch: question and one repair


def test_write_seeds_is_resumable(tmp_path) -> None:
    report = mine_rare_entities(_corpus(), [FABRY, GLA, ANGIO], tau=5e-3)
    verdicts = [RareVerdict("ORPHA:324", True, "a rare lysosomal disease")]
    path = tmp_path / "seeds.jsonl"
    assert write_seeds(path, report, verdicts) == 2
    assert write_seeds(path, report, verdicts) == 0
    rows = list(read_jsonl(path))
    assert [(r["entity_id"], r["filter"]) for r in rows] == [
        ("ORPHA:324", "kept"),
        ("HGNC:4296", "not run"),
    ]
    assert rows[0] == {
        "entity_id": "ORPHA:324",
        "name": "Fabry disease",
        "type": "disease",
        "mentions": 1,
        "rate": 1e-3,
        "tau": 5e-3,
        "filter": "kept",
        "reason": "a rare lysosomal disease",
    }
