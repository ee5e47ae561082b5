"""The JAX backend end to end: real tiny models trained on CPU through tunix's PeftTrainer.

One module-scoped run (llama3-tiny, 60 examples of reasoning-mini-v1, 30 steps, checkpoints
every 10, evaluation every 15) serves most tests; the resume test replays it after a stop.
Tolerance of resumed losses: rtol 1e-5 (measured: bit-identical on CPU float32).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunix_rt.models.lora import LoraSpec
from tunix_rt.training.backends import jax_backend
from tunix_rt.training.backends.base import (
    Example,
    NonFiniteLoss,
    Stopped,
    TrainData,
    TrainResult,
)
from tunix_rt.training.spec import BaseModel, Hyperparameters, Registration, TrainSpec

# tunix 0.1.7 and qwix 0.1.8 (pinned) call APIs that flax 0.12, jax 0.10 and optax 0.2.8 have
# deprecated; a worker process does not show DeprecationWarnings from libraries, tests must not
# fail on them. Filtered by message, each one third-party.
pytestmark = [
    pytest.mark.filterwarnings(f"ignore:{message}:DeprecationWarning")
    for message in (
        "'sharding' is deprecated, use 'out_sharding'",  # flax, from tunix model constructors
        "'.value' access is now deprecated",  # flax, from tunix models and qwix
        "jax.interpreters.pxla.thread_resources is deprecated",  # jax, from tunix PeftTrainer
        "Using deprecated _init_cache in Tunix sampler",  # tunix's own, llama3 has no init_cache
        "optax.global_norm is deprecated",  # optax, from tunix PeftTrainer
        "jax.experimental.shard_map is deprecated",  # jax, from tunix qwen2
        "The 'm.iter_modules\\(\\)' method is deprecated",  # flax, from qwix
        "'VariableState' was removed",  # flax, from qwix
    )
]

ROOT = Path(__file__).resolve().parents[2]
STEP_METRICS = {"loss", "learning_rate", "grad_norm", "step_time_seconds", "tokens_per_second"}
# Model FLOPs utilisation (training/backends/mfu.py), and the FLOPs count once at the first step.
MFU_METRICS = {"achieved_flops_per_second", "mfu"}
RTOL = 1e-5


class CollectingReporter:
    """A Reporter that records every call; `stop_after` makes should_stop true once that step's
    metrics were reported."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.stop_after = stop_after
        self.last_step = 0

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.calls.append(("metrics", (step, dict(values))))
        self.last_step = max(self.last_step, step)

    def log(self, message: str, level: str = "INFO") -> None:
        self.calls.append(("log", (level, message)))

    def phase(self, phase: str) -> None:
        self.calls.append(("phase", phase))

    def progress(self, step: int, total_steps: int, epoch: float) -> None:
        self.calls.append(("progress", (step, total_steps, epoch)))

    def checkpoint(self, step: int, path: str, metrics: dict[str, float]) -> None:
        self.calls.append(("checkpoint", (step, path, metrics)))

    def should_stop(self) -> bool:
        return self.stop_after is not None and self.last_step >= self.stop_after

    def step_metrics(self) -> dict[int, dict[str, float]]:
        """Train metrics by step (the last report of a step wins)."""
        return {s: v for kind, (s, v) in self._of("metrics") if "loss" in v}

    def eval_metrics(self) -> dict[int, dict[str, float]]:
        return {s: v for kind, (s, v) in self._of("metrics") if "eval_loss" in v}

    def losses(self) -> dict[int, float]:
        return {s: v["loss"] for s, v in self.step_metrics().items()}

    def _of(self, kind: str) -> list[tuple[str, Any]]:
        return [(k, payload) for k, payload in self.calls if k == kind]

    def of(self, kind: str) -> list[Any]:
        return [payload for k, payload in self.calls if k == kind]


def _example(row: dict[str, Any]) -> Example:
    return Example.of_row(row)


@pytest.fixture(scope="module")
def data() -> TrainData:
    lines = (ROOT / "datasets" / "reasoning-mini-v1.jsonl").read_text().splitlines()
    rows = [_example(json.loads(line)) for line in lines]
    return TrainData(train=rows[:60], eval=rows[60:76])


