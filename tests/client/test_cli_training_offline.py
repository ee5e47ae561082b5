"""The training CLI and TrainingClient without a training service.

- Parsing: every new command's help, the `--model` and `--devices` arguments, the job they build.
- `runs plot` and `runs tensorboard` against the real registry (the metric history lives there).
- The job follower (`TrainingClient.stream_metrics`, `jobs follow`, `train --follow`) against a
  stand-in for the training service at the gRPC boundary: a real gRPC server implementing only
  the methods the follower calls, which ends streams with real FellBehind notices and breaks them
  with UNAVAILABLE on cue, as the contract in training_service.proto says a service may. The real
  training service's own tests (tests/training) cover its side of that contract.
"""

from __future__ import annotations

import importlib
import io
import shutil
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from tunix_rt.client.cli import main
from tunix_rt.client.cli.follow import ProgressView, format_duration
from tunix_rt.client.cli.plots import TITLES, default_title, draw_runs, metric_history
from tunix_rt.client.cli.tfevents import crc32c, masked_crc32c
from tunix_rt.client.errors import IntegrityError
from tunix_rt.client.registry import RegistryClient
from tunix_rt.client.training import TrainingClient, job_name
from tunix_rt.client.training_job import (
    DEVICE_KINDS,
    ModelSource,
    build_training_job,
    classify_model,
    format_device_request,
    needs_presets,
    parse_device_request,
)
from tunix_rt.v1 import backend_pb2, device_pb2, run_pb2, training_job_pb2
from tunix_rt.v1 import registry_service_pb2 as registry_pb
from tunix_rt.v1 import training_service_pb2 as pb

NEW_COMMANDS = [
    ("train",),
    ("devices",),
    ("presets",),
    ("jobs",),
    ("jobs", "list"),
    ("jobs", "show"),
    ("jobs", "cancel"),
    ("jobs", "resume"),
    ("jobs", "follow"),
    ("serve", "training"),
    ("runs", "plot"),
    ("runs", "tensorboard"),
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T0 = 1_750_000_000  # event times of the synthetic runs, seconds since the epoch


# Parsing.


@pytest.mark.parametrize("path", NEW_COMMANDS, ids=" ".join)
def test_every_new_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_the_training_address_option_and_environment() -> None:
    help_text = CliRunner().invoke(main, ["--help"]).output
    assert "--training ADDR" in help_text and "TUNIX_RT_TRAINING" in help_text
    assert "127.0.0.1:50052" in help_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("llama3-tiny", ModelSource("preset", "llama3-tiny")),
        ("  llama3-tiny ", ModelSource("preset", "llama3-tiny")),
        ("mymodel@production", ModelSource("base_model_version", "mymodel@production")),
        ("mymodel/3", ModelSource("base_model_version", "mymodel/3")),
        ("models/m/versions/2", ModelSource("base_model_version", "models/m/versions/2")),
        ("mymodel", ModelSource("base_model_version", "mymodel")),
        ("qwen2-0.5b", ModelSource("base_model_version", "qwen2-0.5b")),  # not a preset here
        ("/ckpt/qwen", ModelSource("checkpoint_dir", "/ckpt/qwen")),
    ],
)
def test_model_argument_classification(value: str, expected: ModelSource) -> None:
    assert classify_model(value, {"llama3-tiny", "gemma-tiny"}) == expected


def test_only_a_bare_name_needs_the_preset_list() -> None:
    assert needs_presets("llama3-tiny")
    assert not any(needs_presets(v) for v in ("/ckpt", "m@a", "m/1", "models/m/versions/1"))
    with pytest.raises(ValueError):
        classify_model("  ", {"llama3-tiny"})


@pytest.mark.parametrize(
    ("text", "kind", "count"),
    [
        ("cpu:1", device_pb2.DEVICE_KIND_CPU, 1),
        ("gpu:2", device_pb2.DEVICE_KIND_GPU, 2),
        ("GPU:8", device_pb2.DEVICE_KIND_GPU, 8),
        ("tpu", device_pb2.DEVICE_KIND_TPU, 1),
        ("any", device_pb2.DEVICE_KIND_UNSPECIFIED, 1),
        ("any:3", device_pb2.DEVICE_KIND_UNSPECIFIED, 3),
    ],
)
def test_device_requests(text: str, kind: device_pb2.DeviceKind, count: int) -> None:
    assert parse_device_request(text) == device_pb2.DeviceRequest(kind=kind, count=count)


