"""Hyperparameter sweeps from Python: the sweep methods of TrainingClient (a mixin over its stub)
and `parse_param`, the `--param` syntax of `tunix-rt sweep create`.

    with TrainingClient.connect("127.0.0.1:50052") as training:
        base = build_training_job("seed-v1", ModelSource("preset", "llama3-tiny"), max_steps=200)
        sweep = training.create_sweep(
            base,
            [parse_param("lr=log:1e-4:3e-2"), parse_param("batch_size=choice:8,16")],
            objective="eval_loss:min",
            max_trials=8,
            parallel_trials=2,
            pruner="median",
        )
        for event in training.stream_sweep(sweep.name):
            ...
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import struct_pb2

from tunix_rt.client import names
from tunix_rt.client.service_client import capped_page_size, pages, request_id_or_new
from tunix_rt.v1 import run_pb2, sweep_pb2, training_job_pb2
from tunix_rt.v1 import training_service_pb2 as pb

P = sweep_pb2.SweepParameter
ALGORITHMS = {
    "tpe": sweep_pb2.SWEEP_ALGORITHM_TPE,
    "random": sweep_pb2.SWEEP_ALGORITHM_RANDOM,
    "grid": sweep_pb2.SWEEP_ALGORITHM_GRID,
    "cma-es": sweep_pb2.SWEEP_ALGORITHM_CMA_ES,
}
PRUNERS = {
    "none": sweep_pb2.SWEEP_PRUNER_NONE,
    "median": sweep_pb2.SWEEP_PRUNER_MEDIAN,
    "successive-halving": sweep_pb2.SWEEP_PRUNER_SUCCESSIVE_HALVING,
    "hyperband": sweep_pb2.SWEEP_PRUNER_HYPERBAND,
}
DIRECTIONS = {
    "max": sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MAXIMIZE,
    "min": sweep_pb2.SWEEP_OBJECTIVE_DIRECTION_MINIMIZE,
}
SWEEP_TERMINAL = frozenset(
    {run_pb2.RUN_STATE_SUCCEEDED, run_pb2.RUN_STATE_FAILED, run_pb2.RUN_STATE_CANCELLED}
)
PARAM_HELP = (
    "NAME=float:MIN:MAX, NAME=log:MIN:MAX (log scale), NAME=int:MIN:MAX, NAME=logint:MIN:MAX or "
    "NAME=choice:V1,V2,..."
)
# A broken StreamSweep is reopened (from the next sequence) until it has failed for this long.
RECONNECT_WINDOW_S = 60.0


def sweep_name(name: str) -> str:
    return names.full_name("sweeps", name.strip().removeprefix("runs/"))


def _scalar(text: str) -> Any:
    """A categorical value as typed: an int, a float, true/false, else the string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_param(text: str) -> sweep_pb2.SweepParameter:
    """A SweepParameter from PARAM_HELP's syntax; ValueError saying what is wrong."""
    name, equals, spec = text.partition("=")
    kind, colon, rest = spec.partition(":")
    if not (equals and colon and name.strip()):
        raise ValueError(f"{text!r}: expected {PARAM_HELP}")
    name = name.strip()
    if kind == "choice":
        values = struct_pb2.ListValue()
        values.extend([_scalar(v.strip()) for v in rest.split(",") if v.strip()])
        return P(name=name, categorical=P.Categorical(values=values.values))
    low, colon, high = rest.partition(":")
    if not colon:
        raise ValueError(f"{text!r}: {kind} takes MIN:MAX")
    try:
        if kind in ("float", "log"):
            bounds = P.FloatRange(min=float(low), max=float(high), log=kind == "log")
            return P(name=name, float_range=bounds)
        if kind in ("int", "logint"):
            return P(
                name=name, int_range=P.IntRange(min=int(low), max=int(high), log=kind == "logint")
            )
    except ValueError:
        raise ValueError(f"{text!r}: MIN and MAX must be numbers") from None
    raise ValueError(f"{text!r}: unknown kind {kind!r}; expected {PARAM_HELP}")


def parse_objective(text: str) -> sweep_pb2.SweepObjective:
    """`METRIC:max` or `METRIC:min`; a metric named like a loss defaults to min, else max."""
    metric, _, direction = text.partition(":")
    direction = direction or ("min" if "loss" in metric else "max")
    if direction not in DIRECTIONS:
        raise ValueError(f"{text!r}: expected METRIC:max or METRIC:min")
    return sweep_pb2.SweepObjective(metric=metric, direction=DIRECTIONS[direction])


