"""What every CLI command shares: the global options, the clients built from them, and the rule
that a failed call is one readable line on stderr with exit code 1, never a traceback.

Exit codes: 0 success; 1 the operation failed (an RPC error, bad lines in an import, a corrupt
download); 2 bad usage (click's own code for unknown options, missing or invalid arguments).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import click
import grpc

from tunix_rt.client.channel import DEFAULT_REGISTRY_ADDRESS, REGISTRY_ENV, resolve_address
from tunix_rt.client.cli.plugins import commands as plugin_commands
from tunix_rt.client.errors import IntegrityError, describe_rpc_error
from tunix_rt.client.registry import RegistryClient
from tunix_rt.client.service_client import ServiceClient

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=ServiceClient[Any])

EXIT_FAILURE = 1
# Codes that usually mean the service was never reached (down, wrong address, firewalled).
_UNREACHED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def address_key(service: str) -> str:
    """The `click.Context.meta` key of the address the global options resolved for `service`;
    commands of other distributions read it there (see plugins)."""
    return f"tunix_rt.{service}.address"


REGISTRY_ADDRESS_KEY = address_key("registry")


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
    """The `tunix-rt` group: adds the commands other distributions contribute (see plugins) when
    first asked for a command it lacks or for the list, and turns failures of any subcommand into
    CommandFailed."""

    _plugins_added = False

    def _add_plugins(self) -> None:
        # Not at import: finding entry points reads every installed distribution's metadata
        # (~50 ms with this project's dependencies), which `tunix-rt traces list` need not pay.
        if not self._plugins_added:
            self._plugins_added = True
            for command in plugin_commands():
                self.add_command(command)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not self._plugins_added:
            self._add_plugins()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugins()
        return super().list_commands(ctx)

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


class ServiceOption(Generic[C]):
    """The global `--NAME ADDR` option of the `tunix-rt` group for a service besides the registry,
    and the client connected from it.

    Both live in `click.Context.meta`, which every context of one invocation shares, under
    `tunix_rt.NAME.address` and `tunix_rt.NAME.client`."""

    def __init__(self, name: str, client_type: type[C]) -> None:
        self.name = name
        self.client_type = client_type
        self._address_key = address_key(name)
        self._client_key = f"tunix_rt.{name}.client"

    def _resolve(self, value: str | None) -> str:
        endpoint = self.client_type.ENDPOINT
        return resolve_address(value, endpoint.env_var, endpoint.default_address)

    def _store_address(self, ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        ctx.meta[self._address_key] = self._resolve(value)

    def option(self, function: F) -> F:
        """The option itself, a decorator of the `tunix-rt` group."""
        endpoint = self.client_type.ENDPOINT
        option = click.option(
            f"--{self.name}",
            envvar=endpoint.env_var,
            default=endpoint.default_address,
            show_default=True,
            show_envvar=True,
            metavar="ADDR",
            expose_value=False,
            callback=self._store_address,
            help=f"{self.name.capitalize()} service address, host:port.",
        )
        return option(function)

    def address(self) -> str:
        address: str = click.get_current_context().meta.get(self._address_key) or self._resolve(
            None
        )
        return address

    def client(self, state: CliState) -> C:
        """The client, connected on first use with the global token, CA and timeout, and closed
        when the command ends."""
        ctx = click.get_current_context()
        address = self.address()
        client: C | None = ctx.meta.get(self._client_key)
        if client is None:
            connected = self.client_type.connect(
                address, token=state.token, tls_ca=state.tls_ca, timeout=state.timeout
            )
            ctx.meta[self._client_key] = connected

            def close() -> None:
                connected.close()
                ctx.meta.pop(self._client_key, None)

            ctx.call_on_close(close)
            client = connected
        # Named in the error when a call cannot reach it.
        state.target = address
        return client
