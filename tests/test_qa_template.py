"""The offline template QA writer: obfuscation, candidates, paradigms, cheat sheets, bad input.

A crafted graph whose answers are known by hand checks the candidate counts and the
constraints; the tiny bundle checks leakage over many sampled chains in both languages.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import pytest

from medresearcher.data import bundle_dir, bundle_manifest
from medresearcher.errors import InputError
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.qa import candidates as candidates_module
from medresearcher.qa.cheatsheet import cheat_sheet, masked_chain, placeholder_map
from medresearcher.qa.kg_facts import NameMatcher, facts_for
from medresearcher.qa.lang import phrases
from medresearcher.qa.obfuscation import describe, own_clues
from medresearcher.qa.template_writer import PARADIGMS, write_template_question
from medresearcher.sampling import STRATEGIES, GraphView, mixed
from medresearcher.schema import MASK, Entity, Relation, Sample

NOW = "2025-01-01T00:00:00Z"
VERY = "Very frequent (99-80%)"
OCCASIONAL = "Occasional (29-5%)"
SOURCE = "test"


# -- an independent leak reader (not the writer's own NameMatcher) -------------------------


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in text if not unicodedata.combining(c))


def named(text: str, names: Iterable[str]) -> list[str]:
    """Names found in ``text``: whole words, any case, punctuation-insensitive, >= 3 chars;
    CJK names as substrings."""
    words = " " + " ".join(re.sub(r"[\W_]+", " ", _fold(text)).split()) + " "
    found = []
    for name in names:
        if re.search(r"[\u4e00-\u9fff]", name):
            if name in text:
                found.append(name)
            continue
        needle = " ".join(re.sub(r"[\W_]+", " ", _fold(name)).split())
        if len(needle.replace(" ", "")) >= 3 and f" {needle} " in words:
            found.append(name)
    return found


# -- a crafted graph ----------------------------------------------------------------------------


def _disease(id_: str, name: str, aliases: list[str], **attrs: object) -> Entity:
    return Entity(
        id=id_, type="disease", name=name, aliases=aliases, attrs={"rare": True, **attrs},
        source=SOURCE,
    )  # fmt: skip


def _rel(subj: str, pred: str, obj: str, frequency: str | None = None) -> Relation:
    clinical = {"frequency": frequency} if frequency else {}
    return Relation(subj=subj, pred=pred, obj=obj, clinical=clinical, source=SOURCE)


def crafted_store(path: Path, *, twin: bool = False) -> GraphStore:
    """ORPHA:1 →P1← ORPHA:2 →P2← ORPHA:3 (the answer); ORPHA:4 also has P2 as very frequent
    and differs from ORPHA:3 in inheritance only (with ``twin``: in nothing at all)."""
    answer_attrs = {
        "inheritance": ["X-linked recessive"],
        "onset": ["Childhood"],
        "prevalence_class": "1-9 / 1 000 000",
        "n_phenotypes": 2,
    }
    rival_attrs = dict(answer_attrs)
    if not twin:
        rival_attrs["inheritance"] = ["Autosomal recessive"]
    entities = [
        _disease("ORPHA:1", "Alphaline syndrome", ["ALS-X"], inheritance=["Autosomal dominant"],
                 onset=["Adult"], prevalence_class="<1 / 1 000 000", n_phenotypes=1),
        _disease("ORPHA:2", "Betamorph disease", ["Betamorph disorder"], onset=["Infancy"],
                 inheritance=["Autosomal recessive"], n_phenotypes=2),
        _disease("ORPHA:3", "Gammaroot syndrome", ["Gammaroot deficiency"], **answer_attrs),
        _disease("ORPHA:4", "Deltawave syndrome", [], **rival_attrs),
        _disease("ORPHA:5", "Epsilonite disease", [], inheritance=["Autosomal dominant"],
                 onset=["Neonatal"], n_phenotypes=1),
        Entity(id="HP:1", type="phenotype", name="Spiky fever", source=SOURCE),
        Entity(id="HP:2", type="phenotype", name="Angiokeratoma", source=SOURCE),
        Entity(id="HP:3", type="phenotype", name="Hoarse voice", source=SOURCE),
        Entity(id="HGNC:1", type="gene", name="GMR1", aliases=["gammaroot kinase 1"],
               attrs={"symbol": "GMR1", "full_name": "gammaroot kinase 1"}, source=SOURCE),
        Entity(id="ORPHA:900", type="category", name="Rare lysosomal wobble disease",
               attrs={"disorder_type": "Category"}, source=SOURCE),
        Entity(id="ORPHA:901", type="category", name="Gammaroot syndrome and related disorders",
               attrs={"disorder_type": "Category"}, source=SOURCE),
        Entity(id="DOID:1", type="disease", name="gammaroot disease", source=SOURCE),
    ]  # fmt: skip
    relations = [
        _rel("ORPHA:1", "has_phenotype", "HP:1", VERY),
        _rel("ORPHA:2", "has_phenotype", "HP:1", VERY),
        _rel("ORPHA:2", "has_phenotype", "HP:2", OCCASIONAL),
        _rel("ORPHA:3", "has_phenotype", "HP:2", VERY),
        _rel("ORPHA:3", "has_phenotype", "HP:3", OCCASIONAL),
        _rel("ORPHA:4", "has_phenotype", "HP:2", VERY),
        _rel("ORPHA:4", "has_phenotype", "HP:3", OCCASIONAL),
        _rel("ORPHA:5", "has_phenotype", "HP:3", VERY),
        _rel("ORPHA:3", "associated_gene", "HGNC:1"),
        _rel("ORPHA:5", "associated_gene", "HGNC:1"),
        _rel("ORPHA:3", "subclass_of", "ORPHA:900"),
        _rel("ORPHA:3", "subclass_of", "ORPHA:901"),
        _rel("DOID:1", "same_as", "ORPHA:3"),
    ]
    if twin:
        relations += [
            _rel("ORPHA:4", "associated_gene", "HGNC:1"),
            _rel("ORPHA:4", "subclass_of", "ORPHA:900"),
            _rel("ORPHA:4", "subclass_of", "ORPHA:901"),
        ]
    store = GraphStore(path)
    store.add_entities(entities)
    store.add_relations(relations)
    return store


CHAIN = ["ORPHA:1", "has_phenotype", "HP:1", "^has_phenotype", "ORPHA:2"]
CHAIN += ["has_phenotype", "HP:2", "^has_phenotype", "ORPHA:3"]


def _sample(chain: list[str], edges: list[list[str]] | None = None, id_: str = "S:1") -> Sample:
    return Sample(
        id=id_, strategy="augmented_chain", seed=0, anchor=chain[0], nodes=chain[0::2],
        edges=edges or [], chain=chain, hops=len(chain) // 2,
    )  # fmt: skip


@pytest.fixture
def crafted(tmp_path: Path) -> GraphStore:
    store = crafted_store(tmp_path / "kg.sqlite")
    yield store
    store.close()


@pytest.fixture(scope="module")
def tiny() -> tuple[GraphStore, GraphView]:
    import tempfile

    folder = Path(tempfile.mkdtemp())
    store = GraphStore(folder / "kg.sqlite")
    import_records(store, bundle_dir("tiny"))
    return store, GraphView.from_store(store)


def _chain_names(store: GraphStore, ids: Iterable[str]) -> list[str]:
    names = []
    for entity_id in ids:
        entity = store.entity(entity_id)
        assert entity is not None
        names += [entity.name, *entity.aliases]
    return names


# -- the crafted graph: candidates and constraints ---------------------------------------------


def test_identify_adds_the_constraint_that_makes_the_answer_unique(crafted: GraphStore) -> None:
    record = write_template_question(_sample(CHAIN), crafted, paradigm="identify", now=NOW)
    assert record.answer == "Gammaroot syndrome" and record.answer_id == "ORPHA:3"
    assert {"Gammaroot deficiency", "gammaroot disease"} <= set(record.answer_aliases)
    assert record.provenance["candidates"] == 1
    assert record.provenance["candidates_exact"] is True
    used = [c["clue"] for c in record.provenance["constraints"]]
    assert used, "the bare chain also ends at ORPHA:4, so a constraint is needed"
    # the constraint shown in the question is one that ORPHA:4 fails
    assert "inheritance" in used or any(u.startswith(("group:", "count:")) for u in used)
    for constraint in record.provenance["constraints"]:
        assert constraint["text"] in record.question
    chain_names = _chain_names(crafted, CHAIN[0::2])
    assert named(record.question, chain_names) == []
    assert record.question.endswith("Which disorder is it?")
    assert record.created_at == NOW and record.checks == {}
    assert record.provenance["writer"] == "template"
    assert record.provenance["kg"].startswith("kg.sqlite:")


def test_identical_twins_stay_two_candidates(tmp_path: Path) -> None:
    """Nothing tells ORPHA:3 from ORPHA:4: the count must say 2, never a false 1."""
    store = crafted_store(tmp_path / "twin.sqlite", twin=True)
    record = write_template_question(_sample(CHAIN), store, paradigm="identify", now=NOW)
    assert record.provenance["candidates"] == 2
    store.close()


def test_walk_over_budget_over_counts_never_under(
    crafted: GraphStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = write_template_question(_sample(CHAIN), crafted, paradigm="count", now=NOW)
    monkeypatch.setattr(candidates_module, "WALK_BUDGET", 0)
    relaxed = write_template_question(_sample(CHAIN), crafted, paradigm="count", now=NOW)
    assert relaxed.provenance["candidates_exact"] is False
    assert relaxed.provenance["candidates"] >= exact.provenance["candidates"]


def test_attribute_and_count_answers_come_from_the_end(crafted: GraphStore) -> None:
    attribute = write_template_question(_sample(CHAIN), crafted, paradigm="attribute", now=NOW)
    source = attribute.provenance["answer_source"]
    assert source["entity"] == "ORPHA:3" and source["attribute"] in (
        "inheritance", "onset", "prevalence_class",
    )  # fmt: skip
    expected = {
        "inheritance": "X-linked recessive",
        "onset": "Childhood",
        "prevalence_class": "1-9 / 1 000 000",
    }[source["attribute"]]
    assert attribute.answer == expected
    assert named(attribute.question, [attribute.answer, *attribute.answer_aliases]) == []
    count = write_template_question(_sample(CHAIN), crafted, paradigm="count", now=NOW)
    assert count.provenance["answer_source"]["entity"] == "ORPHA:3"
    key = count.provenance["answer_source"]["count_of"]
    assert count.answer == {"has_phenotype": "2", "associated_gene": "1"}[key]
    assert count.question.endswith("?")


def test_intersect_meets_a_second_line_from_the_sample_edges(crafted: GraphStore) -> None:
    sample = _sample(CHAIN, edges=[["ORPHA:3", "associated_gene", "HGNC:1"]])
    record = write_template_question(sample, crafted, paradigm="intersect", now=NOW)
    second = record.provenance["second_chain"]
    assert second[-1] == "ORPHA:3" and "HGNC:1" in second
    assert second[0] == "ORPHA:5"  # the gene's other disorder starts the second line
    assert "Second line:" in record.question and "First line:" in record.question
    assert record.provenance["candidates"] == 1
    assert set(record.placeholders.values()) == {*CHAIN[0::2], *second[0::2]}
    assert any("Second line" in step for step in record.cheat_sheet)
    names = _chain_names(crafted, [*CHAIN[0::2], *second[0::2]])
    assert named(record.question, names) == []
    assert named(" ".join(record.cheat_sheet), names) == []


def test_gene_end_asks_for_the_symbol(crafted: GraphStore) -> None:
    chain = ["ORPHA:5", "associated_gene", "HGNC:1"]
    record = write_template_question(_sample(chain), crafted, paradigm="attribute", now=NOW)
    assert record.answer == "GMR1"
    assert record.provenance["answer_source"]["attribute"] == "symbol"
    assert "GMR1" not in record.question and "gammaroot" not in record.question.lower()


def test_level_deepens_obfuscation_and_adds_a_constraint(crafted: GraphStore) -> None:
    one = write_template_question(_sample(CHAIN), crafted, paradigm="identify", level=1, now=NOW)
    two = write_template_question(_sample(CHAIN), crafted, paradigm="identify", level=2, now=NOW)
    assert two.difficulty.level == 2 and one.difficulty.level == 1
    assert len(two.provenance["constraints"]) >= max(2, len(one.provenance["constraints"]))
    clue_kinds = [c["clue"] for clues in two.provenance["clues"].values() for c in clues]
    assert "neighbour" in clue_kinds  # level 2 describes through neighbours
    assert one.id != two.id


def test_deterministic_and_id_stable(crafted: GraphStore) -> None:
    a = write_template_question(_sample(CHAIN), crafted, seed=3, now=NOW)
    b = write_template_question(_sample(CHAIN), crafted, seed=3, now=NOW)
    assert a == b
    assert a.paradigm in PARADIGMS
    other_seed = write_template_question(_sample(CHAIN), crafted, paradigm=a.paradigm, seed=4)
    assert other_seed.id == a.id  # sample, writer, paradigm, level, language: not the seed


def test_chinese_pack(crafted: GraphStore) -> None:
    record = write_template_question(
        _sample(CHAIN), crafted, paradigm="identify", language="zh", now=NOW
    )
    assert record.language == "zh"
    assert record.question.endswith("它是哪一种疾病？")
    assert "从" in record.question and record.cheat_sheet[-1].startswith("回答")
    assert named(record.question, _chain_names(crafted, CHAIN[0::2])) == []


def test_masked_chain_placeholders_and_cheat_sheet(crafted: GraphStore) -> None:
    record = write_template_question(_sample(CHAIN), crafted, paradigm="identify", now=NOW)
    assert record.masked_chain == [[MASK, p, MASK] for p in CHAIN[1::2]]
    assert record.placeholders == {f"E{i}": e for i, e in enumerate(CHAIN[0::2], start=1)}
    sheet = " ".join(record.cheat_sheet)
    assert "[E1]" in sheet and "[E5]" in sheet and "has_phenotype backwards" in sheet
    assert named(sheet, [*_chain_names(crafted, CHAIN[0::2]), *CHAIN[0::2]]) == []
    assert record.cheat_sheet[-1] == "Answer with the name of [E5]."


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        (["ORPHA:1"], "chain: needs entity, predicate, entity"),
        (["ORPHA:1", "has_phenotype"], "chain: needs entity, predicate, entity"),
        (["ORPHA:1", "has_phenotype", "HP:404"], "'HP:404' is not in the graph"),
        (["ORPHA:1", "has_phenotype", "HP:2"], "no edge ORPHA:1 -has_phenotype-> HP:2"),
    ],
)
def test_bad_chains_fail_naming_sample_and_field(
    crafted: GraphStore, chain: list[str], message: str
) -> None:
    sample = Sample(
        id="S:bad", strategy="max_chain", seed=0, anchor="ORPHA:1", nodes=[], edges=[],
        chain=chain, hops=0,
    )  # fmt: skip
    with pytest.raises(InputError, match="sample S:bad: chain") as info:
        write_template_question(sample, crafted)
    assert message in str(info.value)


def test_bad_options_fail(crafted: GraphStore) -> None:
    with pytest.raises(InputError, match="paradigm: 'riddle'"):
        write_template_question(_sample(CHAIN), crafted, paradigm="riddle")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="language: 'fr'"):
        write_template_question(_sample(CHAIN), crafted, language="fr")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="level"):
        write_template_question(_sample(CHAIN), crafted, level=0)
    phenotype_end = ["ORPHA:1", "has_phenotype", "HP:1"]
    with pytest.raises(InputError, match="'attribute' is not supported"):
        write_template_question(_sample(phenotype_end), crafted, paradigm="attribute")


# -- obfuscation and the pieces -------------------------------------------------------------------


def test_clues_are_true_of_the_entity_and_never_name_it(crafted: GraphStore) -> None:
    import random

    facts = facts_for(crafted)
    ph = phrases("en")
    clues = {c.kind: c for c in own_clues(facts, "ORPHA:3", ph)}
    assert clues["inheritance"].text == "inherited as X-linked recessive"
    assert clues["inheritance"].members == {"ORPHA:3"}
    assert clues["onset"].text == "with onset in childhood"
    assert clues["onset"].members == {"ORPHA:3", "ORPHA:4"}
    assert clues["n_phenotypes"].text == "with 2 phenotypes annotated in Orphanet"
    assert clues["group:ORPHA:900"].members == {"ORPHA:3"}
    assert clues["count:associated_gene"].text == "linked to a single gene"
    assert all("ORPHA:3" in c.members for c in clues.values())
    assert clues["group:ORPHA:901"].members == {"ORPHA:3"}
    # a group named after the entity (901), or whose label the names contain (900), is dropped
    leaks = NameMatcher(["Gammaroot syndrome", "Rare lysosomal wobble disease type 2"])
    for level in (1, 2, 3):
        for seed in range(4):
            rng = random.Random(seed)
            described = describe(facts, "ORPHA:3", ph, level=level, rng=rng, leaks=leaks, n_own=3)
            text = described.text(ph)
            assert "Gammaroot" not in text and "wobble" not in text, text
        assert "ORPHA:3" in described.members(facts)
        assert described.clues


def test_name_matcher_reads_names_like_the_checks() -> None:
    matcher = NameMatcher(["Anderson-Fabry disease", "FD", "法布里病", "GLA"])
    assert matcher("Think of ANDERSON–FABRY disease's course")
    assert not matcher("an FD case")  # under three characters: ignored
    assert matcher("患有法布里病的")
    assert not matcher("a gladly given answer")  # whole words only
    assert matcher.contains_label("Fabry disease") and not matcher.contains_label(
        "Lysosomal disease"
    )


def test_cheat_sheet_pieces() -> None:
    chain = ["A", "associated_gene", "B", "^associated_gene", "C"]
    assert masked_chain(chain) == [
        [MASK, "associated_gene", MASK],
        [MASK, "^associated_gene", MASK],
    ]
    with pytest.raises(InputError, match="chain"):
        masked_chain(["A", "p"])
    assert placeholder_map(chain, ["D", "treats", "C"]) == {
        "E1": "A", "E2": "B", "E3": "C", "E4": "D",
    }  # fmt: skip
    steps = cheat_sheet(
        chain, "count", types={"A": "disease", "B": "gene", "C": "disease"},
        clues={"A": ["with onset in infancy"]}, answer_key="has_phenotype",
    )  # fmt: skip
    assert steps[0] == "Identify [E1] (disorder) from its clues: with onset in infancy."
    assert steps[2] == "From [E2], follow associated_gene backwards to [E3] (disorder)."
    assert steps[-1] == "Count the annotated phenotypes of [E3] and answer with the number."


def test_language_packs_cover_every_demo_predicate_both_ways() -> None:
    predicates = bundle_manifest("demo")["counts"]["relations_by_predicate"]
    for language in ("en", "zh"):
        pack = phrases(language)
        for predicate in predicates:
            entry = pack.get("predicates", predicate)
            assert entry, f"{language}: no templates for {predicate}"
            for key in ("forward", "reverse", "clue_forward", "clue_reverse"):
                assert "{" in entry[key], f"{language}: {predicate}.{key}"
        for paradigm in ("identify", "attribute", "count"):
            assert pack.get("frames", paradigm)
    en, zh = phrases("en").data, phrases("zh").data
    for section in ("frames", "attribute_labels", "count_labels", "cheatsheet", "clues"):
        assert set(en[section]) <= set(zh[section]), section


# -- the tiny bundle: many sampled chains, no leaks -----------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh"])
def test_tiny_bundle_questions_name_no_chain_entity(
    tiny: tuple[GraphStore, GraphView], language: str
) -> None:
    store, view = tiny
    anchors = sorted(
        e.id for e in store.iter_entities() if e.id.startswith("ORPHA:") and e.attrs.get("rare")
    )
    written = 0
    for index, anchor in enumerate(anchors[:24]):
        sample = mixed(view, anchor, max_hops=4, seed=index)
        if sample.hops < 1:
            continue
        record = write_template_question(sample, store, language=language, seed=index, now=NOW)
        written += 1
        assert record.answer_id == sample.chain[-1]
        others = [e for e in sample.chain[0::2] if e != sample.chain[-1]]
        assert named(record.question, _chain_names(store, others)) == [], record.question
        answer_names = [record.answer, *record.answer_aliases]
        assert named(record.question, answer_names) == [], record.question
        assert named(" ".join(record.cheat_sheet), _chain_names(store, sample.chain[0::2])) == []
        assert record.provenance["candidates"] >= 1
        assert len(record.masked_chain) == sample.hops
    assert written >= 20


def test_fabry_chain_in_tiny(tiny: tuple[GraphStore, GraphView]) -> None:
    store, view = tiny
    sample = STRATEGIES["max_chain"](view, "ORPHA:324", max_hops=4, seed=1)
    record = write_template_question(sample, store, paradigm="identify", now=NOW)
    assert "Fabry" not in record.question and "GLA" not in record.question
    assert record.question.startswith("Start from a rare disorder")
    assert record.specialties and "endocrinology & metabolism" in record.specialties