@pytest.mark.parametrize("text", ["gpu:0", "gpu:-1", "gpu:x", "npu:1", "", "cpu:1.5", "gpu:"])
def test_bad_device_requests(text: str) -> None:
    with pytest.raises(ValueError):
        parse_device_request(text)


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("cpu:[1]", ["cpu:1"]),
        ("cpu:[0,1]", ["cpu:0", "cpu:1"]),
        ("cpu:0,cpu:1", ["cpu:0", "cpu:1"]),
        ("GPU:[3, 1]", ["gpu:3", "gpu:1"]),
    ],
)
def test_device_requests_naming_devices(text: str, ids: list[str]) -> None:
    request = parse_device_request(text)
    assert request.device_ids == ids
    assert request.kind == DEVICE_KINDS[ids[0].partition(":")[0]]
    assert (
        format_device_request(request)
        == ids[0].partition(":")[0] + ":[" + ",".join(i.partition(":")[2] for i in ids) + "]"
    )


@pytest.mark.parametrize(
    "text", ["cpu:[]", "cpu:[0,0]", "cpu:0,gpu:1", "any:[0]", "cpu:[x]", "cpu:0,cpu:"]
)
def test_bad_device_id_requests(text: str) -> None:
    with pytest.raises(ValueError):
        parse_device_request(text)


