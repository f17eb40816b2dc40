"""Specialty tags for QA records, read offline from the classification of a chain's diseases.

Paper §3.1.3 reports that the synthesised questions span 12 medical specialties. Here the 12
are chosen so that each one is reachable from the bundled knowledge graph, and a record is
tagged from the knowledge graph alone: every disease on the chain is looked up in

- Orphanet's classification: the ``category`` entities a disorder reaches by
  ``subclass_of`` (directly, or through the disorders it is a subtype of);
- the Disease Ontology: the DO terms above it by ``subclass_of`` and those of its
  ``same_as`` twins (DO ↔ Orphanet), plus DO's ``infectious`` flag;
- ``caused_by`` / ``transmitted_by`` (a pathogen or a vector means infectious disease) and
  ``located_in`` (the anatomy's name).

Each group name found is matched against :data:`SPECIALTY_RULES` (one regular expression
per specialty; a name may match several), and each disease spreads one vote over the
specialties it reaches, in proportion to how many of its groups point to each. The disease's
own name is read only when it has no classification at all. See docs/specialties.md for the
list, the rules and their coverage of the demo graph.
"""

from __future__ import annotations

import functools
import json
import re
import weakref
from collections import Counter
from collections.abc import Iterable
from typing import Any

from medresearcher.kg.store import GraphStore

__all__ = [
    "DO_ROOTS",
    "SPECIALTIES",
    "SPECIALTY_RULES",
    "classification_names",
    "specialties_of",
    "specialties_of_name",
]

SPECIALTIES: tuple[str, ...] = (
    "neurology",
    "cardiology",
    "hematology",
    "oncology",
    "endocrinology & metabolism",
    "immunology & rheumatology",
    "nephrology & urology",
    "gastroenterology & hepatology",
    "pulmonology",
    "dermatology",
    "ophthalmology & ENT",
    "infectious disease",
)
"""The 12 specialties, in the order used to break ties between equally supported tags."""


def _rx(*lines: str) -> re.Pattern[str]:
    return re.compile("".join(lines), re.IGNORECASE)


