"""Generation throughput of the inference engines against transformers and tunix's Sampler.

    .venv/bin/python bench/inference_generate.py [--repeats 5] [--new-tokens 64]

On one model (llama3-2.5m, random init, saved as a model directory) and batch 4, greedy, 64 new
tokens: generated tokens/s of transformers `model.generate` (KV cache), tunix's Sampler, and our
JAX and torch engines (the 4 prompts submitted together with `generate_batch`, and again
from 4 threads), as ratios to transformers; then aggregate tokens/s
through each engine with 1, 4 and 16 concurrent streams (threads calling `generate`) and the
16/1 ratio. Medians of `--repeats` runs after a warm-up (compilation excluded).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunix_rt.inference.engines.base import Engine, Finished, Sampling
from tunix_rt.inference.engines.loader import load_engine
from tunix_rt.models.jax import model as model_lib
from tunix_rt.models.jax.model_dir import write_model_dir
from tunix_rt.models.presets import get
from tunix_rt.models.tokenizer import train_tokenizer

TEXTS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "A train travels 60 km in 1.5 hours. What is its average speed?",
    "If a shirt costs $20 and is 25% off, what is the sale price?",
    "Sara reads 12 pages a day. How many pages does she read in a week?",
]


def build_model_dir(path: Path) -> Path:
    arch = get("llama3-2.5m").config
    tokenizer = train_tokenizer(TEXTS * 20, 700)
    arch = dataclasses.replace(arch, vocab_size=1024)
    model = model_lib.create_model(arch, seed=0)
    return write_model_dir(path, model, arch, tokenizer, chat_template="plain", training_step=0)


def interleaved_rates(runs: dict[str, Callable[[], int]], repeats: int) -> dict[str, float]:
    """Median tokens/s of each run, measured in alternating rounds (one of each per round, after
    two warm-ups each): the shared host's speed drifts by tens of percent within minutes, which
    measuring one contender after the other would put into the ratios."""
    for run in runs.values():
        run()
        run()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            tokens = run()
            rates[name].append(tokens / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def engine_run(engine: Engine, prompts: list[list[int]], new_tokens: int) -> Callable[[], int]:
    def run() -> int:
        results: list[Finished] = []

        def one(ids: list[int]) -> None:
            sampling = Sampling(max_new_tokens=new_tokens)
            for event in engine.generate(ids, sampling, lambda: False):
                if isinstance(event, Finished):
                    results.append(event)

        threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(r.completion_tokens for r in results)

    return run


def engine_batch_run(
    engine: Engine, prompts: list[list[int]], new_tokens: int
) -> Callable[[], int]:
    """All prompts submitted together (`generate_batch`), as the Sampler and transformers get
    them: the same batch from the first step."""

    def run() -> int:
        finished = engine.generate_batch(
            prompts, Sampling(max_new_tokens=new_tokens), lambda: False
        )
        return sum(f.completion_tokens for f in finished)

    return run


def transformers_run(
    model_dir: Path, prompts: list[list[int]], new_tokens: int
) -> Callable[[], int]:
    import torch
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.eval()
    length = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), length), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, length - len(p) :] = torch.tensor(p)
        mask[i, length - len(p) :] = 1

    def run() -> int:
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=0,
            )
        return int((out.shape[1] - length) * out.shape[0])

    return run


def tunix_run(model_dir: Path, texts: list[str], new_tokens: int) -> Callable[[], int]:
    from tunix_rt.models.jax.model_dir import load_model_dir
    from tunix_rt.training.backends.jax.generate import Generator

    model, tokenizer, _ = load_model_dir(model_dir)
    generator = Generator(model, tokenizer)

    def run() -> int:
        generator(texts, new_tokens)
        return len(texts) * new_tokens

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--engines", default="jax,torch")
    args = parser.parse_args()
    n = args.new_tokens
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model_dir(Path(tmp) / "model")
        engines = {b: load_engine(model_dir, backend=b) for b in args.engines.split(",")}
        for engine in engines.values():
            engine.warmup(16)  # type: ignore[attr-defined]
        any_engine = next(iter(engines.values()))
        prompts = [any_engine.encode_prompt(t) for t in TEXTS]
        rates: dict[str, float] = {}
        # torch's default of one thread per core loses badly when the cores are shared (OpenMP
        # barriers spin); the baseline is the better of the default and one thread, and the
        # torch engine then runs with the same setting.
        import torch

        default_threads = torch.get_num_threads()
        by_threads = {}
        for threads in sorted({default_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            baseline = transformers_run(model_dir, prompts, n)
            by_threads[threads] = interleaved_rates({"hf": baseline}, args.repeats)["hf"]
        best = max(by_threads, key=lambda t: by_threads[t])
        torch.set_num_threads(best)
        print(
            "transformers by torch threads: "
            + ", ".join(f"{t}: {r:.0f} tokens/s" for t, r in by_threads.items())
            + f"; using {best}"
        )
        rates["transformers"] = by_threads[best]
        runs = {"tunix Sampler": tunix_run(model_dir, TEXTS, n)}
        for name, engine in engines.items():
            runs[f"engine {name}"] = engine_batch_run(engine, prompts, n)
            # The same 4 requests from 4 threads, as 4 callers of the service would send them:
            # they reach the scheduler one after another, so the first decodes alone at first.
            runs[f"{name}, 4 threads"] = engine_run(engine, prompts, n)
        rates.update(interleaved_rates(runs, args.repeats))
        print(f"batch 4, {n} new tokens, greedy (median of {args.repeats})")
        for name, rate in rates.items():
            print(
                f"  {name:16s} {rate:9.0f} tokens/s  x{rate / rates['transformers']:.2f} vs "
                f"transformers  x{rate / rates['tunix Sampler']:.2f} vs tunix"
            )
        for name, engine in engines.items():
            sixteen = [prompts[i % len(prompts)] for i in range(16)]
            by_count: dict[str, Callable[[], int]] = {
                str(count): engine_run(engine, sixteen[:count], n) for count in (1, 4, 16)
            }
            by_count["16 together"] = engine_batch_run(engine, sixteen, n)
            measured = interleaved_rates(by_count, args.repeats)
            streams = {count: measured[str(count)] for count in (1, 4, 16)}
            together = measured["16 together"]
            print(
                f"engine {name} concurrent streams: "
                + ", ".join(f"{c}: {r:.0f} tokens/s" for c, r in streams.items())
                + f"; 16/1 = {streams[16] / streams[1]:.2f}; 16 submitted together "
                + f"{together:.0f} tokens/s, / 1 stream = {together / streams[1]:.2f}"
            )
        for engine in engines.values():
            engine.close()


if __name__ == "__main__":
    main()
