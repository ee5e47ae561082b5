"""The GPU device check: one table of what a GPU host gives tunix-rt, ready before any GPU is lent.

    bash bench/gpu_check.sh        (bootstraps the venv, then runs this under a 5-minute limit)
    PYTHONPATH=clients:services .venv/bin/python bench/gpu_check.py [--quick]

Rows, each measured in its own child process (`--part …`) that sees only its GPUs, so JAX's and
torch's memory never meet and a crash costs one row, not the table:

- training tokens/s and MFU of the torch and the JAX backend on one GPU, bfloat16, on the
  ~1B-parameter `llama3-1b` preset (batch 8 x 1024): the backends' own `train` as a job runs it,
  with the job's own metrics (non-padding tokens/s; MFU against the datasheet peak,
  training.peak_flops), median of the steps after the warm-up;
- the torch backend data-parallel (DDP) over every visible GPU, when there is more than one;
- generation throughput (aggregate new tokens/s, greedy) of the inference engine at 1, 16 and 64
  concurrent streams against transformers `generate` at the same batch on the same weights;
- the GPU-marked tests (`pytest -m gpu`).

On a host without an NVIDIA GPU it runs the same code path on `llama3-tiny` (float32, batch
4 x 128, fewer steps and tokens) and says so in the header: the figures then check the script,
not a GPU. Nothing is downloaded: the tokenizer is trained on the shipped dataset, weights are
random.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from training_throughput import load_examples  # type: ignore[import-not-found]  # noqa: E402

from tunix_rt.common.host import cpu_model  # noqa: E402
from tunix_rt.training import peak_flops  # noqa: E402
from tunix_rt.training.devices import nvidia_gpus  # noqa: E402

STREAMS = (1, 16, 64)
PROMPTS = [
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "A train travels 60 km in 1.5 hours. What is its average speed?",
    "If a shirt costs $20 and is 25% off, what is the sale price?",
    "Sara reads 12 pages a day. How many pages does she read in a week?",
]


def settings(gpu: bool) -> dict[str, Any]:
    """The preset and sizes: the ~1B model on a GPU, the test model on a CPU."""
    if gpu:
        return {"preset": "llama3-1b", "batch": 8, "seq": 1024, "warmup": 3, "steps": 10,
                "new_tokens": 64, "repeats": 3, "examples": 2000}  # fmt: skip
    return {"preset": "llama3-tiny", "batch": 4, "seq": 128, "warmup": 2, "steps": 4,
            "new_tokens": 8, "repeats": 1, "examples": 300}  # fmt: skip


class Recorder:
    """A Reporter that keeps each step's metrics and stops the job after `steps` of them (so no
    final checkpoint, evaluation or model directory is written: only training is timed)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.values: list[dict[str, float]] = []

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if "tokens_per_second" in values:
            self.values.append(values)

    def should_stop(self) -> bool:
        return len(self.values) >= self.steps

    def log(self, message: str, level: str = "INFO") -> None: ...
    def phase(self, phase: str) -> None: ...
    def progress(self, step: int, total_steps: int, epoch: float) -> None: ...
    def checkpoint(self, step: int, path: str, metrics: dict[str, float]) -> None: ...


def train_part(backend_name: str, gpus: int, size: dict[str, Any]) -> dict[str, Any]:
    """One backend's training throughput and MFU, as its job's metric stream reports them."""
    from tunix_rt.training.backends.base import Stopped, TrainData
    from tunix_rt.training.spec import BaseModel, Hyperparameters, Registration, TrainSpec
    from tunix_rt.training.worker import load_backend

    hyper = Hyperparameters(
        batch_size=size["batch"],
        max_seq_len=size["seq"],
        max_steps=size["warmup"] + size["steps"] + 5,  # stopped before the end (Recorder)
        learning_rate=1e-4,
        eval_interval_steps=0,
        checkpoint_interval_steps=0,
        precision="auto",  # bfloat16 on a GPU, float32 on a CPU
    )
    spec = TrainSpec(
        job_id="gpu-check",
        dataset="datasets/gpu-check",
        base=BaseModel(preset=size["preset"]),
        backend=backend_name,
        hyper=hyper,
        lora=None,
        device_kind="gpu" if gpus else "cpu",
        device_count=max(1, gpus),
        priority=0,
        registration=Registration(model="models/gpu-check"),
    )
    data = TrainData(train=load_examples(size["examples"]), eval=[])
    recorder = Recorder(size["warmup"] + size["steps"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir, contextlib.suppress(Stopped):
        # The Recorder stops the job once it measured enough steps.
        load_backend(backend_name).train(spec, data, Path(workdir), recorder)
    steady = recorder.values[size["warmup"] :]
    return {
        "tokens_per_second": statistics.median(v["tokens_per_second"] for v in steady),
        "mfu": statistics.median(v.get("mfu", float("nan")) for v in steady),
        "model_flops_per_token": recorder.values[0]["model_flops_per_token"],
        "steps": len(steady),
        "seconds": time.perf_counter() - started,
    }


def median_rate(run: Callable[[], int], repeats: int) -> float:
    """Median tokens/s of `run` (it returns the tokens it generated) after one warm-up run."""
    run()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = run()
        rates.append(tokens / (time.perf_counter() - start))
    return float(statistics.median(rates))


def engine_run(engine: Any, prompts: list[list[int]], new_tokens: int) -> Callable[[], int]:
    """All `prompts` as concurrent requests to the engine (one thread each, as the service)."""
    from tunix_rt.inference.engines.base import Finished, Sampling

    def run() -> int:
        done: list[int] = []

        def one(ids: list[int]) -> None:
            for event in engine.generate(ids, Sampling(max_new_tokens=new_tokens), lambda: False):
                if isinstance(event, Finished):
                    done.append(event.completion_tokens)

        threads = [threading.Thread(target=one, args=(p,)) for p in prompts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(done)

    return run


def transformers_run(model: Any, prompts: list[list[int]], new_tokens: int) -> Callable[[], int]:
    """The same prompts as one left-padded batch through transformers `generate` (KV cache)."""
    import torch

    length = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), length), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, length - len(p) :] = torch.tensor(p)
        mask[i, length - len(p) :] = 1
    ids, mask = ids.to(model.device), mask.to(model.device)

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


