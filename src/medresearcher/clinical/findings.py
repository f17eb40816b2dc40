"""Free-text clinical findings → HPO terms, for the ClinicalReasoningEngine (paper §2.2).

The engine's likelihoods are keyed by HPO ids, so every finding a user or an agent states
("splenomegaly", "enlarged spleen", "HP:0001744") must first become one HPO term. The
matcher is deliberately conservative: an unmatched finding is reported back (with the
nearest labels as suggestions) rather than silently mapped to a term it may not mean,
because a wrong term moves the posterior as much as a right one.

Matching order, first hit wins:

1. an HP id (``HP:0001744``, ``hp_0001744``) that the vocabulary knows;
2. exact label or synonym, ignoring case, punctuation and British/American spelling;
3. the same after a light plural stemmer (``seizures`` → ``Seizure``);
4. a fuzzy fallback: Dice overlap of content tokens (typos mended against the vocabulary's
   tokens), accepted at or above ``threshold`` (0.75 by default).

Synonyms come from the phenotype entities' aliases (HPO synonyms, when a bundle carries
them) and from :data:`LAY_SYNONYMS`, a short hand-written list of plain-language phrases;
each phrase is keyed by the HPO *label* it names and dropped when the vocabulary lacks it.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "LAY_SYNONYMS",
    "FindingMatch",
    "PhenotypeVocabulary",
    "UnmatchedFinding",
    "normalise_findings",
    "parse_findings",
    "read_findings",
]

MatchMethod = Literal["id", "exact", "synonym", "stem", "fuzzy"]

# Plain-language phrases → the HPO label they mean. Keep entries unambiguous: a phrase
# that could mean two terms does not belong here.
LAY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "Fever": ("pyrexia", "febrile", "high temperature", "raised temperature"),
    "Splenomegaly": ("enlarged spleen", "big spleen", "spleen enlargement"),
    "Hepatomegaly": ("enlarged liver", "big liver", "liver enlargement"),
    "Hepatosplenomegaly": ("enlarged liver and spleen",),
    "Seizure": ("fits", "convulsion", "epileptic seizure"),
    "Hearing impairment": ("hearing loss", "deafness", "hard of hearing"),
    "Jaundice": ("icterus", "yellow skin"),
    "Fatigue": ("tiredness", "exhaustion"),
    "Abdominal pain": ("stomach ache", "belly pain", "tummy pain"),
    "Arthralgia": ("joint pain", "painful joints"),
    "Myalgia": ("muscle pain", "muscle ache"),
    "Hypohidrosis": ("reduced sweating", "decreased sweating"),
    "Renal insufficiency": ("kidney failure", "renal failure", "kidney insufficiency"),
    "Proteinuria": ("protein in urine", "protein in the urine"),
    "Hematuria": ("blood in urine", "blood in the urine"),
    "Pruritus": ("itching", "itchy skin"),
    "Dyspnea": ("shortness of breath", "breathlessness"),
    "Tinnitus": ("ringing in the ears",),
    "Myopia": ("nearsightedness", "short sightedness"),
    "Ectopia lentis": ("dislocated lens", "lens dislocation"),
    "Arachnodactyly": ("long fingers", "spider fingers"),
    "Lymphadenopathy": ("swollen lymph nodes", "enlarged lymph nodes"),
    "Hypoglycemia": ("low blood sugar",),
    "Hypertension": ("high blood pressure",),
    "Hypotension": ("low blood pressure",),
    "Bruising susceptibility": ("easy bruising", "bruises easily"),
    "Hypotonia": ("low muscle tone", "floppy baby"),
    "Visual impairment": ("poor vision", "vision loss", "low vision"),
    "Photophobia": ("light sensitivity",),
    "Dysphagia": ("difficulty swallowing", "swallowing difficulty"),
    "Dysarthria": ("slurred speech",),
    "Syncope": ("fainting", "faint"),
    "Intellectual disability": ("mental retardation",),
    "Global developmental delay": ("developmental delay",),
    "Vomiting": ("throwing up", "emesis"),
    "Tall stature": ("very tall",),
}

# Words that carry no clinical content in a finding.
_STOPWORDS = frozenset(
    ("a", "an", "the", "of", "in", "on", "at", "to", "with", "and", "or", "for", "by", "from",
     "as", "is", "are", "was", "were", "has", "have", "had", "patient", "patients", "noted",
     "seen", "some", "mild")
)  # fmt: skip
# British → American spellings, applied token by token (HPO labels are American).
_SPELLING = (
    (re.compile(r"aem"), "em"),  # anaemia, haemorrhage, leukaemia, ischaemia
    (re.compile(r"^oe(?=d|s)"), "e"),  # oedema, oesophagus
    (re.compile(r"^paed"), "ped"),
    (re.compile(r"(?<=.{3})our$"), "or"),  # tumour, behaviour
    (re.compile(r"isation$"), "ization"),
    (re.compile(r"dilation$"), "dilatation"),
)
_HP_ID = re.compile(r"^\s*hp[:_ ]?(\d{7})\s*$", re.IGNORECASE)
_NON_WORD = re.compile(r"[^0-9a-z]+")


def _tokens(text: str) -> list[str]:
    """Lower-case word tokens with punctuation dropped and spelling made American."""
    tokens = []
    for token in _NON_WORD.split(text.lower()):
        if not token:
            continue
        for pattern, replacement in _SPELLING:
            token = pattern.sub(replacement, token)
        tokens.append(token)
    return tokens


def _stem(token: str) -> str:
    """A plural stemmer just strong enough for findings (``opacities`` → ``opacity``)."""
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is", "ys")):
        return token[:-1]
    return token


def _key(text: str) -> str:
    return " ".join(_tokens(text))


def _stem_key(text: str) -> str:
    return " ".join(_stem(t) for t in _tokens(text))


def _content(tokens: Iterable[str]) -> frozenset[str]:
    return frozenset(_stem(t) for t in tokens if t not in _STOPWORDS)


@dataclass(frozen=True)
class FindingMatch:
    """One finding as the user wrote it and the HPO term it was read as."""

    text: str
    hpo_id: str
    label: str
    method: MatchMethod
    score: float = 1.0
    matched: str = ""  # the label or synonym that matched


@dataclass(frozen=True)
class UnmatchedFinding:
    """A finding no HPO term matched well enough; ``suggestions`` are (hpo_id, label)."""

    text: str
    suggestions: tuple[tuple[str, str], ...] = ()


@dataclass
class PhenotypeVocabulary:
    """HPO labels and synonyms, indexed for exact, stemmed and fuzzy lookup.

    Build it with :meth:`build` from ``(hpo_id, label, synonyms)`` triples; ``usage``
    (annotations per term) breaks ties in favour of the terms the likelihood table uses.
    """

    labels: dict[str, str] = field(default_factory=dict)
    usage: Mapping[str, int] = field(default_factory=dict)
    threshold: float = 0.75
    _exact: dict[str, tuple[str, str, MatchMethod]] = field(default_factory=dict, repr=False)
    _stemmed: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    _phrases: list[tuple[str, str, frozenset[str]]] = field(default_factory=list, repr=False)
    _postings: dict[str, list[int]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        terms: Iterable[tuple[str, str, Iterable[str]]],
        *,
        usage: Mapping[str, int] | None = None,
        lay_synonyms: Mapping[str, Iterable[str]] | None = None,
        threshold: float = 0.75,
    ) -> PhenotypeVocabulary:
        """Index ``terms``; ``lay_synonyms`` defaults to :data:`LAY_SYNONYMS`."""
        vocab = cls(usage=dict(usage or {}), threshold=threshold)
        synonyms: dict[str, list[str]] = defaultdict(list)
        for hpo_id, label, aliases in terms:
            vocab.labels.setdefault(hpo_id, label)
            synonyms[hpo_id].extend(a for a in aliases if a)
        by_label = {_key(label): hpo_id for hpo_id, label in vocab.labels.items()}
        extra = LAY_SYNONYMS if lay_synonyms is None else lay_synonyms
        for label, phrases in extra.items():
            if (hpo_id := by_label.get(_key(label))) is not None:
                synonyms[hpo_id].extend(phrases)
        # Labels first, so that a synonym never shadows another term's own label.
        for hpo_id, label in vocab.labels.items():
            vocab._add(hpo_id, label, "exact")
        for hpo_id, phrases in synonyms.items():
            for phrase in phrases:
                vocab._add(hpo_id, phrase, "synonym")
        return vocab

    def _add(self, hpo_id: str, phrase: str, method: MatchMethod) -> None:
        key = _key(phrase)
        if not key:
            return
        self._exact.setdefault(key, (hpo_id, phrase, method))
        self._stemmed.setdefault(_stem_key(phrase), (hpo_id, phrase))
        content = _content(_tokens(phrase))
        if content:
            index = len(self._phrases)
            self._phrases.append((hpo_id, phrase, content))
            for token in content:
                self._postings.setdefault(token, []).append(index)

    def knows(self, text: str) -> bool:
        """Whether ``text`` is a label or synonym as written (case, punctuation, plural aside)."""
        return _key(text) in self._exact or _stem_key(text) in self._stemmed

    def __len__(self) -> int:
        return len(self.labels)

    def match(self, text: str) -> FindingMatch | UnmatchedFinding:
        """Read one finding as an HPO term, or say that none matched."""
        stripped = text.strip()
        if (id_match := _HP_ID.match(stripped)) is not None:
            hpo_id = f"HP:{id_match.group(1)}"
            if hpo_id in self.labels:
                return FindingMatch(stripped, hpo_id, self.labels[hpo_id], "id", 1.0, hpo_id)
            return UnmatchedFinding(stripped)
        if (hit := self._exact.get(_key(stripped))) is not None:
            hpo_id, phrase, method = hit
            return FindingMatch(stripped, hpo_id, self.labels[hpo_id], method, 1.0, phrase)
        if (stem_hit := self._stemmed.get(_stem_key(stripped))) is not None:
            hpo_id, phrase = stem_hit
            return FindingMatch(stripped, hpo_id, self.labels[hpo_id], "stem", 1.0, phrase)
        ranked = self._fuzzy(stripped)
        if ranked and ranked[0][0] >= self.threshold:
            score, hpo_id, phrase = ranked[0]
            return FindingMatch(stripped, hpo_id, self.labels[hpo_id], "fuzzy", score, phrase)
        suggestions: list[tuple[str, str]] = []
        for _, hpo_id, _phrase in ranked:
            if (hpo_id, self.labels[hpo_id]) not in suggestions:
                suggestions.append((hpo_id, self.labels[hpo_id]))
            if len(suggestions) == 3:
                break
        return UnmatchedFinding(stripped, tuple(suggestions))

    def _fuzzy(self, text: str) -> list[tuple[float, str, str]]:
        """Candidates by Dice overlap of content tokens, best first.

        A query token the vocabulary lacks is mended to its closest vocabulary token
        (difflib ratio ≥ 0.85, tokens of five letters or more); each mend costs 5 %.
        """
        query: set[str] = set()
        penalty = 1.0
        for token in _content(_tokens(text)):
            if token not in self._postings and len(token) >= 5:
                close = difflib.get_close_matches(token, self._postings.keys(), n=1, cutoff=0.85)
                if close:
                    token, penalty = close[0], penalty * 0.95
            query.add(token)
        candidates = {i for token in query for i in self._postings.get(token, ())}
        scored: dict[str, tuple[float, str, str]] = {}
        for index in candidates:
            hpo_id, phrase, content = self._phrases[index]
            dice = 2 * len(query & content) / (len(query) + len(content)) * penalty
            if dice > scored.get(hpo_id, (0.0, "", ""))[0]:
                scored[hpo_id] = (dice, hpo_id, phrase)
        return sorted(
            scored.values(),
            key=lambda s: (-round(s[0], 6), -self.usage.get(s[1], 0), len(s[2]), s[1]),
        )


def normalise_findings(
    texts: Iterable[str], vocabulary: PhenotypeVocabulary
) -> tuple[list[FindingMatch], list[UnmatchedFinding]]:
    """Match every finding; duplicates (same HPO id) are kept once, in input order."""
    matches: list[FindingMatch] = []
    unmatched: list[UnmatchedFinding] = []
    seen: set[str] = set()
    for text in texts:
        if not text or not text.strip():
            continue
        result = vocabulary.match(text)
        if isinstance(result, UnmatchedFinding):
            unmatched.append(result)
        elif result.hpo_id not in seen:
            seen.add(result.hpo_id)
            matches.append(result)
    return matches, unmatched


_SPLIT = re.compile(r"[;,\n]+|\.\s+|\s+but\s+", re.IGNORECASE)
_NEGATION = re.compile(
    r"^(?:no|not|without|absent|absence\s+of|negative\s+for|denies|lacks?|free\s+of)\s+",
    re.IGNORECASE,
)
_OR = re.compile(r"\s+(?:or|nor)\s+", re.IGNORECASE)


def parse_findings(
    text: str, vocabulary: PhenotypeVocabulary | None = None
) -> tuple[list[str], list[str]]:
    """Split a case summary into present and absent findings.

    ``"fever, splenomegaly; no hepatomegaly or jaundice"`` →
    ``(["fever", "splenomegaly"], ["hepatomegaly", "jaundice"])``. Parts are split at
    commas, semicolons, new lines, sentence ends and "but"; a part that starts with "no",
    "not", "without", "absent", "absence of", "negative for", "denies" or "lacks" is
    absent, and its "or"/"nor" alternatives are each absent too. With a ``vocabulary``, a
    part that is itself a known term ("Absent thumb") stays present.
    """
    present: list[str] = []
    absent: list[str] = []
    for part in _SPLIT.split(text or ""):
        part = part.strip(" .:\t")
        if not part:
            continue
        negated = _NEGATION.match(part)
        if negated and vocabulary is not None and vocabulary.knows(part):
            negated = None
        if negated:
            absent.extend(p.strip() for p in _OR.split(part[negated.end() :]) if p.strip())
        else:
            present.append(part)
    return present, absent


def read_findings(
    present: Iterable[str], absent: Iterable[str], vocabulary: PhenotypeVocabulary
) -> tuple[list[FindingMatch], list[FindingMatch], list[UnmatchedFinding]]:
    """Present and absent findings as HPO terms, and what matched nothing.

    Each ``present`` item may be a whole summary ("fever; no jaundice"), split by
    :func:`parse_findings`; an ``absent`` item may keep its negation ("no jaundice").
    """
    present_texts: list[str] = []
    absent_texts: list[str] = []
    for item in present:
        yes, no = parse_findings(item, vocabulary)
        present_texts += yes
        absent_texts += no
    for item in absent:
        yes, no = parse_findings(item, vocabulary)
        absent_texts += yes + no
    present_matches, unmatched = normalise_findings(present_texts, vocabulary)
    absent_matches, unmatched_absent = normalise_findings(absent_texts, vocabulary)
    return present_matches, absent_matches, unmatched + unmatched_absent
