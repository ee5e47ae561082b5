"""TrainingClient: a typed Python client of the tunix-rt training service.

A thin layer over the generated `TrainingServiceStub`, shaped like `RegistryClient`: it takes ids or
full names, builds `TrainingJob` messages from plain arguments, fills request ids, iterates pages,
applies default deadlines, and turns the job event stream into one gap-free sequence. Anything it
does not wrap is one call away on `client.stub`. Failed calls raise `grpc.RpcError`.

    with TrainingClient.connect("127.0.0.1:50052") as training:
        job = training.create_job("seed-v1", model="llama3-tiny", max_steps=200, devices="cpu:1")
        for event in training.stream_metrics(job.name):
            if event.HasField("metrics"):
                print(event.step, event.metrics.values["loss"])
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import grpc

from tunix_rt.client import names
from tunix_rt.client.channel import idempotent_methods
from tunix_rt.client.errors import IntegrityError
from tunix_rt.client.service_client import Endpoint, ServiceClient, set_given
from tunix_rt.v1 import device_pb2, run_pb2, training_job_pb2
from tunix_rt.v1 import training_service_pb2 as pb
from tunix_rt.v1.training_service_pb2_grpc import TrainingServiceStub

TRAINING_SERVICE = "tunix_rt.v1.TrainingService"
TRAINING_ENV = "TUNIX_RT_TRAINING"
DEFAULT_TRAINING_ADDRESS = "127.0.0.1:50052"

# Safe to send twice for reasons the method names do not show (reads and creates with a request_id
# are covered by channel.idempotent_methods; ResumeTrainingJob has a request_id).
TRAINING_IDEMPOTENT = idempotent_methods(
    pb.DESCRIPTOR.services_by_name["TrainingService"],
    extra={
        # A read. gRPC retries a server stream only until its first message arrives; a stream that
        # breaks later is resumed by stream_metrics from the last sequence it delivered.
        "StreamJobMetrics",
        # Cancelling a cancelled (or stopping) job returns it unchanged.
        "CancelTrainingJob",
    },
)

# A unary call that takes longer than this has hung.
DEFAULT_TIMEOUT_S = 30.0
# Event streams last as long as their job: no deadline by default.
DEFAULT_STREAM_TIMEOUT_S: float | None = None
DEFAULT_PAGE_SIZE = 100
# A stream broken by UNAVAILABLE (the service restarting, a network blip) is reopened until it has
# delivered nothing for this long; a training service recovering its jobs takes a few seconds.
RECONNECT_WINDOW_S = 60.0
# A subscriber told this many times in a row that it fell behind, with no event received, gives up.
FELL_BEHIND_RETRIES = 5
# Backoff before reopening a broken stream: doubles from the first value up to the second, with
# full jitter (the same shape as channel.RetryPolicy).
RECONNECT_BACKOFF_S = (0.2, 5.0)

TERMINAL_STATES = frozenset(
    {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED}
)

DEVICE_KINDS = {
    "any": device_pb2.DEVICE_KIND_UNSPECIFIED,
    "cpu": device_pb2.DEVICE_KIND_CPU,
    "gpu": device_pb2.DEVICE_KIND_GPU,
    "tpu": device_pb2.DEVICE_KIND_TPU,
}
DEVICE_KIND_NAMES = {value: key for key, value in DEVICE_KINDS.items()}

T = TypeVar("T")
ModelKind = Literal["preset", "base_model_version", "checkpoint_dir"]
# Called when stream_metrics reopens its stream: (why, the sequence it continues from).
ResumeHook = Callable[[str, int], None]


def job_name(name: str) -> str:
    """`trainingJobs/{id}` for an id, a job name, or the job's run name (`runs/{id}`)."""
    value = name.strip()
    if value.startswith("runs/"):
        value = value.removeprefix("runs/")
    return names.full_name("trainingJobs", value)


def parse_device_request(text: str) -> device_pb2.DeviceRequest:
    """A DeviceRequest from the CLI form: `cpu:1`, `gpu:2`, `tpu`, `any` or `any:2` (count 1 when
    omitted). Raises ValueError for anything else."""
    kind, sep, count_text = text.strip().lower().partition(":")
    if kind not in DEVICE_KINDS:
        raise ValueError(f"{text!r}: the kind must be one of {', '.join(DEVICE_KINDS)}")
    count = 1
    if sep:
        if not count_text.isdigit() or int(count_text) < 1:
            raise ValueError(f"{text!r}: the count must be a whole number of at least 1")
        count = int(count_text)
    return device_pb2.DeviceRequest(kind=DEVICE_KINDS[kind], count=count)


def format_device_request(request: device_pb2.DeviceRequest) -> str:
    """The CLI form of a request: `gpu:2`, `any:1`."""
    return f"{DEVICE_KIND_NAMES.get(request.kind, 'any')}:{request.count or 1}"


