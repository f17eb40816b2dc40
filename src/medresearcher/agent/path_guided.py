"""The offline path-guided policy: a careful researcher who knows the route, not the results.

Given a QA record, it walks the record's chain hop by hop with the real tools — the medical
retriever first, then the source document, then a general search — and moves on only when a
tool's observation actually shows the next entity. Its thoughts are templates
(``prompts/path_guided.yaml``) that name an entity only after an observation has shown it;
the one exception, a start that searching by the question's clues cannot single out, is
taken from the guidance and says so. When the tools never surface a link, the run stops with
a :class:`~medresearcher.agent.policy.PolicyError` that says which hop failed and what was
tried, so the failure is recorded, not papered over. Nothing here imitates a model: this is
the honest model-free way to produce trajectories and test the tools end to end offline
(paper §3.2 uses the same chain, masked, as guidance for a model).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medresearcher.agent.policy import AssistantTurn, PolicyError
from medresearcher.config import Settings
from medresearcher.grading.rules import answer_mentions
from medresearcher.llm.types import ToolCall
from medresearcher.prompts import render_prompt
from medresearcher.schema import QARecord

__all__ = ["PathGuidedPolicy", "policy_for"]

# What a researcher looks for along each predicate ("^" = against it), with {name} the entity
# reached so far: (English, Chinese).
RELATION_WORDS: dict[str, tuple[str, str]] = {
    "has_phenotype": ("the clinical features of {name}", "{name}的临床表现"),
    "^has_phenotype": ("the disorders presenting with {name}", "表现为{name}的疾病"),
    "has_symptom": ("the symptoms of {name}", "{name}的症状"),
    "^has_symptom": ("the diseases with {name} as a symptom", "以{name}为症状的疾病"),
    "lacks_phenotype": ("the features excluded in {name}", "{name}中被排除的表现"),
    "^lacks_phenotype": ("the disorders that exclude {name}", "排除{name}的疾病"),
    "associated_gene": ("the gene associated with {name}", "{name}的相关基因"),
    "^associated_gene": ("the disorders caused by {name}", "{name}相关的疾病"),
    "subclass_of": ("the classification group of {name}", "{name}的所属分类"),
    "^subclass_of": ("the disorders classified under {name}", "归入{name}的疾病"),
    "same_as": ("the entry equivalent to {name}", "与{name}等同的条目"),
    "^same_as": ("the entry equivalent to {name}", "与{name}等同的条目"),
    "treats": ("the disease treated by {name}", "{name}治疗的疾病"),
    "^treats": ("the drug treatments of {name}", "{name}的治疗药物"),
    "palliates": ("the disease palliated by {name}", "{name}缓解的疾病"),
    "^palliates": ("the palliative drugs for {name}", "{name}的缓解药物"),
    "not_indicated": ("the disease {name} is not indicated for", "{name}不适用的疾病"),
    "^not_indicated": ("the drugs not indicated for {name}", "不适用于{name}的药物"),
    "located_in": ("the anatomical site of {name}", "{name}的解剖部位"),
    "^located_in": ("the diseases located in the {name}", "位于{name}的疾病"),
    "caused_by": ("the pathogen causing {name}", "{name}的病原体"),
    "^caused_by": ("the diseases caused by {name}", "{name}导致的疾病"),
    "transmitted_by": ("how {name} is transmitted", "{name}的传播途径"),
    "^transmitted_by": ("the diseases transmitted by {name}", "经{name}传播的疾病"),
}

# Ids whose entities have a record of their own in the corpus (definition pages, abstracts,
# registry entries); signs, genes, drugs and pathogens are described only inside others'.
DOCUMENTED_PREFIXES = ("ORPHA:", "DOID:", "PMID:", "NCT", "FDA:", "PHARMACOTHERAPYDB:")

# What an attribute or count question asks for, in words: (English, Chinese).
ASKED_WORDS: dict[str, tuple[str, str]] = {
    "inheritance": ("mode of inheritance", "遗传方式"),
    "onset": ("age of onset", "起病年龄"),
    "prevalence_class": ("prevalence class", "患病率等级"),
    "disorder_type": ("disorder type", "疾病类型"),
    "symbol": ("gene symbol", "基因符号"),
    "has_phenotype": ("number of annotated phenotypes", "注释表型数量"),
    "associated_gene": ("number of associated genes", "相关基因数量"),
    "has_symptom": ("number of symptoms", "症状数量"),
}

# Record fields (as document_read shows them) whose entries a count question counts.
COUNTED_FIELDS: dict[str, tuple[str, ...]] = {
    "has_phenotype": ("phenotypes", "other phenotypes", "excluded phenotypes"),
    "associated_gene": ("genes",),
    "has_symptom": ("symptoms",),
}

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]{3,}")
_STOP = frozenset(
    [
        "this",
        "that",
        "which",
        "what",
        "with",
        "from",
        "have",
        "been",
        "into",
        "whose",
        "their",
        "there",
        "they",
        "than",
        "also",
        "disorder",
        "disease",
        "entity",
        "feature",
        "group",
        "named",
        "name",
        "question",
        "answer",
        "annotated",
        "orphanet",
        "patients",
        "phenotypes",
        "single",
        "recorded",
        "linked",
        "clinical",
    ]
)


@dataclass(frozen=True)
class _Attempt:
    """One tool call that might surface the target, with the thought that introduces it."""

    thought: str
    tool: str
    arguments: dict[str, Any]
    expect: str | None = None  # what the observation must show (default: the target)


class PathGuidedPolicy:
    """Follow ``record.chain`` with real tool calls; answer only what was observed.

    ``names`` maps every chain entity id to its name followed by its aliases (from the KG).
    ``tool_names`` are the tools the run offers: attempts that need a missing tool are skipped.
    """

    name = "path_guided"

    def __init__(
        self,
        record: QARecord,
        names: Mapping[str, Sequence[str]],
        *,
        language: str = "en",
        tool_names: Sequence[str] = (
            "medical_retriever",
            "document_read",
            "web_search",
            "clinical_reasoning",
        ),
    ) -> None:
        if len(record.chain) < 3 or len(record.chain) % 2 == 0:
            raise PolicyError(f"QA record {record.id}: its chain has no hop to follow")
        self.record = record
        self.names = {key: [n for n in value if n] or [key] for key, value in names.items()}
        self.language = language if language in ("en", "zh") else "en"
        self.tool_names = set(tool_names)
        self.nodes = list(record.chain[0::2])
        self.predicates = list(record.chain[1::2])
        self._calls = itertools.count(1)
        self._plan: list[_Attempt] = []
        self._tried: list[str] = []
        self._target = 0  # index in nodes of the entity being looked for
        self._answer_checked = False
        self._pending_found: str | None = None

    # ------------------------------------------------------------------ protocol
    async def next_turn(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *, rollout: int = 0
    ) -> AssistantTurn:
        offered = {t["function"]["name"] for t in tools if "function" in t}
        if offered:
            self.tool_names &= offered
        observed = _latest_observations(messages)
        if self._plan_pending() and observed is not None:
            self._settle(_without_echo(observed, self._plan[0].arguments if self._plan else {}))
        if not tools:  # the loop withholds tools: answer now, or say what is missing
            return self._final_turn(forced=True)
        while self._target < len(self.nodes):
            if not self._plan:
                self._plan = [a for a in self._attempts() if a.tool in self.tool_names]
                self._tried = []
                if not self._plan:
                    raise PolicyError(self._failure("no tool that could show it is offered"))
            attempt = self._plan[0]
            return self._call(attempt, lead=self._take_found())
        if not self._answer_checked:
            self._answer_checked = True
            check = self._answer_attempt()
            if check is not None:
                self._plan = [check]
                self._target = len(self.nodes)  # the answer value is now looked for
                return self._call(check, lead=self._take_found())
        return self._final_turn(forced=False)

    # ------------------------------------------------------------------ planning
    def _attempts(self) -> list[_Attempt]:
        t = self._text
        if self._target == 0:
            start = self.nodes[0]
            question = self.record.question
            # The question's own clues about its starting point ("classified under …",
            # "onset in infancy"), as a researcher would type them; the whole question
            # otherwise, whose other clues describe other entities.
            clues = " ".join(_keywords(self._clues_of(start), limit=12)) or question
            return [
                _Attempt(t("identify_start"), "medical_retriever", {"query": clues, "k": 20}),
                _Attempt(t("identify_start_web"), "web_search", {"queries": [question]}),
                _Attempt(
                    t("start_from_guidance", name=self._name(start)),
                    "document_read" if _documented(start) else "medical_retriever",
                    {"url_or_id": start, "goal": ""}
                    if _documented(start)
                    else {"query": self._name(start), "k": 5},
                ),
                *(
                    # A sign has no page of its own; the reasoning engine's HPO reading of it
                    # (label and id) shows that it is a recognised clinical feature.
                    [
                        _Attempt(
                            t("start_as_finding", name=self._name(start)),
                            "clinical_reasoning",
                            {"present_findings": [start], "top_k": 3},
                        )
                    ]
                    if start.startswith("HP:")
                    else []
                ),
            ]
        source = self.nodes[self._target - 1]
        predicate = self.predicates[self._target - 1]
        name = self._name(source)
        relation = self._relation(predicate, name)
        query = relation
        clues = _keywords(self._clues_of(self.nodes[self._target]), limit=10)
        if predicate.startswith("^"):
            # Many entities share the source (a sign, a gene): search with the clues the
            # question gives about the one wanted, as a researcher narrows a list.
            query = " ".join([name, *clues])
        target = self.nodes[self._target]
        attempts = [
            _Attempt(
                t("hop_search", relation=relation, name=name),
                "medical_retriever",
                {"query": query, "k": 20 if predicate.startswith("^") else 10},
            ),
            _Attempt(
                t("hop_read", relation=relation, name=name),
                "document_read",
                {"url_or_id": source, "goal": relation},
            ),
            # Then the guidance names the next entity: its own record must then show the
            # link back to the source, or the hop is not established.
            _Attempt(
                t("hop_guided", relation=relation, name=name, target=self._name(target)),
                "document_read",
                {"url_or_id": target, "goal": f"{name}"},
                expect=source,
            ),
            _Attempt(
                t("hop_web", relation=relation, name=name),
                "web_search",
                {"queries": list(dict.fromkeys([query, relation]))},
            ),
        ]
        return [
            a
            for a in attempts
            if a.tool != "document_read" or _documented(str(a.arguments["url_or_id"]))
        ]

    def _clues_of(self, entity_id: str) -> str:
        """The question's own clue phrases about ``entity_id`` (recorded by the writer)."""
        provenance = self.record.provenance
        clues = [c for group in (provenance.get("clues") or {}).values() for c in group]
        clues += list(provenance.get("constraints") or [])
        return " ".join(
            str(c.get("text", ""))
            for c in clues
            if isinstance(c, dict) and c.get("entity") == entity_id
        )

    def _answer_attempt(self) -> _Attempt | None:
        """For attribute and count questions: read the end's own record for the value."""
        source = self.record.provenance.get("answer_source") or {}
        what = source.get("attribute") or source.get("count_of")
        if self.record.paradigm not in ("attribute", "count") or not what:
            return None
        end = self.nodes[-1]
        if "document_read" not in self.tool_names or not _documented(end):
            raise PolicyError(
                f"QA record {self.record.id}: the answer is a value of {self._name(end)} and "
                "no record of it can be read with the tools offered"
            )
        words = ASKED_WORDS.get(str(what), (str(what).lstrip("^").replace("_", " "),) * 2)
        label = words[1] if self.language == "zh" else words[0]
        return _Attempt(
            self._text("verify_attribute", name=self._name(end), attribute=label),
            "document_read",
            {"url_or_id": end, "goal": f"{label}: {self._name(end)}"},
        )

    # ------------------------------------------------------------------ observing
    def _plan_pending(self) -> bool:
        return bool(self._tried)

    def _settle(self, observed: str) -> None:
        """Did the last call show what was looked for? Advance, or move to the next attempt."""
        if self._target >= len(self.nodes):  # checking the answer value
            if self._value_observed(observed):
                self._plan, self._tried = [], []
                return
            raise PolicyError(
                f"QA record {self.record.id}: the answer's value ({self.record.answer!r}) "
                f"was not in what {self._tried[-1]} returned for {self._name(self.nodes[-1])}"
            )
        attempt = self._plan[0]
        target = self.nodes[self._target]
        if self._observed(attempt.expect or target, observed):
            self._pending_found = self._found_text()
            self._target += 1
            self._plan, self._tried = [], []
            return
        self._plan.pop(0)
        if not self._plan:
            raise PolicyError(self._failure(", then ".join(self._tried) + " did not show it"))

    def _observed(self, entity_id: str, text: str) -> bool:
        return entity_id in text or bool(answer_mentions(text, self.names.get(entity_id, [])))

    def _value_observed(self, text: str) -> bool:
        forms = [self.record.answer, *self.record.answer_aliases]
        if self.record.paradigm == "count":
            return self._counted(text) == self.record.answer
        return bool(answer_mentions(text, forms, min_chars=1))

    def _counted(self, text: str) -> str | None:
        """The number of listed items the record shows for the counted relation, if any.

        A researcher counts the entries of the record's list ("Genes: A; B" → 2); the
        number is what was observed, not what the question's writer knew.
        """
        source = self.record.provenance.get("answer_source") or {}
        labels = COUNTED_FIELDS.get(str(source.get("count_of", "")), ())
        items: list[str] = []
        for line in text.splitlines():
            label, _, rest = line.partition(":")
            if label.strip().lower() in labels and rest.strip():
                items += [item for item in rest.split(";") if item.strip()]
        return str(len(dict.fromkeys(i.strip().casefold() for i in items))) if items else None

    def _found_text(self) -> str:
        if self._target == 0:
            return self._text("start_found", name=self._name(self.nodes[0]))
        source = self._name(self.nodes[self._target - 1])
        return self._text(
            "hop_found",
            relation=self._relation(self.predicates[self._target - 1], source),
            target=self._name(self.nodes[self._target]),
        )

    def _take_found(self) -> str:
        found, self._pending_found = self._pending_found, None
        return found or ""

    def _failure(self, what: str) -> str:
        if self._target == 0:
            where = "the start"
        else:
            where = (
                f"hop {self._target}: {self._name(self.nodes[self._target - 1])} "
                f"-{self.predicates[self._target - 1]}-> ?"
            )
        return f"QA record {self.record.id}: {where}: {what}"

    # ------------------------------------------------------------------ turns
    def _call(self, attempt: _Attempt, *, lead: str = "") -> AssistantTurn:
        self._tried.append(attempt.tool)
        call = ToolCall(
            id=f"call_{next(self._calls)}",
            name=attempt.tool,
            arguments=json.dumps(attempt.arguments, ensure_ascii=False),
        )
        content = f"{lead} {attempt.thought}".strip()
        return AssistantTurn(content=content, tool_calls=[call], model="path_guided")

    def _final_turn(self, *, forced: bool) -> AssistantTurn:
        if self._target < len(self.nodes):
            raise PolicyError(self._failure("a budget ran out before the chain was followed"))
        if self.record.paradigm in ("attribute", "count"):
            answer = self.record.answer  # observed in _settle, or the run would have stopped
        else:
            answer = self._name(self.nodes[-1])
        lead = self._take_found()
        text = f"{lead} {self._text('answer', answer=answer)}".strip()
        return AssistantTurn(content=f"{text}\n<answer>{answer}</answer>", model="path_guided")

    # ------------------------------------------------------------------ words
    def _name(self, entity_id: str) -> str:
        return self.names.get(entity_id, [entity_id])[0]

    def _relation(self, predicate: str, name: str) -> str:
        plain = predicate.lstrip("^").replace("_", " ")
        words = RELATION_WORDS.get(predicate, (f"{plain} of {{name}}", f"{{name}}的{plain}"))
        return (words[1] if self.language == "zh" else words[0]).format(name=name)

    def _text(self, part: str, **values: str) -> str:
        return render_prompt("path_guided", part, self.language, **values)


