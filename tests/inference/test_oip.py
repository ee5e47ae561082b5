"""The Open Inference Protocol service through a real server: our generated stub for the details,
and an unmodified `tritonclient.grpc` client for compatibility.

tritonclient registers its own copy of the protocol's messages (package `inference`) in
protobuf's default pool, which clashes with ours in one process, so it runs in a subprocess, as
any standard client would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import grpc
import pytest

from tests.inference.conftest import JAX_WARNINGS, MODEL, InferenceStack
from tests.registry.helpers import bad_request_fields
from tunix_rt.inference.oip import decode_bytes_tensor, encode_bytes_tensor
from tunix_rt.v1 import inference_pb2
from tunix_rt.v1 import inference_service_pb2 as pb
from tunix_rt.v1 import oip_grpc_service_pb2 as oip

pytestmark = JAX_WARNINGS


def infer_request(model: str, prompts: list[str], raw: bool, **parameters: int) -> Any:
    request = oip.ModelInferRequest(model_name=model, id="r-1")
    tensor = request.inputs.add(name="text_input", datatype="BYTES", shape=[len(prompts)])
    data = [p.encode() for p in prompts]
    if raw:
        request.raw_input_contents.append(encode_bytes_tensor(data))
    else:
        tensor.contents.bytes_contents.extend(data)
    for key, value in parameters.items():
        request.parameters[key].int64_param = value
    return request


def test_bytes_tensors_round_trip() -> None:
    elements = [b"", b"a", "\u00e9\u4e2d".encode(), b"x" * 300]
    assert decode_bytes_tensor(encode_bytes_tensor(elements), "t") == elements


def test_model_infer_matches_generate(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    prompts = ["What is 2 + 3?", "Name a color."]
    expected = [
        stack.stub.Generate(
            pb.GenerateRequest(
                model=f"{MODEL}@candidate",
                prompt=p,
                sampling=inference_pb2.SamplingParams(max_new_tokens=6, seed=5),
            ),
            timeout=120,
        ).text
        for p in prompts
    ]
    for raw in (True, False):
        response = stack.oip_stub.ModelInfer(
            infer_request(f"{MODEL}@candidate", prompts, raw, max_new_tokens=6, seed=5),
            timeout=120,
        )
        assert response.id == "r-1" and response.model_version == "1"
        assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
            ("text_output", "BYTES", [2])
        ]
        texts = decode_bytes_tensor(response.raw_output_contents[0], "out")
        assert [t.decode() for t in texts] == expected


def test_metadata_and_readiness(inference_stack: InferenceStack) -> None:
    stub = inference_stack.oip_stub
    assert stub.ServerLive(oip.ServerLiveRequest()).live
    assert stub.ServerReady(oip.ServerReadyRequest()).ready
    assert stub.ServerMetadata(oip.ServerMetadataRequest()).name == "tunix-rt"
    meta = stub.ModelMetadata(oip.ModelMetadataRequest(name=MODEL, version="2"))
    assert meta.versions == ["2"] and meta.platform == "tunix-rt"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("text_input", "BYTES", [-1])
    ]
    assert [t.name for t in meta.outputs] == ["text_output"]
    assert not stub.ModelReady(oip.ModelReadyRequest(name="no-such-model")).ready
    inference_stack.stub.LoadModel(pb.LoadModelRequest(model=f"{MODEL}/2"), timeout=120)
    assert stub.ModelReady(oip.ModelReadyRequest(name=MODEL, version="2")).ready


def test_bad_requests(inference_stack: InferenceStack) -> None:
    stub = inference_stack.oip_stub
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelMetadata(oip.ModelMetadataRequest(name="no-such-model"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(infer_request("no-such-model", ["hi"], True))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(oip.ModelInferRequest(model_name=MODEL))
    assert bad_request_fields(caught.value) == ["inputs"]
    wrong_type = infer_request(MODEL, ["hi"], False)
    wrong_type.inputs[0].datatype = "FP32"
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(wrong_type)
    assert bad_request_fields(caught.value) == ["inputs[0].datatype"]
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(infer_request(MODEL, ["hi"], True, max_new_tokens=99999))
    assert bad_request_fields(caught.value) == ["sampling.max_new_tokens"]


@pytest.mark.parametrize(
    ("key", "kind", "value", "field"),
    [
        ("max_new_tokens", "double_param", float("inf"), "parameters.max_new_tokens"),
        ("top_k", "double_param", float("nan"), "parameters.top_k"),
        ("max_new_tokens", "int64_param", 2**40, "parameters.max_new_tokens"),
        ("seed", "string_param", "lucky", "parameters.seed"),
        ("temperature", "double_param", float("nan"), "sampling.temperature"),
        ("top_p", "double_param", float("inf"), "sampling.top_p"),
    ],
)
def test_bad_parameters_name_the_field(
    inference_stack: InferenceStack, key: str, kind: str, value: object, field: str
) -> None:
    request = infer_request(MODEL, ["hi"], True)
    setattr(request.parameters[key], kind, value)
    with pytest.raises(grpc.RpcError) as caught:
        inference_stack.oip_stub.ModelInfer(request, timeout=60)
    assert bad_request_fields(caught.value) == [field]


def test_a_uint64_seed_is_its_int64_bits(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    prompt = "What is 2 + 3?"
    texts = []
    for kind, seed in (("int64_param", -1), ("uint64_param", 2**64 - 1)):
        request = infer_request(MODEL, [prompt], True, max_new_tokens=8)
        request.parameters["temperature"].double_param = 1.0
        setattr(request.parameters["seed"], kind, seed)
        response = stack.oip_stub.ModelInfer(request, timeout=120)
        texts.append(decode_bytes_tensor(response.raw_output_contents[0], "out")[0].decode())
    expected = stack.stub.Generate(
        pb.GenerateRequest(
            model=MODEL,
            prompt=prompt,
            sampling=inference_pb2.SamplingParams(max_new_tokens=8, temperature=1.0, seed=-1),
        ),
        timeout=120,
    ).text
    assert texts == [expected, expected]


def index_of(stub: Any, ready: bool = False) -> dict[tuple[str, str], tuple[str, str]]:
    response = stub.RepositoryIndex(oip.RepositoryIndexRequest(ready=ready), timeout=60)
    return {(m.name, m.version): (m.state, m.reason) for m in response.models}


def test_repository_index_lists_registered_versions_and_their_state(
    inference_stack: InferenceStack,
) -> None:
    stack = inference_stack
    stack.stub.LoadModel(pb.LoadModelRequest(model=f"{MODEL}/1"), timeout=120)
    try:
        stack.stub.UnloadModel(pb.UnloadModelRequest(model=f"{MODEL}/2"), timeout=60)
    except grpc.RpcError as error:  # not in memory: what this test wants
        assert error.code() == grpc.StatusCode.NOT_FOUND
    index = index_of(stack.oip_stub)
    assert index[(MODEL, "1")] == ("READY", "")
    assert index[(MODEL, "2")] == ("UNAVAILABLE", "unloaded")
    ready = index_of(stack.oip_stub, ready=True)
    assert (MODEL, "1") in ready and (MODEL, "2") not in ready
    assert {state for state, _ in ready.values()} == {"READY"}
    # Sorted by name, then version number.
    response = stack.oip_stub.RepositoryIndex(oip.RepositoryIndexRequest(), timeout=60)
    keys = [(m.name, int(m.version or -1)) for m in response.models]
    assert keys == sorted(keys)
    with pytest.raises(grpc.RpcError) as caught:
        stack.oip_stub.RepositoryIndex(oip.RepositoryIndexRequest(repository_name="other"))
    assert bad_request_fields(caught.value) == ["repository_name"]


def greedy_text(stack: InferenceStack, prompt: str) -> str:
    """What a unary Generate of the streaming tests' greedy request answers."""
    response = stack.stub.Generate(
        pb.GenerateRequest(
            model=f"{MODEL}@candidate",
            prompt=prompt,
            sampling=inference_pb2.SamplingParams(max_new_tokens=8),
        ),
        timeout=120,
    )
    text: str = response.text
    return text


