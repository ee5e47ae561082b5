"""The registry repository: one object over the database, assembled from per-resource parts.

It is the only way the domain reaches the database, and it returns domain objects, never rows.
"""

from __future__ import annotations

from tunix_rt.registry.storage.eval_set_repository import EvalSetRepository
from tunix_rt.registry.storage.model_repository import ModelRepository
from tunix_rt.registry.storage.run_repository import RunRepository
from tunix_rt.registry.storage.trace_repository import TraceRepository


class Repository(TraceRepository, RunRepository, ModelRepository, EvalSetRepository):
    """Traces, datasets, runs, models, artifacts, evaluations and eval sets."""
