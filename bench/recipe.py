"""The main job's recipe, one lever at a time: train a from-scratch model on generated traces and
score it greedily on the 200 held-out items, exactly as the services do it, in one process.

    .venv/bin/python bench/recipe.py --rows 16000 --steps 1200 --lr 2e-3 --tag v2-letters
    .venv/bin/python bench/recipe.py --trace-format v1 --bpe-letters --tag v1-bpe

The pipeline is the services' own code: `tunix_rt.datagen` (traces, held-out prompts excluded),
the SFT rendering, `train_tokenizer`, packing, the torch model and loss, AdamW with warmup and
cosine decay, `Generator` (greedy, KV cache) and `extract_answer`/`answers_match`. What it skips is
the gRPC around them, so a lever can be measured without starting services; `make demo` is the
end-to-end check of the chosen recipe. Each run appends a JSON line to --out (docs/recipes.md
tabulates them). Accuracy on 200 items moves by about ±4 points between seeds: compare levers
with more than one seed before trusting a gap that small.
"""

# The multiplication and division signs are the traces' own (tunix_rt.datagen.families).
# ruff: noqa: RUF001, RUF002

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from tunix_rt import datagen
from tunix_rt.common.rendering import render_prompt, render_target
from tunix_rt.models import presets
from tunix_rt.models.answers import answers_match, extract_answer
from tunix_rt.models.tokenizer import train_tokenizer
from tunix_rt.models.torch.model import config_for, create_model
from tunix_rt.training import packing
from tunix_rt.training.backends.adamw import make_schedule
from tunix_rt.training.backends.base import Example
from tunix_rt.training.backends.torch.generate import Generator
from tunix_rt.training.backends.torch.loss import to_inputs, token_losses
from tunix_rt.training.backends.torch.trainer import make_optimizer
from tunix_rt.training.spec import Hyperparameters

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = ROOT / "datasets" / "reasoning-eval-v1.jsonl"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=16000, help="generated train traces")
    p.add_argument("--seed", type=int, default=0, help="data and initialisation seed")
    p.add_argument("--trace-format", default=datagen.DEFAULT_FORMAT, choices=datagen.FORMATS)
    p.add_argument("--bpe-letters", action="store_true", help="let BPE merge any letters")
    p.add_argument("--preset", default="llama3-small")
    p.add_argument(
        "--arch",
        action="append",
        default=[],
        metavar="FIELD=N",
        help="override an architecture field of the preset (as a job's architecture_overrides)",
    )
    p.add_argument(
        "--facts",
        type=int,
        default=0,
        help="add this many one-step fact rows (one-digit +, -, x and division with remainder, "
        "in the traces' own wording) to the training rows",
    )
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, help="warmup steps [default: 5 %% of --steps]")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast in training")
    p.add_argument("--max-new-tokens", type=int, default=192)
    p.add_argument("--tag", default="")
    p.add_argument("--dump", type=Path, help="write every held-out output here (JSON lines)")
    p.add_argument(
        "--eval-at",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[],
        metavar="STEP,…",
        help="also score the held-out items after these steps (a long run's curve)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "build" / "recipe-results.jsonl")
    return p.parse_args()


def _examples(a: argparse.Namespace) -> list[Example]:
    traces = datagen.generate(a.rows, a.seed + 1001, trace_format=a.trace_format)
    rows = [Example.of_row(t) for t in traces]
    rng = random.Random(a.seed + 2001)
    facts = [_fact(rng) for _ in range(a.facts)]
    rows += [
        Example("f", render_prompt(p), render_target([w], answer), answer) for p, w, answer in facts
    ]
    random.Random(a.seed + 3001).shuffle(rows)
    return rows


def _fact(rng: random.Random) -> tuple[str, str, str]:
    """A one-step fact as the traces write it (column sums, borrows, partial products, long
    division's steps): (prompt, the step, the answer). The prompts ("Fact: 7 × 8") are unlike
    any held-out prompt."""
    op = rng.choice("+-×÷")
    if op == "+":
        x, y = rng.randrange(10), rng.randrange(10)
        work, answer = f"{x} + {y} = {x + y}", str(x + y)
    elif op == "-":
        y = rng.randrange(10)
        x = y + rng.randrange(10)
        work, answer = f"{x} - {y} = {x - y}", str(x - y)
    elif op == "×":
        x, y = rng.randrange(10), rng.randrange(10)
        work, answer = f"{x} × {y} = {x * y}", str(x * y)
    else:
        y = rng.randrange(2, 10)
        x = rng.randrange(10 * y)
        q, r = divmod(x, y)
        work, answer = f"{x} ÷ {y} = {q}, remainder {r}", f"{q} remainder {r}"
    return f"Fact: {work.split(' = ')[0]}", work, answer


def _train(
    a: argparse.Namespace, model: Any, batcher: packing.Batcher, at: Callable[[int], None]
) -> float:
    # The services' optimizer and schedule: AdamW with decay on matrices only, 5 % warmup (as a
    # job's default) and cosine decay to 10 % of the peak.
    hyper = Hyperparameters(learning_rate=a.lr, max_steps=a.steps, batch_size=a.batch_size)
    warmup = a.warmup if a.warmup is not None else max(0, a.steps // 20)
    schedule = make_schedule(hyper, a.steps, warmup)
    optimizer = make_optimizer(model, hyper)
    model.train()
    started, tokens = time.perf_counter(), 0
    for step in range(a.steps):
        for group in optimizer.param_groups:
            group["lr"] = float(schedule(step))
        batch = batcher.batch(step)
        autocast = torch.bfloat16 if a.bf16 else None
        total, _ = token_losses(model, to_inputs(batch, torch.device("cpu")), autocast)
        (total / max(1, batch.num_target_tokens)).backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += batch.num_tokens
        if step % 100 == 0 or step == a.steps - 1:
            loss = float(total.detach()) / max(1, batch.num_target_tokens)
            seconds = time.perf_counter() - started
            print(f"step {step + 1}/{a.steps} loss {loss:.4f} {tokens / seconds:,.0f} tok/s")
        if step + 1 in a.eval_at and step + 1 < a.steps:
            paused = time.perf_counter()
            at(step + 1)
            model.train()
            started += time.perf_counter() - paused  # evaluation is not training time
    return time.perf_counter() - started


def main() -> None:
    a = _args()
    torch.set_num_threads(a.threads)
    print(f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    train = _examples(a)
    texts = [t for e in train for t in (e.prompt, e.target)]
    arch = presets.get(a.preset).config
    overrides = dict(item.split("=", 1) for item in a.arch)
    arch = replace(arch, **{k: type(getattr(arch, k))(v) for k, v in overrides.items()})
    tokenizer = train_tokenizer(texts, arch.vocab_size, split_letters=not a.bpe_letters)
    encoded, _ = packing.encode_examples(train, tokenizer, a.seq_len)
    batcher = packing.make_batcher(
        "packed", encoded, a.batch_size, a.seq_len, a.seed, tokenizer.pad_id()
    )
    model = create_model(config_for(arch, tokenizer), a.seed)
    items = [json.loads(line) for line in HELD_OUT.read_text().splitlines() if line.strip()]
    train_s = _train(a, model, batcher, lambda step: _score(a, model, tokenizer, items, step, 0.0))
    _score(a, model, tokenizer, items, a.steps, train_s)


def _score(
    a: argparse.Namespace, model: Any, tokenizer: Any, items: list[Any], step: int, train_s: float
) -> None:
    """Scores the held-out items greedily; prints the table and appends a record to --out."""
    model.eval()
    prompts = [render_prompt(item["prompt"]) for item in items]
    outputs = Generator(model, tokenizer)(prompts, a.max_new_tokens, 0.0, None, None, 0, 32)
    by_category: dict[str, list[int]] = defaultdict(list)
    dump = a.dump.open("w") if a.dump and step == a.steps else None
    for item, output in zip(items, outputs, strict=True):
        correct = answers_match(extract_answer(output), item["final_answer"])
        by_category[item["meta"]["category"]].append(int(correct))
        if dump:
            dump.write(json.dumps({**item["meta"], "output": output, "correct": correct}) + "\n")
    accuracy = sum(sum(v) for v in by_category.values()) / len(items)
    categories = {k: sum(v) / len(v) for k, v in sorted(by_category.items())}
    print(
        f"{a.tag} step {step}: held-out accuracy {accuracy:.3f} "
        + " ".join(f"{k}={v:.2f}" for k, v in categories.items())
        + (f" (training {train_s:.0f} s)" if train_s else "")
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with a.out.open("a") as out:
        record = {**{k: str(v) for k, v in vars(a).items()}, "step": step, "accuracy": accuracy}
        out.write(json.dumps({**record, "categories": categories, "train_s": train_s}) + "\n")


if __name__ == "__main__":
    main()
