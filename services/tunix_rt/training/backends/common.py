"""What the JAX and torch backends do the same way, in one place and free of both frameworks.

Each backend's worker imports only its own framework (a torch job never loads jax, nor a JAX job
torch), so this module imports neither: the base model and tokenizer a spec names, the data
preparation (packing), the `run.json` a resume must match, the step plan, the answer-accuracy
scoring and chunking of evaluation prompts, the model directory's config and adapter entry, and
the provenance and final metrics every backend reports.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Required, TypedDict

import numpy as np

from tunix_rt.common.errors import FailedPrecondition, FieldViolation, InvalidArgument
from tunix_rt.interchange.model_config import read_config, write_config
from tunix_rt.training import packing, presets
from tunix_rt.training.answers import answers_match, extract_answer
from tunix_rt.training.backends.base import Example, Reporter, Stopped, TrainData
from tunix_rt.training.spec import LoraSpec, TrainSpec, resolve_schedule
from tunix_rt.training.tokenizer import TextTokenizer, special_ids_from_config, train_tokenizer

P = "training_job."
TRAINING, EVALUATING, CHECKPOINTING = "TRAINING", "EVALUATING", "CHECKPOINTING"  # phases
RUN_FILE = "run.json"
DEFAULT_CHUNK = 16  # prompts generated together


# --- Validation -------------------------------------------------------------------------------


def batch_size_violations(spec: TrainSpec, device_count: int) -> list[FieldViolation]:
    """The batch must split evenly over the devices."""
    if spec.hyper.batch_size % max(1, device_count):
        return [
            FieldViolation(
                P + "hyperparameters.batch_size",
                f"must be a multiple of the device count ({device_count})",
            )
        ]
    return []


def preset_violations(spec: TrainSpec) -> list[FieldViolation]:
    """An unknown preset, or overrides it does not accept."""
    if not spec.base.preset:
        return []
    try:
        presets.apply_overrides(presets.get(spec.base.preset), spec.base.overrides)
    except KeyError:
        return [FieldViolation(P + "preset", "is not a known preset")]
    except InvalidArgument as exc:
        return list(exc.violations)
    return []


# --- Base model, tokenizer, data ----------------------------------------------------------------


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


def load_tokenizer(
    data: TrainData, workdir: Path, arch: presets.ArchitectureConfig, base_dir: Path | None
) -> TextTokenizer:
    """The base model's tokenizer; for a preset, one trained on the train split (once: saved in
    `workdir/tokenizer` and reused on resume)."""
    if base_dir is not None:
        return TextTokenizer.load(base_dir, special_ids_from_config(read_config(base_dir).raw))
    saved = workdir / "tokenizer"
    if (saved / "tokenizer.json").exists():
        return TextTokenizer.load(saved)
    texts = [text for e in data.train for text in (e.prompt, e.target)]
    tokenizer = train_tokenizer(texts, arch.vocab_size)
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
        """What the data stream and model depend on, for check_run."""
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

    def provenance(self, resumed_from_step: int) -> dict[str, Any]:
        """The provenance entries about the data and plan (each backend adds its own first)."""
        return {
            "architecture": self.arch.to_json(),
            "tokenizer": self.tokenizer.describe(),
            "train_examples": self.stats.examples,
            "train_examples_truncated": self.stats.truncated,
            "train_examples_dropped": self.stats.dropped,
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


# --- Resume -------------------------------------------------------------------------------------


class ResumeMismatch(FailedPrecondition):
    """The working directory's checkpoints belong to a different data stream or model."""

    reason = "RESUME_MISMATCH"


def check_run(workdir: Path, fingerprint: dict[str, Any]) -> bool:
    """Records `fingerprint` on the first start; on later starts raises ResumeMismatch when it
    differs. True when checkpoints from an earlier start may exist."""
    path = workdir / RUN_FILE
    if path.exists():
        recorded = json.loads(path.read_text())
        changed = sorted(k for k in fingerprint if recorded.get(k) != fingerprint[k])
        if changed:
            raise ResumeMismatch(
                f"the checkpoints in {workdir} were made with a different {', '.join(changed)}"
            )
        return True
    workdir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n")
    return False


# --- Generation and evaluation --------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One call of a ChunkedGenerator (its arguments, for the backend's `_generate`)."""

    prompts: Sequence[str]  # at least one
    max_new_tokens: int
    temperature: float  # 0: greedy; above 0: sampling with `seed`
    top_p: float | None
    top_k: int | None
    seed: int
    chunk_size: int
    should_stop: Callable[[], bool] | None