SPECIALTY_RULES: dict[str, re.Pattern[str]] = {
    "neurology": _rx(
        r"neuro|nerv|\bbrain|cerebr|cerebell|epilep|ataxi|spastic|paraplegi|dementia|parkinson"
        r"|dystoni|chorea|tremor|movement disorder|dyskinesi|myopath|muscular dystroph"
        r"|dystroglycan|motor neuron|leukodystroph|intellectual disability|autism"
        r"|pervasive developmental|lissenceph|microcephal|corpus callosum|encephal|headache"
        r"|hydroceph|polymicrogyr|channelopath|myasthen|myoton|myoclon|charcot-marie-tooth"
        r"|periodic paralysis|spinal (?:cord|muscular)|medullar|dandy-walker|psychiatr|prion"
        r"|arthrogryposis|moyamoya|huntington|joubert|stereotyp|\bmuscle|muscular"
        r"|qualitative or quantitative defects of"
    ),
    "cardiology": _rx(
        r"cardi|heart|arrhythm|\baort|atrial|\bventric|valv|tricuspid|septal defect|long qt"
        r"|brugada|hypertension|hypotension|vascular disease|vasculopath|lymphedema|aneurysm"
        r"|cardiovascular|(?:vascular|capillary|venous|arteriovenous) malformation|angiopath"
        r"|arteri"
    ),
    "hematology": _rx(
        r"hemat|haemat|hemopath|an(?:a)?emi|thrombocyt|platelet|coagulat|hemorrhag|bleeding"
        r"|hemophil|thrombophil|neutropeni|granule disease|bone marrow|hemoglobin|thalass"
        r"|sideroblast|hemoly|polycyth|histiocyt|cytopeni|myeloprolif|myelodysplas"
        r"|lymphoproliferat|thrombotic microangiopath|iron metabolism|porphyri"
        r"|stem cell transplant|stomatocyt|acanthocyt|hematopoietic"
    ),
    "oncology": _rx(
        r"tumou?r|cancer|carcinom|neoplas|leuk(?:a)?emi|lymphoma|sarcoma|adenoma|blastoma"
        r"|malignan|polyposis|myeloma|glioma|hamartom|cellular proliferation"
    ),
    "endocrinology & metabolism": _rx(
        r"endocrin|metabol|thyro|adrenal|pituitar|diabet|insulin|glyc(?:a)?emi|gonad|puberty"
        r"|growth hormone|obesity|lipodystroph|lysosom|storage|glycogen|glycosyl|glycan|lipid"
        r"|sphingolip|mucopolysacchar|oligosacchar|amino acid|aciduri|acidemi|urea cycle"
        r"|peroxisom|mitochondri|oxidative phosphorylation|purine|pyrimidine|vitamin|cofactor"
        r"|fatty acid|carbohydrate|cholesterol|sterol|sex development|hypophosphat|rickets"
        r"|phenylalanin|galactos|fructose|glycoly|copper|carnitine|cushing|hyperaldosteron"
        r"|infertility due to|ovarian failure|amyloidosis|short stature|overgrowth|glucose"
        r"|glutam|acyl-coa|coenzyme"
    ),
    "immunology & rheumatology": _rx(
        r"immun|autoinflammat|interferonopath|complement|vasculitis|arthritis|arthropath"
        r"|osteoarthropath|lupus|rheumat|connective tissue|ehlers-danlos"
        r"|systemic (?:disease|sclerosis|autoimmune)|sarcoidosis|angioedema|allerg|uveitis"
        r"|hyper-ige|collagen|marfan|periodic fever|phagocyte|\bbones?\b(?! marrow)|osteo"
        r"|skeletal|dysostos|chondro|\bjoints?\b|synostos|(?:brachy|poly|syn|ectro)dactyl"
        r"|\blimb"
        r"|(?:spondylo|epiphyseal|metaphyseal|mesomelic|acromelic|acromesomelic|rhizomelic)"
    ),
    "nephrology & urology": _rx(
        r"(?<!ad)renal|kidney|nephr|urinar|\burolog|urogenital|bladder|glomerul"
        r"|(?<!myo)tubul(?:ar|opath)|urethr|genitourinary|azoospermi|urinary system"
    ),
    "gastroenterology & hepatology": _rx(
        r"hepat(?!.*porphyri)|liver|biliar|\bbile\b|bilirubin|cholesta|intestin|gastr|esophag"
        r"|oesophag|pancrea|colon|bowel|enteropath|digestive|anorectal|abdominal|malabsorption"
        r"|diarrh|hirschsprung|celiac"
    ),
    "pulmonology": _rx(
        r"pulmon|\blung|respirat|bronch|pleura|pneumon|airway|surfactant|mediastin|trache"
        r"|thoracic malformation"
    ),
    "dermatology": _rx(
        r"\bskin|cutane|ectoderm|keratod|ichthyo|epidermoly|\bhair"
        r"|hypertrichosis|alopec|\bnail|pigment(?:ation|ed skin)|\bnevus|albinism|palmoplantar"
        r"|photoderm|poikiloderm|cutis|subcutaneous|integumentary|derm|progeroid"
        r"|premature aging"
    ),
    "ophthalmology & ENT": _rx(
        r"\beyes?\b|ocul|ophthalm|retin|cornea|\blens\b|cataract|glaucoma|\boptic|vision"
        r"|visual|strabism|eyelid|eyebrow|ptosis|aniridia|microphthalm|coloboma|pupil|lacrim"
        r"|alacrima|conjunctiv|keratoconus|macula|chorioretin|vitreo|sclera"
        r"|\b(?:epi|tele)?canth|ectropion|deaf|hearing|\bears?\b|otorhino|\botolog|auditory"
        r"|\bnose\b|laryn|pinna|ectopia lentis|sensory system|entropion|head and neck"
        r"|orofacial|branchial|\bcleft|\boral\b|odont|dentin|blephar|gloss"
    ),
    "infectious disease": _rx(
        r"infect|bacteri|\bviral|virus|fung(?:al|us)|parasit|mycobacter|prion|pathogen|sepsis"
        r"|tubercul|candidiasis"
    ),
}
"""Specialty → pattern over an Orphanet group's (or DO term's) name; all matches apply."""

