"""Trajectory generation (paper §3.2): rollouts of the agent over QA records, α of them guided.

For every (QA record, rollout) of the batch, once:

1. the guided/exploration split (:mod:`~medresearcher.synthesis.mix`) decides whether the item
   gets the Masked Trajectory Guidance scaffold (:func:`~medresearcher.synthesis.mtg.
   mtg_scaffold`) — exactly ``round(α·n)`` items do;
2. the agent runs (:func:`medresearcher.agent.run_agent`) with the chosen policy: ``llm`` (a
   model endpoint) or ``path_guided`` (the offline researcher that follows the record's chain
   with the real tools; it walks the chain either way, so for it the scaffold only changes
   what the record says was in the prompt);
3. a ``rate`` share of the results gets one recovered tool failure
   (:mod:`~medresearcher.synthesis.augment`);
4. the trajectory — carrying its QA id, rollout number, guidance mode and the mix that chose
   it — is appended to the output file.

Trajectory ids are stable hashes of (QA id, policy, rollout, guidance), so a re-run skips the
items already in the file; an item whose trajectory is there under either guidance mode
counts as done, so each (record, rollout) appears once even if the batch changed in between.
Only records that passed their QA checks are used unless ``include_failed_checks``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from medresearcher.agent import AgentLimits, LLMPolicy, Policy, PolicyError, run_agent
from medresearcher.agent.record import trajectory_id
from medresearcher.config import Settings
from medresearcher.errors import ConfigError, InputError, MedResearcherError
from medresearcher.llm import LLMGateway
from medresearcher.schema import QARecord, Trajectory
from medresearcher.synthesis.augment import DEFAULT_RATE, Method, augment_if_selected
from medresearcher.synthesis.mix import DEFAULT_ALPHA, guided_items
from medresearcher.synthesis.mtg import MTG_PROMPT, mtg_prompt_version, mtg_scaffold
from medresearcher.tools.base import ToolBox
from medresearcher.workspace import JsonlWriter, Workspace

__all__ = ["POLICIES", "GenerationCounts", "ItemOutcome", "generate_trajectories", "policy_name"]

log = logging.getLogger(__name__)

POLICIES = ("llm", "path_guided")
PolicyKind = Literal["llm", "path_guided"]


@dataclass(frozen=True)
class ItemOutcome:
    """What happened to one (record, rollout) item; given to ``on_item`` as it happens.

    ``status`` is ``written``, ``skipped`` (already in the file) or ``failed`` (the run could
    not start: no policy for the record, or a scaffold that would show an entity).
    """

    qa_id: str
    rollout: int
    guided: bool
    status: Literal["written", "skipped", "failed"]
    trajectory: Trajectory | None = None
    detail: str | None = None


@dataclass
class GenerationCounts:
    """The tally of one generation batch (for the run manifest and the summary line)."""

    records: int = 0
    records_failing_checks: int = 0
    items: int = 0
    guided_planned: int = 0
    written: int = 0
    guided_written: int = 0
    skipped: int = 0
    failed: int = 0
    augmented: int = 0
    terminations: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "records_failing_checks": self.records_failing_checks,
            "items": self.items,
            "guided_planned": self.guided_planned,
            "written": self.written,
            "guided_written": self.guided_written,
            "exploration_written": self.written - self.guided_written,
            "skipped": self.skipped,
            "failed": self.failed,
            "augmented": self.augmented,
            "terminations": dict(self.terminations.most_common()),
        }


def policy_name(policy: PolicyKind, endpoint: str) -> str:
    """``Trajectory.policy`` for a policy kind: ``path_guided`` or ``llm:<endpoint>``."""
    return "path_guided" if policy == "path_guided" else f"llm:{endpoint}"


async def generate_trajectories(
    records: Iterable[QARecord],
    *,
    policy: PolicyKind,
    settings: Settings,
    gateway: LLMGateway | None = None,
    endpoint: str = "agent",
    rollouts: int = 1,
    workers: int = 4,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    out: JsonlWriter,
    on_item: Callable[[ItemOutcome], None] | None = None,
    toolbox: ToolBox | None = None,
    augment_rate: float = DEFAULT_RATE,
    augment_method: Method = "auto",
    include_failed_checks: bool = False,
    language: str | None = None,
    only: Collection[tuple[str, int]] | None = None,
) -> GenerationCounts:
    """Generate one trajectory per (record, rollout) into ``out`` (paper §3.2).

    Parameters
    ----------
    records:
        QA records; duplicates by id count once, and records failing a check are left out
        unless ``include_failed_checks``.
    policy:
        ``llm`` (needs ``gateway`` and ``endpoint``) or ``path_guided`` (offline; reads entity
        names from the workspace's KG; its turn limit is at least ``4·hops + 8``).
    settings:
        ``[agent]`` limits and language, ``[tools]``, the workspace.
    gateway, endpoint:
        The model endpoint of the ``llm`` policy.
    rollouts:
        Rollouts per record (numbered 0 … rollouts−1).
    workers:
        Runs at once.
    alpha, seed:
        The guided share and the seed of the split (and of augmentation).
    out:
        An open :class:`~medresearcher.workspace.JsonlWriter`; ids already in it are skipped.
    on_item:
        Called with an :class:`ItemOutcome` for every item, skipped ones included.
    toolbox:
        The tools (default: :func:`medresearcher.tools.build_toolbox` over the workspace,
        closed at the end; a toolbox passed in stays open).
    augment_rate, augment_method:
        Failure augmentation (:func:`~medresearcher.synthesis.augment.augment_if_selected`).
    include_failed_checks:
        Use records whose QA checks failed too.
    language:
        Prompt language (default: each record's own).
    only:
        Run only these (QA id, rollout) items: one shard of a distributed run
        (:mod:`medresearcher.executor`). The guided split is still drawn over the whole
        batch, so an item gets the same guidance whichever shard runs it; the other items
        are neither run nor reported.

    Returns
    -------
    GenerationCounts
    """
    if policy not in POLICIES:
        raise InputError(f"unknown policy {policy!r}; use {' or '.join(POLICIES)}")
    if rollouts < 1 or workers < 1:
        raise InputError("rollouts and workers must be at least 1")
    if policy == "llm":
        if gateway is None:
            raise ConfigError("the llm policy needs a model gateway (and a configured endpoint)")
        LLMPolicy(gateway, endpoint)  # an unknown endpoint fails now, naming the known ones
    counts = GenerationCounts()
    chosen: dict[str, QARecord] = {}
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            continue
        seen.add(record.id)
        if not record.passed and not include_failed_checks:
            counts.records_failing_checks += 1
            continue
        chosen[record.id] = record
    counts.records = len(chosen)
    items = [(qa_id, rollout) for qa_id in chosen for rollout in range(rollouts)]
    guided = guided_items(items, alpha, seed)
    counts.items = len(items)
    counts.guided_planned = len(guided)
    name = policy_name(policy, endpoint)

    owned = toolbox is None
    if toolbox is None:
        from medresearcher.tools import build_toolbox  # loads indexes and data: lazily

        toolbox = build_toolbox(settings, Workspace(settings.workspace), gateway=gateway)
    job = _Job(
        policy=policy,
        name=name,
        settings=settings,
        gateway=gateway,
        endpoint=endpoint,
        toolbox=toolbox,
        alpha=alpha,
        seed=seed,
        augment_rate=augment_rate,
        augment_method=augment_method,
        language=language,
        out=out,
        counts=counts,
        on_item=on_item,
    )
    queue: asyncio.Queue[tuple[QARecord, int, bool]] = asyncio.Queue()
    for qa_id, rollout in items:
        if only is not None and (qa_id, rollout) not in only:
            continue
        is_guided = (qa_id, rollout) in guided
        done = {trajectory_id(qa_id, name, rollout, mode) for mode in ("mtg", "none")} & out.ids
        if done:
            counts.skipped += 1
            job.report(ItemOutcome(qa_id, rollout, is_guided, "skipped"))
            continue
        queue.put_nowait((chosen[qa_id], rollout, is_guided))
    try:
        tasks = [
            asyncio.ensure_future(job.work(queue)) for _ in range(min(workers, 1 + queue.qsize()))
        ]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    finally:
        if owned:
            await toolbox.aclose()
    return counts


@dataclass
class _Job:
    """The shared state of one batch; :meth:`work` is one worker."""

    policy: PolicyKind
    name: str
    settings: Settings
    gateway: LLMGateway | None
    endpoint: str
    toolbox: ToolBox
    alpha: float
    seed: int
    augment_rate: float
    augment_method: Method
    language: str | None
    out: JsonlWriter
    counts: GenerationCounts
    on_item: Callable[[ItemOutcome], None] | None

    def report(self, outcome: ItemOutcome) -> None:
        if self.on_item is not None:
            self.on_item(outcome)

    async def work(self, queue: asyncio.Queue[tuple[QARecord, int, bool]]) -> None:
        while True:
            try:
                record, rollout, guided = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                trajectory = await self.one(record, rollout, guided)
            except (PolicyError, MedResearcherError) as exc:
                detail = f"{record.id} rollout {rollout}: {exc}"
                log.warning("no trajectory for %s", detail)
                self.counts.failed += 1
                self.counts.failures.append(detail)
                self.report(ItemOutcome(record.id, rollout, guided, "failed", detail=detail))
                continue
            if self.out.write(trajectory):
                self.counts.written += 1
                self.counts.guided_written += guided
                self.counts.augmented += bool(trajectory.stats.get("augmented"))
                self.counts.terminations[trajectory.termination] += 1
                self.report(ItemOutcome(record.id, rollout, guided, "written", trajectory))
            else:
                self.counts.skipped += 1
                self.report(ItemOutcome(record.id, rollout, guided, "skipped", trajectory))

    async def one(self, record: QARecord, rollout: int, guided: bool) -> Trajectory:
        """One rollout of one record, augmented when drawn."""
        language = self.language or record.language
        guidance = mtg_scaffold(record, language) if guided else None
        limits = AgentLimits.from_settings(self.settings.agent)
        agent_policy: Policy
        if self.policy == "path_guided":
            from medresearcher.agent.path_guided import policy_for

            agent_policy = policy_for(record, self.settings, tool_names=self.toolbox.names())
            # Up to four calls per hop before the walk gives up: the turns to say why.
            turns = max(self.settings.agent.max_turns, 4 * record.hops + 8)
            limits = AgentLimits.from_settings(self.settings.agent, max_turns=turns)
        else:
            assert self.gateway is not None
            agent_policy = LLMPolicy(self.gateway, self.endpoint)
        trajectory = await run_agent(
            record.question,
            policy=agent_policy,
            toolbox=self.toolbox,
            limits=limits,
            language=language,
            qa_id=record.id,
            rollout=rollout,
            guidance=guidance,
        )
        self._annotate(trajectory, record, guided)
        return augment_if_selected(
            trajectory,
            rate=self.augment_rate,
            seed=self.seed,
            method=self.augment_method,
            timeout_s=self.settings.tools.timeout_s,
        )

    def _annotate(self, trajectory: Trajectory, record: QARecord, guided: bool) -> None:
        """What chose this rollout and what it answers, for the mixer and the statistics."""
        stats = trajectory.stats
        stats["mix"] = {"alpha": self.alpha, "seed": self.seed, "guided": guided}
        stats["qa"] = {
            "hops": record.hops,
            "paradigm": record.paradigm,
            "specialties": list(record.specialties),
            "level": record.difficulty.level,
            "strategy": record.strategy,
            "language": record.language,
        }
        if guided:
            generation = stats.setdefault("generation", {})
            generation["guidance_prompt"] = MTG_PROMPT
            generation["guidance_prompt_version"] = mtg_prompt_version()
