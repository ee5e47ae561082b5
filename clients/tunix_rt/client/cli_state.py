"""What every CLI command shares: the global options, the clients built from them, and the rule
that a failed call is one readable line on stderr with exit code 1, never a traceback.

Exit codes: 0 success; 1 the operation failed (an RPC error, bad lines in an import, a corrupt
download); 2 bad usage (click's own code for unknown options, missing or invalid arguments).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import grpc

from tunix_rt.client.channel import DEFAULT_REGISTRY_ADDRESS, REGISTRY_ENV, resolve_address
from tunix_rt.client.errors import IntegrityError, describe_rpc_error
from tunix_rt.client.registry import RegistryClient

EXIT_FAILURE = 1
# Codes that usually mean the service was never reached (down, wrong address, firewalled).
_UNREACHED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass
class CliState:
    """The global options, and the clients made from them on first use."""

    registry_address: str
    token: str | None
    tls_ca: Path | None
    # Deadline of each unary call, in seconds; streams have none.
    timeout: float | None
    # The address of the service called last, named when a call cannot reach it.
    target: str | None = None
    _registry: RegistryClient | None = field(default=None, repr=False)

    def registry(self) -> RegistryClient:
        """The registry client, connected on first use and closed when the command ends."""
        if self._registry is None:
            self._registry = RegistryClient.connect(
                self.registry_address, token=self.token, tls_ca=self.tls_ca, timeout=self.timeout
            )
            click.get_current_context().call_on_close(self.close)
        self.target = self.registry_address
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None


pass_state = click.make_pass_decorator(CliState)


class CommandFailed(click.ClickException):
    """An operation failed: click prints `Error: <message>` to stderr and exits with code 1."""

    exit_code = EXIT_FAILURE


class RootGroup(click.Group):
    """The `tunix-rt` group: turns failures of any subcommand into CommandFailed."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except grpc.RpcError as error:
            message = describe_rpc_error(error)
            state = ctx.find_object(CliState)
            if error.code() in _UNREACHED and state is not None and state.target:
                message += f" (calling {state.target}: is it running and reachable?)"
            raise CommandFailed(message) from None
        except BrokenPipeError:
            # Whoever read our stdout has gone (`tunix-rt datasets export d | head`): stop quietly,
            # as Unix tools do, and keep Python from complaining when it flushes stdout at exit.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(EXIT_FAILURE)
        except (IntegrityError, OSError) as error:
            # A corrupt download, an unwritable output file, a closed pipe: no traceback either.
            raise CommandFailed(str(error)) from None


def registry_address(value: str | None) -> str:
    return resolve_address(value, REGISTRY_ENV, DEFAULT_REGISTRY_ADDRESS)
