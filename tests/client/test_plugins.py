"""What the services distribution adds to `tunix-rt` through entry points: the `serve`, `up` and
`dashboard` commands, and the model interchange behind `models export|import`. The two sides never
import each other, so these tests, which see both, check that they agree."""

from __future__ import annotations

import click
import pytest

from tunix_rt.client.cli import main
from tunix_rt.client.cli.plugins import ModelInterchange, commands, model_interchange

launcher_cli = pytest.importorskip(
    "tunix_rt.launcher.cli",
    reason="the services distribution is not installed",
    exc_type=ModuleNotFoundError,
)
dashboard_cli = pytest.importorskip("tunix_rt.dashboard.cli", exc_type=ModuleNotFoundError)


def _command(name: str) -> click.Command:
    command = main.get_command(click.Context(main), name)
    assert command is not None, f"tunix-rt has no {name}"
    return command


def test_the_services_add_serve_and_up() -> None:
    assert [command.name for command in commands()] == ["dashboard", "serve", "up"]
    assert _command("dashboard") is dashboard_cli.dashboard
    serve = _command("serve")
    assert isinstance(serve, click.Group)
    assert sorted(serve.commands) == ["dashboard", "inference", "registry", "training"]
    assert _command("up") is launcher_cli.up


def test_the_model_interchange_satisfies_the_clients_protocol() -> None:
    from tunix_rt.launcher.interchange import HuggingFaceInterchange

    # mypy checks the structure here, where both sides are in view.
    interchange: ModelInterchange = HuggingFaceInterchange()
    assert isinstance(model_interchange("models export"), type(interchange))
    assert interchange.content_type == "application/x-tar"


def _serve_training_context(*global_args: str) -> click.Context:
    """The context `tunix-rt GLOBAL_ARGS serve training` runs its command in, after the root
    group's callback ran (the command itself, which would start a server, is not invoked)."""
    root = main.make_context("tunix-rt", [*global_args, "serve", "training"])
    root.invoke(main.callback, **root.params)  # type: ignore[arg-type]
    serve = _command("serve")
    assert isinstance(serve, click.Group)
    return click.Context(serve.commands["training"], parent=click.Context(serve, parent=root))


def test_a_server_calls_the_global_registry_only_when_one_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TUNIX_RT_REGISTRY", raising=False)
    given = _serve_training_context("--registry", "registry.internal")
    # Resolved as every client resolves it: a bare host gets the registry's port.
    assert launcher_cli.global_registry(given, None) == "registry.internal:50051"
    assert launcher_cli.global_registry(given, "own:1") == "own:1"
    # Left at its default, the server's own config decides.
    assert launcher_cli.global_registry(_serve_training_context(), None) is None