DO_ROOTS: dict[str, str] = {
    "DOID:863": "neurology",  # nervous system disease
    "DOID:1287": "cardiology",  # cardiovascular system disease
    "DOID:74": "hematology",  # hematopoietic system disease
    "DOID:162": "oncology",  # cancer
    "DOID:14566": "oncology",  # disease of cellular proliferation
    "DOID:0014667": "endocrinology & metabolism",  # disease of metabolism
    "DOID:28": "endocrinology & metabolism",  # endocrine system disease
    "DOID:2914": "immunology & rheumatology",  # immune system disease
    "DOID:18": "nephrology & urology",  # urinary system disease
    "DOID:77": "gastroenterology & hepatology",  # gastrointestinal system disease
    "DOID:1579": "pulmonology",  # respiratory system disease
    "DOID:16": "dermatology",  # integumentary system disease
    "DOID:0050155": "ophthalmology & ENT",  # sensory system disease
    "DOID:5614": "ophthalmology & ENT",  # eye disease
    "DOID:0050117": "infectious disease",  # disease by infectious agent
}
"""Disease Ontology top-level terms → specialty, for DO terms reached by ``subclass_of``
(their names also go through :data:`SPECIALTY_RULES`; these ids make the mapping explicit
and survive a renamed term)."""

# How far up subclass_of the walk goes (Orphanet subtype → disorder → group is 2 steps).
_MAX_DEPTH = 4
_CLASSIFYING_TYPES = frozenset({"category", "disease"})

# store → {entity id → (specialties, from classification?)}; the cache lives as long as
# the store does and is dropped when it is written to (sqlite's total_changes moves).
_CACHE: weakref.WeakKeyDictionary[GraphStore, tuple[int, dict[str, dict[str, float]]]] = (
    weakref.WeakKeyDictionary()
)


@functools.lru_cache(maxsize=1 << 14)
def specialties_of_name(name: str) -> frozenset[str]:
    """Specialties whose rule matches a group or term name (empty when none does)."""
    return frozenset(s for s, rule in SPECIALTY_RULES.items() if rule.search(name))


def _entity(store: GraphStore, entity_id: str) -> tuple[str, str, dict[str, Any]] | None:
    row = store.db.execute(
        "SELECT type, name, attrs FROM entities WHERE id = ?", (entity_id,)
    ).fetchone()
    return None if row is None else (row[0], row[1], json.loads(row[2]))


def _twins(entity_id: str, store: GraphStore) -> list[str]:
    rows = store.db.execute(
        "SELECT obj FROM relations WHERE subj = ? AND pred = 'same_as' UNION "
        "SELECT subj FROM relations WHERE obj = ? AND pred = 'same_as'",
        (entity_id, entity_id),
    )
    return sorted(r[0] for r in rows)


def classification_names(entity_id: str, store: GraphStore) -> list[tuple[str, str]]:
    """``(id, name)`` of every group or DO term above ``entity_id`` (and its ``same_as``
    twins) along ``subclass_of``, up to 4 steps, sorted by id.

    Read with SQL on the store's tables (one indexed query per node): the tagger runs once
    per chain entity of every question, and building :class:`~medresearcher.schema.Entity`
    records for each parent cost ~3 ms per disease.
    """
    seen: dict[str, str] = {}
    frontier = list(dict.fromkeys([entity_id, *_twins(entity_id, store)]))
    visited = set(frontier)
    for _ in range(_MAX_DEPTH):
        nxt: list[str] = []
        for node in frontier:
            for parent, type_, name in store.db.execute(
                "SELECT e.id, e.type, e.name FROM relations r JOIN entities e ON e.id = r.obj "
                "WHERE r.subj = ? AND r.pred = 'subclass_of' ORDER BY e.id",
                (node,),
            ):
                if parent in visited or type_ not in _CLASSIFYING_TYPES:
                    continue
                visited.add(parent)
                seen[parent] = name
                nxt.append(parent)
        frontier = nxt
        if not frontier:
            break
    return sorted(seen.items())


