"""The TypeScript/Node client (clients/typescript) against the real three services, with a token and
TLS: its stubs are those ts-proto generates from protos/tunix_rt.binpb today, its `node --test`
tests pass (traces listed, NOT_FOUND and INVALID_ARGUMENT with their google.rpc details decoded,
the token required), and its walkthrough lists traces, follows a job's event stream to SUCCEEDED
with strictly consecutive sequences and streams a generation.

The npm dependencies are installed by `npm ci` from the committed package-lock.json when
node_modules is missing or older than the lock (a stamp holds the lock's hash). Without node the
tests skip, except in CI (CI=true), where .ci/run installs it and a skip would hide a gap."""

from __future__ import annotations

import filecmp
import hashlib
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.inference.conftest import JAX_WARNINGS
from tests.main_job import TRAIN, main_job_services, secure_config
from tests.training.conftest import import_dataset
from tunix_rt.v1 import registry_service_pb2_grpc

pytestmark = JAX_WARNINGS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
GENERATED = PACKAGE / "src" / "gen"
STAMP = PACKAGE / "node_modules" / ".tunix-rt-npm-ci.stamp"
TOKEN = "typescript-client-token"
TRACES = 48  # enough for a dataset with train and eval splits, quick to import


def _tool(name: str) -> str:
    """The path of `name`; skips without it, except in CI, where it fails."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (the TypeScript client needs Node.js 18+ and npm)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; .ci/run installs it")
        pytest.skip(message)
    return path


def _run(command: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """Runs `command` in the package directory; returns its output, failing with it on an error."""
    done = subprocess.run(
        command,
        cwd=PACKAGE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}"
    return done.stdout


@pytest.fixture(scope="module")
def node() -> str:
    """Node, with the package's dependencies installed and the package compiled to dist/."""
    node, npm = _tool("node"), _tool("npm")
    lock = PACKAGE / "package-lock.json"
    want = hashlib.sha256(lock.read_bytes() + _run([node, "--version"], timeout=30).encode())
    if not STAMP.is_file() or STAMP.read_text() != want.hexdigest():
        # --ignore-scripts: no dependency needs an install script (protobufjs's only prints).
        _run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], timeout=300)
        STAMP.write_text(want.hexdigest())
    _run([node, "node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], timeout=180)
    return node


def test_the_generated_code_is_current(node: str, tmp_path: Path) -> None:
    buf = Path(sys.executable).parent / "buf"
    template = PACKAGE / "buf.gen.yaml"
    # The template's paths are relative to the repository root; -o puts the output under tmp_path.
    command = [str(buf), "generate", "protos/tunix_rt.binpb", "--template", str(template)]
    subprocess.run([*command, "-o", str(tmp_path)], cwd=ROOT, check=True, timeout=120)
    fresh = tmp_path / GENERATED.relative_to(ROOT)
    stale = _differences(filecmp.dircmp(GENERATED, fresh))
    assert not stale, f"clients/typescript/src/gen is stale ({stale}): run `npm run generate` there"


def _differences(compared: filecmp.dircmp[str]) -> list[str]:
    found = [*compared.left_only, *compared.right_only]
    # dircmp compares sizes and times only; the contents decide.
    _, mismatch, errors = filecmp.cmpfiles(
        compared.left, compared.right, compared.common_files, shallow=False
    )
    found += mismatch + errors
    for sub in compared.subdirs.values():
        found += _differences(sub)
    return found


@dataclass(frozen=True)
class Services:
    """The environment a client of the running services gets, as the CLI reads it."""

    env: dict[str, str]
    dataset: str


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    data_dir = tmp_path_factory.mktemp("typescript")
    tls = secure_config(data_dir / "tls", TOKEN)
    with main_job_services(data_dir, config=tls.config) as running:
        credentials = tls.credentials()
        traces = data_dir / "traces.jsonl"
        with TRAIN.open() as lines:
            traces.write_text("".join(itertools.islice(lines, TRACES)))
        with grpc.secure_channel(running.registry, credentials) as channel:
            new_stub: Any = registry_service_pb2_grpc.RegistryServiceStub
            dataset = import_dataset(new_stub(channel), "typescript", traces)
        env = {
            **os.environ,
            "TUNIX_RT_REGISTRY": running.registry,
            "TUNIX_RT_TRAINING": running.training,
            "TUNIX_RT_INFERENCE": running.inference,
            "TUNIX_RT_AUTH_TOKEN": TOKEN,
            "TUNIX_RT_TLS_CA": str(tls.ca_file),
        }
        yield Services(env, dataset)


def test_the_node_tests_pass(node: str, services: Services) -> None:
    output = _run([node, "--test", "dist/test/client.test.js"], env=services.env, timeout=120)
    assert re.search(r"^# fail 0$", output, re.MULTILINE), output
    assert not re.search(r"^# skipped [1-9]", output, re.MULTILINE), output
    assert re.search(r"listed: traces/\S+ traces/\S+ traces/\S+", output), output
    not_found = r"error: NOT_FOUND ResourceInfo \S+ trainingJobs/no-such-job reason NOT_FOUND"
    assert re.search(not_found, output), output
    assert re.search(r"error: INVALID_ARGUMENT BadRequest \S*dataset", output), output


def test_the_walkthrough_trains_follows_and_generates(node: str, services: Services) -> None:
    env = {**services.env, "TUNIX_RT_DATASET": services.dataset, "TUNIX_RT_STEPS": "4"}
    output = _run([node, "dist/examples/walkthrough.js"], env=env, timeout=240)
    listed = re.search(r"^traces: (\d+) listed", output, re.MULTILINE)
    assert listed and int(listed[1]) > 0, output
    submitted = re.search(r"^job: (trainingJobs/\S+) submitted$", output, re.MULTILINE)
    assert submitted, output
    sequences = [int(s) for s in re.findall(r"^event: (\d+) ", output, re.MULTILINE)]
    assert sequences == list(range(1, len(sequences) + 1)), output
    states = re.findall(r"^event: \d+ step \d+ state \S+ -> (\S+)$", output, re.MULTILINE)
    assert states and states[-1] == "RUN_STATE_SUCCEEDED", output
    assert re.search(r"^event: \d+ step \d+ metrics .*loss=", output, re.MULTILINE), output
    finished = rf"^job: {submitted[1]} RUN_STATE_SUCCEEDED registered (models/\S+)$"
    version = re.search(finished, output, re.MULTILINE)
    assert version, output
    assert re.search(rf"^generate: {version[1]}$", output, re.MULTILINE), output
    assert re.search(r"^token: [1-9]\d* ", output, re.MULTILINE), output
    generated = re.search(r"^generated: (\d+) tokens", output, re.MULTILINE)
    assert generated and int(generated[1]) > 0, output
