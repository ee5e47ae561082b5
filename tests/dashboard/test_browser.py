"""The dashboard in a real headless browser (system Chromium through Playwright) against the
three real services: the jobs page shows a queued and a running job, the run page's charts gain
points live over server-sent events while the job trains, the leaderboard ranks the model after
its completion evaluation, a job is cancelled from the jobs page, a dead service is a banner on
the pages that need it, and an unknown id is a 404 page. Screenshots of every page are saved
(conftest.screenshot_dir)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from tests.dashboard.conftest import screenshot_dir, serve_dashboard
from tests.inference.conftest import JAX_WARNINGS
from tests.main_job import TRAIN, main_job_services
from tests.training.conftest import import_dataset
from tests.training.helpers import TERMINAL, get, submit, tiny_job, wait_for, wait_until
from tunix_rt.dashboard.connections import Settings
from tunix_rt.v1 import (
    inference_pb2,
    registry_service_pb2_grpc,
    run_pb2,
    training_job_pb2,
    training_service_pb2_grpc,
)

pytestmark = JAX_WARNINGS

TRACES = 48
# Long enough to watch several metric events arrive live; short enough for a busy 2-core CPU.
STEPS = 40
WAIT_MS = 180_000


@dataclass
class Stack:
    """The services, stubs to drive them, and the dashboard's URL."""

    addresses: dict[str, str]
    registry: Any
    training: Any
    dataset: str
    url: str
    shots: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("dashboard")
    with main_job_services(data_dir) as services:
        addresses = asdict(services)
        channels = [grpc.insecure_channel(addresses[s]) for s in ("registry", "training")]
        new_registry: Any = registry_service_pb2_grpc.RegistryServiceStub
        new_training: Any = training_service_pb2_grpc.TrainingServiceStub
        registry = new_registry(channels[0])
        traces = data_dir / "traces.jsonl"
        with TRAIN.open() as lines:
            traces.write_text("".join(itertools.islice(lines, TRACES)))
        dataset = import_dataset(registry, "dash", traces)
        settings = Settings(**addresses, timeout=10)
        with serve_dashboard(settings) as url:
            yield Stack(
                addresses, registry, new_training(channels[1]), dataset, url, screenshot_dir()
            )
        for channel in channels:
            channel.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"script errors in the page: {errors}"


def _points(page: Any, chart: str) -> int:
    return int(page.get_attribute(f"#{chart}", "data-points") or 0)


def test_a_job_trains_live_is_evaluated_and_a_second_is_cancelled(stack: Stack, page: Any) -> None:
    job = tiny_job(stack.dataset, max_steps=STEPS, checkpoint_interval_steps=STEPS)
    job.completion_evaluation.CopyFrom(
        training_job_pb2.CompletionEvaluation(
            max_items=4, sampling=inference_pb2.SamplingParams(max_new_tokens=8)
        )
    )
    first = submit(stack.training, job, "dash-first")
    second = submit(stack.training, tiny_job(stack.dataset, max_steps=100_000), "dash-second")

    # The jobs page lists both: the first running (or about to), the second behind it.
    page.goto(f"{stack.url}/jobs")
    page.wait_for_selector("tr[data-job='dash-first']")
    assert page.locator("#queue tr[data-job='dash-second']").count() == 1
    page.screenshot(path=stack.shots / "jobs.png", full_page=True)

    # The run page opens while the job is queued or starting, and its loss chart grows live.
    page.goto(f"{stack.url}/runs/dash-first")
    page.wait_for_selector("#run-charts[data-loaded='true']")
    page.wait_for_function(
        "() => Number(document.querySelector('#live').dataset.received || 0) >= 3",
        timeout=WAIT_MS,
    )
    early = _points(page, "chart-1")
    assert early > 0
    page.wait_for_function(
        f"() => Number(document.querySelector('#chart-1').dataset.points) > {early}",
        timeout=WAIT_MS,
    )
    page.screenshot(path=stack.shots / "run-live.png", full_page=True)
    done = wait_for(stack.training, first.name, TERMINAL, timeout=WAIT_MS / 1000)
    assert done.state == run_pb2.RUN_STATE_SUCCEEDED, done.error
    page.wait_for_function("() => document.querySelector('#live').dataset.ended === 'true'")
    assert page.inner_text("#run-state") == "succeeded"
    assert _points(page, "chart-1") >= STEPS  # every loss point arrived, none twice

    # Reloaded after the end, the page draws the stored history and registers its provenance.
    page.reload()
    page.wait_for_selector("#run-charts[data-loaded='true']")
    assert page.locator("#live[data-live]").count() == 0
    assert _points(page, "chart-1") >= STEPS
    assert page.locator("text=registered as").count() == 1
    page.screenshot(path=stack.shots / "run.png", full_page=True)

    # The completion evaluation put the model on the dataset's leaderboard.
    page.goto(f"{stack.url}/leaderboard?dataset=dash")
    row = page.locator("#leaderboard tbody tr").first
    assert row.locator("td").first.inner_text() == "1"
    assert done.registered_model_version.split("/")[1] in row.inner_text()
    page.screenshot(path=stack.shots / "leaderboard.png", full_page=True)
    page.locator("#leaderboard a[href^='/evaluations/']").first.click()
    page.wait_for_selector("#items tbody tr")
    page.screenshot(path=stack.shots / "evaluation.png", full_page=True)

    # The second job starts once the first frees the device; cancel it from the jobs page.
    wait_for(stack.training, second.name, {run_pb2.RUN_STATE_RUNNING}, timeout=WAIT_MS / 1000)
    # A few steps first, so that the compare page has two runs' curves to overlay.
    wait_until(lambda: get(stack.training, second.name).step >= 3, WAIT_MS / 1000, "3 steps")
    page.goto(f"{stack.url}/jobs")
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    with page.expect_navigation():
        page.click("#running button[data-cancel='dash-second']")
    assert asked and "dash-second" in asked[0]
    assert "dash-second" in page.inner_text(".notice")
    cancelled = wait_for(stack.training, second.name, TERMINAL, timeout=120)
    assert cancelled.state == run_pb2.RUN_STATE_CANCELLED


