"""Multi-task mixing of a training set (paper §4.1; issue "Training-data recipe" item 2).

The paper trains on trajectories sampled across medical domains, with a share α of guided
trajectories (§3.2) and a few recovered tool failures. :func:`mix_trajectories` picks, *without
replacement*, ``size`` trajectories that passed the quality filters so that their shares along
several dimensions at once come as close as the supply allows to the targets:

``specialty``
    The record's *first* specialty tag (``stats["qa"]["specialties"][0]``, the one with the
    most support, see ``qa/specialties.py``). One value per trajectory makes the shares of a
    dimension a partition that sums to one, so a target share means a count; counting every tag
    would let one trajectory fill several targets and the shares would overlap.
``paradigm``, ``hops``
    ``stats["qa"]["paradigm"]`` and ``stats["qa"]["hops"]`` (as text: ``"2"``, ``"3"``).
``guidance``
    ``mtg`` or ``none``: ``Trajectory.guidance`` — the α of §3.2.
``augmented``
    ``yes`` when ``stats["augmented"]`` records a simulated, recovered tool failure, else ``no``.

A missing value reads as ``unspecified``. A dimension without targets is free. The values a
target lists need not cover the dimension: the rest of the share (one minus the listed shares)
goes to the unlisted values together.

The method: trajectories with the same values on the targeted dimensions are interchangeable,
so the choice is a count per *profile* (a tuple of values). With target counts
``T[d, v] = share · size`` the mixer minimises ``Σ_d Σ_v (count[d, v] − T[d, v])²`` subject
to ``count ≤ supply``: a greedy fill, one item at a time, of the profile that most reduces the
deviation, then exchanges of one item for another while any exchange still reduces it; the
seed breaks ties and then draws the trajectories inside each profile. When the supply allows a
selection within one item of every target this usually finds one (tested); when it does not,
:class:`MixResult` says by how many items each value falls short.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medresearcher.errors import InputError
from medresearcher.schema import Trajectory

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DIMENSIONS",
    "Dimension",
    "MixResult",
    "MixTargets",
    "ValueShare",
    "mix_trajectories",
    "parse_target",
    "trajectory_values",
]

Dimension = Literal["specialty", "paradigm", "hops", "guidance", "augmented"]
DIMENSIONS: tuple[Dimension, ...] = ("specialty", "paradigm", "hops", "guidance", "augmented")
UNSPECIFIED = "unspecified"
_OTHER = "\x00other"  # the pseudo-value of the unlisted values of a targeted dimension
_ALIASES = {"alpha": "guidance", "hop": "hops", "augment": "augmented", "specialties": "specialty"}
_BOOLEAN = {"true": "yes", "false": "no", "1": "yes", "0": "no"}
_TOLERANCE = 1e-6


class MixTargets(BaseModel):
    """Target shares per dimension and value; a dimension left ``None`` is free.

    Load from a TOML/JSON/YAML mapping (``MixTargets.from_file``), for example::

        [paradigm]
        identify = 0.4
        count = 0.2
        [guidance]
        mtg = 0.7
        none = 0.3

    or from command-line strings (``MixTargets.from_strings(["paradigm=identify:0.4,count:0.2"])``).
    """

    model_config = ConfigDict(extra="forbid")

    specialty: dict[str, float] | None = Field(None, description="First specialty tag → share.")
    paradigm: dict[str, float] | None = Field(None, description="identify/attribute/… → share.")
    hops: dict[str, float] | None = Field(None, description='Hop count ("2", "3") → share.')
    guidance: dict[str, float] | None = Field(None, description="mtg / none → share (α).")
    augmented: dict[str, float] | None = Field(None, description="yes / no → share.")

    @field_validator("*", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(key): share for key, share in value.items()}
        return value

    @field_validator("*")
    @classmethod
    def _shares(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one value:share, or leave the dimension out")
        for key, share in value.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"the share of {key!r} is {share}, not in [0, 1]")
        if sum(value.values()) > 1.0 + _TOLERANCE:
            raise ValueError(f"the shares sum to {sum(value.values()):g}, more than 1")
        return value

    def targeted(self) -> dict[Dimension, dict[str, float]]:
        """The dimensions that have targets, with values normalised (``yes``/``no``…)."""
        out: dict[Dimension, dict[str, float]] = {}
        for dim in DIMENSIONS:
            shares = getattr(self, dim)
            if shares is not None:
                out[dim] = {_normalise(dim, key): share for key, share in shares.items()}
        return out

    def merged(self, other: MixTargets) -> MixTargets:
        """These targets with ``other``'s dimensions replacing the same ones here."""
        mine, theirs = self.model_dump(exclude_none=True), other.model_dump(exclude_none=True)
        return MixTargets(**{**mine, **theirs})

    @classmethod
    def from_strings(cls, specs: Iterable[str]) -> MixTargets:
        """Targets from ``dimension=value:share,value:share`` strings (one per dimension)."""
        data: dict[str, dict[str, float]] = {}
        for spec in specs:
            dim, shares = parse_target(spec)
            data[dim] = shares
        return cls._validated(data, "--target")

    @classmethod
    def from_file(cls, path: str | Path) -> MixTargets:
        """Targets from a ``.toml``, ``.json``, ``.yaml``/``.yml`` file of tables per dimension
        (optionally under one top-level ``targets`` table)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read the targets ({exc.strerror})") from None
        suffix = path.suffix.lower()
        try:
            if suffix == ".toml":
                data = tomllib.loads(text)
            elif suffix == ".json":
                data = json.loads(text)
            elif suffix in (".yaml", ".yml"):
                data = yaml.safe_load(text)
            else:
                raise InputError(f"{path}: targets are read from .toml, .json or .yaml files")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
            raise InputError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None
        if isinstance(data, Mapping) and set(data) == {"targets"}:
            data = data["targets"]
        if not isinstance(data, Mapping):
            raise InputError(f"{path}: expected a table of dimensions, got {type(data).__name__}")
        data = {_ALIASES.get(str(key), str(key)): value for key, value in data.items()}
        return cls._validated(data, str(path))

    @classmethod
    def _validated(cls, data: Mapping[str, Any], where: str) -> MixTargets:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'targets'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InputError(f"{where}: bad mix targets: {problems}") from None


def parse_target(spec: str) -> tuple[Dimension, dict[str, float]]:
    """``"paradigm=identify:0.4,count:0.2"`` → ``("paradigm", {"identify": 0.4, "count": 0.2})``.

    A value may contain spaces (``"specialty=endocrinology & metabolism:0.3"``); the share is
    what follows its last colon.
    """
    name, sep, body = spec.partition("=")
    dim = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if not sep or dim not in DIMENSIONS:
        raise InputError(
            f"--target {spec!r}: expected DIMENSION=value:share,…, with DIMENSION one of "
            f"{', '.join(DIMENSIONS)}"
        )
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        value, colon, share = part.rpartition(":")
        try:
            number = float(share)
        except ValueError:
            number = math.nan
        if not colon or not value.strip() or math.isnan(number):
            raise InputError(f"--target {spec!r}: {part!r} is not value:share (a number)")
        shares[value.strip()] = number
    if not shares:
        raise InputError(f"--target {spec!r}: no value:share given")
    return dim, shares  # type: ignore[return-value]


def _normalise(dim: str, value: Any) -> str:
    text = UNSPECIFIED if value is None or value == "" else str(value).strip()
    if dim == "augmented":
        return _BOOLEAN.get(text.lower(), text.lower())
    if dim == "guidance":
        return text.lower()
    return text


def trajectory_values(trajectory: Trajectory) -> dict[Dimension, str]:
    """The value of each dimension for one trajectory (see the module docstring)."""
    qa = trajectory.stats.get("qa") or {}
    specialties = qa.get("specialties") or []
    return {
        "specialty": _normalise("specialty", specialties[0] if specialties else None),
        "paradigm": _normalise("paradigm", qa.get("paradigm")),
        "hops": _normalise("hops", qa.get("hops")),
        "guidance": trajectory.guidance,
        "augmented": "yes" if trajectory.stats.get("augmented") else "no",
    }


class ValueShare(BaseModel):
    """Target against achieved for one value of one dimension."""

    dimension: Dimension
    value: str
    target_share: float | None = Field(description="None: the dimension or value is free.")
    target_count: float | None = Field(description="target_share · size.")
    count: int
    share: float = Field(description="count / selected (0 when nothing was selected).")
    supply: int = Field(description="Eligible trajectories with this value.")
    shortfall: int = Field(description="Items missing below ⌊target_count⌋; 0 when met.")


class MixResult(BaseModel):
    """What :func:`mix_trajectories` chose and how close it came to the targets."""

    size: int = Field(description="The size asked for.")
    seed: int
    selected_ids: list[str] = Field(description="In the order of the input.")
    eligible: int = Field(description="Trajectories that passed the filters (unique ids).")
    excluded: int = Field(description="Left out: failed or never filtered, or a repeated id.")
    size_shortfall: int = Field(description="size − selected, when too few were eligible.")
    shares: list[ValueShare]
    targets: dict[str, dict[str, float]]

    @property
    def shortfall(self) -> int:
        """Items missing, summed over the size and every value of every dimension (one
        missing trajectory can count once per dimension); 0 when every target was met."""
        return self.size_shortfall + sum(row.shortfall for row in self.shares)


def mix_trajectories(
    trajectories: Iterable[Trajectory],
    targets: MixTargets,
    *,
    size: int,
    seed: int = 0,
    require_passed: bool = True,
) -> MixResult:
    """Choose ``size`` filtered trajectories, without replacement, to hit the target shares.

    Parameters
    ----------
    trajectories:
        Candidates; with ``require_passed`` only those whose ``filters["passed"]`` is true
        count (``traj filter`` writes it). A repeated id counts once (its first record).
    targets:
        Target shares per dimension; dimensions left out are free.
    size:
        How many to choose; fewer when fewer are eligible (``size_shortfall``).
    seed:
        Breaks ties and draws inside each profile; the same input, targets, size and seed
        always give the same selection, whatever the input's order.

    Returns
    -------
    MixResult
        The selected ids and, per dimension and value, target, achieved share and shortfall.

    Notes
    -----
    Paper §4.1 (multi-task sampling across medical domains) and §3.2 (α). The objective and
    the search are described in the module docstring.
    """
    if size < 0:
        raise InputError(f"the mix size must be ≥ 0, got {size}")
    goal = targets.targeted()
    pool: dict[str, Trajectory] = {}
    order: dict[str, int] = {}
    excluded = 0
    for index, trajectory in enumerate(trajectories):
        passed = bool(trajectory.filters and trajectory.filters.get("passed"))
        if (require_passed and not passed) or trajectory.id in pool:
            excluded += 1
            continue
        pool[trajectory.id] = trajectory
        order[trajectory.id] = index
    values = {tid: trajectory_values(t) for tid, t in pool.items()}
    dims = [d for d in DIMENSIONS if d in goal]
    n = min(size, len(pool))

    def key(tid: str) -> tuple[str, ...]:
        return tuple(values[tid][d] if values[tid][d] in goal[d] else _OTHER for d in dims)

    members: dict[tuple[str, ...], list[str]] = {}
    for tid in sorted(pool):
        members.setdefault(key(tid), []).append(tid)
    profiles = sorted(members)
    rng = random.Random(seed)
    rng.shuffle(profiles)  # the seed breaks ties between equally good profiles
    supply = np.array([len(members[p]) for p in profiles], dtype=np.int64)
    counts = _choose_counts(profiles, supply, dims, goal, size=n)
    chosen: list[str] = []
    for profile, k in zip(profiles, counts, strict=True):
        chosen.extend(rng.sample(members[profile], int(k)))
    chosen.sort(key=order.__getitem__)
    return MixResult(
        size=size,
        seed=seed,
        selected_ids=chosen,
        eligible=len(pool),
        excluded=excluded,
        size_shortfall=size - len(chosen),
        shares=_report(chosen, values, goal, size=size),
        targets={dim: dict(shares) for dim, shares in goal.items()},
    )


def _choose_counts(
    profiles: Sequence[tuple[str, ...]],
    supply: np.ndarray,
    dims: Sequence[str],
    goal: Mapping[str, Mapping[str, float]],
    *,
    size: int,
) -> np.ndarray:
    """How many of each profile: greedy fill, then improving one-for-one exchanges."""
    count = np.zeros(len(profiles), dtype=np.int64)
    if not dims or size == 0:
        _fill_in_order(count, supply, size)
        return count
    # Cells: one per (dimension, value or the unlisted rest); member[p, d] is p's cell in d.
    cells: list[tuple[str, str]] = []
    target: list[float] = []
    for dim in dims:
        rest = max(0.0, 1.0 - sum(goal[dim].values()))
        for value, share in [*goal[dim].items(), (_OTHER, rest)]:
            cells.append((dim, value))
            target.append(share * size)
    index = {cell: i for i, cell in enumerate(cells)}
    member = np.array(
        [[index[(dim, p[j])] for j, dim in enumerate(dims)] for p in profiles], dtype=np.int64
    )
    goal_count = np.array(target)
    filled = np.zeros(len(cells))
    # Greedy: add the profile whose cells are furthest below target (Δ = Σ 2(c − T) + 1).
    for _ in range(size):
        gain = (2 * (filled - goal_count) + 1)[member].sum(axis=1)
        gain = np.where(count < supply, gain, np.inf)
        best = int(np.argmin(gain))
        count[best] += 1
        filled[member[best]] += 1
    # Exchanges: drop one of p, add one of q; Δ = Σ_d (−2a_p + 1) + (2a_q + 1) − 2·[same cell].
    same = (member[:, None, :] == member[None, :, :]).sum(axis=2)
    for _ in range(50 * size + 100):
        excess = filled - goal_count
        drop = (1 - 2 * excess)[member].sum(axis=1)
        add = (2 * excess + 1)[member].sum(axis=1)
        delta = drop[:, None] + add[None, :] - 2 * same
        delta[count == 0, :] = np.inf
        delta[:, count >= supply] = np.inf
        np.fill_diagonal(delta, np.inf)
        p, q = np.unravel_index(int(np.argmin(delta)), delta.shape)
        if not delta[p, q] < -_TOLERANCE:
            break
        count[p] -= 1
        count[q] += 1
        filled[member[p]] -= 1
        filled[member[q]] += 1
    return count


def _fill_in_order(count: np.ndarray, supply: np.ndarray, size: int) -> None:
    """No targets: take whole profiles in their (seeded) order."""
    left = size
    for i, available in enumerate(supply):
        count[i] = min(int(available), left)
        left -= int(count[i])


def _report(
    chosen: Sequence[str],
    values: Mapping[str, Mapping[str, str]],
    goal: Mapping[str, Mapping[str, float]],
    *,
    size: int,
) -> list[ValueShare]:
    """Per dimension: the targeted values in their given order, then the others by count."""
    rows: list[ValueShare] = []
    for dim in DIMENSIONS:
        supply = Counter(v[dim] for v in values.values())
        got = Counter(values[tid][dim] for tid in chosen)
        listed = list(goal.get(dim, {}))
        others = sorted(set(supply) - set(listed), key=lambda v: (-got[v], -supply[v], v))
        for value in [*listed, *others]:
            share = goal.get(dim, {}).get(value)
            target_count = None if share is None else share * size
            missing = 0 if target_count is None else math.floor(target_count + _TOLERANCE)
            rows.append(
                ValueShare(
                    dimension=dim,  # type: ignore[arg-type]
                    value=value,
                    target_share=share,
                    target_count=target_count,
                    count=got[value],
                    share=got[value] / len(chosen) if chosen else 0.0,
                    supply=supply[value],
                    shortfall=max(0, missing - got[value]),
                )
            )
    return rows
