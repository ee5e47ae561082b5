"""Generating a dataset: ``generate`` (a list) and ``stream`` (rows made as they are read), with
the held-out rule applied.

Every dataset made here leaves out the prompts of the held-out eval set ``reasoning-eval-v1``
(compared in normal form, ``normalize_prompt``), so a model trained on it is still evaluated on
prompts it has never seen. Only the shipped v1 files, which predate this rule and define the
held-out set, are drawn without it (``shipped``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tunix_rt.datagen.formats import DEFAULT_FORMAT
from tunix_rt.datagen.prompts import normalize_prompt
from tunix_rt.datagen.rows import Trace
from tunix_rt.datagen.sampling import Identity, TraceStream, select_families
from tunix_rt.datagen.shipped import DEFAULT_HELD_OUT, SPECS_BY_NAME, held_out_prompts

GENERATOR = "tunix_rt.datagen"
# 1.1.0: the held-out set is excluded by default, prompts compare in normal form, and a family
# whose prompts run out repeats them instead of failing. Rows that 1.0.0 could make are unchanged
# unless they hit a held-out prompt.
GENERATOR_VERSION = "1.1.0"
# 2.0.0: rows in trace format v2 (formats.py): the same prompts and answers as 1.1.0 for a seed,
# with tallies and indexed letters in the steps of seven families.
VERSIONS = {"v1": GENERATOR_VERSION, "v2": "2.0.0"}


def stream(
    n: int,
    seed: int,
    families: Sequence[str] | None = None,
    *,
    categories: Sequence[str] | None = None,
    dataset: str = "reasoning-custom",
    exclude_prompts: Iterable[str] = (),
    held_out: str = DEFAULT_HELD_OUT,
    trace_format: str = DEFAULT_FORMAT,
) -> TraceStream:
    """``n`` traces drawn with ``random.Random(seed)``, made as the stream is iterated.

    ``families`` (task types) or ``categories`` pick the families, all by default; the prompts of
    the shipped dataset ``held_out`` and ``exclude_prompts`` never appear; ``trace_format`` says
    how the steps are written (formats.py). ValueError for bad arguments, naming what is known."""
    if held_out not in SPECS_BY_NAME:
        known = ", ".join(SPECS_BY_NAME)
        raise ValueError(f"unknown held-out set: {held_out}; known: {known}")
    exclude = held_out_prompts(held_out) | {normalize_prompt(p) for p in exclude_prompts}
    return TraceStream(
        n,
        seed,
        select_families(families, categories, trace_format),
        dataset=dataset,
        identity=Identity(GENERATOR, VERSIONS[trace_format]),
        exclude=exclude,
    )


def generate(
    n: int,
    seed: int,
    families: Sequence[str] | None = None,
    *,
    categories: Sequence[str] | None = None,
    dataset: str = "reasoning-custom",
    exclude_prompts: Iterable[str] = (),
    held_out: str = DEFAULT_HELD_OUT,
    trace_format: str = DEFAULT_FORMAT,
) -> list[Trace]:
    """``stream(...)`` as a list: ``n`` traces, unique prompts until a family runs out."""
    return list(
        stream(
            n,
            seed,
            families,
            categories=categories,
            dataset=dataset,
            exclude_prompts=exclude_prompts,
            held_out=held_out,
            trace_format=trace_format,
        )
    )