@dataclass(frozen=True)
class ModelSource:
    """Where a job's model starts: `kind` is the name of the TrainingJob `base_model` field."""

    kind: ModelKind
    value: str


def needs_presets(value: str) -> bool:
    """Whether classifying `value` needs the server's preset names: a path, `name@alias` or
    `name/version` can never be a preset."""
    text = value.strip()
    return not (text.startswith("/") or "@" in text or "/" in text)


def classify_model(value: str, presets: Collection[str]) -> ModelSource:
    """The model argument of `tunix-rt train --model`: an absolute path is a checkpoint directory,
    a known preset name is a preset, anything else is a registered version (`name@alias`,
    `name/version`, `name` for the latest, or `models/{model}/versions/{version}`)."""
    text = value.strip()
    if not text:
        raise ValueError("an empty model")
    if text.startswith("/"):
        return ModelSource("checkpoint_dir", text)
    if text in presets:
        return ModelSource("preset", text)
    return ModelSource("base_model_version", text)


def build_training_job(
    dataset: str,
    model: ModelSource | None = None,
    *,
    max_steps: int | None = None,
    num_epochs: float | None = None,
    devices: str | device_pb2.DeviceRequest | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    max_seq_len: int | None = None,
    seed: int | None = None,
    lora_rank: int | None = None,
    register_as: str | None = None,
    aliases: Sequence[str] = (),
    priority: int | None = None,
    eval_interval_steps: int | None = None,
    checkpoint_interval_steps: int | None = None,
    chat_template: str | None = None,
    display_name: str = "",
    labels: dict[str, str] | None = None,
    backend: str | None = None,
    evaluate: bool = False,
) -> training_job_pb2.TrainingJob:
    """A TrainingJob from plain values; every None is left unset so the service's default applies.

    `lora_rank` trains a LoRA adapter of that rank (full fine-tuning when None); `register_as`
    names the model the result is registered under (default: the job's id); `backend` "jax" or
    "torch" pins the backend (None: the service picks the faster one for the devices);
    `evaluate` asks the training service to evaluate the registered version on the dataset's
    eval split through the inference service when the job succeeds."""
    if max_steps is not None and num_epochs is not None:
        raise ValueError("give max_steps or num_epochs, not both")
    job = training_job_pb2.TrainingJob(
        dataset=names.dataset(dataset), display_name=display_name, labels=labels or {}
    )
    if model is not None:
        setattr(job, model.kind, model.value)
    if devices is not None:
        request = parse_device_request(devices) if isinstance(devices, str) else devices
        job.device_request.CopyFrom(request)
    if priority is not None:
        job.priority = priority
    if lora_rank is not None:
        job.lora.rank = lora_rank
    if register_as is not None or aliases:
        job.registration.model = names.model(register_as) if register_as else ""
        job.registration.aliases.extend(aliases)
    set_given(
        job.hyperparameters,
        max_steps=max_steps,
        num_epochs=num_epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_seq_len=max_seq_len,
        seed=seed,
        eval_interval_steps=eval_interval_steps,
        checkpoint_interval_steps=checkpoint_interval_steps,
        chat_template=chat_template,
    )
    if backend is not None:
        job.backend = f"BACKEND_{backend.upper()}"  # type: ignore[assignment]
    if evaluate:
        job.completion_evaluation.SetInParent()
    return job


def _pages(fetch: Callable[[str], tuple[Sequence[T], str]], limit: int | None) -> Iterator[T]:
    """Items of consecutive pages until the last page or `limit` items."""
    token, count = "", 0
    while True:
        items, token = fetch(token)
        for item in items:
            if limit is not None and count >= limit:
                return
            yield item
            count += 1
        if not token:
            return


def _page_size(page_size: int, limit: int | None) -> int:
    return max(1, min(page_size, limit)) if limit else page_size