def generate_part(gpus: int, size: dict[str, Any]) -> dict[str, Any]:
    """Aggregate generation tokens/s of the inference engine and of transformers `generate`
    at each stream count, on one random-weight model directory."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunix_rt.inference.engines.loader import load_engine
    from tunix_rt.models import presets
    from tunix_rt.models.tokenizer import train_tokenizer
    from tunix_rt.models.torch import model as model_lib
    from tunix_rt.models.torch.model_dir import write_model_dir

    arch = presets.get(size["preset"]).config
    corpus = [t for e in load_examples(size["examples"]) for t in (e.prompt, e.target)]
    tokenizer = train_tokenizer(corpus, arch.vocab_size)
    model = model_lib.create_model(model_lib.config_for(arch, tokenizer), seed=0)
    out: dict[str, Any] = {"engine": {}, "transformers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = write_model_dir(
            Path(tmp) / "model", model, arch, tokenizer, chat_template="plain", training_step=0
        )
        del model
        engine = load_engine(model_dir)
        out["engine_kind"] = type(engine).__name__
        if gpus and hasattr(engine, "warmup"):
            # Compiles the shape buckets up front (on a CPU the warm-up run of each stream
            # count compiles what it needs, in less time).
            engine.warmup(16)
        prompts = [engine.encode_prompt(t) for t in PROMPTS]
        batches = {n: [prompts[i % len(prompts)] for i in range(n)] for n in STREAMS}
        for n, batch in batches.items():
            run = engine_run(engine, batch, size["new_tokens"])
            out["engine"][n] = median_rate(run, size["repeats"])
        engine.close()
        dtype = torch.bfloat16 if gpus else torch.float32
        reference: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
        reference.to("cuda" if gpus else "cpu").eval()
        for n, batch in batches.items():
            run = transformers_run(reference, batch, size["new_tokens"])
            out["transformers"][n] = median_rate(run, size["repeats"])
    return out


def frameworks_part() -> dict[str, Any]:
    """Whether the installed torch and JAX can use the GPU: the lock pins CPU builds
    (pyproject: torch 2.x+cpu, jax without its CUDA plugin), and this script installs nothing."""
    import jax
    import torch

    return {
        "torch": torch.__version__,
        "torch_gpu": bool(torch.cuda.is_available()),
        "jax": jax.__version__,
        "jax_gpu": jax.devices()[0].platform != "cpu",
    }


def child(part: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Runs `gpu_check.py --part …` in a child process; its JSON result, or {"error": …}."""
    command = [sys.executable, str(Path(__file__).resolve()), "--part", *part]
    try:
        done = subprocess.run(
            command,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail[:160]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def device_env(gpus: list[int]) -> dict[str, str]:
    """What a child sees: these GPUs only (none: the CPU), JAX without preallocation."""
    if not gpus:
        # One torch thread: on a shared CPU OpenMP's spinning barriers cost torch up to 10x
        # (bench/inference_generate.py); the CPU rows check the script, not the host. Every
        # child gets this process's probe of one core, as the training service hands a job its
        # slot's (a probe per child would swing with the load, and MFU with it).
        return {
            "CUDA_VISIBLE_DEVICES": "",
            "JAX_PLATFORMS": "cpu",
            "OMP_NUM_THREADS": "1",
            **peak_flops.environment(peak_flops.cpu_slot_peak(1), 1),
        }
    return {
        "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus)),
        "JAX_PLATFORMS": "cuda,cpu",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
    }


def gpu_tests(timeout: float) -> str:
    """`pytest -m gpu` in one line: its summary (they skip on a host without a GPU)."""
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return f"{lines[-1].strip('= ') if lines else 'no output'} (exit {done.returncode})"


def train_row(label: str, result: dict[str, Any]) -> str:
    if "error" in result:
        return f"| {label} | - | - | {result['error']} |"
    note = f"{result['steps']} steps after warm-up, {result['seconds']:.0f} s in all"
    return (
        f"| {label} | {result['tokens_per_second']:,.0f} tokens/s | "
        f"{100 * result['mfu']:.1f} % | {note} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", help=argparse.SUPPRESS)  # a child's measurement
    parser.add_argument("--quick", action="store_true", help="the CPU sizes even on a GPU")
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for all rows")
    args = parser.parse_args()
    if args.part:
        kind, count, quick = args.part[0], int(args.part[-2]), args.part[-1] == "quick"
        part_size = settings(bool(count) and not quick)
        if kind == "train":
            print(json.dumps(train_part(args.part[1], count, part_size)))
        elif kind == "frameworks":
            print(json.dumps(frameworks_part()))
        else:
            print(json.dumps(generate_part(count, part_size)))
        return
    deadline = time.monotonic() + args.budget
    gpus = nvidia_gpus()
    quick = args.quick or not gpus
    size = settings(bool(gpus) and not args.quick)
    flag = "quick" if quick else "full"

    def left(share: float) -> float:
        return float(max(10.0, (deadline - time.monotonic()) * share))

    if gpus:
        peak = peak_flops.gpu_peak(gpus[0].description)
        where = f"{len(gpus)} x {gpus[0].description}"
        peak_text = f"{peak.bf16 / 1e12:.0f} TFLOP/s bf16 ({peak.source})" if peak else "unknown"
    else:
        slot = peak_flops.cpu_slot_peak(1)  # the rows run on one thread (device_env)
        where = f"NO GPU: CPU only, {cpu_model()}, {os.cpu_count()} cores, 1 thread per row"
        peak_text = f"{slot.fp32 / 1e9:.0f} GFLOP/s fp32 ({slot.source})" if slot else "unknown"
    rows = []
    one = [gpus[0].index] if gpus else []
    # Which framework sees the GPU; a row whose framework does not is reported, not run.
    seen = child(["frameworks", str(len(one)), flag], device_env(one), left(0.2))
    blind = {
        name: f"{name} {seen.get(name, '?')} cannot use the GPU (a CPU build; nothing installed)"
        for name in ("torch", "jax")
        if gpus and not seen.get(f"{name}_gpu")
    }
    for backend in ("torch", "jax"):
        label = f"train {backend}, 1 {'GPU' if gpus else 'CPU'}"
        if backend in blind:
            rows.append(train_row(label, {"error": blind[backend]}))
            continue
        result = child(["train", backend, str(len(one)), flag], device_env(one), left(0.3))
        rows.append(train_row(label, result))
    if len(gpus) > 1 and "torch" not in blind:
        every = [g.index for g in gpus]
        result = child(["train", "torch", str(len(every)), flag], device_env(every), left(0.3))
        rows.append(train_row(f"train torch DDP, {len(every)} GPUs", result))
    generated: dict[str, Any]
    if blind:
        generated = {"error": "; ".join(blind.values())}
    else:
        generated = child(["generate", str(len(one)), flag], device_env(one), left(0.6))
    if "error" in generated:
        rows.append(f"| generate | - | - | {generated['error']} |")
    else:
        engine, reference = generated["engine"], generated["transformers"]
        for n in STREAMS:
            mine, theirs = engine[str(n)], reference[str(n)]
            rows.append(
                f"| generate {n} stream{'s' if n > 1 else ''} | {mine:,.0f} tokens/s | "
                f"x{mine / theirs:.2f} vs transformers | {generated['engine_kind']} vs "
                f"transformers generate {theirs:,.0f} tokens/s, {size['new_tokens']} new, greedy |"
            )
    rows.append(f"| pytest -m gpu | - | - | {gpu_tests(left(0.9))} |")
    mode = "GPU" if gpus and not quick else "CPU fallback: the script's check, not a GPU figure"
    print(
        f"\n## tunix-rt GPU check: {where}; {mode}\n"
        f"preset {size['preset']}, batch {size['batch']} x {size['seq']}, "
        f"{'bfloat16' if gpus and not quick else 'float32'}; peak {peak_text}\n"
    )
    print("| row | throughput | MFU / ratio | notes |\n| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
