"""Listing training jobs: filters (the model one included) apply before paging, so pages are full
and every job appears exactly once, whatever the page size."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from tests.training.conftest import Stack
from tests.training.helpers import tiny_job
from tunix_rt.training import job_spec
from tunix_rt.v1 import registry_service_pb2 as rpb
from tunix_rt.v1 import run_pb2
from tunix_rt.v1 import training_service_pb2 as tpb

# Runs of another training service (so this one never starts them), in creation order: jobs
# registering into models `a` and `b`, and runs that are not training jobs (no spec) between them.
OWNER = "training/elsewhere:1"
RUNS = ["a1", "b1", "plain1", "b2", "a2", "plain2", "plain3", "a3", "b3", "a4"]


def _create_run(stack: Stack, run_id: str, owner: str = OWNER) -> None:
    config = struct_pb2.Struct()
    if "plain" not in run_id:
        job = tiny_job(stack.dataset)
        job.registration.model = f"models/{run_id[0]}"
        spec = job_spec.spec_from_job(job, run_id, "cpu", 1)
        config.update({"spec": spec.to_json(), "attempt": 0})
    run = run_pb2.Run(dataset=stack.dataset, owner=owner, config=config)
    stack.registry_stub.CreateRun(rpb.CreateRunRequest(run=run, run_id=run_id))


@pytest.fixture(scope="module")
def listed(stack: Stack) -> Stack:
    for run_id in RUNS:
        _create_run(stack, run_id)
    return stack


def _pages(stack: Stack, page_size: int, owner: str = OWNER, **filters: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    while True:
        response = stack.training_stub.ListTrainingJobs(
            tpb.ListTrainingJobsRequest(
                owner=owner, page_size=page_size, page_token=token, **filters
            )
        )
        pages.append([job.name.removeprefix("trainingJobs/") for job in response.training_jobs])
        token = response.next_page_token
        if not token:
            return pages
        assert len(pages) < 20, pages


@pytest.mark.parametrize("page_size", [1, 2, 3])
def test_the_model_filter_applies_before_paging(listed: Stack, page_size: int) -> None:
    for model, ids in (("models/a", ["a1", "a2", "a3", "a4"]), ("b", ["b1", "b2", "b3"])):
        pages = _pages(listed, page_size, model=model)
        assert [job for page in pages for job in page] == ids
        assert all(len(page) == page_size for page in pages[:-1]), pages
        assert 1 <= len(pages[-1]) <= page_size, pages  # never an empty last page


@pytest.mark.parametrize("page_size", [1, 2, 4, 0])
def test_runs_that_are_not_jobs_are_left_out_before_paging(listed: Stack, page_size: int) -> None:
    pages = _pages(listed, page_size)
    jobs = [r for r in RUNS if not r.startswith("plain")]
    assert [job for page in pages for job in page] == jobs
    assert all(len(page) == page_size for page in pages[:-1]), pages


def test_jobs_far_apart_among_other_runs_still_fill_pages(listed: Stack) -> None:
    """Matches more than a registry page apart (job_listing.SCAN_RUNS runs per read)."""
    owner = "training/wide:1"
    runs = ["c1", *(f"plain-w{n}" for n in range(130)), "c2", *(f"plain-x{n}" for n in range(110))]
    for run_id in [*runs, "c3"]:
        _create_run(listed, run_id, owner)
    assert _pages(listed, 1, owner, model="models/c") == [["c1"], ["c2"], ["c3"]]
    assert _pages(listed, 2, owner, model="models/c") == [["c1", "c2"], ["c3"]]
    assert _pages(listed, 3, owner, model="models/c") == [["c1", "c2", "c3"]]


def test_listed_jobs_are_views_of_their_runs(listed: Stack) -> None:
    response = listed.training_stub.ListTrainingJobs(
        tpb.ListTrainingJobsRequest(owner=OWNER, model="models/b", page_size=1)
    )
    [job] = response.training_jobs
    assert job.name == "trainingJobs/b1" and job.run == "runs/b1"
    assert job.registration.model == "models/b"
    assert job.state == run_pb2.RUN_STATE_QUEUED and job.owner == OWNER
    assert job.hyperparameters.batch_size == 4


def test_a_token_is_refused_with_other_filters(listed: Stack) -> None:
    first = listed.training_stub.ListTrainingJobs(
        tpb.ListTrainingJobsRequest(owner=OWNER, model="models/a", page_size=1)
    )
    assert first.next_page_token
    for changed in ({"model": "models/b"}, {"owner": "training/other"}):
        request = tpb.ListTrainingJobsRequest(
            **{"owner": OWNER, "model": "models/a", **changed},
            page_size=1,
            page_token=first.next_page_token,
        )
        with pytest.raises(grpc.RpcError) as info:
            listed.training_stub.ListTrainingJobs(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        listed.training_stub.ListTrainingJobs(tpb.ListTrainingJobsRequest(page_size=-1))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
