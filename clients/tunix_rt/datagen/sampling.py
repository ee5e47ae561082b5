"""Drawing rows: which family and difficulty each row gets, unique prompts, exclusions, and what
happens when a family runs out of new prompts.

Row ``k`` uses family ``k mod F`` and cycles easy, medium, hard once per round of the F families,
so counts are balanced by construction rather than by chance. A draw whose prompt (in the normal
form of ``prompts.normalize_prompt``) is already in the dataset, or is excluded, is drawn again
for the same row, which keeps that balance.

Some families have few distinct prompts (``convert_temperature`` about 270 over its three
difficulties), so a large dataset cannot be all unique. After ``EXHAUSTED_AFTER`` draws in a row
that give nothing new, that family and difficulty is marked exhausted: from then on its rows take
the next draw that is not excluded, which is a prompt the dataset already holds (all but a
sliver of the family's draws are by then), so the row repeats it. Everything still comes from the
one ``random.Random(seed)``, so the output stays reproducible, and the cost of an exhausted
family is one draw per row. ``SamplingStats`` counts the unique prompts and repeated rows per
family, and the draws refused because they were excluded.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

from tunix_rt.datagen import families as catalog
from tunix_rt.datagen import formats
from tunix_rt.datagen.prompts import normalize_prompt
from tunix_rt.datagen.rows import TRACE_VERSION, Trace, validate_trace

# Draws that give no new prompt before a family and difficulty counts as exhausted. At that point
# a new prompt is rarer than about 1 draw in 200 (the chance of 1,000 misses in a row is under
# 1 % when more than 1 in 200 draws is new), and finding it would cost more than it adds.
EXHAUSTED_AFTER = 1_000
# Draws allowed for one row once exhausted, when they keep hitting excluded prompts: far above
# what any family needs; a family whose every prompt is excluded fails loudly instead of looping.
MAX_EXCLUDED_DRAWS = 10_000


@dataclass(frozen=True)
class Identity:
    """The generator a row names in its meta: ``meta.generator`` and ``meta.generator_version``."""

    name: str
    version: str


@dataclass
class FamilyStats:
    """One family's rows: how many, how many distinct prompts, and the difficulties that ran out."""

    rows: int = 0
    unique: int = 0
    exhausted: list[str] = field(default_factory=list)

    @property
    def repeated(self) -> int:
        """Rows whose prompt an earlier row of the dataset already has."""
        return self.rows - self.unique


@dataclass
class SamplingStats:
    """What drawing a dataset took, filled in as its rows are made."""

    families: dict[str, FamilyStats]
    # Draws refused because their prompt was excluded (held out, or passed in to avoid).
    excluded_draws: int = 0

    @property
    def unique(self) -> int:
        return sum(f.unique for f in self.families.values())

    @property
    def repeated(self) -> int:
        return sum(f.repeated for f in self.families.values())


def select_families(
    task_types: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    trace_format: str = "v1",
) -> tuple[catalog.Family, ...]:
    """The families to draw from, in the generator's fixed order: those named by task type or in
    the named categories (not both); all of them by default; their steps written in
    `trace_format` (formats.py). ValueError names the known ones."""
    if task_types is not None and categories is not None:
        raise ValueError("give task types or categories, not both")
    everything = formats.catalog(trace_format)
    if categories is not None:
        _check_known("category", categories, catalog.CATEGORIES)
        return tuple(f for f in everything if f.category in categories)
    if task_types is None:
        return everything
    _check_known("task type", task_types, [f.task_type for f in everything])
    return tuple(f for f in everything if f.task_type in task_types)


def _check_known(what: str, given: Sequence[str], known: Sequence[str]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown or not given:
        raise ValueError(
            f"unknown or no {what}: {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(sorted(known))}"
        )


class TraceStream:
    """``n`` traces drawn from ``families`` with ``random.Random(seed)``, made as they are
    iterated (once), so a dataset of any size takes memory only for its set of prompts.

    ``exclude`` holds prompts in normal form (``normalize_prompt``) that no row may have.
    ``stats`` is complete when the iteration ends."""

    def __init__(
        self,
        n: int,
        seed: int,
        families: Sequence[catalog.Family],
        *,
        dataset: str,
        identity: Identity,
        exclude: Collection[str] = frozenset(),
    ) -> None:
        if n < 0:
            raise ValueError(f"the number of rows must be >= 0, not {n}")
        if not families:
            raise ValueError("no families to draw from")
        self.n, self.seed, self.families = n, seed, tuple(families)
        self.dataset, self.identity, self.exclude = dataset, identity, exclude
        self.stats = SamplingStats({f.task_type: FamilyStats() for f in self.families})
        self._started = False

    def __iter__(self) -> Iterator[Trace]:
        if self._started:
            raise RuntimeError("a TraceStream is iterated once; make a new one")
        self._started = True
        rng = random.Random(self.seed)
        seen: set[str] = set()
        exhausted: set[tuple[str, str]] = set()
        count = len(self.families)
        for index in range(self.n):
            family = self.families[index % count]
            difficulty = catalog.DIFFICULTIES[(index // count) % len(catalog.DIFFICULTIES)]
            slot = (family.task_type, difficulty)
            problem, key = self._draw(rng, family, difficulty, seen, slot in exhausted)
            if problem is None:  # nothing new in EXHAUSTED_AFTER draws: repeat from now on
                exhausted.add(slot)
                self.stats.families[family.task_type].exhausted.append(difficulty)
                problem, key = self._draw(rng, family, difficulty, seen, True)
            assert problem is not None
            family_stats = self.stats.families[family.task_type]
            family_stats.rows += 1
            if key not in seen:
                seen.add(key)
                family_stats.unique += 1
            yield self._trace(problem, family, difficulty, index)

    def _draw(
        self,
        rng: random.Random,
        family: catalog.Family,
        difficulty: catalog.Difficulty,
        seen: set[str],
        repeat: bool,
    ) -> tuple[catalog.Problem | None, str]:
        """The row's problem and its prompt's normal form: the first draw that is neither
        excluded nor (unless ``repeat``) already seen. None when ``EXHAUSTED_AFTER`` draws in a
        row were not new."""
        misses = 0
        limit = MAX_EXCLUDED_DRAWS if repeat else EXHAUSTED_AFTER
        while misses < limit:
            problem = family.build(rng, difficulty)
            key = normalize_prompt(problem.prompt)
            if key in self.exclude:
                self.stats.excluded_draws += 1
            elif repeat or key not in seen:
                return problem, key
            misses += 1
        if repeat:
            raise RuntimeError(
                f"{family.task_type}/{difficulty}: every prompt in {limit} draws is excluded"
            )
        return None, ""

    def _trace(
        self,
        problem: catalog.Problem,
        family: catalog.Family,
        difficulty: catalog.Difficulty,
        index: int,
    ) -> Trace:
        trace: Trace = {
            "trace_version": TRACE_VERSION,
            "prompt": problem.prompt,
            "final_answer": problem.answer,
            "steps": [{"i": i, "type": t, "content": c} for i, (t, c) in enumerate(problem.steps)],
            "meta": {
                "dataset": self.dataset,
                "generator": self.identity.name,
                "generator_version": self.identity.version,
                "seed": self.seed,
                "category": family.category,
                "task_type": family.task_type,
                "difficulty": difficulty,
                "index": index,
            },
        }
        problems = validate_trace(trace)
        if problems:
            raise ValueError(f"{family.task_type} row {index} breaks the limits: {problems}")
        return trace
