"""The jobs page (queue with positions and priorities, running jobs with step, tokens/s, ETA
and MFU, recent jobs), cancel and resume, and the devices page."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from tunix_rt.dashboard.connections import Problems
from tunix_rt.dashboard.pages.common import connections, newest, same_origin
from tunix_rt.dashboard.rendering import render
from tunix_rt.v1 import device_pb2, run_pb2, training_job_pb2

# The jobs page lists every queued and running job, and the newest ended ones.
ACTIVE = (run_pb2.RUN_STATE_QUEUED, run_pb2.RUN_STATE_RUNNING)
ENDED = (
    run_pb2.RUN_STATE_SUCCEEDED,
    run_pb2.RUN_STATE_FAILED,
    run_pb2.RUN_STATE_CANCELLED,
    run_pb2.RUN_STATE_PRUNED,
)
RECENT_SHOWN = 20
# Metric names the MFU helper may report (model FLOPs utilisation, a fraction of peak).
MFU_METRICS = ("mfu", "model_flops_utilization")


@dataclass(frozen=True)
class JobRow:
    """One job as the tables show it."""

    job: training_job_pb2.TrainingJob
    id: str
    model: str
    tokens_per_second: float | None
    mfu: float | None
    loss: float | None


def _row(job: training_job_pb2.TrainingJob) -> JobRow:
    metrics = job.latest_metrics

    def latest(*names: str) -> float | None:
        for name in names:
            if name in metrics:
                return metrics[name].value
        return None

    source = job.WhichOneof("base_model")
    model = getattr(job, source) if source else ""
    return JobRow(
        job=job,
        id=job.name.rsplit("/", 1)[-1],
        model=model,
        tokens_per_second=latest("tokens_per_second"),
        mfu=latest(*MFU_METRICS),
        loss=latest("loss"),
    )


def jobs_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    active = service.items("training", lambda: service.training.list_jobs(states=ACTIVE), problems)
    ended = service.items(
        "training",
        lambda: newest(service.training.list_jobs(states=ENDED), RECENT_SHOWN),
        problems,
    )
    rows = [_row(job) for job in active]
    queued = sorted(
        (r for r in rows if r.job.state == run_pb2.RUN_STATE_QUEUED),
        key=lambda r: r.job.queue_position,
    )
    running = [r for r in rows if r.job.state == run_pb2.RUN_STATE_RUNNING]
    recent = [_row(job) for job in ended]
    template = "_jobs_tables.html" if request.headers.get("x-fragment") else "jobs.html"
    return render(
        request,
        template,
        problems,
        queued=queued,
        running=running,
        recent=recent,
        message=request.query_params.get("message", ""),
    )


def cancel_job(request: Request) -> Response:
    same_origin(request)
    job_id = request.path_params["job_id"]
    service = connections(request)
    problems = Problems()
    job = service.get(
        "training",
        lambda: service.training.cancel_job(job_id, reason="from the dashboard"),
        problems,
    )
    message = problems.lines[0] if problems.lines else f"Cancelling {job_id}."
    if job is not None and job.state == run_pb2.RUN_STATE_CANCELLED:
        message = f"{job_id} is cancelled."
    return RedirectResponse(f"/jobs?message={quote(message)}", status_code=303)


def resume_job(request: Request) -> Response:
    same_origin(request)
    job_id = request.path_params["job_id"]
    service = connections(request)
    problems = Problems()
    service.get("training", lambda: service.training.resume_job(job_id), problems)
    message = problems.lines[0] if problems.lines else f"{job_id} is queued again."
    return RedirectResponse(f"/jobs?message={quote(message)}", status_code=303)


def devices_page(request: Request) -> Response:
    problems = Problems()
    service = connections(request)
    devices = service.items("training", lambda: service.training.list_devices(), problems)
    hosts: dict[str, list[device_pb2.Device]] = {}
    for device in devices:
        hosts.setdefault(device.host or "this host", []).append(device)
    return render(request, "devices.html", problems, hosts=hosts)


routes = [
    Route("/jobs", jobs_page),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/jobs/{job_id}/resume", resume_job, methods=["POST"]),
    Route("/devices", devices_page),
]
