"""InferenceService through a real server on loopback: loading, listing, generation (unary and
streamed), seeds, validation, cancellation, alias moves, the memory budget and grpcurl."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from tests.common.test_bootstrap import grpcurl
from tests.inference.conftest import JAX_WARNINGS, MODEL, InferenceStack, set_alias, stubs
from tests.registry.helpers import bad_request_fields
from tunix_rt.inference.engines.loader import estimate_memory_bytes
from tunix_rt.v1 import inference_pb2
from tunix_rt.v1 import inference_service_pb2 as pb

pytestmark = JAX_WARNINGS

CANDIDATE = f"{MODEL}@candidate"
READY = inference_pb2.LOADED_MODEL_STATE_READY


def sampling(**fields: Any) -> inference_pb2.SamplingParams:
    return inference_pb2.SamplingParams(**fields)


def generate(stack: InferenceStack, model: str = CANDIDATE, **fields: Any) -> pb.GenerateResponse:
    prompt = fields.pop("prompt", "What is 2 + 3?")
    raw = fields.pop("raw_prompt", False)
    response: pb.GenerateResponse = stack.stub.Generate(
        pb.GenerateRequest(model=model, prompt=prompt, sampling=sampling(**fields), raw_prompt=raw),
        timeout=120,
    )
    return response


def test_load_get_and_list_models(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    v1, v2 = (v.name for v in stack.versions)
    loaded = stack.stub.LoadModel(pb.LoadModelRequest(model=CANDIDATE), timeout=120).loaded_model
    assert loaded.state == READY
    assert loaded.model_version == v1
    assert loaded.artifact == stack.versions[0].artifact
    assert CANDIDATE in loaded.references
    assert loaded.context_length == 512 and loaded.vocab_size == 512
    assert loaded.chat_template == "plain" and loaded.architecture == "llama3"
    assert loaded.parameter_count > 0 and loaded.memory_bytes > 0 and loaded.devices
    # The weights are cached on local disk by content hash.
    digest = loaded.artifact.removeprefix("artifacts/")
    assert (stack.data_dir / "inference" / "artifacts" / digest / "config.json").is_file()
    # The same version by another reference is the same loaded model.
    got = stack.stub.GetLoadedModel(pb.GetLoadedModelRequest(model=f"{MODEL}/1")).loaded_model
    assert got.model_version == v1 and got.state == READY

    stack.stub.LoadModel(pb.LoadModelRequest(model=f"{MODEL}/2"), timeout=120)
    listed = stack.stub.ListLoadedModels(pb.ListLoadedModelsRequest())
    assert [m.model_version for m in listed.loaded_models][:2] == [v2, v1]  # MRU first
    assert listed.memory_budget_bytes > listed.memory_used_bytes > 0
    first = stack.stub.ListLoadedModels(pb.ListLoadedModelsRequest(page_size=1))
    assert len(first.loaded_models) == 1 and first.next_page_token
    second = stack.stub.ListLoadedModels(
        pb.ListLoadedModelsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert second.loaded_models[0].model_version == v1


def test_same_seed_same_text_and_stream_matches_unary(inference_stack: InferenceStack) -> None:
    fields: dict[str, Any] = {
        "temperature": 1.0,
        "top_k": 50,
        "top_p": 0.9,
        "max_new_tokens": 24,
        "seed": 7,
    }
    first = generate(inference_stack, **fields)
    again = generate(inference_stack, **fields)
    assert first.text == again.text and first.text
    assert first.summary.seed == 7
    usage = first.summary.usage
    assert usage.completion_tokens > 0 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert first.summary.finish_reason in (
        inference_pb2.FINISH_REASON_LENGTH,
        inference_pb2.FINISH_REASON_END_OF_SEQUENCE,
    )
    assert first.model_version == inference_stack.versions[0].name

    messages = list(
        inference_stack.stub.GenerateStream(
            pb.GenerateStreamRequest(
                model=CANDIDATE, prompt="What is 2 + 3?", sampling=sampling(**fields)
            ),
            timeout=120,
        )
    )
    assert "".join(m.text for m in messages) == first.text
    assert messages[0].model_version == first.model_version
    assert messages[-1].HasField("summary") and messages[-1].summary.seed == 7
    assert not any(m.HasField("summary") for m in messages[:-1])
    assert sum(m.token_count for m in messages) == usage.completion_tokens


def test_unset_seed_is_picked_and_reported(inference_stack: InferenceStack) -> None:
    response = generate(inference_stack, temperature=1.0, max_new_tokens=8)
    assert response.summary.seed != 0
    again = generate(inference_stack, temperature=1.0, max_new_tokens=8, seed=response.summary.seed)
    assert again.text == response.text


def test_stop_sequence_and_length_limit(inference_stack: InferenceStack) -> None:
    full = generate(inference_stack, max_new_tokens=16)
    assert full.summary.finish_reason == inference_pb2.FINISH_REASON_LENGTH
    assert full.summary.usage.completion_tokens == 16
    cut = full.text[3:5]
    if not cut.strip():
        pytest.skip("the random model's output has no usable stop sequence")
    stopped = generate(inference_stack, max_new_tokens=16, stop_sequences=[cut])
    assert stopped.summary.finish_reason == inference_pb2.FINISH_REASON_STOP
    assert stopped.text == full.text[: full.text.index(cut)]


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"temperature": 2.5}, ["sampling.temperature"]),
        ({"temperature": -0.1}, ["sampling.temperature"]),
        ({"top_k": -1}, ["sampling.top_k"]),
        ({"top_p": 1.5}, ["sampling.top_p"]),
        ({"top_p": -0.5}, ["sampling.top_p"]),
        ({"max_new_tokens": 5000}, ["sampling.max_new_tokens"]),
        ({"max_new_tokens": -1}, ["sampling.max_new_tokens"]),
        ({"max_reasoning_tokens": -2}, ["sampling.max_reasoning_tokens"]),
        ({"stop_sequences": ["x"] * 17}, ["sampling.stop_sequences"]),
        (
            {"stop_sequences": ["", "y" * 257]},
            [
                "sampling.stop_sequences[0]",
                "sampling.stop_sequences[1]",
            ],
        ),
        ({"temperature": 9.0, "top_k": -3}, ["sampling.temperature", "sampling.top_k"]),
        ({"temperature": float("nan")}, ["sampling.temperature"]),
        ({"temperature": float("inf")}, ["sampling.temperature"]),
        ({"temperature": float("-inf")}, ["sampling.temperature"]),
        ({"top_p": float("nan")}, ["sampling.top_p"]),
        ({"top_p": float("inf")}, ["sampling.top_p"]),
        ({"top_k": -(2**31)}, ["sampling.top_k"]),
        ({"max_new_tokens": 2**31 - 1}, ["sampling.max_new_tokens"]),
        ({"max_reasoning_tokens": -(2**31)}, ["sampling.max_reasoning_tokens"]),
        ({"stop_sequences": ["z"] * 10_000}, ["sampling.stop_sequences"]),
        ({"stop_sequences": ["z" * 100_000]}, ["sampling.stop_sequences[0]"]),
    ],
)
def test_out_of_range_sampling_names_the_field(
    inference_stack: InferenceStack, fields: dict[str, Any], bad: list[str]
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        generate(inference_stack, **fields)
    assert bad_request_fields(caught.value) == bad


@pytest.mark.parametrize(
    "fields",
    [
        {"max_new_tokens": 0},  # the default, 128
        {"top_k": 2**31 - 1, "temperature": 1.0, "seed": 1},  # more than the vocabulary
        {"top_p": 1e-300, "temperature": 2.0, "seed": 1},  # only the most likely token
        {"max_reasoning_tokens": 2**31 - 1, "max_new_tokens": 4},
        {"stop_sequences": ["\U0010ffff" * 256] * 16, "max_new_tokens": 4},
        {"seed": 2**63 - 1, "temperature": 1.0, "max_new_tokens": 4},
    ],
)
def test_extreme_sampling_in_range_is_served(
    inference_stack: InferenceStack, fields: dict[str, Any]
) -> None:
    response = generate(inference_stack, **fields)
    assert response.summary.usage.completion_tokens > 0


@pytest.mark.parametrize("seed", [-1, -(2**63)])
def test_a_negative_seed_is_a_seed(inference_stack: InferenceStack, seed: int) -> None:
    # As in torch and vLLM, a negative seed means its 64-bit two's complement.
    fields: dict[str, Any] = {"temperature": 1.0, "max_new_tokens": 12, "seed": seed}
    first = generate(inference_stack, **fields)
    assert first.summary.seed == seed
    assert generate(inference_stack, **fields).text == first.text
    streamed = list(
        inference_stack.stub.GenerateStream(
            pb.GenerateStreamRequest(
                model=CANDIDATE, prompt="What is 2 + 3?", sampling=sampling(**fields)
            ),
            timeout=120,
        )
    )
    assert "".join(m.text for m in streamed) == first.text
    assert streamed[-1].summary.seed == seed


def test_empty_prompt_and_model_are_invalid(inference_stack: InferenceStack) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        generate(inference_stack, prompt="")
    assert bad_request_fields(caught.value) == ["prompt"]
    with pytest.raises(grpc.RpcError) as caught:
        generate(inference_stack, model=" ")
    assert bad_request_fields(caught.value) == ["model"]


def test_prompt_longer_than_context_states_both_lengths(inference_stack: InferenceStack) -> None:
    # Digits are single tokens, so 600 digits are over 600 tokens.
    with pytest.raises(grpc.RpcError) as caught:
        generate(inference_stack, prompt="7" * 600, raw_prompt=True)
    assert bad_request_fields(caught.value) == ["prompt"]
    details = caught.value.details() or ""
    lengths = re.search(r"prompt is (\d+) tokens.*context length is (\d+) tokens", details)
    assert lengths is not None, details
    assert int(lengths.group(1)) >= 600 and int(lengths.group(2)) == 512


@pytest.mark.parametrize("model", ["no-such-model", f"{MODEL}@no-such-alias", f"{MODEL}/99"])
def test_unknown_models_are_not_found(inference_stack: InferenceStack, model: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        generate(inference_stack, model=model)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        inference_stack.stub.LoadModel(pb.LoadModelRequest(model=model))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_not_loaded_is_not_found(inference_stack: InferenceStack) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        inference_stack.stub.GetLoadedModel(pb.GetLoadedModelRequest(model="/no/such/dir"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_local_checkpoint_directory_serves(inference_stack: InferenceStack) -> None:
    directory = str(inference_stack.model_dirs[0])
    local = generate(inference_stack, model=directory, max_new_tokens=8, seed=3)
    registered = generate(inference_stack, model=f"{MODEL}/1", max_new_tokens=8, seed=3)
    assert local.model_version == "" and local.text == registered.text
    unloaded = inference_stack.stub.UnloadModel(pb.UnloadModelRequest(model=directory))
    assert unloaded.loaded_model.checkpoint_dir == directory


def test_an_alias_move_is_served_without_restart(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    reference = f"{MODEL}@moving"
    set_alias(stack.registry_stub, MODEL, "moving", 1)
    assert (
        generate(stack, model=reference, max_new_tokens=2).model_version == stack.versions[0].name
    )
    set_alias(stack.registry_stub, MODEL, "moving", 2)
    time.sleep(1.1)  # aliases are re-read from the registry at least once a second
    assert (
        generate(stack, model=reference, max_new_tokens=2).model_version == stack.versions[1].name
    )


LONG = 480  # tokens: long enough that a cancel lands mid-generation


def long_generation(stack: InferenceStack) -> tuple[pb.GenerateRequest, float]:
    """A request that generates all LONG tokens (no early end of sequence), and how long it
    takes uncancelled."""
    for seed in range(1, 20):
        request = pb.GenerateRequest(
            model=f"{MODEL}/1",
            prompt="Count:",
            raw_prompt=True,
            sampling=sampling(max_new_tokens=LONG, temperature=1.0, seed=seed),
        )
        started = time.monotonic()
        response = stack.stub.Generate(request, timeout=120)
        if response.summary.finish_reason == inference_pb2.FINISH_REASON_LENGTH:
            return request, time.monotonic() - started
    pytest.skip("every seed tried ended early")


def engine_steps(stack: InferenceStack) -> Callable[[], int]:
    """The decode steps the engine serving tiny/1 has run so far."""
    with stack.inference.store.acquire(f"{MODEL}/1") as served:
        engine: Any = served.engine
    return lambda: int(engine.scheduler.stats.steps)


def assert_stops(steps: Callable[[], int], before: int) -> None:
    time.sleep(0.3)  # the engine drops the request at its next step
    after = steps()
    time.sleep(0.5)
    assert steps() == after, "the engine kept generating"
    assert after - before < LONG, "the generation ran to its end"


def test_cancelling_a_stream_stops_its_generation(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    request, _ = long_generation(stack)
    steps = engine_steps(stack)
    before = steps()
    stream = stack.stub.GenerateStream(
        pb.GenerateStreamRequest(
            model=request.model,
            prompt=request.prompt,
            raw_prompt=True,
            sampling=request.sampling,
        ),
        timeout=120,
    )
    next(stream)
    stream.cancel()
    assert_stops(steps, before)


def test_a_passed_deadline_stops_generation(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    request, seconds = long_generation(stack)
    steps = engine_steps(stack)
    before = steps()
    with pytest.raises(grpc.RpcError) as caught:
        stack.stub.Generate(request, timeout=max(0.02, seconds / 4))
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert_stops(steps, before)


def test_concurrent_loads_of_one_model_load_it_once(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    fresh = stack.start_inference(1 << 30, "concurrent")
    channel, stub, _ = stubs(fresh.address)
    try:
        with ThreadPoolExecutor(4) as pool:
            loaded = list(
                pool.map(
                    lambda reference: (
                        stub.LoadModel(
                            pb.LoadModelRequest(model=reference), timeout=120
                        ).loaded_model
                    ),
                    [f"{MODEL}/1", f"{MODEL}@candidate", CANDIDATE, f"models/{MODEL}/versions/1"],
                )
            )
        assert len({m.load_time.ToNanoseconds() for m in loaded}) == 1
        listed = stub.ListLoadedModels(pb.ListLoadedModelsRequest()).loaded_models
        assert len(listed) == 1 and listed[0].request_count == 4
        assert set(listed[0].references) == {
            f"{MODEL}/1",
            CANDIDATE,
            f"models/{MODEL}/versions/1",
        }
    finally:
        channel.close()
        stack.loop.run(fresh.stop(0))


def test_lru_eviction_and_a_model_too_big(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    one = estimate_memory_bytes(stack.model_dirs[0])
    small = stack.start_inference(int(one * 1.5), "small-budget")
    channel, stub, _ = stubs(small.address)
    try:
        stub.LoadModel(pb.LoadModelRequest(model=f"{MODEL}/1"), timeout=120)
        stub.LoadModel(pb.LoadModelRequest(model=f"{MODEL}/2"), timeout=120)
        listed = stub.ListLoadedModels(pb.ListLoadedModelsRequest())
        assert [m.model_version for m in listed.loaded_models] == [stack.versions[1].name]
        # A pinned model is never evicted, so another one cannot fit beside it.
        stub.LoadModel(pb.LoadModelRequest(model=f"{MODEL}/2", pin=True), timeout=120)
        with pytest.raises(grpc.RpcError) as caught:
            stub.LoadModel(pb.LoadModelRequest(model=f"{MODEL}/1"), timeout=120)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        channel.close()
        stack.loop.run(small.stop(0))

    tiny = stack.start_inference(one // 2, "tiny-budget")
    channel, stub, _ = stubs(tiny.address)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            stub.Generate(pb.GenerateRequest(model=CANDIDATE, prompt="hi"), timeout=120)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "budget" in (caught.value.details() or "")
    finally:
        channel.close()
        stack.loop.run(tiny.stop(0))


def test_grpcurl_lists_describes_and_calls(inference_stack: InferenceStack) -> None:
    address = inference_stack.inference.address
    listed = grpcurl("-plaintext", address, "list").split()
    assert "tunix_rt.v1.InferenceService" in listed
    assert "inference.GRPCInferenceService" in listed
    described = grpcurl("-plaintext", address, "describe", "tunix_rt.v1.InferenceService.Generate")
    assert "rpc Generate" in described
    described = grpcurl(
        "-plaintext", address, "describe", "inference.GRPCInferenceService.ModelInfer"
    )
    assert "rpc ModelInfer" in described
    out = grpcurl(
        "-plaintext",
        "-d",
        '{"model": "tiny/1", "prompt": "hi", "sampling": {"max_new_tokens": 4, "seed": "1"}}',
        address,
        "tunix_rt.v1.InferenceService/Generate",
    )
    assert '"summary"' in out and '"seed": "1"' in out
    live = grpcurl("-plaintext", address, "inference.GRPCInferenceService/ServerLive")
    assert '"live": true' in live
