"""The CLI without a server: every command's help, usage errors (exit 2), and a failed call
reported as one line with exit code 1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from tunix_rt.client.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    # Through list_commands/get_command, as click itself asks: the root group adds the commands
    # of other distributions (serve, up) only then.
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


ALL_COMMANDS = list(_commands(main))


def test_the_command_tree() -> None:
    expected = {
        ("serve", "registry"),
        ("serve", "training"),
        ("serve", "inference"),
        ("up",),
        ("traces", "import"),
        ("traces", "list"),
        ("traces", "show"),
        ("traces", "delete"),
        ("datasets", "create"),
        ("datasets", "list"),
        ("datasets", "show"),
        ("datasets", "export"),
        ("models", "list"),
        ("models", "show"),
        ("models", "alias"),
        ("runs", "list"),
        ("runs", "show"),
        ("artifacts", "upload"),
        ("artifacts", "download"),
        ("leaderboard",),
    }
    assert expected <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", [(), *ALL_COMMANDS], ids=lambda p: " ".join(p) or "tunix-rt")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["traces", "list", "--meta", "no-equals-sign"],
        ["traces", "import", "/no/such/file.jsonl"],
        ["datasets", "create", "d", "--trace", "t1", "--source", "s"],
        ["datasets", "create", "d", "--eval-fraction", "1.5"],
        ["datasets", "export", "d", "--format", "xml"],
        ["models", "alias", "m", "production"],
        ["models", "alias", "m", "production", "2", "--delete"],
        ["runs", "list", "--state", "sleeping"],
        ["no-such-command"],
    ],
)
def test_bad_usage_exits_2(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_registry_is_one_line_and_exit_1() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(main, ["--registry", address, "--timeout", "0.5", "traces", "list"])
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ") and ("UNAVAILABLE" in line or "DEADLINE_EXCEEDED" in line)


def test_registry_address_comes_from_the_environment() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    result = CliRunner(env={"TUNIX_RT_REGISTRY": address}).invoke(
        main, ["--timeout", "0.5", "datasets", "list"]
    )
    assert result.exit_code == 1 and address in result.stderr
