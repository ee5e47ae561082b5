"""The hand-written Python client of tunix-rt, and the `tunix-rt` command line.

The public API is what `__all__` names (tests/client/test_public_api.py pins it):

- `RegistryClient`, `TrainingClient`, `InferenceClient`: one typed client per service, each made
  with `connect(address, token=..., tls_ca=...)` and closed with `close()` or `with`;
- `ChannelSettings`, `RetryPolicy`, `build_channel`, `build_aio_channel`: channels with auth,
  TLS, message sizes and retries of idempotent calls, for the generated stubs;
- `describe_rpc_error`, `field_violations`, `IntegrityError`: readable failures.

Modules not named here are the clients' parts (`service_client`, `registry.*`, `training_job`,
`names`, `chunks`, `interceptors`) and the command line (`cli`, one module per command group);
import them by their own path.
"""

from tunix_rt.client.channel import ChannelSettings, RetryPolicy, build_aio_channel, build_channel
from tunix_rt.client.errors import IntegrityError, describe_rpc_error, field_violations
from tunix_rt.client.inference import InferenceClient
from tunix_rt.client.registry import RegistryClient
from tunix_rt.client.training import TrainingClient

__all__ = [
    "ChannelSettings",
    "InferenceClient",
    "IntegrityError",
    "RegistryClient",
    "RetryPolicy",
    "TrainingClient",
    "build_aio_channel",
    "build_channel",
    "describe_rpc_error",
    "field_violations",
]