def _latest_observations(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The tool results after the last assistant turn, joined; None before any."""
    texts: list[str] = []
    for message in reversed(messages):
        if message.get("role") == "tool":
            texts.append(str(message.get("content") or ""))
        elif message.get("role") == "assistant":
            break
    return "\n".join(reversed(texts)) if texts else None


def _documented(entity_id: str) -> bool:
    return entity_id.startswith(DOCUMENTED_PREFIXES)


def _without_echo(text: str, arguments: Mapping[str, Any]) -> str:
    """``text`` without the echo of the call's own arguments.

    Results repeat the query or goal once, in their header; a name the policy wrote itself
    is not evidence of anything, while the same name in the body of a result is.
    """
    for value in arguments.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and len(item) > 2:
                text = text.replace(item, " ", 1)
    return text


def _keywords(text: str, *, limit: int) -> list[str]:
    """Content words of a question, for search queries (the clues, not the frame)."""
    words = [w for w in _WORD.findall(text) if w.lower() not in _STOP]
    return list(dict.fromkeys(words))[:limit]


def policy_for(
    record: QARecord,
    settings: Settings,
    *,
    tool_names: Sequence[str] | None = None,
    names_of: Callable[[Sequence[str]], Mapping[str, Sequence[str]]] | None = None,
) -> PathGuidedPolicy:
    """A path-guided policy for ``record``, with entity names from the workspace's KG."""
    if names_of is None:
        from medresearcher.kg import graph_exists, graph_location, open_graph_store

        if not graph_exists(settings):
            raise PolicyError(
                f"{graph_location(settings)} does not exist: the path-guided policy reads "
                "entity names from the "
                "knowledge graph (run `medresearcher kg import --demo` or `make demo`)"
            )

        def names_of(ids: Sequence[str]) -> dict[str, list[str]]:
            with open_graph_store(settings) as store:
                return store.names_of(ids)

    names = names_of(record.chain[0::2])
    kwargs: dict[str, Any] = {"language": record.language}
    if tool_names is not None:
        kwargs["tool_names"] = tool_names
    return PathGuidedPolicy(record, names, **kwargs)
