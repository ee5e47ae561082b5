"""The registry: its use cases, one object per resource, over one repository and one blob store.

`server.py` builds it; the servicer calls `registry.traces.get_trace(...)`,
`registry.models.create_model_version(...)` and so on, one use-case method per RPC, named after it.
"""

from __future__ import annotations

from tunix_rt.registry.artifacts import DEFAULT_MAX_ARTIFACT_BYTES
from tunix_rt.registry.blob_store import BlobStore
from tunix_rt.registry.storage.repository import Repository
from tunix_rt.registry.use_cases.artifacts import Artifacts
from tunix_rt.registry.use_cases.datasets import Datasets
from tunix_rt.registry.use_cases.eval_sets import EvalSets
from tunix_rt.registry.use_cases.evaluations import Evaluations
from tunix_rt.registry.use_cases.models import Models
from tunix_rt.registry.use_cases.runs import Runs
from tunix_rt.registry.use_cases.traces import Traces


class Registry:
    """Every use case of the registry, grouped by resource, over shared storage."""

    def __init__(
        self,
        repository: Repository,
        blobs: BlobStore,
        *,
        max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    ) -> None:
        self.repo = repository
        self.blobs = blobs
        self.traces = Traces(repository)
        self.datasets = Datasets(repository)
        self.runs = Runs(repository)
        self.models = Models(repository, blobs)
        self.artifacts = Artifacts(repository, blobs, max_artifact_bytes)
        self.evaluations = Evaluations(repository)
        self.eval_sets = EvalSets(repository)

    def close(self) -> None:
        """Closes the database connections."""
        self.repo.close()