class ChunkedGenerator(ABC):
    """Generates continuations of prompts, a chunk of prompts at a time; each backend supplies
    `_generate` (usually `in_chunks` around its own chunk function)."""

    def __call__(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float | None = None,
        top_k: int | None = None,
        seed: int = 0,
        chunk_size: int = DEFAULT_CHUNK,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[str]:
        """The generated text (prompt excluded, stopping at EOS) of each prompt. `temperature` 0
        is greedy; above 0 samples (top-p 1.0 unless given; `seed` fixes the draw).
        `should_stop` is asked between chunks; once it says True the remaining prompts get ""."""
        if not prompts:
            return []
        return self._generate(
            Request(
                prompts, max_new_tokens, temperature, top_p, top_k, seed, chunk_size, should_stop
            )
        )

    @abstractmethod
    def _generate(self, request: Request) -> list[str]:
        """__call__ for at least one prompt."""


def in_chunks(
    request: Request, chunk_size: int, generate_chunk: Callable[[Sequence[str]], list[str]]
) -> list[str]:
    """`generate_chunk` over consecutive chunks of the request's prompts, asking its
    `should_stop` before each; once it says True the remaining prompts get ""."""
    prompts, should_stop = request.prompts, request.should_stop
    out: list[str] = []
    for start in range(0, len(prompts), chunk_size):
        if should_stop is not None and should_stop():
            return out + [""] * (len(prompts) - len(out))
        out.extend(generate_chunk(prompts[start : start + chunk_size]))
    return out


class EvaluatorBase(ABC):
    """Eval loss (each backend's `loss`) and eval answer accuracy: greedy generation on the
    examples' prompts, `extract_answer`, and `answers_match` against the trace's final answer."""

    def __init__(
        self,
        examples: Sequence[Example],
        generator: ChunkedGenerator,
        max_new_tokens: int,
    ) -> None:
        self.examples = list(examples)
        self.generator = generator
        self.max_new_tokens = max_new_tokens

    @abstractmethod
    def loss(self) -> float:
        """Mean cross-entropy per target token over the eval examples; nan without any."""

    def answer_accuracy(self, should_stop: Callable[[], bool] | None = None) -> float:
        """Fraction of eval prompts whose greedy generation has the right answer."""
        if not self.examples:
            return float("nan")
        texts = self.generator(
            [e.prompt for e in self.examples], self.max_new_tokens, should_stop=should_stop
        )
        right = [
            answers_match(extract_answer(t), e.answer)
            for t, e in zip(texts, self.examples, strict=True)
        ]
        return float(np.mean(right))

    def evaluate(self, should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
        """{"eval_loss": ..., "eval_answer_accuracy": ...}; {} without eval examples."""
        if not self.examples:
            return {}
        return {
            "eval_loss": self.loss(),
            "eval_answer_accuracy": self.answer_accuracy(should_stop),
        }


def evaluate_between_steps(evaluator: EvaluatorBase, reporter: Reporter) -> dict[str, float]:
    """A periodic evaluation: the EVALUATING phase, then back to TRAINING; Stopped when the job
    was cancelled meanwhile."""
    reporter.phase(EVALUATING)
    values = evaluator.evaluate(reporter.should_stop)
    if reporter.should_stop():
        raise Stopped()
    reporter.phase(TRAINING)
    return values


# --- Model directory ----------------------------------------------------------------------------


class ModelDirOptions(TypedDict, total=False):
    """The keyword arguments of every backend's `write_model_dir`."""

    chat_template: Required[str]
    training_step: Required[int]
    lora: LoraSpec | None  # the job's LoRA (None: full fine-tuning)
    lora_mode: str  # "merged" (LoRA folded into the weights) or "adapter" (adapter only)
    base: str  # the base model an adapter applies to
    extra: dict[str, Any] | None  # more `tunix_rt` config entries


# (directory, the job's LoRA or None, adapter only?) -> writes the weights and returns what the
# adapter entry of the config adds to rank, alpha, target modules and base (e.g. its format).
SaveWeights = Callable[[Path, LoraSpec | None, bool], dict[str, Any]]


def write_model_dir(
    path: Path,
    arch: presets.ArchitectureConfig,
    tokenizer: TextTokenizer,
    backend: str,
    save_weights: SaveWeights,
    *,
    chat_template: str,
    training_step: int,
    lora: LoraSpec | None = None,
    lora_mode: str = "merged",
    base: str = "",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Writes a model directory: the weights (`save_weights`), config.json, tokenizer.json."""
    path.mkdir(parents=True, exist_ok=True)
    adapter_lora = lora if lora_mode == "adapter" else None
    added = save_weights(path, lora, adapter_lora is not None)
    adapter = None
    if adapter_lora is not None:
        adapter = {
            "rank": adapter_lora.rank,
            "alpha": adapter_lora.alpha,
            "target_modules": list(adapter_lora.target_modules),
            "base": base,
            **added,
        }
    write_config(
        path,
        arch,
        tokenizer_ids={
            "bos": tokenizer.bos_id(),
            "eos": tokenizer.eos_id(),
            "pad": tokenizer.pad_id(),
        },
        tokenizer_description=tokenizer.describe(),
        backend=backend,
        chat_template=chat_template,
        training_step=training_step,
        adapter=adapter,
        extra=extra,
    )
    tokenizer.save(path)
    return path


# --- Results ------------------------------------------------------------------------------------


def library_versions(names: Sequence[str]) -> dict[str, str]:
    """The installed version of each distribution ("absent" when it is not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def final_metrics(
    last: dict[str, float], final_eval: dict[str, float], tokens_per_second: float | None
) -> dict[str, float]:
    """The model version's metrics: the last step's loss and grad norm, the final evaluation and
    the mean training throughput; non-finite values left out."""
    out = {k: v for k, v in last.items() if k in ("loss", "grad_norm")}
    out.update(final_eval)
    if tokens_per_second is not None:
        out["train_tokens_per_second"] = tokens_per_second
    return {k: v for k, v in out.items() if math.isfinite(v)}
