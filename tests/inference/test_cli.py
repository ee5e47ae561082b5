"""The inference commands as users run them: `generate`, `inference models|load|unload` against
a real service, and `serve inference` / `up` as processes that serve until SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
from click.testing import CliRunner, Result

from tests.inference.conftest import JAX_WARNINGS, MODEL, InferenceStack
from tunix_rt.client.cli import main
from tunix_rt.client.errors import describe_rpc_error
from tunix_rt.v1 import inference_pb2, oip_grpc_service_pb2, registry_service_pb2
from tunix_rt.v1 import inference_service_pb2 as pb
from tunix_rt.v1.inference_service_pb2_grpc import InferenceServiceStub
from tunix_rt.v1.oip_grpc_service_pb2_grpc import GRPCInferenceServiceStub
from tunix_rt.v1.registry_service_pb2_grpc import RegistryServiceStub

pytestmark = JAX_WARNINGS

STARTUP_TIMEOUT_S = 90.0


def cli(stack: InferenceStack, *args: str) -> Result:
    argv = ["--inference", stack.inference.address, "--timeout", "120", *args]
    return CliRunner().invoke(main, argv)


def test_generate_prints_the_text_and_a_summary(inference_stack: InferenceStack) -> None:
    expected = inference_stack.stub.Generate(
        pb.GenerateRequest(
            model=f"{MODEL}@candidate",
            prompt="What is 2 + 3?",
            sampling=inference_pb2.SamplingParams(max_new_tokens=8, seed=3, temperature=0.7),
        ),
        timeout=120,
    ).text
    args = [f"{MODEL}@candidate", "What is 2 + 3?", "--max-new-tokens", "8", "--seed", "3"]
    args += ["--temperature", "0.7"]
    unary = cli(inference_stack, "generate", *args)
    assert unary.exit_code == 0, unary.output
    assert unary.stdout == expected + "\n"
    assert "seed 3" in unary.stderr and "models/tiny/versions/1" in unary.stderr
    streamed = cli(inference_stack, "generate", *args, "--stream")
    assert streamed.exit_code == 0, streamed.output
    assert streamed.stdout == expected + "\n"
    as_json = cli(inference_stack, "generate", *args, "--json")
    assert json.loads(as_json.stdout)["text"] == expected


def test_generate_says_it_is_loading_a_model_not_in_memory(
    inference_stack: InferenceStack,
) -> None:
    """The first use of a model loads and compiles it (a minute for the README's model): the CLI
    says so on stderr until the first output, and says nothing of it once the model is loaded."""
    reference = f"{MODEL}/2"
    with contextlib.suppress(grpc.RpcError):  # NOT_FOUND: not in memory
        inference_stack.stub.UnloadModel(pb.UnloadModelRequest(model=reference), timeout=60)
    args = [reference, "What is 2 + 3?", "--max-new-tokens", "4", "--seed", "1", "--stream"]
    first = cli(inference_stack, "generate", *args)
    assert first.exit_code == 0, first.output
    assert f"loading {reference}… (weights, then compiling its batch sizes)" in first.stderr
    assert f"loaded {reference} in " in first.stderr
    assert "loading" not in first.stdout
    again = cli(inference_stack, "generate", *args)
    assert again.exit_code == 0, again.output
    assert "loading" not in again.stderr
    assert again.stdout == first.stdout


def test_generate_reports_bad_input(inference_stack: InferenceStack) -> None:
    missing = cli(inference_stack, "generate", "no-such-model", "hi")
    assert missing.exit_code == 1
    assert "not found" in missing.stderr.lower()
    hot = cli(inference_stack, "generate", MODEL, "hi", "--temperature", "5")
    assert hot.exit_code == 1
    assert "sampling.temperature" in hot.stderr


def test_inference_models_load_and_unload(inference_stack: InferenceStack) -> None:
    loaded = cli(inference_stack, "inference", "load", f"{MODEL}/2", "--pin")
    assert loaded.exit_code == 0, loaded.output
    assert "models/tiny/versions/2: ready" in loaded.stdout
    listed = cli(inference_stack, "inference", "models")
    assert listed.exit_code == 0, listed.output
    assert "models/tiny/versions/2" in listed.stdout and "yes" in listed.stdout
    assert "memory:" in listed.stderr
    data = json.loads(cli(inference_stack, "inference", "models", "--json").stdout)
    assert any(m["pinned"] for m in data["loaded_models"])
    unloaded = cli(inference_stack, "inference", "unload", f"{MODEL}/2")
    assert unloaded.exit_code == 0 and "unloaded models/tiny/versions/2" in unloaded.stdout
    again = cli(inference_stack, "inference", "unload", f"{MODEL}/2")
    assert again.exit_code == 1 and "not loaded" in again.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_until_sigterm(args: list[str], check: list[tuple[str, str]]) -> str:
    """Starts `tunix-rt ARGS`, waits until each (address, service) answers, sends SIGTERM and
    returns stderr; asserts a clean exit."""
    command = [sys.executable, "-m", "tunix_rt.client.cli", *args]
    failure = ""
    with subprocess.Popen(
        command, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            for address, service in check:
                with grpc.insecure_channel(address) as channel:
                    wait_for(channel, service)
        except grpc.RpcError as error:
            failure = describe_rpc_error(error)
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=STARTUP_TIMEOUT_S)
    assert not failure, f"{failure}\n{stderr}"
    assert process.returncode == 0, stderr
    return stdout


def wait_for(channel: grpc.Channel, service: str) -> None:
    # wait_for_ready: queue the call until the server listens instead of failing.
    options = {"timeout": STARTUP_TIMEOUT_S, "wait_for_ready": True}
    if service == "registry":
        RegistryServiceStub(channel).ListDatasets(  # type: ignore[no-untyped-call]
            registry_service_pb2.ListDatasetsRequest(), **options
        )
    elif service == "inference":
        InferenceServiceStub(channel).ListLoadedModels(  # type: ignore[no-untyped-call]
            pb.ListLoadedModelsRequest(), **options
        )
    else:
        assert service == "oip"
        live = GRPCInferenceServiceStub(channel).ServerLive(  # type: ignore[no-untyped-call]
            oip_grpc_service_pb2.ServerLiveRequest(), **options
        )
        assert live.live


def test_serve_inference_serves_until_sigterm(
    inference_stack: InferenceStack, tmp_path: Path
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    run_until_sigterm(
        [
            "serve",
            "inference",
            "--port",
            str(port),
            "--registry",
            inference_stack.registry.address,
            "--data-dir",
            str(tmp_path / "inference"),
            "--memory-budget",
            "512MiB",
        ],
        [(address, "inference"), (address, "oip")],
    )


def test_up_runs_all_three_until_sigterm(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    stdout = run_until_sigterm(
        [
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--registry-port",
            str(ports[0]),
            "--training-port",
            str(ports[1]),
            "--inference-port",
            str(ports[2]),
        ],
        [(f"127.0.0.1:{ports[0]}", "registry"), (f"127.0.0.1:{ports[2]}", "inference")],
    )
    for port in ports:
        assert f"127.0.0.1:{port}" in stdout
    assert "stopped" in stdout
