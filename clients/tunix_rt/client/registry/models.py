"""The registry client's calls on registered models: models, versions, aliases, references."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tunix_rt.client import names
from tunix_rt.client.registry.base import DEFAULT_PAGE_SIZE, RegistryCalls
from tunix_rt.client.service_client import capped_page_size, pages, request_id_or_new
from tunix_rt.v1 import model_pb2
from tunix_rt.v1 import registry_service_pb2 as pb


class ModelCalls(RegistryCalls):
    """Models and their versions; aliases moved and removed; references resolved."""

    def get_model(self, name: str) -> model_pb2.Model:
        response: pb.GetModelResponse = self._stub.GetModel(
            pb.GetModelRequest(name=names.model(name)), timeout=self.timeout
        )
        return response.model

    def list_models(
        self, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[model_pb2.Model]:
        def fetch(token: str) -> tuple[Sequence[model_pb2.Model], str]:
            request = pb.ListModelsRequest(
                page_size=capped_page_size(page_size, limit), page_token=token
            )
            response: pb.ListModelsResponse = self._stub.ListModels(request, timeout=self.timeout)
            return response.models, response.next_page_token

        return pages(fetch, limit)

    def list_model_versions(
        self, model: str, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[model_pb2.ModelVersion]:
        """The model's versions, newest first."""

        def fetch(token: str) -> tuple[Sequence[model_pb2.ModelVersion], str]:
            request = pb.ListModelVersionsRequest(
                parent=names.model(model),
                page_size=capped_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListModelVersionsResponse = self._stub.ListModelVersions(
                request, timeout=self.timeout
            )
            return response.model_versions, response.next_page_token

        return pages(fetch, limit)

    def get_model_version(self, name: str) -> model_pb2.ModelVersion:
        """A version by full name or `model/version`."""
        request = pb.GetModelVersionRequest(name=names.model_version(name) or name)
        response: pb.GetModelVersionResponse = self._stub.GetModelVersion(
            request, timeout=self.timeout
        )
        return response.model_version

    def set_alias(self, model: str, alias: str, version: int) -> pb.SetModelAliasResponse:
        """Points `alias` at `version`; the response has the model and the previous version."""
        request = pb.SetModelAliasRequest(model=names.model(model), alias=alias, version=version)
        response: pb.SetModelAliasResponse = self._stub.SetModelAlias(request, timeout=self.timeout)
        return response

    def delete_alias(self, model: str, alias: str) -> model_pb2.Model:
        request = pb.DeleteModelAliasRequest(model=names.model(model), alias=alias)
        response: pb.DeleteModelAliasResponse = self._stub.DeleteModelAlias(
            request, timeout=self.timeout
        )
        return response.model

    def create_model_version(
        self,
        model: str,
        artifact: str,
        *,
        provenance: dict[str, Any] | None = None,
        aliases: Sequence[str] = (),
        description: str = "",
        request_id: str | None = None,
    ) -> model_pb2.ModelVersion:
        """A new version of `model` (created when missing) pointing at a stored artifact."""
        version = model_pb2.ModelVersion(artifact=names.artifact(artifact), description=description)
        version.provenance.update(provenance or {})
        request = pb.CreateModelVersionRequest(
            parent=names.model(model),
            model_version=version,
            aliases=list(aliases),
            request_id=request_id_or_new(request_id),
        )
        response: pb.CreateModelVersionResponse = self._stub.CreateModelVersion(
            request, timeout=self.timeout
        )
        return response.model_version

    def resolve(self, reference: str) -> model_pb2.ModelVersion:
        """The version `name@alias`, `name/version`, `name` (latest) or a full name points at."""
        request = pb.ResolveModelVersionRequest(reference=reference)
        response: pb.ResolveModelVersionResponse = self._stub.ResolveModelVersion(
            request, timeout=self.timeout
        )
        return response.model_version
