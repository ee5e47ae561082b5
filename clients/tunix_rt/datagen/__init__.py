"""tunix_rt.datagen: the reasoning-trace generator, correct-by-construction traces in the
registry's format, as many as asked for.

Plain Python: it imports no other tunix_rt package, no gRPC and no ML framework, so the client
(`tunix-rt datasets generate`), the scripts in ``datasets/`` and the tests can all use it.

    from tunix_rt.datagen import generate
    traces = generate(20_000, seed=7)                     # every family, balanced
    traces = generate(500, seed=7, categories=["arithmetic"])

Modules: ``families`` (the task families), ``sampling`` (row schedule, unique prompts, exhausted
families), ``prompts`` (the normal form prompts are compared in), ``generation`` (the public
entry points, with the held-out rule), ``shipped`` (the v1 files in ``datasets/`` and the held-out
set), ``formats`` (how steps are written: v1, v2), ``manifest`` (what a dataset holds, and its
hash), ``rows`` (the row format and limits).
"""

from __future__ import annotations

from tunix_rt.datagen.families import CATEGORIES, DIFFICULTIES, FAMILIES, Family, Problem
from tunix_rt.datagen.formats import DEFAULT_FORMAT, FORMATS
from tunix_rt.datagen.generation import GENERATOR, GENERATOR_VERSION, generate, stream
from tunix_rt.datagen.manifest import Tally, generated_manifest, manifest_from_description
from tunix_rt.datagen.prompts import normalize_prompt
from tunix_rt.datagen.rows import Trace, serialize, to_jsonl, validate_trace
from tunix_rt.datagen.sampling import SamplingStats, TraceStream, select_families
from tunix_rt.datagen.shipped import DEFAULT_HELD_OUT, held_out_prompts, shipped_prompts

__all__ = [
    "CATEGORIES",
    "DEFAULT_FORMAT",
    "DEFAULT_HELD_OUT",
    "DIFFICULTIES",
    "FAMILIES",
    "FORMATS",
    "GENERATOR",
    "GENERATOR_VERSION",
    "Family",
    "Problem",
    "SamplingStats",
    "Tally",
    "Trace",
    "TraceStream",
    "generate",
    "generated_manifest",
    "held_out_prompts",
    "manifest_from_description",
    "normalize_prompt",
    "select_families",
    "serialize",
    "shipped_prompts",
    "stream",
    "to_jsonl",
    "validate_trace",
]
