"""TrainingClient: a typed Python client of the tunix-rt training service.

A thin layer over the generated `TrainingServiceStub`, shaped like `RegistryClient`: it takes ids or
full names, builds `TrainingJob` messages from plain arguments (with `training_job`), fills request
ids, iterates pages, applies default deadlines, and turns the job event stream into one gap-free
sequence. Anything it does not wrap is one call away on `client.stub`. Failed calls raise
`grpc.RpcError`.

    with TrainingClient.connect("127.0.0.1:50052") as training:
        job = training.create_job("seed-v1", model="llama3-tiny", max_steps=200, devices="cpu:1")
        for event in training.stream_metrics(job.name):
            if event.HasField("metrics"):
                print(event.step, event.metrics.values["loss"])
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import grpc

from tunix_rt.client import names
from tunix_rt.client.channel import idempotent_methods
from tunix_rt.client.errors import IntegrityError
from tunix_rt.client.service_client import (
    Endpoint,
    ServiceClient,
    capped_page_size,
    pages,
    request_id_or_new,
)
from tunix_rt.client.sweeps import SweepMethods
from tunix_rt.client.training_job import (
    DEVICE_KINDS,
    ModelSource,
    build_training_job,
    classify_model,
    needs_presets,
)
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
        # A read, resumed by stream_sweep from the next sequence; a cancel, as for jobs.
        "StreamSweep",
        "CancelSweep",
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
    {
        run_pb2.RUN_STATE_SUCCEEDED,
        run_pb2.RUN_STATE_FAILED,
        run_pb2.RUN_STATE_CANCELLED,
        run_pb2.RUN_STATE_PRUNED,
    }
)

# Called when stream_metrics reopens its stream: (why, the sequence it continues from).
ResumeHook = Callable[[str, int], None]


def job_name(name: str) -> str:
    """`trainingJobs/{id}` for an id, a job name, or the job's run name (`runs/{id}`)."""
    value = name.strip()
    if value.startswith("runs/"):
        value = value.removeprefix("runs/")
    return names.full_name("trainingJobs", value)


class TrainingClient(SweepMethods, ServiceClient[TrainingServiceStub]):
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
        precision: str | None = None,
        architecture_overrides: Mapping[str, float] | None = None,
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
            precision=precision,
            architecture_overrides=architecture_overrides,
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
            request_id=request_id_or_new(request_id),
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
                page_size=capped_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListTrainingJobsResponse = self._stub.ListTrainingJobs(
                request, timeout=self.timeout
            )
            return response.training_jobs, response.next_page_token

        return pages(fetch, limit)

    def cancel_job(self, name: str, *, reason: str = "") -> training_job_pb2.TrainingJob:
        """Cancels a queued or running job: it comes back CANCELLED, or RUNNING in the STOPPING
        phase while its worker stops (`wait_job` waits for the end)."""
        request = pb.CancelTrainingJobRequest(name=job_name(name), reason=reason)
        response: pb.CancelTrainingJobResponse = self._stub.CancelTrainingJob(
            request, timeout=self.timeout
        )
        return response.training_job

    def wait_job(
        self, name: str, *, timeout: float | None = None, poll_interval: float = 0.5
    ) -> training_job_pb2.TrainingJob:
        """The job once it is SUCCEEDED, FAILED or CANCELLED, asked for every `poll_interval`
        seconds (a cancelled job's worker stops at its next step, which takes seconds). Raises
        TimeoutError with the job's last state when `timeout` seconds (None: no limit) pass
        first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(name)
            if job.state in TERMINAL_STATES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{job.name} is still {run_pb2.RunState.Name(job.state)} after {timeout:g} s"
                )
            time.sleep(poll_interval)

    def resume_job(
        self, name: str, *, request_id: str | None = None
    ) -> training_job_pb2.TrainingJob:
        """Requeues a FAILED or CANCELLED job to continue from its latest checkpoint."""
        request = pb.ResumeTrainingJobRequest(
            name=job_name(name), request_id=request_id_or_new(request_id)
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
        retries = _Reconnects(full_name, self.reconnect_window_s, self.reconnect_backoff_s)
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
                    retries.delivered()
                    yield event
            except grpc.RpcError as error:
                retries.after_break(error)
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
                retries.after_empty_notice()
            if on_resume is not None:
                on_resume(
                    f"fell behind at event {notice.last_delivered_sequence} of "
                    f"{notice.latest_sequence}",
                    next_sequence,
                )

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
                page_size=capped_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListDevicesResponse = self._stub.ListDevices(request, timeout=self.timeout)
            return response.devices, response.next_page_token

        return pages(fetch, limit)

    def list_presets(
        self, *, family: str = "", limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[training_job_pb2.ArchitecturePreset]:
        """The architecture presets a job can start from, by family then size."""

        def fetch(token: str) -> tuple[Sequence[training_job_pb2.ArchitecturePreset], str]:
            request = pb.ListArchitecturePresetsRequest(
                family=family, page_size=capped_page_size(page_size, limit), page_token=token
            )
            response: pb.ListArchitecturePresetsResponse = self._stub.ListArchitecturePresets(
                request, timeout=self.timeout
            )
            return response.presets, response.next_page_token

        return pages(fetch, limit)


@dataclass
class _Reconnects:
    """When `stream_metrics` gives up on a job's stream, and how long it waits before reopening
    it: consecutive attempts that delivered nothing, and when the first broken one failed."""

    job: str
    window_s: float
    # Backoff bounds: doubles from the first up to the second, with full jitter.
    backoff_s: tuple[float, float]
    failures: int = 0
    failing_since: float | None = None

    def delivered(self) -> None:
        self.failures, self.failing_since = 0, None

    def after_break(self, error: grpc.RpcError) -> None:
        """Waits before reopening a stream broken by `error`; raises `error` when it is not
        UNAVAILABLE or the stream has stayed broken for the window."""
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise error
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        elif now - self.failing_since > self.window_s:
            raise error
        self._pause()

    def after_empty_notice(self) -> None:
        """The stream fell behind before delivering anything: back off, and give up on a
        subscriber that can never keep up rather than spin."""
        if self.failures >= FELL_BEHIND_RETRIES:
            raise IntegrityError(
                f"{self.job}: fell behind {self.failures + 1} times in a row without "
                "receiving an event"
            )
        self._pause()

    def _pause(self) -> None:
        first, most = self.backoff_s
        time.sleep(random.uniform(0, min(most, first * 2**self.failures)))
        self.failures += 1