class SweepMethods:
    """The sweep calls of TrainingClient; it provides `_stub`, `timeout`, `stream_timeout`."""

    _stub: Any
    timeout: float | None
    stream_timeout: float | None

    def create_sweep(
        self,
        base: training_job_pb2.TrainingJob,
        params: Sequence[sweep_pb2.SweepParameter],
        *,
        objective: str | sweep_pb2.SweepObjective,
        max_trials: int = 0,
        parallel_trials: int = 0,
        algorithm: str = "tpe",
        pruner: str = "none",
        seed: int | None = None,
        register_best_as: str = "",
        best_alias: str = "",
        evaluate_best: bool = False,
        display_name: str = "",
        sweep_id: str | None = None,
        request_id: str | None = None,
        validate_only: bool = False,
    ) -> sweep_pb2.Sweep:
        """Starts a sweep of `base` over `params` (see parse_param); `objective` is a
        SweepObjective or `METRIC:max|min`; `algorithm` and `pruner` are keys of ALGORITHMS and
        PRUNERS."""
        sweep = sweep_pb2.Sweep(
            display_name=display_name,
            base_training_job=base,
            search_space=list(params),
            objective=parse_objective(objective) if isinstance(objective, str) else objective,
            max_trials=max_trials,
            parallel_trials=parallel_trials,
            algorithm=ALGORITHMS[algorithm],
            pruner=PRUNERS[pruner],
            register_best_as=names.model(register_best_as) if register_best_as else "",
            best_alias=best_alias,
            evaluate_best=evaluate_best,
        )
        if seed is not None:
            sweep.seed = seed
        request = pb.CreateSweepRequest(
            sweep=sweep,
            sweep_id=(sweep_id or "").removeprefix("sweeps/"),
            request_id=request_id_or_new(request_id),
            validate_only=validate_only,
        )
        response: pb.CreateSweepResponse = self._stub.CreateSweep(request, timeout=self.timeout)
        return response.sweep

    def get_sweep(self, name: str) -> sweep_pb2.Sweep:
        request = pb.GetSweepRequest(name=sweep_name(name))
        response: pb.GetSweepResponse = self._stub.GetSweep(request, timeout=self.timeout)
        return response.sweep

    def list_sweeps(
        self,
        *,
        states: Sequence[run_pb2.RunState] = (),
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[sweep_pb2.Sweep]:
        """Sweeps, oldest first, in one of `states` (all when empty)."""

        def fetch(token: str) -> tuple[Sequence[sweep_pb2.Sweep], str]:
            request = pb.ListSweepsRequest(
                states=states, page_size=capped_page_size(page_size, limit), page_token=token
            )
            response: pb.ListSweepsResponse = self._stub.ListSweeps(request, timeout=self.timeout)
            return response.sweeps, response.next_page_token

        return pages(fetch, limit)

    def cancel_sweep(self, name: str, *, reason: str = "") -> sweep_pb2.Sweep:
        """Cancels a sweep and its live trials; it comes back RUNNING until they have stopped."""
        request = pb.CancelSweepRequest(name=sweep_name(name), reason=reason)
        response: pb.CancelSweepResponse = self._stub.CancelSweep(request, timeout=self.timeout)
        return response.sweep

    def wait_sweep(
        self, name: str, *, timeout: float | None = None, poll_interval: float = 1.0
    ) -> sweep_pb2.Sweep:
        """The sweep once it has ended; TimeoutError when `timeout` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (sweep := self.get_sweep(name)).state not in SWEEP_TERMINAL:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{sweep.name} is still {run_pb2.RunState.Name(sweep.state)}")
            time.sleep(poll_interval)
        return sweep

    def stream_sweep(self, name: str, *, from_sequence: int = 1) -> Iterator[sweep_pb2.SweepEvent]:
        """The sweep's events in sequence order, history first, until it ends; a stream broken by
        UNAVAILABLE (the service restarting) is reopened from the next sequence."""
        next_sequence = max(1, from_sequence)
        failing_since: float | None = None
        while True:
            request = pb.StreamSweepRequest(name=sweep_name(name), from_sequence=next_sequence)
            try:
                for response in self._stub.StreamSweep(request, timeout=self.stream_timeout):
                    event = response.sweep_event
                    if event.sequence < next_sequence:
                        continue
                    failing_since = None
                    next_sequence = event.sequence + 1
                    yield event
                    if event.state_change.to_state in SWEEP_TERMINAL:
                        return
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > RECONNECT_WINDOW_S:
                    raise
            # Broken, or ended before the sweep did (its service stopped driving it, to restart):
            # follow it again from the next event.
            time.sleep(0.5)
