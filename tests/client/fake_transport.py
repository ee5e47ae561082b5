"""A scripted gRPC server speaking the registry's method paths, for testing the client's channel.

The channel's behaviour on the wire (which calls gRPC retries, which headers it sends, which
deadlines it sets, how rich error details arrive) needs a server that fails on demand, and the real
registry cannot be told to answer UNAVAILABLE twice. This fake sits where the network does, at the
gRPC boundary; everything about the registry's own behaviour is tested against the real server.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc

from tunix_rt.v1 import registry_service_pb2 as pb

SERVICE = "tunix_rt.v1.RegistryService"

# A behaviour: called with (request, context, attempt number from 1), returns the response.
Behaviour = Callable[[Any, grpc.ServicerContext, int], Any]


class FakeTransport:
    """Records every call's attempt count and metadata, and answers with scripted behaviours."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = defaultdict(int)
        self.metadata: dict[str, list[dict[str, str]]] = defaultdict(list)
        self._lock = threading.Lock()

    def handler(self, method: str, behaviour: Behaviour) -> grpc.RpcMethodHandler:
        request_type = getattr(pb, f"{method}Request")
        response_type = getattr(pb, f"{method}Response")

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.attempts[method] += 1
                attempt = self.attempts[method]
                self.metadata[method].append(dict(context.invocation_metadata()))
            return behaviour(request, context, attempt)

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )


@contextmanager
def fake_registry(
    behaviours: dict[str, Behaviour], credentials: grpc.ServerCredentials | None = None
) -> Iterator[tuple[str, FakeTransport]]:
    """A running fake at `127.0.0.1:{port}` answering the given unary methods; with
    `credentials` (grpc.ssl_server_credentials) it speaks TLS only."""
    transport = FakeTransport()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handlers = {name: transport.handler(name, b) for name, b in behaviours.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}", transport
    finally:
        server.stop(grace=None).wait()


def fail_first(times: int, code: grpc.StatusCode, response: Any) -> Behaviour:
    """Fails the first `times` attempts with `code`, then answers `response`."""

    def behaviour(request: Any, context: grpc.ServicerContext, attempt: int) -> Any:
        if attempt <= times:
            context.abort(code, f"scripted failure {attempt}")
        return response

    return behaviour