def test_every_page_renders_without_errors(stack: Stack, page: Any) -> None:
    for name, path in (
        ("devices", "/devices"),
        ("runs", "/runs"),
        ("compare", "/compare?run=dash-first&run=dash-second"),
        ("models", "/models"),
        ("evaluations", "/evaluations"),
        ("datasets", "/datasets"),
        ("dataset", "/datasets/dash"),
        ("sweeps", "/sweeps"),
    ):
        response = page.goto(f"{stack.url}{path}")
        assert response.status == 200, path
        if name == "compare":
            page.wait_for_selector("#compare-charts[data-loaded='true']")
            assert page.locator("#compare-charts figure").count() >= 3
        assert page.locator(".banner").count() == 0, (path, page.inner_text("main"))
        page.screenshot(path=stack.shots / f"{name}.png", full_page=True)
    page.goto(f"{stack.url}/models")
    page.locator("#models a").first.click()
    assert page.locator("#versions tbody tr a[href^='/runs/']").count() >= 1
    page.screenshot(path=stack.shots / "model.png", full_page=True)


def test_the_dark_theme_follows_the_system(stack: Stack, browser: Any) -> None:
    context = browser.new_context(color_scheme="dark", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{stack.url}/runs/dash-first")
    page.wait_for_selector("#run-charts[data-loaded='true']")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"  # dashboard.css's dark --bg
    page.screenshot(path=stack.shots / "run-dark.png", full_page=True)
    context.close()


def test_unknown_ids_are_404_pages_without_internals(stack: Stack) -> None:
    for path in ("/runs/nope", "/models/nope", "/evaluations/nope", "/datasets/nope", "/x"):
        response = httpx.get(f"{stack.url}{path}")
        assert response.status_code == 404, path
        assert "Not found" in response.text and "Traceback" not in response.text
    assert httpx.get(f"{stack.url}/runs?limit=zero").status_code == 400


def test_a_dead_service_is_a_banner_and_the_rest_keeps_working(stack: Stack, page: Any) -> None:
    dead = Settings(
        registry=stack.addresses["registry"],
        training="127.0.0.1:1",
        inference="127.0.0.1:1",
        timeout=5,
    )
    with serve_dashboard(dead) as url:
        page.goto(f"{url}/jobs")
        assert "training service at 127.0.0.1:1 is not reachable" in page.inner_text(".banner")
        page.screenshot(path=stack.shots / "dead-training.png", full_page=True)
        page.goto(f"{url}/runs")
        assert page.locator(".banner").count() == 0
        assert page.locator("#runs tr[data-run='dash-first']").count() == 1
