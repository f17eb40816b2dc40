"""Specialty tags: the 12 specialties, the mapping from Orphanet groups and DO terms, tagging."""

from __future__ import annotations

from pathlib import Path

import pytest

from medresearcher.data import bundle_dir, iter_entities
from medresearcher.kg import GraphStore
from medresearcher.kg.io import import_records
from medresearcher.qa.specialties import (
    DO_ROOTS,
    SPECIALTIES,
    SPECIALTY_RULES,
    classification_names,
    specialties_of,
    specialties_of_name,
)
from medresearcher.schema import Entity, Relation

SOURCE = "test"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "specialties.md"


def test_twelve_specialties_each_with_a_rule() -> None:
    assert len(SPECIALTIES) == 12 and len(set(SPECIALTIES)) == 12
    assert set(SPECIALTY_RULES) == set(SPECIALTIES)
    assert set(DO_ROOTS.values()) <= set(SPECIALTIES)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Sphingolipidosis", {"endocrinology & metabolism"}),
        ("Rare renal tubular disease", {"nephrology & urology"}),
        ("Adrenal Cushing syndrome", {"endocrinology & metabolism"}),  # not "renal"
        ("Qualitative or quantitative defects of myotubularin", {"neurology"}),  # not "tubular"
        ("Constitutional hemolytic anemia due to acanthocytosis", {"hematology"}),
        ("Rare eye tumor", {"oncology", "ophthalmology & ENT"}),
        ("Pulmonary arterial hypertension", {"cardiology", "pulmonology"}),
        ("bacterial pneumonia", {"infectious disease", "pulmonology"}),
        ("Rare syndromic genetic deafness", {"ophthalmology & ENT"}),
        ("Genetic hyperpigmentation of the skin", {"dermatology"}),
        (
            "Primary immunodeficiency due to a defect in adaptive immunity",
            {"immunology & rheumatology"},
        ),
        ("Rare parenchymal liver disease", {"gastroenterology & hepatology"}),
        ("Partial deletion of the long arm of chromosome 6 syndrome", set()),
    ],
)
def test_rules_on_group_names(name: str, expected: set[str]) -> None:
    assert specialties_of_name(name) == expected


def test_every_specialty_is_reachable_from_the_demo_classification() -> None:
    """Each specialty's rule matches at least one Orphanet group or DO term of the demo
    bundle, so the tagger can reach all 12 from the demo graph."""
    reached: set[str] = set()
    for entity in iter_entities("demo"):
        if entity.type == "category" or entity.id.startswith("DOID:"):
            reached |= specialties_of_name(entity.name)
    assert reached == set(SPECIALTIES)


def test_docs_list_the_specialties() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in SPECIALTIES:
        assert f"| {name} |" in text, name


# -- tagging a chain ---------------------------------------------------------------------------


def _store(path: Path) -> GraphStore:
    def disease(id_: str, name: str, **attrs: object) -> Entity:
        return Entity(id=id_, type="disease", name=name, attrs=attrs, source=SOURCE)

    def category(id_: str, name: str) -> Entity:
        return Entity(id=id_, type="category", name=name, source=SOURCE)

    entities = [
        disease("ORPHA:1", "Kidney-eye syndrome"),
        disease("ORPHA:2", "Subtype of kidney-eye syndrome"),
        disease("ORPHA:3", "Mystery disease"),
        disease("ORPHA:4", "Hereditary retinal blight"),
        disease("DOID:9", "retinal blight", infectious=True),
        disease("DOID:10", "eye disease"),
        disease("DOID:11", "river fever"),
        category("ORPHA:900", "Rare renal tubular disease"),
        category("ORPHA:901", "Genetic cystic renal disease"),
        category("ORPHA:902", "Rare lens disease"),
        Entity(id="HP:1", type="phenotype", name="Cataract", source=SOURCE),
        Entity(id="PATHOGEN:x", type="pathogen", name="Riverbug", source=SOURCE),
    ]
    relations = [
        ("ORPHA:1", "subclass_of", "ORPHA:900"),
        ("ORPHA:1", "subclass_of", "ORPHA:901"),
        ("ORPHA:1", "subclass_of", "ORPHA:902"),
        ("ORPHA:2", "subclass_of", "ORPHA:1"),  # a subtype: classified through its parent
        ("ORPHA:1", "has_phenotype", "HP:1"),
        ("DOID:9", "same_as", "ORPHA:4"),
        ("DOID:9", "subclass_of", "DOID:10"),
        ("DOID:11", "caused_by", "PATHOGEN:x"),
    ]
    store = GraphStore(path)
    store.add_entities(entities)
    store.add_relations(Relation(subj=s, pred=p, obj=o, source=SOURCE) for s, p, o in relations)
    return store


def test_tags_follow_the_classification_of_the_chain(tmp_path: Path) -> None:
    store = _store(tmp_path / "kg.sqlite")
    # two renal groups and one eye group: nephrology first
    assert specialties_of(["ORPHA:1"], store) == ["nephrology & urology", "ophthalmology & ENT"]
    assert specialties_of(["ORPHA:2", "HP:1"], store) == specialties_of(["ORPHA:1"], store)
    assert classification_names("ORPHA:2", store) == [
        ("ORPHA:1", "Kidney-eye syndrome"),
        ("ORPHA:900", "Rare renal tubular disease"),
        ("ORPHA:901", "Genetic cystic renal disease"),
        ("ORPHA:902", "Rare lens disease"),
    ]
    # a DO twin brings its DO parent and its infectious flag
    assert set(specialties_of(["ORPHA:4"], store)) == {"infectious disease", "ophthalmology & ENT"}
    # a pathogen makes it infectious; an unclassified disease falls back to its own name
    assert specialties_of(["DOID:11"], store) == ["infectious disease"]
    assert specialties_of(["ORPHA:3", "HP:1"], store) == []
    # votes add up over the chain; max_tags caps the list
    chain = ["ORPHA:1", "ORPHA:4", "DOID:11"]
    assert specialties_of(chain, store, max_tags=None)[0] == "infectious disease"
    assert len(specialties_of(chain, store, max_tags=1)) == 1
    store.close()


def test_cache_is_dropped_when_the_store_changes(tmp_path: Path) -> None:
    store = _store(tmp_path / "kg.sqlite")
    assert specialties_of(["ORPHA:3"], store) == []
    store.add_entity(
        Entity(id="ORPHA:903", type="category", name="Rare skin disease", source=SOURCE)
    )
    store.add_relation(Relation(subj="ORPHA:3", pred="subclass_of", obj="ORPHA:903", source=SOURCE))
    assert specialties_of(["ORPHA:3"], store) == ["dermatology"]
    store.close()


def test_fabry_in_the_tiny_bundle(tmp_path: Path) -> None:
    store = GraphStore(tmp_path / "kg.sqlite")
    import_records(store, bundle_dir("tiny"))
    tags = specialties_of(["ORPHA:324"], store, max_tags=None)
    assert tags[0] == "endocrinology & metabolism"  # sphingolipidosis, lysosomal, metabolic
    assert {"cardiology", "nephrology & urology", "dermatology"} <= set(tags)
    store.close()
