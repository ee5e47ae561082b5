"""The hand-written Python client of tunix-rt and the `tunix-rt` command line.

- `channel`: channels with auth, TLS, message sizes and retries of idempotent calls;
- `registry`: `RegistryClient`, the typed registry API;
- `errors`: readable descriptions of failed calls;
- `cli` and `cli_*`: the `tunix-rt` command, one module per command group.
"""

from tunix_rt.client.channel import ChannelSettings, RetryPolicy, build_aio_channel, build_channel
from tunix_rt.client.errors import IntegrityError, describe_rpc_error, field_violations
from tunix_rt.client.registry import RegistryClient

__all__ = [
    "ChannelSettings",
    "IntegrityError",
    "RegistryClient",
    "RetryPolicy",
    "build_aio_channel",
    "build_channel",
    "describe_rpc_error",
    "field_violations",
]
