"""Model use cases: create, get and list models; register, get, list and resolve versions; set
and delete aliases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunix_rt.common import canonical, pagination
from tunix_rt.common.errors import InvalidArgument, NotFound
from tunix_rt.registry import artifacts, names
from tunix_rt.registry import models as md
from tunix_rt.registry.blob_store import BlobStore
from tunix_rt.registry.limits import check_chars, check_finite
from tunix_rt.registry.storage.repository import Repository
from tunix_rt.registry.use_cases.page import Page


class Models:
    """The model use cases over the repository; a version's artifact is checked in the blob
    store before the version is registered."""

    def __init__(self, repository: Repository, blobs: BlobStore) -> None:
        self.repo = repository
        self.blobs = blobs

    def create_model(
        self, model_id: str, description: str, labels: dict[str, str], request_id: str
    ) -> md.Model:
        names.check_id(model_id, "model_id")
        check_chars(description, "description", None)
        fingerprint = canonical.sha256_hex(canonical.dumps([model_id, description, labels]))
        stored = self.repo.idempotent(
            "CreateModel",
            request_id,
            fingerprint,
            lambda s: self.repo.insert_model(s, model_id, description, labels).model_id,
        )
        return self.repo.get_model(stored)

    def get_model(self, name: str) -> md.Model:
        return self.repo.get_model(names.parse(name, "models", "name"))

    def list_models(self, size: int, token: str) -> Page[md.Model]:
        limit = pagination.page_size(size)
        after = pagination.decode(token, "models") or ""
        items, last = self.repo.list_models(str(after), limit)
        return Page.of(items, last, "models")

    def create_model_version(
        self, parent: str, version: md.ModelVersion, aliases: Sequence[str], request_id: str
    ) -> md.ModelVersion:
        model_id = names.parse(parent, "models", "parent")
        sha = artifacts.parse_name(version.artifact_sha256, "model_version.artifact")
        try:
            content_type: str | None = self.repo.get_artifact(sha).content_type
        except NotFound:
            content_type = None  # the insert reports a missing artifact as before
        # A model directory (tar) is checked before anything is stored: config, tokenizer,
        # tensor names and shapes (headers only), so a broken upload registers nothing.
        md.check_model_artifact(self.blobs, sha, content_type)
        for n, alias in enumerate(aliases):
            md.check_alias(alias, f"aliases[{n}]")
        check_chars(version.source_run, "model_version.source_run")
        check_chars(version.description, "model_version.description", None)
        check_finite(version.metrics, "model_version.metrics")
        record = md.ModelVersion(**{**version.__dict__, "artifact_sha256": sha})
        fingerprint = canonical.sha256_hex(
            canonical.dumps(
                [model_id, sha, record.source_run, record.metrics, record.provenance, list(aliases)]
            )
        )

        def insert(session: Any) -> str:
            number = self.repo.insert_version(session, model_id, record, aliases)
            return names.model_version_name(model_id, number)

        stored = self.repo.idempotent("CreateModelVersion", request_id, fingerprint, insert)
        return self.get_model_version(stored)

    def get_model_version(self, name: str) -> md.ModelVersion:
        model_id, version = names.parse_model_version(name, "name")
        return self.repo.get_version(model_id, version)

    def list_model_versions(self, parent: str, size: int, token: str) -> Page[md.ModelVersion]:
        model_id = names.parse(parent, "models", "parent")
        limit = pagination.page_size(size)
        before = pagination.decode(token, [model_id])
        items, last = self.repo.list_versions(
            model_id, None if before is None else int(before), limit
        )
        return Page.of(items, last, [model_id])

    def set_model_alias(self, model: str, alias: str, version: int) -> tuple[md.Model, int]:
        """Points `alias` at `version`; returns the model and the alias's previous version (0 when
        it is new)."""
        model_id = names.parse(model, "models", "model")
        md.check_alias(alias)
        if not 1 <= version <= names.MAX_VERSION:
            raise InvalidArgument.field("version", f"must be in [1, {names.MAX_VERSION}]")
        return self.repo.set_alias(model_id, alias, version)

    def delete_model_alias(self, model: str, alias: str) -> md.Model:
        model_id = names.parse(model, "models", "model")
        md.check_alias(alias)
        return self.repo.delete_alias(model_id, alias)

    def resolve_model_version(self, reference: str) -> md.ModelVersion:
        if not reference:
            raise InvalidArgument.field("reference", "is required")
        return self.repo.resolve(md.parse_reference(reference))
