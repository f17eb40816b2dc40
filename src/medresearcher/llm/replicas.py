"""Several servers of one model behind one endpoint: which replica gets the next request.

Why in the client and not a proxy: a vLLM or SGLang fleet is a list of URLs, and users
who outgrow one GPU server should not have to run a load balancer to keep the same
commands. Three rules, each for a reason:

- **Least in-flight.** A request goes to the replica with the fewest requests in flight
  (ties rotate), so a slow or busy server gets less work than a fast one, where round-robin
  would queue requests behind it.
- **Sticky conversations.** Every call of one conversation goes to the replica that served
  its first call, so the server's prefix cache (vLLM automatic prefix caching, SGLang
  RadixAttention) reuses the KV cache of the turns before instead of recomputing them: an
  agent's turn n resends turns 1…n−1. A conversation is named by an explicit key, or by the
  messages up to its first user turn (see :func:`conversation_key`).
- **Health.** A replica that refuses connections, or fails ``failure_threshold`` times in a
  row (timeouts, 5xx, dropped connections, garbage bodies), is out for ``cooldown_s``; then
  one request probes it (half-open, as in a circuit breaker) and a success brings it back.
  When every replica is out, requests still go to the one out the longest (there is nothing
  left to protect) and fail with an error naming every replica.

The pool is plain bookkeeping with no I/O, so its policy is tested without a network; the
HTTP side lives in :class:`~medresearcher.llm.endpoint.EndpointClient`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Lease", "Replica", "ReplicaPool", "conversation_key"]

log = logging.getLogger(__name__)


def conversation_key(messages: Sequence[dict[str, Any]], salt: object = None) -> str | None:
    """A stable name for the conversation ``messages`` belong to, or None for an empty one.

    The messages up to and including the first user turn (the system prompt and the
    question) stay the same on every turn of an agent run, and a structured-output repair
    round, so they name the conversation. ``salt`` (the cache salt: a rollout number) keeps
    rollouts of one question apart, so they spread over replicas rather than queue on one.
    """
    head: list[Any] = []
    for message in messages:
        head.append([message.get("role"), message.get("content")])
        if message.get("role") == "user":
            break
    if not head:
        return None
    text = json.dumps([head, salt], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


@dataclass
class Replica:
    """One server of the pool and what the pool knows of it."""

    index: int
    url: str  # redacted: for messages and reports only
    in_flight: int = 0
    sent: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    down_until: float | None = None  # clock time its cool-down ends; None while in service
    probing: bool = False  # a half-open probe is in flight
    last_error: str | None = None

    @property
    def in_service(self) -> bool:
        return self.down_until is None


@dataclass
class Lease:
    """One request's hold on a replica, from :meth:`ReplicaPool.acquire` to ``release``."""

    replica: Replica
    probe: bool = False
    settled: bool = False


