"""`tunix-rt dashboard` calls the services with the global options of `tunix-rt`: against
services that require TLS and a bearer token, the dashboard started with `--tls-ca` and
`--token` reads every page, and one started without the token shows each service's refusal as
a banner instead of the data (and no traceback)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import httpx
import pytest

from tests.main_job import MainJobServices, main_job_services, secure_config

TOKEN = "dashboard-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MainJobServices, Path]]:
    data_dir = tmp_path_factory.mktemp("dashboard-secure")
    tls = secure_config(data_dir / "tls", TOKEN)
    with main_job_services(data_dir, config=tls.config) as services:
        yield services, tls.ca_file


@contextmanager
def dashboard_command(*global_options: str, serve: bool = False) -> Iterator[str]:
    """`tunix-rt GLOBAL_OPTIONS dashboard` (or `… serve dashboard`) in a subprocess; yields its
    URL once it answers."""
    port = _free_port()
    command = [sys.executable, "-m", "tunix_rt.client.cli", *global_options]
    subcommand = ["serve", "dashboard"] if serve else ["dashboard"]
    process = subprocess.Popen(
        [*command, *subcommand, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/static/dashboard.css", timeout=5)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()


def _options(services: MainJobServices, ca: Path, *extra: str) -> list[str]:
    addresses = [f"--{name}={address}" for name, address in asdict(services).items()]
    return [*addresses, f"--tls-ca={ca}", *extra]


@pytest.mark.parametrize("serve", [False, True], ids=["dashboard", "serve-dashboard"])
def test_the_token_and_ca_of_the_cli_reach_every_service(
    secure: tuple[MainJobServices, Path], serve: bool
) -> None:
    """`tunix-rt serve dashboard` (beside the services' serve commands) is the same command,
    with the options given before `serve` carried over."""
    services, ca = secure
    with dashboard_command(*_options(services, ca, f"--token={TOKEN}"), serve=serve) as url:
        for path in ("/jobs", "/devices", "/runs", "/models", "/datasets", "/sweeps"):
            page = httpx.get(f"{url}{path}", timeout=30)
            assert page.status_code == 200, path
            assert 'role="alert"' not in page.text, (path, page.text)


def test_without_the_token_each_page_shows_the_refusal(
    secure: tuple[MainJobServices, Path],
) -> None:
    services, ca = secure
    with dashboard_command(*_options(services, ca)) as url:
        for path, service in (("/jobs", "training"), ("/runs", "registry")):
            page = httpx.get(f"{url}{path}", timeout=30)
            assert page.status_code == 200, path
            assert f"The {service} service at" in page.text, path
            assert "UNAUTHENTICATED" in page.text or "token" in page.text.lower(), page.text
            assert "Traceback" not in page.text