def make_spec(steps: int = 30, preset: str = "llama3-tiny", **hyper: Any) -> TrainSpec:
    settings: dict[str, Any] = dict(
        learning_rate=3e-3,
        max_steps=steps,
        batch_size=8,
        max_seq_len=256,
        checkpoint_interval_steps=10,
        eval_interval_steps=15,
        eval_max_examples=8,
        eval_max_new_tokens=32,
    )
    settings.update(hyper)
    return TrainSpec(
        job_id="job",
        dataset="datasets/mini",
        base=BaseModel(preset=preset),
        backend="jax",
        hyper=Hyperparameters(**settings),
        lora=None,
        device_kind="cpu",
        device_count=1,
        priority=0,
        registration=Registration(model="models/m"),
    )


@pytest.fixture(scope="module")
def trained(
    data: TrainData, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, CollectingReporter, Path]:
    workdir = tmp_path_factory.mktemp("train")
    reporter = CollectingReporter()
    result = jax_backend.train(make_spec(), data, workdir, reporter)
    return result, reporter, workdir


def test_the_loss_falls(trained: tuple[TrainResult, CollectingReporter, Path]) -> None:
    _, reporter, _ = trained
    losses = [reporter.losses()[s] for s in range(1, 31)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses


def test_every_step_reports_its_metrics_in_order(
    trained: tuple[TrainResult, CollectingReporter, Path],
) -> None:
    result, reporter, _ = trained
    metrics = reporter.step_metrics()
    assert sorted(metrics) == list(range(1, 31))
    for step, values in metrics.items():
        first = {"model_flops_per_token"} if step == 1 else set()
        assert set(values) == STEP_METRICS | MFU_METRICS | first, step
        assert all(np.isfinite(v) for v in values.values())
    steps = [s for s, _ in reporter.of("metrics")]
    assert steps == sorted(steps)  # evaluations and checkpoints come after their step's metrics
    assert [p[0] for p in reporter.of("progress")] == list(range(1, 31))
    assert reporter.of("progress")[-1][1] == 30
    # warmup (5 % of 30 = 1 step) then cosine decay to min_learning_rate_ratio * peak
    assert metrics[1]["learning_rate"] == pytest.approx(3e-3)
    assert metrics[30]["learning_rate"] == pytest.approx(3e-4)
    assert result.total_steps == 30


def test_evaluation_runs_periodically_and_at_the_end(
    trained: tuple[TrainResult, CollectingReporter, Path],
) -> None:
    result, reporter, _ = trained
    evals = reporter.eval_metrics()
    assert sorted(evals) == [15, 30]
    for values in evals.values():
        assert set(values) == {"eval_loss", "eval_answer_accuracy"}
        assert 0.0 <= values["eval_answer_accuracy"] <= 1.0
    assert evals[30]["eval_loss"] < evals[15]["eval_loss"]
    phases = reporter.of("phase")
    assert phases[:2] == ["PREPARING", "TRAINING"]
    assert phases[phases.index("EVALUATING") :][:2] == ["EVALUATING", "TRAINING"]
    assert result.final_metrics["eval_loss"] == evals[30]["eval_loss"]


def test_checkpoints_hold_step_and_data_position(
    trained: tuple[TrainResult, CollectingReporter, Path],
) -> None:
    _, reporter, workdir = trained
    events = reporter.of("checkpoint")
    assert [e[0] for e in events] == [10, 20, 30]
    for step, path, metrics in events:
        assert Path(path) == workdir / "checkpoints" / str(step)
        assert metrics == {"loss": reporter.losses()[step]}
    orbax_metadata = (workdir / "checkpoints" / "30" / "_CHECKPOINT_METADATA").read_text()
    meta = json.loads(orbax_metadata)["custom_metadata"]
    assert meta["step"] == 30 and meta["data_position"] == 30 and meta["seed"] == 0
    assert {p.name for p in (workdir / "checkpoints" / "30").iterdir()} >= {
        "model_params",
        "optimizer_state",
    }


def test_the_model_directory_loads_and_generates(
    trained: tuple[TrainResult, CollectingReporter, Path], data: TrainData
) -> None:
    result, _, _ = trained
    assert {p.name for p in result.model_dir.iterdir()} == {
        "config.json",
        "tokenizer.json",
        "model.safetensors",
    }
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 2
    assert config["tunix_rt"]["backend"] == "jax"
    assert config["tunix_rt"]["training_step"] == 30
    assert config["tunix_rt"]["chat_template"] == "plain"
    model, tokenizer, model_config = jax_backend.load_model_dir(result.model_dir)
    assert model_config.architecture.hidden_size == 128
    texts = jax_backend.generate(model, tokenizer, [e.prompt for e in data.eval[:3]], 24)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert any(texts)
    json.dumps(result.provenance)  # goes into a protobuf Struct
    assert result.provenance["library_versions"]["google-tunix"] == "0.1.7"
    assert result.provenance["parameter_count"] == 656_000
    assert result.provenance["device_count"] == 1


def test_a_resumed_run_continues_the_same_loss_curve(
    trained: tuple[TrainResult, CollectingReporter, Path],
    data: TrainData,
    tmp_path: Path,
) -> None:
    _, uninterrupted, _ = trained
    first = CollectingReporter(stop_after=13)
    with pytest.raises(Stopped):
        jax_backend.train(make_spec(), data, tmp_path, first)
    assert [e[0] for e in first.of("checkpoint")] == [10]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["10"]
    assert not (tmp_path / "model").exists()

    second = CollectingReporter()
    result = jax_backend.train(make_spec(), data, tmp_path, second)
    resumed = second.losses()
    assert sorted(resumed) == list(range(11, 31))
    expected = [uninterrupted.losses()[s] for s in range(11, 31)]
    np.testing.assert_allclose([resumed[s] for s in range(11, 31)], expected, rtol=RTOL)
    assert second.of("progress")[0][:2] == (10, 30)  # where it resumed, before step 11
    assert result.provenance["resumed_from_step"] == 10


def test_a_resume_with_other_data_is_refused(data: TrainData, tmp_path: Path) -> None:
    spec = make_spec(steps=2, checkpoint_interval_steps=1, eval_max_examples=1)
    jax_backend.train(spec, data, tmp_path, CollectingReporter())
    from tunix_rt.training.backends.resume import ResumeMismatch

    with pytest.raises(ResumeMismatch, match="train_tokens"):
        jax_backend.train(
            spec, replace(data, train=data.train[:40]), tmp_path, CollectingReporter()
        )


def test_an_infinite_weight_fails_with_the_step(
    trained: tuple[TrainResult, CollectingReporter, Path], data: TrainData, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file, save_file

    result, _, _ = trained
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (broken / name).write_bytes((result.model_dir / name).read_bytes())
    tensors = load_file(str(result.model_dir / "model.safetensors"))
    tensors["model.norm.weight"][0] = np.inf
    save_file(tensors, str(broken / "model.safetensors"))
    spec = replace(make_spec(steps=5), base=BaseModel(checkpoint_dir=str(broken)))
    reporter = CollectingReporter()
    with pytest.raises(NonFiniteLoss) as exc:
        jax_backend.train(spec, data, tmp_path / "work", reporter)
    assert exc.value.step == 1
    assert reporter.losses() == {}
    assert not (tmp_path / "work" / "checkpoints").exists() or not any(
        (tmp_path / "work" / "checkpoints").iterdir()
    )


def test_a_huge_learning_rate_fails_with_the_step(data: TrainData, tmp_path: Path) -> None:
    reporter = CollectingReporter()
    spec = make_spec(steps=20, learning_rate=1e6, warmup_steps=0, max_grad_norm=0.0)
    with pytest.raises(NonFiniteLoss) as exc:
        jax_backend.train(spec, data, tmp_path, reporter)
    assert 1 < exc.value.step <= 20
    assert sorted(reporter.losses()) == list(range(1, exc.value.step))


def test_lora_trains_adapters_and_registers_them_merged(
    trained: tuple[TrainResult, CollectingReporter, Path], data: TrainData, tmp_path: Path
) -> None:
    base_dir = trained[0].model_dir
    spec = replace(
        make_spec(steps=6, eval_interval_steps=0, checkpoint_interval_steps=0, eval_max_examples=2),
        base=BaseModel(checkpoint_dir=str(base_dir)),
        lora=LoraSpec(rank=4, alpha=8.0, target_modules=("q_proj", "v_proj", "down_proj")),
    )
    reporter = CollectingReporter()
    result = jax_backend.train(spec, data, tmp_path, reporter)
    # rank 4 on q and v ([128 -> 4 -> 128]) and down ([512 -> 4 -> 128]) of 2 layers
    assert result.provenance["trainable_parameter_count"] == 2 * (2 * 4 * 256 + 4 * 640)
    assert result.provenance["parameter_count"] == 656_000
    # Six steps see six different batches, and rank-4 adapters move the loss less than the batches
    # differ (step 6 vs step 1 flipped with a new tokenizer): what is checked is that training
    # stays sound, and below that the adapters, and only they, changed the merged weights.
    losses = reporter.losses()
    assert sorted(losses) == list(range(1, 7))
    assert all(np.isfinite(v) and v < 1.1 * losses[1] for v in losses.values())
    checkpointed = {p.name for p in (tmp_path / "checkpoints" / "6" / "model_params").iterdir()}
    assert checkpointed  # adapter parameters only (the base is rebuilt from its directory)

    from safetensors.numpy import load_file

    merged = load_file(str(result.model_dir / "model.safetensors"))
    base = load_file(str(base_dir / "model.safetensors"))
    assert set(merged) == set(base)
    changed = {k for k in base if not np.array_equal(base[k], merged[k])}
    assert changed == {
        f"model.layers.{i}.{m}"
        for i in range(2)
        for m in ("self_attn.q_proj.weight", "self_attn.v_proj.weight", "mlp.down_proj.weight")
    }
    model, tokenizer, _ = jax_backend.load_model_dir(result.model_dir)
    assert len(jax_backend.generate(model, tokenizer, ["Question: 1 + 1?\nReasoning:\n"], 8)) == 1


@pytest.mark.parametrize("preset", ["qwen2-tiny", "qwen3-tiny"])
def test_other_families_train(preset: str, data: TrainData, tmp_path: Path) -> None:
    spec = make_spec(
        steps=4,
        preset=preset,
        eval_interval_steps=0,
        checkpoint_interval_steps=0,
        eval_max_examples=1,
        eval_max_new_tokens=4,
    )
    reporter = CollectingReporter()
    result = jax_backend.train(spec, data, tmp_path, reporter)
    assert sorted(reporter.losses()) == [1, 2, 3, 4]
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["model_type"] == preset.split("-")[0]
    jax_backend.load_model_dir(result.model_dir)


def test_mixed_precision_matches_float32_closely(data: TrainData, tmp_path: Path) -> None:
    common: dict[str, Any] = dict(
        steps=2, eval_interval_steps=0, checkpoint_interval_steps=0, eval_max_examples=1
    )
    f32, bf16 = CollectingReporter(), CollectingReporter()
    jax_backend.train(make_spec(**common), data, tmp_path / "f32", f32)
    spec = make_spec(**common, precision="mixed_bfloat16")
    result = jax_backend.train(spec, data, tmp_path / "bf16", bf16)
    assert result.provenance["compute_dtype"] == "bfloat16"
    assert bf16.losses()[1] == pytest.approx(f32.losses()[1], rel=0.02)
    assert bf16.losses()[1] != f32.losses()[1]


DATA_PARALLEL = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import jax
    from tests.training.test_jax_backend import CollectingReporter, make_spec, _example
    from tunix_rt.training.backends import jax_backend
    from tunix_rt.training.backends.base import TrainData

    rows = [_example(json.loads(l)) for l in open(sys.argv[1]).read().splitlines()]
    data = TrainData(train=rows[:60], eval=rows[60:62])
    spec = make_spec(steps=4, eval_interval_steps=0, checkpoint_interval_steps=2,
                     eval_max_examples=2, eval_max_new_tokens=8)
    reporter = CollectingReporter()
    result = jax_backend.train(spec, data, Path(sys.argv[2]), reporter)
    print(json.dumps({"devices": jax.device_count(), "mesh": result.provenance["mesh"],
                      "losses": reporter.losses()}))
    """
)


def test_data_parallel_over_four_devices_matches_one(data: TrainData, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("clients", "services", "")),
    }
    mini = ROOT / "datasets" / "reasoning-mini-v1.jsonl"
    out = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL, str(mini), str(tmp_path / "dp")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["devices"] == 4 and report["mesh"] == {"fsdp": 4, "tp": 1}

    single = CollectingReporter()
    spec = make_spec(
        steps=4,
        eval_interval_steps=0,
        checkpoint_interval_steps=2,
        eval_max_examples=2,
        eval_max_new_tokens=8,
    )
    jax_backend.train(spec, data, tmp_path / "one", single)
    parallel = {int(k): v for k, v in report["losses"].items()}
    np.testing.assert_allclose(
        [parallel[s] for s in range(1, 5)], [single.losses()[s] for s in range(1, 5)], rtol=1e-4
    )