def test_device_index_zero_is_explained_as_a_count() -> None:
    """`cpu:0` as copied from `tunix-rt devices` says how to name that device."""
    with pytest.raises(ValueError, match=r"write cpu:\[0\]"):
        parse_device_request("cpu:0")


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--dataset", "d", "--devices", "gpu:0"],
        ["train", "--dataset", "d", "--devices", "npu:1"],
        ["train", "--dataset", "d", "--steps", "10", "--epochs", "1"],
        ["train", "--dataset", "d", "--steps", "0"],
        ["train", "--dataset", "d", "--lr", "2"],
        ["train", "--dataset", "d", "--priority", "101"],
        ["train", "--dataset", "d", "--validate-only", "--follow"],
        ["train", "--model", "m"],
        ["jobs", "list", "--state", "sleeping"],
        ["jobs", "follow", "j", "--from-sequence", "0"],
        ["serve", "training", "--cpu-slots", "0"],
        ["runs", "plot", "r"],
        ["runs", "plot", "r", "-o", "out.txt"],
        ["runs", "tensorboard", "r"],
    ],
)
def test_bad_usage_exits_2(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["--training", "127.0.0.1:1", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_the_job_built_from_plain_arguments() -> None:
    job = build_training_job(
        "seed-v1",
        ModelSource("preset", "llama3-tiny"),
        max_steps=200,
        devices="cpu:2",
        learning_rate=1e-3,
        batch_size=16,
        max_seq_len=128,
        seed=0,
        lora_rank=8,
        register_as="tiny",
        aliases=["candidate"],
        priority=5,
        eval_interval_steps=0,
        checkpoint_interval_steps=50,
        chat_template="chatml",
    )
    assert job.dataset == "datasets/seed-v1" and job.preset == "llama3-tiny"
    assert job.device_request == device_pb2.DeviceRequest(kind=device_pb2.DEVICE_KIND_CPU, count=2)
    hyper = job.hyperparameters
    assert hyper.max_steps == 200 and hyper.WhichOneof("training_length") == "max_steps"
    assert (hyper.learning_rate, hyper.batch_size, hyper.max_seq_len) == (1e-3, 16, 128)
    # Explicit zeros are sent (proto3 `optional`), not confused with "use the default".
    assert hyper.HasField("seed") and hyper.seed == 0
    assert hyper.HasField("eval_interval_steps") and hyper.eval_interval_steps == 0
    assert hyper.checkpoint_interval_steps == 50 and hyper.chat_template == "chatml"
    assert job.lora.rank == 8 and job.priority == 5
    assert job.registration.model == "models/tiny" and list(job.registration.aliases) == [
        "candidate"
    ]

    defaults = build_training_job("d", ModelSource("checkpoint_dir", "/ckpt"), num_epochs=2.5)
    assert defaults.checkpoint_dir == "/ckpt" and defaults.hyperparameters.num_epochs == 2.5
    assert not defaults.HasField("device_request") and not defaults.HasField("registration")
    assert defaults.WhichOneof("tuning") is None
    assert not defaults.hyperparameters.HasField("seed")
    with pytest.raises(ValueError):
        build_training_job("d", max_steps=1, num_epochs=1.0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("auto", backend_pb2.PRECISION_UNSPECIFIED),
        ("float32", backend_pb2.PRECISION_FLOAT32),
        ("mixed_bfloat16", backend_pb2.PRECISION_MIXED_BFLOAT16),
        ("bfloat16", backend_pb2.PRECISION_BFLOAT16),
    ],
)
def test_every_precision_name_the_cli_offers_builds_a_job(name: str, expected: int) -> None:
    """`--precision auto` (what make demo passes on a CPU without bfloat16) is the service's
    default, not an enum label of its own."""
    job = build_training_job("d", precision=name)
    assert job.hyperparameters.precision == expected


def test_job_names() -> None:
    assert job_name("j1") == job_name("trainingJobs/j1") == job_name("runs/j1")
    assert job_name("j1") == "trainingJobs/j1"


# runs plot and runs tensorboard, against the real registry.


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def _metrics(sequence: int, step: int, **values: float) -> run_pb2.RunEvent:
    return run_pb2.RunEvent(
        sequence=sequence,
        step=step,
        time=_stamp(T0 + step + sequence / 1000),
        metrics=run_pb2.MetricValues(values=values),
    )


def _run_events(shift: float) -> list[run_pb2.RunEvent]:
    """A run of 12 steps with a state change, a log line and evaluations at steps 6 and 12, which
    was interrupted after step 8 and resumed from its checkpoint at step 6: steps 7 and 8 appear
    twice, and the later values are the ones the run finally followed."""
    events = [
        run_pb2.RunEvent(
            sequence=1,
            time=_stamp(T0),
            state_change=run_pb2.StateChange(
                from_state=run_pb2.RUN_STATE_QUEUED, to_state=run_pb2.RUN_STATE_RUNNING
            ),
        ),
        run_pb2.RunEvent(sequence=2, time=_stamp(T0), log=run_pb2.LogLine(message="hello")),
    ]
    steps = [*range(1, 9), *range(7, 13)]
    for step in steps:
        resumed = len(events) >= 10  # the second pass over steps 7 and 8
        loss = 3.0 / step + shift + (0.5 if step in (7, 8) and not resumed else 0.0)
        events.append(
            _metrics(len(events) + 1, step, loss=loss, learning_rate=1e-3 * min(1, step / 4))
        )
        if step in (6, 12):
            events.append(
                _metrics(
                    len(events) + 1,
                    step,
                    eval_answer_accuracy=step / 24 + shift,
                    eval_loss=2.0 / step,
                )
            )
    return events


def _expected_loss(step: int, shift: float) -> float:
    return 3.0 / step + shift


def _create_run(registry: RegistryClient, run_id: str, shift: float) -> None:
    created: registry_pb.CreateRunResponse = registry.stub.CreateRun(
        registry_pb.CreateRunRequest(run=run_pb2.Run(display_name=run_id), run_id=run_id),
        timeout=30,
    )
    assert created.run.name == f"runs/{run_id}"
    registry.stub.AppendRunEvents(
        registry_pb.AppendRunEventsRequest(run=created.run.name, events=_run_events(shift)),
        timeout=30,
    )


def test_runs_plot_draws_several_runs_into_a_png(
    cli: Callable[..., Result], registry: RegistryClient, tag: str, tmp_path: Path
) -> None:
    runs = [f"{tag}-a", f"{tag}-b"]
    for shift, run in enumerate(runs):
        _create_run(registry, run, shift * 0.1)
    output = tmp_path / "plots" / "compare.png"
    result = cli("runs", "plot", runs[0], f"runs/{runs[1]}", "-o", output)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(output)
    assert f"{runs[0]}: loss, learning_rate, eval_answer_accuracy, eval_loss" in result.stderr
    data = output.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    # The IHDR chunk holds the image size: four panels make a large picture.
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= 800

    # The picture says what it shows, and accuracy keeps its whole 0-1 axis.
    histories = [metric_history(f"runs/{r}", _run_events(0.0)) for r in runs]
    assert default_title(histories, ["datasets/arith", "", "datasets/arith"]) == (
        f"{runs[0]}, {runs[1]} on arith"
    )
    figure = draw_runs(histories, title="t")
    accuracy = [ax for ax in figure.axes if ax.get_title() == TITLES["eval_answer_accuracy"]]
    assert [ax.get_ylim() for ax in accuracy] == [(0.0, 1.0)]

    unknown = cli("runs", "plot", f"{tag}-nope", "-o", tmp_path / "x.png")
    assert unknown.exit_code == 1 and unknown.stderr.startswith("Error: NOT_FOUND")
    assert not (tmp_path / "x.png").exists()


def _read_records(path: Path) -> Iterator[bytes]:
    """TFRecords, checking both CRCs of each with a CRC-32C that is not the writer's."""
    crc = importlib.import_module("tensorboardX.crc32c")

    def masked(data: bytes) -> int:
        value: int = crc.crc32c(data)
        return (((value >> 15) | (value << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        assert length_crc == masked(header)
        record = data[offset + 12 : offset + 12 + length]
        (record_crc,) = struct.unpack("<I", data[offset + 12 + length : offset + 16 + length])
        assert record_crc == masked(record)
        yield record
        offset += 16 + length


@dataclass
class Scalar:
    step: int
    value: float
    wall_time: float


def _read_scalars(directory: Path) -> dict[str, list[Scalar]]:
    """Every scalar in the directory's event files, by tag, parsed with tensorboard's own
    Event proto (as tensorboardX ships it)."""
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    (path,) = directory.glob("events.out.tfevents.*")
    scalars: dict[str, list[Scalar]] = {}
    records = list(_read_records(path))
    first = event_pb2.Event.FromString(records[0])
    assert first.file_version == "brain.Event:2"
    for record in records[1:]:
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append(
                Scalar(event.step, value.simple_value, event.wall_time)
            )
    return scalars


def test_runs_tensorboard_writes_every_scalar(
    cli: Callable[..., Result], registry: RegistryClient, tag: str, tmp_path: Path
) -> None:
    run = f"{tag}-tb"
    _create_run(registry, run, 0.0)
    result = cli("runs", "tensorboard", run, tmp_path / "tb")
    assert result.exit_code == 0, result.output
    # Loss and learning rate at 12 steps, two evaluations of two metrics each.
    assert "28 scalars of 4 metrics" in result.stderr
    # TensorBoard is not a dependency: where it is missing, the hint says how to get it.
    if shutil.which("tensorboard") is None:
        assert "not installed here: pip install tensorboard" in result.stderr

    scalars = _read_scalars(tmp_path / "tb" / run)
    assert set(scalars) == {"loss", "learning_rate", "eval_answer_accuracy", "eval_loss"}
    assert [s.step for s in scalars["loss"]] == list(range(1, 13))
    for point in scalars["loss"]:
        # float32 in the file; steps 7 and 8 carry the values of the resumed pass.
        assert point.value == pytest.approx(_expected_loss(point.step, 0.0), rel=1e-6)
    stored = {e.sequence: e for e in _run_events(0.0)}
    last_for_step = {e.step: e for e in stored.values() if "loss" in e.metrics.values}
    for point in scalars["loss"]:
        stamp = last_for_step[point.step].time
        assert point.wall_time == pytest.approx(stamp.seconds + stamp.nanos / 1e9, abs=1e-6)
    assert [(s.step, round(s.value, 6)) for s in scalars["eval_answer_accuracy"]] == [
        (6, 0.25),
        (12, 0.5),
    ]
    assert scalars["learning_rate"][0].value == pytest.approx(2.5e-4, rel=1e-6)

    # With tensorboard itself installed, its reader agrees.
    try:
        accumulator_module = importlib.import_module(
            "tensorboard.backend.event_processing.event_accumulator"
        )
    except ModuleNotFoundError:
        pass
    else:
        accumulator = accumulator_module.EventAccumulator(str(tmp_path / "tb" / run))
        accumulator.Reload()
        assert [e.step for e in accumulator.Scalars("loss")] == list(range(1, 13))

    # Writing again replaces the file instead of doubling the points.
    again = cli("runs", "tensorboard", f"runs/{run}", tmp_path / "tb")
    assert again.exit_code == 0, again.output
    assert len(_read_scalars(tmp_path / "tb" / run)["loss"]) == 12


def test_the_tfevents_crc_is_crc32c() -> None:
    # The check value of CRC-32C (RFC 3720, B.4) and a masked value TensorFlow's tests use.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert masked_crc32c(b"") == ((0 >> 15 | 0 << 17) + 0xA282EAD8) & 0xFFFFFFFF


# The follower, against a stand-in for the training service.


def _job_events(count: int) -> list[run_pb2.RunEvent]:
    """A job's history of `count` events: queued -> running, `count - 3` training steps, a
    checkpoint after the last step, and the state change to succeeded."""
    events = [
        run_pb2.RunEvent(
            sequence=1,
            time=_stamp(T0),
            state_change=run_pb2.StateChange(
                from_state=run_pb2.RUN_STATE_QUEUED, to_state=run_pb2.RUN_STATE_RUNNING
            ),
        )
    ]
    for step in range(1, count - 2):
        events.append(
            _metrics(len(events) + 1, step, loss=4.0 / step, tokens_per_second=3500.0 + step)
        )
    events.append(
        run_pb2.RunEvent(
            sequence=len(events) + 1,
            time=_stamp(T0 + count),
            step=count - 3,
            checkpoint_saved=run_pb2.CheckpointSaved(checkpoint=f"runs/j/checkpoints/{count - 3}"),
        )
    )
    events.append(
        run_pb2.RunEvent(
            sequence=len(events) + 1,
            time=_stamp(T0 + count),
            state_change=run_pb2.StateChange(
                from_state=run_pb2.RUN_STATE_RUNNING, to_state=run_pb2.RUN_STATE_SUCCEEDED
            ),
        )
    )
    return events


@dataclass
class StandInTraining:
    """The part of the training service the follower uses, for one job, with scripted faults.

    `fall_behind_after`: for each next stream, how many events it delivers before ending with a
    FellBehind notice. `fail_after`: for each next stream, how many events it delivers before
    failing with UNAVAILABLE. Streams beyond the scripts deliver everything and end with OK, as
    the service does after a terminal state change. Every notice is computed as the contract
    says: `last_delivered_sequence` is the last event this stream sent (`from_sequence` - 1 when
    none) and `latest_sequence` the job's highest.
    """

    job: training_job_pb2.TrainingJob
    events: list[run_pb2.RunEvent]
    fall_behind_after: list[int] = field(default_factory=list)
    fail_after: list[int] = field(default_factory=list)
    # Preset names and their parameter counts.
    presets: dict[str, int] = field(default_factory=lambda: {"llama3-tiny": 2_500_000})
    stream_requests: list[int] = field(default_factory=list)
    created: list[pb.CreateTrainingJobRequest] = field(default_factory=list)
    skip_sequence: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stream(
        self, request: pb.StreamJobMetricsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.StreamJobMetricsResponse]:
        if request.name != self.job.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        with self.lock:
            self.stream_requests.append(request.from_sequence)
            behind = self.fall_behind_after.pop(0) if self.fall_behind_after else None
            fail = self.fail_after.pop(0) if self.fail_after else None
        start = max(1, request.from_sequence)
        sent = 0
        for event in self.events[start - 1 :]:
            if behind is not None and sent == behind:
                yield pb.StreamJobMetricsResponse(
                    fell_behind=pb.FellBehind(
                        last_delivered_sequence=start - 1 + sent,
                        latest_sequence=len(self.events),
                    )
                )
                return
            if fail is not None and sent == fail:
                context.abort(grpc.StatusCode.UNAVAILABLE, "the training service is restarting")
            if event.sequence == self.skip_sequence:
                continue
            yield pb.StreamJobMetricsResponse(run_event=event)
            sent += 1

    def get(
        self, request: pb.GetTrainingJobRequest, context: grpc.ServicerContext
    ) -> pb.GetTrainingJobResponse:
        if request.name != self.job.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        return pb.GetTrainingJobResponse(training_job=self.job)

    def create(
        self, request: pb.CreateTrainingJobRequest, context: grpc.ServicerContext
    ) -> pb.CreateTrainingJobResponse:
        self.created.append(request)
        return pb.CreateTrainingJobResponse(training_job=self.job)

    def list_presets(
        self, request: pb.ListArchitecturePresetsRequest, context: grpc.ServicerContext
    ) -> pb.ListArchitecturePresetsResponse:
        return pb.ListArchitecturePresetsResponse(
            presets=[
                training_job_pb2.ArchitecturePreset(name=name, parameter_count=count)
                for name, count in self.presets.items()
            ]
        )

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(method: Callable[..., Any], request: Any, response: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                method,
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            )

        return grpc.method_handlers_generic_handler(
            "tunix_rt.v1.TrainingService",
            {
                "StreamJobMetrics": grpc.unary_stream_rpc_method_handler(
                    self.stream,
                    request_deserializer=pb.StreamJobMetricsRequest.FromString,
                    response_serializer=pb.StreamJobMetricsResponse.SerializeToString,
                ),
                "GetTrainingJob": unary(
                    self.get, pb.GetTrainingJobRequest, pb.GetTrainingJobResponse
                ),
                "CreateTrainingJob": unary(
                    self.create, pb.CreateTrainingJobRequest, pb.CreateTrainingJobResponse
                ),
                "ListArchitecturePresets": unary(
                    self.list_presets,
                    pb.ListArchitecturePresetsRequest,
                    pb.ListArchitecturePresetsResponse,
                ),
            },
        )


def _finished_job(
    events: list[run_pb2.RunEvent], state: run_pb2.RunState = run_pb2.RUN_STATE_SUCCEEDED
) -> training_job_pb2.TrainingJob:
    steps = max(e.step for e in events)
    job = training_job_pb2.TrainingJob(
        name="trainingJobs/j",
        run="runs/j",
        dataset="datasets/d",
        preset="llama3-tiny",
        state=state,
        step=steps,
        total_steps=steps,
        last_sequence=len(events),
        hyperparameters=training_job_pb2.Hyperparameters(eval_max_examples=64),
    )
    if state == run_pb2.RUN_STATE_SUCCEEDED:
        job.registered_model_version = "models/j/versions/1"
        job.latest_metrics["eval_answer_accuracy"].CopyFrom(
            training_job_pb2.MetricPoint(step=steps, value=0.375)
        )
    return job


@pytest.fixture
def stand_in() -> Iterator[Callable[[StandInTraining], str]]:
    """Serves a StandInTraining on 127.0.0.1:0 and returns its address."""
    servers: list[grpc.Server] = []

    def serve(service: StandInTraining) -> str:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((service.handler(),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield serve
    for server in servers:
        server.stop(None)


def _client(address: str) -> TrainingClient:
    client = TrainingClient.connect(address, timeout=10)
    client.reconnect_backoff_s = (0.01, 0.05)
    return client


def test_stream_resumes_after_falling_behind(stand_in: Callable[[StandInTraining], str]) -> None:
    events = _job_events(40)
    # Behind after 10 events, then at once (nothing delivered), then after 15 more.
    service = StandInTraining(_finished_job(events), events, fall_behind_after=[10, 0, 15])
    resumed: list[tuple[str, int]] = []
    with _client(stand_in(service)) as client:
        got = [
            e.sequence
            for e in client.stream_metrics("j", on_resume=lambda why, n: resumed.append((why, n)))
        ]
    assert got == list(range(1, 41))
    # Each call continues from the notice's last_delivered_sequence + 1.
    assert service.stream_requests == [1, 11, 11, 26]
    assert [n for _, n in resumed] == [11, 11, 26]
    assert resumed[0][0] == "fell behind at event 10 of 40"


def test_stream_reconnects_after_unavailable_from_the_last_sequence(
    stand_in: Callable[[StandInTraining], str],
) -> None:
    events = _job_events(30)
    # Two streams break, after 7 and 5 events; the third falls behind after 3.
    service = StandInTraining(
        _finished_job(events), events, fail_after=[7, 5], fall_behind_after=[100, 100, 3]
    )
    with _client(stand_in(service)) as client:
        got = [e.sequence for e in client.stream_metrics("trainingJobs/j", from_sequence=2)]
    assert got == list(range(2, 31))
    assert service.stream_requests == [2, 9, 14, 17]


def test_a_stream_that_stays_broken_raises_unavailable(
    stand_in: Callable[[StandInTraining], str],
) -> None:
    events = _job_events(10)
    # Two events, then every stream breaks before sending anything.
    service = StandInTraining(_finished_job(events), events, fail_after=[2] + [0] * 1000)
    with _client(stand_in(service)) as client:
        client.reconnect_window_s = 1.0
        got: list[int] = []
        with pytest.raises(grpc.RpcError) as raised:
            got.extend(e.sequence for e in client.stream_metrics("j"))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert got == [1, 2]
    # Reopened from event 3 until the window passed (gRPC itself retries each open, too).
    assert len(service.stream_requests) > 2 and set(service.stream_requests[1:]) == {3}


def test_stream_from_a_later_sequence_and_a_gap_is_an_error(
    stand_in: Callable[[StandInTraining], str],
) -> None:
    events = _job_events(20)
    service = StandInTraining(_finished_job(events), events, skip_sequence=15)
    with _client(stand_in(service)) as client:
        stream = client.stream_metrics("j", from_sequence=10)
        assert [next(stream).sequence for _ in range(5)] == [10, 11, 12, 13, 14]
        with pytest.raises(IntegrityError, match="event 16 arrived when 15 was expected"):
            next(stream)


def test_a_stream_error_other_than_unavailable_is_raised(
    stand_in: Callable[[StandInTraining], str],
) -> None:
    events = _job_events(5)
    service = StandInTraining(_finished_job(events), events)
    with _client(stand_in(service)) as client, pytest.raises(grpc.RpcError) as raised:
        list(client.stream_metrics("other"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def _invoke(address: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--training", address, *args])


def test_jobs_follow_shows_progress_and_the_outcome(
    stand_in: Callable[[StandInTraining], str],
) -> None:
    events = _job_events(25)
    # The first stream falls behind after 8 events, the second breaks after 9.
    service = StandInTraining(
        _finished_job(events), events, fall_behind_after=[8], fail_after=[100, 9]
    )
    result = _invoke(stand_in(service), "jobs", "follow", "j")
    assert result.exit_code == 0, result.output
    # The outcome on stdout; progress and events on stderr.
    assert result.stdout.splitlines() == [
        "j succeeded",
        "registered: models/j/versions/1",
        "eval answer accuracy (in-training, up to 64 examples): 0.375 (step 22)",
    ]
    err = result.stderr
    assert "queued -> running" in err and "running -> succeeded" in err
    assert "checkpoint runs/j/checkpoints/22" in err
    assert "j: step 1/22 (5%), loss=4, 3.5k tok/s" in err  # the first progress line
    assert "j: step 22/22 (100%)" in err
    assert "fell behind at event 8 of 25; continuing from event 9" in err
    assert "reconnecting after UNAVAILABLE; continuing from event 18" in err
    assert service.stream_requests == [1, 9, 18]


def test_jobs_follow_exits_1_with_the_error_of_a_failed_job(
    stand_in: Callable[[StandInTraining], str],
) -> None:
    events = _job_events(10)
    events[-1].state_change.to_state = run_pb2.RUN_STATE_FAILED
    events[-1].state_change.reason = "loss is nan at step 7"
    job = _finished_job(events, run_pb2.RUN_STATE_FAILED)
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.ErrorInfo(
            reason="NON_FINITE_LOSS", domain="tunix-rt", metadata={"step": "7"}
        )
    )
    job.error.CopyFrom(status_pb2.Status(code=9, message="loss is nan", details=[detail]))
    result = _invoke(stand_in(StandInTraining(job, events)), "jobs", "follow", "runs/j")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "running -> failed: loss is nan at step 7" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "Error: j failed: loss is nan [NON_FINITE_LOSS step=7]"
    )


def test_following_a_finished_job_from_past_its_end_returns_at_once(
    stand_in: Callable[[StandInTraining], str],
) -> None:
    events = _job_events(10)
    service = StandInTraining(_finished_job(events), events)
    result = _invoke(stand_in(service), "jobs", "follow", "j", "--from-sequence", "11")
    assert result.exit_code == 0, result.output
    assert service.stream_requests == []


def test_train_follow_submits_the_job_and_follows_it(
    stand_in: Callable[[StandInTraining], str],
) -> None:
    events = _job_events(12)
    service = StandInTraining(_finished_job(events), events, fall_behind_after=[4])
    address = stand_in(service)
    args = ["train", "--dataset", "d", "--model", "llama3-tiny", "--steps", "9", "--follow"]
    result = _invoke(address, *args, "--devices", "cpu:1", "--job-id", "j", "--alias", "cand")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == ["trainingJobs/j", "j succeeded"]
    (request,) = service.created
    assert request.training_job_id == "j" and request.request_id
    sent = request.training_job
    assert sent.preset == "llama3-tiny" and sent.dataset == "datasets/d"
    assert sent.hyperparameters.max_steps == 9
    assert sent.device_request.kind == device_pb2.DEVICE_KIND_CPU
    assert list(sent.registration.aliases) == ["cand"]
    assert service.stream_requests == [1, 5]

    # A bare name that is not a preset is a registered model; without --model, llama3-small when
    # the service offers it, else its smallest preset.
    assert _invoke(address, "train", "--dataset", "d", "--model", "mine").exit_code == 0
    assert service.created[-1].training_job.base_model_version == "mine"
    service.presets = {"big": 10**9, "small": 10**6, "llama3-small": 10**7}
    defaulted = _invoke(address, "train", "--dataset", "d")
    assert defaulted.exit_code == 0 and "model: preset llama3-small" in defaulted.stderr
    assert service.created[-1].training_job.preset == "llama3-small"
    del service.presets["llama3-small"]
    assert _invoke(address, "train", "--dataset", "d").exit_code == 0
    assert service.created[-1].training_job.preset == "small"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_training_service_is_one_line_and_exit_1() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(main, ["--training", address, "--timeout", "0.5", "jobs", "list"])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    # gRPC retries the read until it succeeds or the deadline passes, whichever comes first.
    assert line.startswith(("Error: UNAVAILABLE", "Error: DEADLINE_EXCEEDED"))
    assert f"calling {address}: is it running" in line


def test_the_training_address_comes_from_the_environment() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    result = CliRunner(env={"TUNIX_RT_TRAINING": address}).invoke(
        main, ["--timeout", "0.5", "devices"]
    )
    assert result.exit_code == 1 and address in result.stderr


def test_the_follower_eta_uses_event_times() -> None:
    out = io.StringIO()
    view = ProgressView("j", 100, out, tty=False)
    for step in range(1, 11):
        # One step every 2 s of event time, though all arrive at once (a history replay).
        view.metrics_event(
            run_pb2.RunEvent(
                sequence=step,
                step=step,
                time=_stamp(T0 + 2 * step),
                metrics=run_pb2.MetricValues(values={"loss": 1.0}),
            )
        )
    assert view.eta_seconds() == pytest.approx(180.0)
    # Without a terminal: one progress line (the next is due PROGRESS_LINE_INTERVAL_S later).
    assert out.getvalue() == "j: step 1/100 (1%), loss=1\n"
    assert format_duration(180) == "03:00" and format_duration(3723) == "1:02:03"


def test_the_progress_bar_on_a_terminal() -> None:
    out = io.StringIO()
    view = ProgressView("j", 0, out, tty=True)
    view.message("hello")
    view.set_total(20)
    for step in range(1, 21):
        view.metrics_event(
            run_pb2.RunEvent(
                sequence=step,
                step=step,
                time=_stamp(T0 + step),
                metrics=run_pb2.MetricValues(values={"loss": 2.0, "tokens_per_second": 3456.0}),
            )
        )
    view.close()
    screen = out.getvalue()
    assert "hello" in screen
    assert "20/20" in screen and "100%" in screen and "loss=2, 3.5k tok/s, ETA 00:00" in screen