def stream_request(model: str, prompt: str, request_id: str, **parameters: Any) -> Any:
    request = infer_request(model, [prompt], True, max_new_tokens=8)
    request.id = request_id
    for key, value in parameters.items():
        request.parameters[key].bool_param = value
    return request


def test_model_stream_infer_streams_pieces_then_a_final_response(
    inference_stack: InferenceStack,
) -> None:
    stack = inference_stack
    prompt = "What is 2 + 3?"
    expected = greedy_text(stack, prompt)
    requests = [
        stream_request(f"{MODEL}@candidate", prompt, "plain"),
        stream_request("no-such-model", prompt, "missing"),
        stream_request(
            f"{MODEL}@candidate", prompt, "empty-final", triton_enable_empty_final_response=True
        ),
    ]
    by_id: dict[str, list[Any]] = {"plain": [], "empty-final": []}
    errors = []
    for message in stack.oip_stub.ModelStreamInfer(iter(requests), timeout=180):
        if message.error_message:
            errors.append(message.error_message)
        else:
            by_id[message.infer_response.id].append(message.infer_response)
    assert len(errors) == 1 and "no-such-model" in errors[0]
    for request_id, responses in by_id.items():
        flags = [r.parameters["triton_final_response"].bool_param for r in responses]
        assert flags == [False] * (len(responses) - 1) + [True], request_id
        # A response per piece the engine streamed (how many depends on its batching).
        assert len(responses) >= 2
        assert {(r.model_name, r.model_version) for r in responses} == {(f"{MODEL}@candidate", "1")}
        pieces = [
            decode_bytes_tensor(r.raw_output_contents[0], "out")[0].decode()
            for r in responses
            if r.raw_output_contents
        ]
        assert "".join(pieces) == expected
    # Asked for, the final response is empty (Triton's); otherwise it holds an empty piece.
    assert not by_id["empty-final"][-1].outputs
    final = by_id["plain"][-1]
    assert [o.name for o in final.outputs] == ["text_output"]
    assert decode_bytes_tensor(final.raw_output_contents[0], "out") == [b""]


