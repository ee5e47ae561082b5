"""Generation through the inference service: aggregate tokens/s with 1, 4 and 16 concurrent
GenerateStream calls (the ratio 16 / 1 shows that concurrent requests are batched), and the
service at 4 concurrent streams against transformers `generate` (KV cache, batch 4) on the same
weights, in one run.

    .venv/bin/python bench/inference_service.py [--rounds 3] [--new-tokens 64]

A registry and an inference service run in this process (real gRPC on loopback); the clients run
in a process of their own (`--client`), as callers of a service do: client threads in the
server's process would contend with its decode loop for the interpreter lock. The model is
llama3-2.5m with random weights and a BPE tokenizer trained on the shipped mini dataset. Every
request asks for exactly `--new-tokens` greedy tokens (no stop sequence; the random model
practically never ends by itself, and completion tokens are counted from each summary anyway).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.inference.conftest import make_model_dir, register_model  # noqa: E402
from tests.support import LoopThread  # noqa: E402
from tunix_rt.common.host import describe_cpu  # noqa: E402
from tunix_rt.inference.server import start_inference  # noqa: E402
from tunix_rt.registry.server import start_registry  # noqa: E402
from tunix_rt.v1 import (  # noqa: E402
    inference_pb2,
    inference_service_pb2,
    inference_service_pb2_grpc,
    registry_service_pb2_grpc,
)

MINI = ROOT / "datasets" / "reasoning-mini-v1.jsonl"
MODEL = "bench-2p5m"


def prompts() -> list[str]:
    return [json.loads(line)["prompt"] for line in MINI.read_text().splitlines() if line.strip()]


def stream_once(stub: Any, prompt: str, new_tokens: int) -> int:
    """Completion tokens of one GenerateStream call."""
    request = inference_service_pb2.GenerateStreamRequest(
        model=f"{MODEL}@bench",
        prompt=prompt,
        sampling=inference_pb2.SamplingParams(max_new_tokens=new_tokens, seed=0),
    )
    tokens = 0
    for response in stub.GenerateStream(request, timeout=600):
        if response.HasField("summary"):
            tokens = response.summary.usage.completion_tokens
    return tokens


def aggregate(stub: Any, streams: int, requests_each: int, new_tokens: int) -> float:
    """Tokens/s of `streams` threads each making `requests_each` streamed calls back to back."""
    texts = prompts()
    totals = [0] * streams

    def client(i: int) -> None:
        for r in range(requests_each):
            totals[i] += stream_once(stub, texts[(i * requests_each + r) % len(texts)], new_tokens)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(streams)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(totals) / (time.perf_counter() - start)


def aggregate_elsewhere(address: str, streams: int, requests_each: int, new_tokens: int) -> float:
    """`aggregate` run by a client process of its own (its start-up is not timed)."""
    command = [sys.executable, __file__, "--client", address, "--streams", str(streams)]
    command += ["--requests-each", str(requests_each), "--new-tokens", str(new_tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    return float(done.stdout.split()[-1])


def client_main(args: argparse.Namespace) -> None:
    stub = inference_service_pb2_grpc.InferenceServiceStub(  # type: ignore[no-untyped-call]
        grpc.insecure_channel(args.client)
    )
    print(aggregate(stub, args.streams, args.requests_each, args.new_tokens))


def transformers_generate(model_dir: Path, new_tokens: int, rounds: int) -> float:
    """Median tokens/s of transformers `generate` (greedy, KV cache) at batch 4."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunix_rt.models.interchange.hf_export import export_hf
    from tunix_rt.models.tokenizer import TextTokenizer

    hf_dir = export_hf(model_dir, model_dir.parent / "hf")
    model: Any = AutoModelForCausalLM.from_pretrained(hf_dir)
    model.eval()
    tokenizer = TextTokenizer.load(model_dir)
    batch = [[tokenizer.bos_id(), *tokenizer.encode(p)] for p in prompts()[:4]]
    width = max(len(ids) for ids in batch)
    ids = torch.tensor([[tokenizer.pad_id()] * (width - len(r)) + r for r in batch])
    mask = (ids != tokenizer.pad_id()).long()
    rates = []
    with torch.inference_mode():
        for _ in range(rounds + 1):  # the first call warms up
            start = time.perf_counter()
            model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_id(),
            )
            rates.append(4 * new_tokens / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--client", help=argparse.SUPPRESS)  # run as the client process
    parser.add_argument("--streams", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--requests-each", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return
    loop = LoopThread()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = loop.run(start_registry(data_dir=root / "registry"))
        inference = loop.run(
            start_inference(
                registry_address=registry.address, data_dir=root / "inference", warmup_batch=16
            )
        )
        reg = registry_service_pb2_grpc.RegistryServiceStub(  # type: ignore[no-untyped-call]
            grpc.insecure_channel(registry.address)
        )
        model_dir = make_model_dir(root / "model", preset="llama3-2.5m")
        register_model(reg, model_dir, MODEL, ("bench",))
        stub = inference_service_pb2_grpc.InferenceServiceStub(  # type: ignore[no-untyped-call]
            grpc.insecure_channel(inference.address)
        )
        stub.LoadModel(inference_service_pb2.LoadModelRequest(model=f"{MODEL}@bench"))
        with inference.store.acquire(f"{MODEL}@bench") as served:
            scheduler = getattr(served.engine, "scheduler", None)
        while scheduler is not None and scheduler.idle_work_pending:
            time.sleep(0.1)  # the rarer shapes compile in the engine's idle time
        for streams in (1, 4, 16):  # the load compiled the shapes; settle the threads
            aggregate(stub, streams, 1, args.new_tokens)
        results: dict[int, list[float]] = {1: [], 4: [], 16: []}
        for _ in range(args.rounds):
            for streams in results:
                results[streams].append(
                    aggregate_elsewhere(inference.address, streams, 2, args.new_tokens)
                )
        hf = transformers_generate(model_dir, args.new_tokens, args.rounds)
        loop.run(inference.stop())
        loop.run(registry.stop())
    median = {n: statistics.median(r) for n, r in results.items()}
    print(f"machine: {describe_cpu()}")
    print(f"llama3-2.5m, {args.new_tokens} greedy new tokens per request, median of {args.rounds}")
    for n, rate in median.items():
        rounds = ", ".join(f"{r:,.0f}" for r in results[n])
        print(f"  {n:2d} concurrent GenerateStream: {rate:8,.0f} tokens/s   (rounds: {rounds})")
    print(f"  transformers generate, batch 4:  {hf:8,.0f} tokens/s")
    print(f"ratio 16 streams / 1 stream:            {median[16] / median[1]:.2f}  (aim >= 4)")
    print(f"ratio service 4 streams / transformers:  {median[4] / hf:.2f}  (aim >= 1.5)")


if __name__ == "__main__":
    main()
