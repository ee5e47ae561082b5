"""The main job's three services for the end-to-end tests (test_secure_main_job: TLS and a token
on SQLite; test_postgres_main_job: the CLI on PostgreSQL): the registry, inference and training
services started in one process in the order `tunix-rt up` starts them, inference before training,
which evaluates jobs on completion through it, and stopped in reverse, registry last."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from tests.common.certificates import self_signed
from tests.support import LoopThread
from tunix_rt.common.config import ServerConfig
from tunix_rt.inference.server import RunningInference, start_inference
from tunix_rt.registry.server import RunningRegistry, start_registry
from tunix_rt.training.server import RunningTraining, start_training

# The shipped training set of the README's main job: 2,000 traces.
TRAIN = Path(__file__).resolve().parents[1] / "datasets" / "reasoning-train-v1.jsonl"


@dataclass(frozen=True)
class MainJobServices:
    """The addresses (host:port) of the three running services."""

    registry: str
    training: str
    inference: str


@dataclass(frozen=True)
class Secure:
    """One config for all three services: serve TLS, require the token, dial the others with
    both; and the CA a client trusts."""

    config: ServerConfig
    ca_file: Path

    def credentials(self) -> grpc.ChannelCredentials:
        """What a client of these services presents: the CA, and the token on every call."""
        assert self.config.auth_token is not None
        return grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(root_certificates=self.ca_file.read_bytes()),
            grpc.access_token_call_credentials(self.config.auth_token),
        )


def secure_config(directory: Path, token: str) -> Secure:
    """A self-signed certificate for 127.0.0.1 under `directory` and a config serving with it."""
    cert, key = self_signed(directory)
    config = ServerConfig(
        port=0,
        auth_token=token,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        tls_ca_file=str(cert),
    )
    return Secure(config, cert)


@contextmanager
def main_job_services(
    data_dir: Path, *, config: ServerConfig | None = None, database_url: str | None = None
) -> Iterator[MainJobServices]:
    """Runs the three services on 127.0.0.1 with their data under `data_dir`, the registry on
    `database_url` (default: SQLite in its data dir), all serving and dialling each other with
    `config` (port 0; its token and TLS, if any), training with one CPU slot."""
    config = config or ServerConfig()
    loop = LoopThread()
    started: list[RunningRegistry | RunningInference | RunningTraining] = []
    try:
        registry = loop.run(
            start_registry(data_dir=data_dir / "registry", database_url=database_url, config=config)
        )
        started.append(registry)
        inference = loop.run(
            start_inference(
                registry_address=registry.address, data_dir=data_dir / "inference", config=config
            )
        )
        started.append(inference)
        training = loop.run(
            start_training(
                registry_address=registry.address,
                data_dir=data_dir / "training",
                cpu_slots=1,
                probe_gpus=False,
                inference_address=inference.address,
                config=config,
            )
        )
        started.append(training)
        yield MainJobServices(registry.address, training.address, inference.address)
    finally:
        for service in reversed(started):
            loop.run(service.stop(0))
        loop.close()