def test_model_stream_infer_reports_bad_requests_in_the_stream(
    inference_stack: InferenceStack,
) -> None:
    two_prompts = infer_request(MODEL, ["a", "b"], True)
    too_long = infer_request(MODEL, ["hi"], True, max_new_tokens=99999)
    messages = list(
        inference_stack.oip_stub.ModelStreamInfer(iter([two_prompts, too_long]), timeout=60)
    )
    assert sorted(m.error_message.split(":")[0] for m in messages) == [
        "inputs",
        "sampling.max_new_tokens",
    ]
    assert not any(m.HasField("infer_response") for m in messages)


TRITON_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.grpc as grpcclient

    url, model = sys.argv[1], sys.argv[2]
    client = grpcclient.InferenceServerClient(url=url)
    prompts = np.array([b"What is 2 + 3?", b"Name a color."], dtype=np.object_)
    tensor = grpcclient.InferInput("text_input", [2], "BYTES")
    tensor.set_data_from_numpy(prompts)
    texts = []
    for _ in range(2):
        result = client.infer(
            model,
            [tensor],
            outputs=[grpcclient.InferRequestedOutput("text_output")],
            parameters={"max_new_tokens": 6, "seed": 11, "temperature": 1.0},
        )
        texts.append([t.decode() for t in result.as_numpy("text_output").tolist()])
    metadata = client.get_model_metadata(model, as_json=True)
    print(json.dumps({
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model),
        "inputs": metadata["inputs"],
        "texts": texts,
    }))
    """
)


def test_tritonclient_calls_a_tunix_rt_model(inference_stack: InferenceStack) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            TRITON_SCRIPT,
            inference_stack.inference.address,
            f"{MODEL}@candidate",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["live"] and result["ready"] and result["model_ready"]
    assert result["inputs"] == [{"name": "text_input", "datatype": "BYTES", "shape": ["-1"]}]
    first, second = result["texts"]
    assert len(first) == 2 and all(first) and first == second  # same seed, same text


TRITON_STREAM_SCRIPT = textwrap.dedent(
    """
    import json, queue, sys
    import numpy as np
    import tritonclient.grpc as grpcclient

    url, model, prompt = sys.argv[1], sys.argv[2], sys.argv[3]
    client = grpcclient.InferenceServerClient(url=url)
    index = client.get_model_repository_index(as_json=True)
    events = queue.Queue()
    client.start_stream(callback=lambda result, error: events.put((result, error)))
    tensor = grpcclient.InferInput("text_input", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([prompt.encode()], dtype=np.object_))
    client.async_stream_infer(
        model,
        [tensor],
        request_id="s-1",
        parameters={"max_new_tokens": 8},
        enable_empty_final_response=True,
    )
    pieces, finals = [], []
    while not finals or not finals[-1]:
        result, error = events.get(timeout=120)
        if error is not None:
            raise SystemExit(f"unexpected error: {error}")
        response = result.get_response()
        finals.append(response.parameters["triton_final_response"].bool_param)
        text = result.as_numpy("text_output")
        if text is not None:
            pieces.append(text[0].decode())
    client.async_stream_infer("no-such-model", [tensor], request_id="s-2")
    result, error = events.get(timeout=60)
    client.stop_stream()
    print(json.dumps({
        "index": index.get("models", []),
        "pieces": pieces,
        "finals": finals,
        "error": str(error),
    }))
    """
)


def test_tritonclient_streams_and_indexes(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    prompt = "Name a color."
    stack.stub.LoadModel(pb.LoadModelRequest(model=f"{MODEL}/1"), timeout=120)
    expected = greedy_text(stack, prompt)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            TRITON_STREAM_SCRIPT,
            stack.inference.address,
            f"{MODEL}@candidate",
            prompt,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"name": MODEL, "version": "1", "state": "READY"} in result["index"]
    assert {(m["name"], m["version"]) for m in result["index"]} >= {(MODEL, "1"), (MODEL, "2")}
    finals = result["finals"]
    assert finals == [False] * (len(finals) - 1) + [True]
    assert result["pieces"] and "".join(result["pieces"]) == expected
    assert "no-such-model" in result["error"]