def _disease_specialties(entity_id: str, store: GraphStore) -> dict[str, float]:
    """Specialty → share of this entity's classification evidence that points to it
    (shares sum to 1, so each disease weighs the same however finely it is classified)."""
    entity = _entity(store, entity_id)
    if entity is None or entity[0] not in _CLASSIFYING_TYPES:
        return {}
    type_, name, attrs = entity
    found: Counter[str] = Counter()
    if type_ == "category":
        found.update(specialties_of_name(name))
    for group_id, group_name in classification_names(entity_id, store):
        found.update(specialties_of_name(group_name))
        if group_id in DO_ROOTS:
            found[DO_ROOTS[group_id]] += 1
    twins = [_entity(store, t) for t in _twins(entity_id, store)]
    if attrs.get("infectious") or any(t and t[2].get("infectious") for t in twins):
        found["infectious disease"] += 1
    for pred, other in store.db.execute(
        "SELECT r.pred, e.name FROM relations r JOIN entities e ON e.id = r.obj WHERE r.subj = ? "
        "AND r.pred IN ('caused_by', 'transmitted_by', 'located_in') ORDER BY r.id",
        (entity_id,),
    ):
        if pred == "located_in":
            found.update(specialties_of_name(other))
        else:
            found["infectious disease"] += 1
    if not found:  # unclassified: the disorder's own name is the last resort
        found.update(specialties_of_name(name))
    total = sum(found.values())
    return {specialty: count / total for specialty, count in found.items()}


def _cache_for(store: GraphStore) -> dict[str, dict[str, float]]:
    changes = store.db.total_changes
    cached = _CACHE.get(store)
    if cached is None or cached[0] != changes:
        cached = (changes, {})
        _CACHE[store] = cached
    return cached[1]


def specialties_of(
    entity_ids: Iterable[str], store: GraphStore, *, max_tags: int | None = 3
) -> list[str]:
    """The specialties of a chain, most supported first (paper §3.1.3: 12 specialties).

    Parameters
    ----------
    entity_ids:
        The chain's entities (ids); diseases and classification groups among them are read,
        other types (phenotypes, genes, drugs) are skipped.
    store:
        The graph. Walks are cached per store and entity.
    max_tags:
        Keep at most this many tags (``None``: all that any disease reached).

    Returns
    -------
    list[str]
        Names from :data:`SPECIALTIES`, ordered by support: each disease (or group) on
        the chain spreads one vote over the specialties its classification reaches, in
        proportion to how many of its groups point to each; ties in :data:`SPECIALTIES`
        order. Empty when nothing on the chain classifies.

    Examples
    --------
    On the demo graph, Fabry disease (classified under sphingolipidosis, lysosomal disease
    with hypertrophic cardiomyopathy, genetic skin vascular disorder, ...) gives
    ``["endocrinology & metabolism", "cardiology", "dermatology"]``, among others.
    """
    cache = _cache_for(store)
    votes: Counter[str] = Counter()
    for entity_id in dict.fromkeys(entity_ids):
        if entity_id not in cache:
            cache[entity_id] = _disease_specialties(entity_id, store)
        for name, share in cache[entity_id].items():
            votes[name] += share
    order = {name: index for index, name in enumerate(SPECIALTIES)}
    # Rounded: shares like 1/3 summed in another order differ in the last bit, and a tie
    # must fall to SPECIALTIES order whatever order the walks were cached in.
    ranked = sorted(votes, key=lambda s: (-round(votes[s], 9), order[s]))
    return ranked if max_tags is None else ranked[:max_tags]
