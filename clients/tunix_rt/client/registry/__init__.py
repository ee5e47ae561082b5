"""RegistryClient: a typed Python client of the tunix-rt registry service.

A thin layer over the generated `RegistryServiceStub`: it takes ids or full names, fills request
ids, iterates pages and streams, applies default deadlines, and cuts files into chunks. Anything it
does not wrap is one call away on `client.stub`. Failed calls raise `grpc.RpcError`;
`errors.describe_rpc_error` makes them readable.

    with RegistryClient.connect("127.0.0.1:50051") as registry:
        result = registry.import_traces(Path("traces.jsonl"), source="seed")
        dataset = registry.create_dataset("seed-v1", source="seed", eval_fraction=0.1)
        for record in registry.export_dataset("seed-v1"):
            ...

`RegistryClient` is composed of one class per group of calls, each in its own module: `traces`
(traces and datasets), `runs`, `models`, `artifacts`, `evaluations` (with leaderboards and eval
sets); `base` holds the endpoint, the retryable calls and the default deadlines they share.
"""

from __future__ import annotations

from tunix_rt.client.registry.artifacts import ArtifactCalls
from tunix_rt.client.registry.base import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_STREAM_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    REGISTRY_IDEMPOTENT,
    REGISTRY_SERVICE,
)
from tunix_rt.client.registry.evaluations import EvaluationCalls, eval_set_name, evaluated_on
from tunix_rt.client.registry.models import ModelCalls
from tunix_rt.client.registry.runs import RunCalls
from tunix_rt.client.registry.traces import TraceCalls, trace_filter

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_STREAM_TIMEOUT_S",
    "DEFAULT_TIMEOUT_S",
    "REGISTRY_IDEMPOTENT",
    "REGISTRY_SERVICE",
    "RegistryClient",
    "eval_set_name",
    "evaluated_on",
    "trace_filter",
]


class RegistryClient(TraceCalls, RunCalls, ModelCalls, ArtifactCalls, EvaluationCalls):
    """The registry's API with ids or names, default deadlines, paging and chunked streams.

    Unary calls get `timeout` seconds, streams `stream_timeout` (None: no deadline). List methods
    return lazy iterators: the first page is requested when iteration starts.
    """
