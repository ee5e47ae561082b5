"""What every backend prepares the same way before training, free of both frameworks: the base
architecture and tokenizer a spec names, the encoded and batched train data, the eval examples,
and the step plan.

Each backend's worker imports only its own framework (a torch job never loads jax, nor a JAX job
torch), so this module imports neither. The spec was validated at submission
(tunix_rt.training.job_spec); here it is only resolved.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunix_rt.common.errors import FailedPrecondition
from tunix_rt.models import presets
from tunix_rt.models.interchange.model_config import read_config
from tunix_rt.models.tokenizer import (
    TextTokenizer,
    special_ids_from_config,
    splits_letters,
    train_tokenizer,
)
from tunix_rt.training import packing
from tunix_rt.training.backends.base import Example, Reporter, TrainData
from tunix_rt.training.spec import Hyperparameters, TrainSpec, resolve_schedule

# Where a preset's tokenizer, trained on the train split, is saved in a job directory.
TOKENIZER_DIR = "tokenizer"


def architecture(spec: TrainSpec) -> tuple[presets.ArchitectureConfig, Path | None]:
    """(architecture, model directory to load weights and tokenizer from, or None)."""
    if spec.base.preset:
        return presets.apply_overrides(presets.get(spec.base.preset), spec.base.overrides), None
    if not spec.base.checkpoint_dir:
        raise FailedPrecondition(
            "the base model version was not downloaded (spec.base.checkpoint_dir is empty)",
            reason="BASE_MODEL_MISSING",
        )
    directory = Path(spec.base.checkpoint_dir)
    if not (directory / "config.json").exists():
        raise FailedPrecondition(f"{directory} has no config.json", reason="BASE_MODEL_MISSING")
    return read_config(directory).architecture, directory


def directory_files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` by relative path: what rank 0 sends the other ranks of a job
    spread over nodes (its tokenizer), whichever backend's collective carries it."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    """Writes `files` (directory_files of rank 0's) under `directory`, leaving equal ones as
    they are (ranks sharing rank 0's disk find them already there)."""
    for name, content in files.items():
        target = directory / name
        if not target.exists() or target.read_bytes() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)


def load_tokenizer(
    data: TrainData, workdir: Path, arch: presets.ArchitectureConfig, base_dir: Path | None
) -> TextTokenizer:
    """The base model's tokenizer; for a preset, one trained on the train split (once: saved in
    `workdir/tokenizer` and reused on resume)."""
    if base_dir is not None:
        return TextTokenizer.load(base_dir, special_ids_from_config(read_config(base_dir).raw))
    saved = workdir / TOKENIZER_DIR
    if (saved / "tokenizer.json").exists():
        return TextTokenizer.load(saved)
    texts = [text for e in data.train for text in (e.prompt, e.target)]
    tokenizer = train_tokenizer(texts, arch.vocab_size, splits_letters(arch.family))
    tokenizer.save(saved)
    return tokenizer


def digest(encoded: list[packing.EncodedExample]) -> str:
    """A short hash of the encoded train examples (the data stream a resume must continue)."""
    h = hashlib.sha256()
    for e in encoded:
        h.update(e.tokens.tobytes())
        h.update(e.prompt_len.to_bytes(4, "little"))
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """The step numbers of a run."""

    total_steps: int  # optimizer steps
    accumulation: int  # micro-batches per optimizer step
    eval_every: int  # steps between evaluations; 0 = only at the end
    checkpoint_every: int  # steps between checkpoints; 0 = only at the end

    def due(self, step: int, every: int) -> bool:
        """A periodic event at `step` (the end of training has its own)."""
        return every > 0 and step % every == 0 and step < self.total_steps


@dataclass
class Prepared:
    """A job's base architecture, tokenizer, batches and plan (the same on every backend)."""

    arch: presets.ArchitectureConfig
    base_dir: Path | None
    tokenizer: TextTokenizer
    max_seq_len: int
    encoded: list[packing.EncodedExample]
    stats: packing.EncodeStats
    batcher: packing.Batcher
    plan: Plan
    warmup: int
    padding: float
    eval_examples: list[Example]
    eval_encoded: list[packing.EncodedExample]

    def fingerprint(self, spec: TrainSpec) -> dict[str, Any]:
        """What the data stream and model depend on, for resume.check_run."""
        hyper = spec.hyper
        return {
            "base": spec.base.describe(),
            "architecture": self.arch.to_json(),
            "lora": bool(spec.lora),
            "tokenizer": self.tokenizer.describe(),
            "train_tokens": digest(self.encoded),
            "batching": [
                hyper.batching,
                hyper.batch_size,
                self.max_seq_len,
                hyper.seed,
                self.plan.accumulation,
            ],
        }

    def evaluation(
        self, hyper: Hyperparameters
    ) -> tuple[TextTokenizer, list[Example], list[packing.EncodedExample], int, int, int]:
        """What each backend's Evaluator takes after its model (and before its dtype)."""
        return (
            self.tokenizer,
            self.eval_examples,
            self.eval_encoded,
            hyper.batch_size,
            self.max_seq_len,
            hyper.eval_max_new_tokens,
        )

    def provenance(self, resumed_from_step: int) -> dict[str, Any]:
        """The provenance entries about the data and plan (each backend adds its own first)."""
        return {
            "architecture": self.arch.to_json(),
            "tokenizer": self.tokenizer.describe(),
            "train_examples": self.stats.examples,
            "train_examples_truncated": self.stats.truncated,
            "train_examples_dropped": self.stats.dropped,
            # What the `eval_*` metrics were measured on: the first eval_max_examples of the
            # eval split.
            "eval_examples": len(self.eval_examples),
            "padding_fraction": self.padding,
            "total_steps": self.plan.total_steps,
            "warmup_steps": self.warmup,
            "resumed_from_step": resumed_from_step,
        }


def prepare(spec: TrainSpec, data: TrainData, workdir: Path, reporter: Reporter) -> Prepared:
    """Resolves the base model and tokenizer, encodes and batches the data, plans the steps."""
    hyper = spec.hyper
    arch, base_dir = architecture(spec)
    tokenizer = load_tokenizer(data, workdir, arch, base_dir)
    max_seq_len = min(hyper.max_seq_len, arch.context_length)
    encoded, stats = packing.encode_examples(data.train, tokenizer, max_seq_len)
    if stats.truncated or stats.dropped:
        reporter.log(
            f"{stats.truncated} train examples had their prompt cut from the left and "
            f"{stats.dropped} were dropped (answer longer than max_seq_len {max_seq_len})",
            "WARNING",
        )
    if not encoded:
        raise FailedPrecondition("no train example fits max_seq_len", reason="NO_TRAIN_EXAMPLES")
    batcher = packing.make_batcher(
        hyper.batching, encoded, hyper.batch_size, max_seq_len, hyper.seed, tokenizer.pad_id()
    )
    accumulation = hyper.gradient_accumulation_steps
    total = hyper.max_steps or max(
        1, math.ceil(hyper.num_epochs * batcher.batches_per_epoch() / accumulation)
    )
    warmup, eval_every, checkpoint_every = resolve_schedule(hyper, total)
    eval_examples = data.eval[: hyper.eval_max_examples or None]
    eval_encoded, _ = packing.encode_examples(eval_examples, tokenizer, max_seq_len)
    return Prepared(
        arch=arch,
        base_dir=base_dir,
        tokenizer=tokenizer,
        max_seq_len=max_seq_len,
        encoded=encoded,
        stats=stats,
        batcher=batcher,
        plan=Plan(total, accumulation, eval_every, checkpoint_every),
        warmup=warmup,
        padding=packing.padding_fraction(batcher),
        eval_examples=eval_examples,
        eval_encoded=eval_encoded,
    )