class ReplicaPool:
    """Least in-flight choice, conversation affinity and health of a list of replicas.

    Parameters
    ----------
    urls:
        The replicas' base URLs, redacted (they appear in logs and errors).
    failure_threshold:
        Failures in a row that take a replica out.
    cooldown_s:
        How long a replica stays out before one probe request.
    clock:
        Monotonic seconds; tests may pass their own.
    max_conversations:
        Conversation affinities remembered (least recently used forgotten first).

    A pool of one replica never takes it out: with nowhere else to go, the endpoint's
    retries are the whole policy, exactly as for a single server.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_conversations: int = 100_000,
    ) -> None:
        if not urls:
            raise ValueError("a replica pool needs at least one URL")
        self.replicas = [Replica(index, url) for index, url in enumerate(urls)]
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.max_conversations = max_conversations
        self._affinity: OrderedDict[str, int] = OrderedDict()
        self._turn = 0  # where the tie-break rotation starts

    @property
    def single(self) -> bool:
        return len(self.replicas) == 1

    def acquire(
        self, conversation: str | None = None, *, exclude: Collection[int] = ()
    ) -> Lease | None:
        """The replica for the next request, counted in flight; None if all are excluded.

        Order of preference: the conversation's replica while it is in service; a replica
        whose cool-down is over (one probe at a time); the in-service replica with the
        fewest requests in flight; when none is in service, the one out the longest.
        """
        candidates = [r for r in self.replicas if r.index not in exclude]
        if not candidates:
            return None
        now = self.clock()
        chosen: Replica | None = None
        probe = False
        if conversation is not None and (index := self._affinity.get(conversation)) is not None:
            sticky = self.replicas[index]
            if index not in exclude and sticky.in_service:
                chosen = sticky
        if chosen is None:
            due = [r for r in candidates if self._probe_due(r, now)]
            if due:
                chosen, probe = due[0], True
                chosen.probing = True
        if chosen is None:
            serving = [r for r in candidates if r.in_service]
            if serving:
                size = len(self.replicas)
                chosen = min(serving, key=lambda r: (r.in_flight, (r.index - self._turn) % size))
                self._turn = (chosen.index + 1) % size
            else:
                chosen = min(candidates, key=lambda r: r.down_until or 0.0)
        if conversation is not None and not self.single:
            self._affinity[conversation] = chosen.index
            self._affinity.move_to_end(conversation)
            if len(self._affinity) > self.max_conversations:
                self._affinity.popitem(last=False)
        chosen.in_flight += 1
        chosen.sent += 1
        return Lease(chosen, probe=probe)

    def acquire_replica(self, index: int) -> Lease:
        """A lease on replica ``index`` whatever its state (``llm ping`` checks each one)."""
        replica = self.replicas[index]
        replica.in_flight += 1
        replica.sent += 1
        return Lease(replica)

    def stale(self, lease: Lease, exclude: Collection[int] = ()) -> bool:
        """Whether a request that queued for its replica should choose again: the replica
        was taken out meanwhile and another one, not excluded, is in service."""
        replica = lease.replica
        if lease.probe or replica.in_service:
            return False
        return any(r.in_service and r.index not in exclude for r in self.replicas)

    def succeeded(self, lease: Lease) -> None:
        """The replica answered (any answer but a 5xx): it is alive."""
        lease.settled = True
        replica = lease.replica
        replica.consecutive_failures = 0
        if not replica.in_service:
            log.info("replica %s is back in service", replica.url)
        replica.down_until = None
        replica.probing = False

    def failed(self, lease: Lease, cause: str, *, refused: bool = False) -> bool:
        """Record a failure; returns whether the replica is now out of service.

        ``refused``: the connection was refused (nothing listens): out at once.
        """
        lease.settled = True
        replica = lease.replica
        replica.failures += 1
        replica.consecutive_failures += 1
        replica.last_error = cause
        if lease.probe:
            replica.probing = False
        if self.single:
            return False
        if (
            refused
            or lease.probe
            or not replica.in_service
            or replica.consecutive_failures >= self.failure_threshold
        ):
            if replica.in_service:
                log.warning(
                    "replica %s out of service for %g s after %d failure(s): %s",
                    replica.url,
                    self.cooldown_s,
                    replica.consecutive_failures,
                    cause,
                )
            replica.down_until = self.clock() + self.cooldown_s
            return True
        return False

    def release(self, lease: Lease) -> None:
        """The request is over (answered, failed or cancelled)."""
        lease.replica.in_flight -= 1
        if lease.probe and not lease.settled:  # cancelled mid-probe: let another request probe
            lease.replica.probing = False

    def any_in_service(self, exclude: Collection[int] = ()) -> bool:
        return any(r.in_service and r.index not in exclude for r in self.replicas)

    def all_down(self) -> bool:
        return not self.single and not self.any_in_service()

    def describe_down(self) -> str:
        """One line naming every replica and why it is out, for the all-down error."""
        now = self.clock()
        parts = []
        for replica in self.replicas:
            wait = max(0.0, (replica.down_until or now) - now)
            parts.append(
                f"{replica.url} ({replica.last_error or 'no answer'}; next try in {wait:.0f} s)"
            )
        return f"all {len(self.replicas)} replicas are out of service: " + "; ".join(parts)

    def stats(self) -> list[dict[str, Any]]:
        """Per replica: url, in_service, in_flight, sent, failures, last_error."""
        return [
            {
                "url": r.url,
                "in_service": r.in_service,
                "in_flight": r.in_flight,
                "sent": r.sent,
                "failures": r.failures,
                "last_error": r.last_error,
            }
            for r in self.replicas
        ]

    def _probe_due(self, replica: Replica, now: float) -> bool:
        return replica.down_until is not None and now >= replica.down_until and not replica.probing
