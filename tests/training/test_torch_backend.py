"""The torch backend end to end: real tiny transformers models trained on CPU.

One module-scoped run (llama3-tiny, 60 examples of reasoning-mini-v1, 16 steps, checkpoints
every 4, evaluation every 8) serves most tests; the resume test replays it after a stop, the LoRA
tests fine-tune its model directory. Resumed losses must equal the uninterrupted run's exactly
(measured: bit-identical on CPU float32).
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.training.test_jax_backend import ROOT, CollectingReporter, _example
from tests.training.test_jax_backend import make_spec as jax_spec
from tests.training.test_jax_backend import pytestmark as jax_warnings
from tunix_rt.common.errors import FailedPrecondition
from tunix_rt.models.lora import LoraSpec
from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.models.tokenizer import train_tokenizer
from tunix_rt.models.torch import model as model_lib
from tunix_rt.training import packing
from tunix_rt.training.backends import preparation, torch_backend
from tunix_rt.training.backends.base import NonFiniteLoss, Stopped, TrainData, TrainResult
from tunix_rt.training.backends.torch.loss import to_inputs, token_losses
from tunix_rt.training.backends.torch.parallel import run_data_parallel
from tunix_rt.training.spec import BaseModel, Registration, TrainSpec

# Loading a directory into the JAX backend meets the deprecations test_jax_backend filters.
pytestmark = jax_warnings

STEP_METRICS = {"loss", "learning_rate", "grad_norm", "step_time_seconds", "tokens_per_second"}
# Model FLOPs utilisation (training/backends/mfu.py), and the FLOPs count once at the first step.
MFU_METRICS = {"achieved_flops_per_second", "mfu"}
Trained = tuple[TrainResult, CollectingReporter, Path]


def make_spec(steps: int = 16, **changes: Any) -> TrainSpec:
    hyper: dict[str, Any] = dict(
        checkpoint_interval_steps=4, eval_interval_steps=8, eval_max_new_tokens=24
    )
    hyper.update(changes.pop("hyper", {}))
    spec = replace(jax_spec(steps, **hyper), backend="torch")
    return replace(spec, **changes)


@pytest.fixture(scope="module")
def data() -> TrainData:
    lines = (ROOT / "datasets" / "reasoning-mini-v1.jsonl").read_text().splitlines()
    rows = [_example(json.loads(line)) for line in lines]
    return TrainData(train=rows[:60], eval=rows[60:76])


@pytest.fixture(scope="module")
def trained(data: TrainData, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    workdir = tmp_path_factory.mktemp("torch-train")
    reporter = CollectingReporter()
    result = torch_backend.train(make_spec(), data, workdir, reporter)
    return result, reporter, workdir


def test_a_packed_row_has_the_loss_of_its_examples_alone(data: TrainData) -> None:
    tokenizer = train_tokenizer([t for e in data.train for t in (e.prompt, e.target)], 512)
    encoded, _ = packing.encode_examples(data.train[:6], tokenizer, 512)
    model = model_lib.create_model(
        model_lib.config_for(ArchitectureConfig.llama3_tiny(), tokenizer), seed=3
    ).eval()
    width = sum(len(e) for e in encoded[:3]) + 5  # three examples in one row, then padding
    packed = packing.build_batch([encoded[:3], encoded[3:4]], 2, width, tokenizer.pad_id())
    assert packed.segment_ids[0].max() == 3
    cpu = torch.device("cpu")
    with torch.no_grad():
        total, count = token_losses(model, to_inputs(packed, cpu))
        alone_total = alone_count = 0.0
        for example in encoded[:4]:
            single = packing.build_batch([[example]], 1, len(example), tokenizer.pad_id())
            t, c = token_losses(model, to_inputs(single, cpu))
            alone_total, alone_count = alone_total + float(t), alone_count + float(c)
    assert float(count) == alone_count
    assert float(total) == pytest.approx(alone_total, rel=1e-5)


def test_the_loss_falls_and_every_step_reports_its_metrics(trained: Trained) -> None:
    result, reporter, _ = trained
    metrics = reporter.step_metrics()
    assert sorted(metrics) == list(range(1, 17))
    for step, values in metrics.items():
        first = {"model_flops_per_token"} if step == 1 else set()
        assert set(values) == STEP_METRICS | MFU_METRICS | first, step
        assert all(np.isfinite(v) for v in values.values())
    losses = [metrics[s]["loss"] for s in range(1, 17)]
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 1.0, losses
    steps = [s for s, _ in reporter.of("metrics")]
    assert steps == sorted(steps)  # evaluations and checkpoints come after their step's metrics
    assert [p[0] for p in reporter.of("progress")] == list(range(1, 17))
    assert metrics[1]["learning_rate"] == pytest.approx(3e-3)
    assert metrics[16]["learning_rate"] == pytest.approx(3e-4)
    assert result.total_steps == 16
    assert result.provenance["backend"] == "torch"
    assert result.provenance["parameter_count"] == result.provenance["trainable_parameter_count"]
    assert set(result.provenance["library_versions"]) >= {"torch", "transformers", "peft"}


def test_evaluation_runs_periodically_and_at_the_end(trained: Trained) -> None:
    result, reporter, _ = trained
    evals = reporter.eval_metrics()
    assert sorted(evals) == [8, 16]
    for values in evals.values():
        assert set(values) == {"eval_loss", "eval_answer_accuracy"}
        assert 0.0 <= values["eval_answer_accuracy"] <= 1.0
    assert evals[16]["eval_loss"] < evals[8]["eval_loss"]
    phases = reporter.of("phase")
    assert phases[:2] == ["PREPARING", "TRAINING"]
    assert result.final_metrics["eval_loss"] == evals[16]["eval_loss"]


def test_checkpoints_are_reported_and_the_latest_three_kept(trained: Trained) -> None:
    _, reporter, workdir = trained
    assert [c[0] for c in reporter.of("checkpoint")] == [4, 8, 12, 16]
    kept = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir())
    assert kept == [8, 12, 16]
    meta = json.loads((workdir / "checkpoints" / "12" / "meta.json").read_text())
    assert meta["step"] == 12 and meta["data_position"] == 12


def test_the_model_directory_loads_in_transformers_and_in_the_jax_backend(
    trained: Trained,
) -> None:
    from transformers import AutoModelForCausalLM

    result, _, _ = trained
    path = result.model_dir
    config = json.loads((path / "config.json").read_text())
    assert config["tunix_rt"]["backend"] == "torch"
    plain: Any = AutoModelForCausalLM.from_pretrained(str(path))  # no tunix-rt code
    plain.eval()
    ours, tokenizer, _ = torch_backend.load_model_dir(path)
    ids = torch.tensor([[tokenizer.bos_id(), *tokenizer.encode("Question: what is 2 + 3?")]])
    with torch.no_grad():
        expected = ours(input_ids=ids).logits
        assert torch.equal(plain(input_ids=ids).logits, expected)

    from tunix_rt.training.backends import jax_backend

    jax_model, _, jax_config = jax_backend.load_model_dir(path)
    assert jax_config.backend == "torch"
    positions = np.arange(ids.shape[1])[None]
    mask = np.tril(np.ones((1, ids.shape[1], ids.shape[1]), dtype=bool))
    logits, _ = jax_model(ids.numpy(), positions, None, mask)
    # Same weights, different frameworks: float32 CPU logits agree closely.
    np.testing.assert_allclose(np.asarray(logits), expected.numpy(), atol=1e-3)


def test_a_stopped_run_resumes_with_the_identical_loss_curve(
    data: TrainData, trained: Trained, tmp_path: Path
) -> None:
    _, straight, _ = trained
    first = CollectingReporter(stop_after=6)
    with pytest.raises(Stopped):
        torch_backend.train(make_spec(), data, tmp_path, first)
    assert [c[0] for c in first.of("checkpoint")] == [4]
    second = CollectingReporter()
    torch_backend.train(make_spec(), data, tmp_path, second)
    assert min(second.losses()) == 5  # from the checkpoint of step 4
    resumed = {**first.losses(), **second.losses()}
    assert resumed == straight.losses()  # bit-identical


def test_resuming_with_different_data_is_refused(data: TrainData, trained: Trained) -> None:
    _, _, workdir = trained
    other = TrainData(train=data.train[:40], eval=data.eval)
    with pytest.raises(FailedPrecondition, match="train_tokens"):
        torch_backend.train(make_spec(), other, workdir, CollectingReporter())


@pytest.mark.parametrize("mode", ["merged", "adapter"])
def test_lora_fine_tunes_a_model_directory(
    mode: str, data: TrainData, trained: Trained, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = trained[0].model_dir
    spec = make_spec(
        4,
        base=BaseModel(checkpoint_dir=str(base)),
        lora=LoraSpec(rank=4, alpha=8.0, dropout=0.1, target_modules=("q_proj", "v_proj")),
        registration=Registration(model="models/m", lora_mode=mode),
        hyper=dict(eval_max_examples=2, eval_max_new_tokens=4),
    )
    reporter = CollectingReporter()
    result = torch_backend.train(spec, data, tmp_path, reporter)
    assert sorted(reporter.losses()) == [1, 2, 3, 4]
    lora_count = 2 * 2 * 4 * (128 + 128)  # 2 layers x (q, v) x rank 4 x (in + out)
    assert result.provenance["trainable_parameter_count"] == lora_count
    path = result.model_dir
    config = json.loads((path / "config.json").read_text())["tunix_rt"]
    if mode == "merged":
        assert "adapter" not in config
        model = AutoModelForCausalLM.from_pretrained(str(path))
        assert not any("lora" in name for name, _ in model.named_parameters())
        return
    assert config["adapter"] == {
        "rank": 4,
        "alpha": 8.0,
        "target_modules": ["q_proj", "v_proj"],
        "base": str(base),
        "format": "peft",
    }
    assert (path / "adapter_model.safetensors").exists() and (path / "adapter_config.json").exists()
    assert not (path / "model.safetensors").exists()
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(path))
    ours, _, _ = torch_backend.load_model_dir(path, base)
    ids = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        assert torch.equal(plain.eval()(input_ids=ids).logits, ours(input_ids=ids).logits)
    with pytest.raises(ValueError, match="base model directory"):
        torch_backend.load_model_dir(path)


def test_a_diverging_run_fails_with_non_finite_loss(data: TrainData, tmp_path: Path) -> None:
    spec = make_spec(6, hyper=dict(learning_rate=1e4, max_grad_norm=0.0))
    with pytest.raises(NonFiniteLoss) as info:
        torch_backend.train(spec, data, tmp_path, CollectingReporter())
    assert 1 <= info.value.step <= 6


@pytest.mark.slow
def test_two_data_parallel_ranks_follow_the_single_process_curve(
    data: TrainData, tmp_path: Path
) -> None:
    """The multi-GPU code path (rows split over ranks, loss normalised by the global target
    count, DDP gradient averaging, rank 0 reporting) run with two gloo ranks on the CPU."""
    spec = make_spec(6, hyper=dict(eval_max_examples=2, eval_max_new_tokens=4))
    single = CollectingReporter()
    torch_backend.train(spec, data, tmp_path / "one", single)
    ranks = CollectingReporter()
    workdir = tmp_path / "two"
    preparation.load_tokenizer(data, workdir, ArchitectureConfig.llama3_tiny(), None)
    target = functools.partial(torch_backend._train, spec, data, workdir)
    result = run_data_parallel(2, target, ranks)
    assert result.total_steps == 6 and (result.model_dir / "model.safetensors").exists()
    assert sorted(ranks.losses()) == list(range(1, 7))
    for step, loss in single.losses().items():
        assert ranks.losses()[step] == pytest.approx(loss, rel=1e-4), step
    assert [c[0] for c in ranks.of("checkpoint")] == [4, 6]


def test_mixed_precision_on_cpu_autocasts_and_stays_close(data: TrainData, tmp_path: Path) -> None:
    """An explicit mixed_bfloat16 job on CPU computes in bfloat16 (what makes it ~1.4x faster on
    CPUs with AVX-512 BF16), keeps float32 weights, and tracks the float32 loss closely; `auto`
    on CPU stays float32."""
    assert model_lib.autocast_dtype("auto", torch.device("cpu")) is None
    assert model_lib.autocast_dtype("float32", torch.device("cpu")) is None
    assert model_lib.autocast_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16
    common: dict[str, Any] = dict(eval_interval_steps=0, checkpoint_interval_steps=0)
    f32, bf16 = CollectingReporter(), CollectingReporter()
    torch_backend.train(make_spec(2, hyper=common), data, tmp_path / "f32", f32)
    spec = make_spec(2, hyper={**common, "precision": "mixed_bfloat16"})
    result = torch_backend.train(spec, data, tmp_path / "bf16", bf16)
    assert result.provenance["compute_dtype"] == "bfloat16"
    assert bf16.losses()[1] == pytest.approx(f32.losses()[1], rel=0.02)
    assert bf16.losses()[1] != f32.losses()[1]
    weights = load_file(result.model_dir / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
