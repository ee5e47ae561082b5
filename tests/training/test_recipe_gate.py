"""The main job's recipe is a regression gate: a reduced budget of exactly what `make demo` runs
(generated v2 traces, the recipe's tokenizer, packing, prompt-masked loss, model, optimizer and
bfloat16 autocast through the torch backend's own `train`) must answer a floor of the held-out
items, scored with the inference service's extraction and matching.

Reduced budget: the full recipe needs ~2,000 steps before the digit-level families move (240
steps of it score 4.5 %, no better than a constant answer), so the gate trains on the families a
sound pipeline learns first, the ones that read a prompt item by item and keep a tally or shift
a decimal point (GATE_FAMILIES), and is scored on their held-out items of reasoning-eval-v1. A
broken tokenizer (digits merged, letters lost, decode wrong), a loss mask that trains on prompts
or misses the answer, or an extraction that reads the wrong line puts these near 0; the floor
sits under the measured figure by more than seed noise. Marked slow: ~2 minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.test_jax_backend import CollectingReporter, make_spec
from tunix_rt import datagen
from tunix_rt.common.rendering import render_prompt
from tunix_rt.models.answers import answers_match, extract_answer
from tunix_rt.models.torch.model_dir import load_model_dir
from tunix_rt.training.backends import torch_backend
from tunix_rt.training.backends.base import Example, TrainData
from tunix_rt.training.backends.torch.generate import Generator

ROOT = Path(__file__).resolve().parents[2]
HELD_OUT = ROOT / "datasets" / "reasoning-eval-v1.jsonl"
# The reduced recipe: the demo's data, model, batch and learning rate, fewer rows and steps.
ROWS, STEPS = 3000, 400
GATE_FAMILIES = (
    "count_letter",
    "count_vowels",
    "count_words",
    "string_reverse",
    "convert_length",
    "convert_mass",
)
# Measured 2026-12-06 on the 2-core AMD EPYC (bfloat16 autocast, as the demo there), the demo's
# llama3-1.3m: 0.45 of the 60 items (convert_mass 9/10, count_vowels 7, convert_length 6,
# count_words 3, count_letter 2, string_reverse 0); llama3-small scored 0.467. The floor leaves
# ~2.5 standard errors for another CPU's rounding and thread count, and still sits 10 points over
# the best constant answer (0.20).
FLOOR = 0.30

# Left out of `make test` unless asked for (2 minutes of 2 quiet cores, 5 on a busy machine,
# would take the suite past its 20-minute budget): `make test-gate` runs it, and CI runs that
# after the suite.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        os.environ.get("TUNIX_RT_RECIPE_GATE") != "1",
        reason="the recipe gate trains for minutes: run it with TUNIX_RT_RECIPE_GATE=1",
    ),
]


def _examples(rows: int, seed: int) -> list[Example]:
    traces = datagen.generate(rows, seed, GATE_FAMILIES, trace_format="v2")
    return [Example.of_row(t, f"traces/{n}") for n, t in enumerate(traces)]


def _score(outputs: list[str], items: list[dict[str, Any]]) -> dict[str, float]:
    by_category: dict[str, list[int]] = defaultdict(list)
    for item, output in zip(items, outputs, strict=True):
        correct = answers_match(extract_answer(output), item["final_answer"])
        by_category[item["meta"]["task_type"]].append(int(correct))
    scores = {k: sum(v) / len(v) for k, v in sorted(by_category.items())}
    scores["total"] = sum(sum(v) for v in by_category.values()) / len(items)
    return scores


def test_a_reduced_demo_recipe_answers_the_held_out_floor(tmp_path: Path) -> None:
    data = TrainData(train=_examples(ROWS, 1007), eval=_examples(8, 2007))
    spec = make_spec(
        STEPS,
        preset="llama3-1.3m",
        learning_rate=2e-3,
        batch_size=8,
        max_seq_len=256,
        checkpoint_interval_steps=0,
        eval_interval_steps=0,
        eval_max_examples=1,
        eval_max_new_tokens=8,
        precision="mixed_bfloat16",
        seed=0,
    )
    spec = replace(spec, backend="torch")
    result = torch_backend.train(spec, data, tmp_path, CollectingReporter())
    model, tokenizer, _ = load_model_dir(result.model_dir)
    items = [json.loads(line) for line in HELD_OUT.read_text().splitlines() if line.strip()]
    items = [item for item in items if item["meta"]["task_type"] in GATE_FAMILIES]
    assert len(items) == 10 * len(GATE_FAMILIES)
    prompts = [render_prompt(item["prompt"]) for item in items]
    with torch.inference_mode():
        outputs = Generator(model, tokenizer)(prompts, 160, 0.0, None, None, 0, 50)
    scores = _score(outputs, items)
    # The best a model could do by answering one constant: the counting items' small answers
    # make that 20 % here, and the floor must stay over it by a margin whatever the items.
    constant = Counter(item["final_answer"] for item in items).most_common(1)[0][1] / len(items)
    print(json.dumps({**scores, "best_constant": constant}))
    assert scores["total"] >= max(FLOOR, constant + 0.10), scores