class TrainingClient(ServiceClient[TrainingServiceStub]):
    """The training service's API with ids or names, default deadlines, paging, and event streams
    that survive a subscriber falling behind and a broken connection.

    Unary calls get `timeout` seconds, streams `stream_timeout` (None: no deadline). List methods
    return lazy iterators: the first page is requested when iteration starts.
    """

    ENDPOINT = Endpoint(
        TRAINING_SERVICE, TRAINING_ENV, DEFAULT_TRAINING_ADDRESS, TRAINING_IDEMPOTENT
    )

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT_S,
        reconnect_window_s: float = RECONNECT_WINDOW_S,
        reconnect_backoff_s: tuple[float, float] = RECONNECT_BACKOFF_S,
    ) -> None:
        super().__init__(channel, timeout=timeout, stream_timeout=stream_timeout)
        self._stub = TrainingServiceStub(channel)  # type: ignore[no-untyped-call]
        self.reconnect_window_s = reconnect_window_s
        self.reconnect_backoff_s = reconnect_backoff_s

    # Jobs.

    def model_source(self, value: str) -> ModelSource:
        """classify_model against this service's presets (asked only when `value` could be one)."""
        presets = {p.name for p in self.list_presets()} if needs_presets(value) else set()
        return classify_model(value, presets)

    def create_job(
        self,
        dataset: str,
        *,
        model: ModelSource | str | None = None,
        job_id: str | None = None,
        request_id: str | None = None,
        validate_only: bool = False,
        max_steps: int | None = None,
        num_epochs: float | None = None,
        devices: str | device_pb2.DeviceRequest | None = None,
        learning_rate: float | None = None,
        batch_size: int | None = None,
        max_seq_len: int | None = None,
        seed: int | None = None,
        lora_rank: int | None = None,
        register_as: str | None = None,
        aliases: Sequence[str] = (),
        priority: int | None = None,
        eval_interval_steps: int | None = None,
        checkpoint_interval_steps: int | None = None,
        chat_template: str | None = None,
        display_name: str = "",
        labels: dict[str, str] | None = None,
        backend: str | None = None,
        evaluate: bool = False,
    ) -> training_job_pb2.TrainingJob:
        """Queues a job built by build_training_job. `model` is a ModelSource or the CLI's model
        argument (a preset, `name@alias`, `name/version` or an absolute checkpoint directory)."""
        source = self.model_source(model) if isinstance(model, str) else model
        job = build_training_job(
            dataset,
            source,
            max_steps=max_steps,
            num_epochs=num_epochs,
            devices=devices,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_seq_len=max_seq_len,
            seed=seed,
            lora_rank=lora_rank,
            register_as=register_as,
            aliases=aliases,
            priority=priority,
            eval_interval_steps=eval_interval_steps,
            checkpoint_interval_steps=checkpoint_interval_steps,
            chat_template=chat_template,
            display_name=display_name,
            labels=labels,
            backend=backend,
            evaluate=evaluate,
        )
        return self.submit_job(
            job, job_id=job_id, request_id=request_id, validate_only=validate_only
        )

    def submit_job(
        self,
        job: training_job_pb2.TrainingJob,
        *,
        job_id: str | None = None,
        request_id: str | None = None,
        validate_only: bool = False,
    ) -> training_job_pb2.TrainingJob:
        """Queues a job given as a full message; with `validate_only` nothing is created and the
        job comes back with the defaults the service would use."""
        request = pb.CreateTrainingJobRequest(
            training_job=job,
            training_job_id=(job_id or "").removeprefix("trainingJobs/"),
            # A fresh id per logical call makes the create safe to retry.
            request_id=request_id or uuid.uuid4().hex,
            validate_only=validate_only,
        )
        response: pb.CreateTrainingJobResponse = self._stub.CreateTrainingJob(
            request, timeout=self.timeout
        )
        return response.training_job

    def get_job(self, name: str) -> training_job_pb2.TrainingJob:
        request = pb.GetTrainingJobRequest(name=job_name(name))
        response: pb.GetTrainingJobResponse = self._stub.GetTrainingJob(
            request, timeout=self.timeout
        )
        return response.training_job

    def list_jobs(
        self,
        *,
        states: Sequence[run_pb2.RunState] = (),
        dataset: str | None = None,
        model: str | None = None,
        owner: str = "",
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[training_job_pb2.TrainingJob]:
        """Jobs, newest first, matching every given filter."""

        def fetch(token: str) -> tuple[Sequence[training_job_pb2.TrainingJob], str]:
            request = pb.ListTrainingJobsRequest(
                states=states,
                dataset=names.dataset(dataset) if dataset else "",
                model=names.model(model) if model else "",
                owner=owner,
                page_size=_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListTrainingJobsResponse = self._stub.ListTrainingJobs(
                request, timeout=self.timeout
            )
            return response.training_jobs, response.next_page_token

        return _pages(fetch, limit)

    def cancel_job(self, name: str, *, reason: str = "") -> training_job_pb2.TrainingJob:
        """Cancels a queued or running job: it comes back CANCELLED, or RUNNING in the STOPPING
        phase while its worker stops."""
        request = pb.CancelTrainingJobRequest(name=job_name(name), reason=reason)
        response: pb.CancelTrainingJobResponse = self._stub.CancelTrainingJob(
            request, timeout=self.timeout
        )
        return response.training_job

    def resume_job(
        self, name: str, *, request_id: str | None = None
    ) -> training_job_pb2.TrainingJob:
        """Requeues a FAILED or CANCELLED job to continue from its latest checkpoint."""
        request = pb.ResumeTrainingJobRequest(
            name=job_name(name), request_id=request_id or uuid.uuid4().hex
        )
        response: pb.ResumeTrainingJobResponse = self._stub.ResumeTrainingJob(
            request, timeout=self.timeout
        )
        return response.training_job

    def stream_metrics(
        self,
        name: str,
        from_sequence: int = 1,
        *,
        history_only: bool = False,
        on_resume: ResumeHook | None = None,
    ) -> Iterator[run_pb2.RunEvent]:
        """The job's events from `from_sequence` as one gap-free, duplicate-free sequence.

        The service ends a subscriber's stream with a FellBehind notice when it reads too slowly,
        and a connection can break (UNAVAILABLE: the service restarted, the network hiccupped);
        both times the stream is reopened from the sequence after the last one delivered, so the
        caller never sees either. The iterator ends when the service ends the stream normally:
        after the event that put the job in a terminal state (or, with `history_only`, after the
        last stored event). `on_resume(why, next_sequence)` is told of every reopening. Raises
        IntegrityError if the service skips a sequence, and the RpcError of a stream that stays
        broken for `reconnect_window_s` seconds, or fails with any code but UNAVAILABLE.
        """
        full_name = job_name(name)
        next_sequence = max(1, from_sequence)
        # Consecutive attempts that delivered nothing, and when the first broken one failed.
        failures = 0
        failing_since: float | None = None
        while True:
            request = pb.StreamJobMetricsRequest(
                name=full_name, from_sequence=next_sequence, history_only=history_only
            )
            notice: pb.FellBehind | None = None
            call = self._stub.StreamJobMetrics(request, timeout=self.stream_timeout)
            responses: Iterable[pb.StreamJobMetricsResponse] = call
            try:
                for response in responses:
                    if response.HasField("fell_behind"):
                        notice = response.fell_behind
                        break
                    event = response.run_event
                    if event.sequence < next_sequence:
                        continue  # already delivered before a reconnect
                    if event.sequence > next_sequence:
                        raise IntegrityError(
                            f"{full_name}: event {event.sequence} arrived when "
                            f"{next_sequence} was expected"
                        )
                    next_sequence += 1
                    failures, failing_since = 0, None
                    yield event
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                elif now - failing_since > self.reconnect_window_s:
                    raise
                time.sleep(self._backoff(failures))
                failures += 1
                if on_resume is not None:
                    on_resume(f"reconnecting after {error.code().name}", next_sequence)
                continue
            finally:
                # Ends the call when the caller stops early (or on an error); a no-op once the
                # stream has ended.
                call.cancel()
            if notice is None:
                return
            # The notice names the last event this stream delivered, which is the last one
            # yielded: continuing from `next_sequence` is calling again from
            # `last_delivered_sequence` + 1. (Were they ever to differ, our own count is the
            # exact one: events already yielded are skipped, missing ones asked for again.)
            if notice.last_delivered_sequence < request.from_sequence:
                # Nothing delivered at all: back off, and give up on a subscriber that can never
                # keep up rather than spin.
                if failures >= FELL_BEHIND_RETRIES:
                    raise IntegrityError(
                        f"{full_name}: fell behind {failures + 1} times in a row without "
                        "receiving an event"
                    )
                time.sleep(self._backoff(failures))
                failures += 1
            if on_resume is not None:
                on_resume(
                    f"fell behind at event {notice.last_delivered_sequence} of "
                    f"{notice.latest_sequence}",
                    next_sequence,
                )

    def _backoff(self, failures: int) -> float:
        first, most = self.reconnect_backoff_s
        return random.uniform(0, min(most, first * 2**failures))

    # Devices and presets.

    def list_devices(
        self,
        *,
        kind: device_pb2.DeviceKind | str | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[device_pb2.Device]:
        """The host's devices by kind then index, each with the job holding it; `kind` is a
        DeviceKind or `cpu`, `gpu`, `tpu` (None or `any`: all)."""
        wanted = DEVICE_KINDS[kind.lower()] if isinstance(kind, str) else kind

        def fetch(token: str) -> tuple[Sequence[device_pb2.Device], str]:
            request = pb.ListDevicesRequest(
                kind=wanted or device_pb2.DEVICE_KIND_UNSPECIFIED,
                page_size=_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListDevicesResponse = self._stub.ListDevices(request, timeout=self.timeout)
            return response.devices, response.next_page_token

        return _pages(fetch, limit)

    def list_presets(
        self, *, family: str = "", limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[training_job_pb2.ArchitecturePreset]:
        """The architecture presets a job can start from, by family then size."""

        def fetch(token: str) -> tuple[Sequence[training_job_pb2.ArchitecturePreset], str]:
            request = pb.ListArchitecturePresetsRequest(
                family=family, page_size=_page_size(page_size, limit), page_token=token
            )
            response: pb.ListArchitecturePresetsResponse = self._stub.ListArchitecturePresets(
                request, timeout=self.timeout
            )
            return response.presets, response.next_page_token

        return _pages(fetch, limit)
