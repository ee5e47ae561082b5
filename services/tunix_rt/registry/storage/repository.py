"""The registry repository: one object over the database, assembled from per-resource parts.

It is the only way the domain reaches the database, and it returns domain objects, never rows.
"""

from __future__ import annotations

from tunix_rt.registry.storage.artifact_repository import ArtifactRepository
from tunix_rt.registry.storage.dataset_repository import DatasetRepository
from tunix_rt.registry.storage.eval_set_repository import EvalSetRepository
from tunix_rt.registry.storage.evaluation_repository import EvaluationRepository
from tunix_rt.registry.storage.model_repository import ModelRepository
from tunix_rt.registry.storage.run_repository import RunRepository
from tunix_rt.registry.storage.trace_repository import TraceRepository


class Repository(
    TraceRepository,
    DatasetRepository,
    RunRepository,
    ModelRepository,
    ArtifactRepository,
    EvaluationRepository,
    EvalSetRepository,
):
    """Traces, datasets, runs, models, artifacts, evaluations and eval sets."""
