"""Evaluation use cases: record, get and list evaluations and their items; rank leaderboards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunix_rt.common import canonical, pagination
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.registry import datasets as ds
from tunix_rt.registry import evaluations as ev
from tunix_rt.registry import names
from tunix_rt.registry.limits import check_chars
from tunix_rt.registry.storage.repository import Repository
from tunix_rt.registry.use_cases.page import Page


class Evaluations:
    """The evaluation and leaderboard use cases over the repository."""

    def __init__(self, repository: Repository) -> None:
        self.repo = repository

    def create_evaluation(
        self,
        model_version: str,
        dataset: str,
        split: int,
        metrics: dict[str, float],
        config: dict[str, Any],
        items: Sequence[tuple[str, dict[str, Any]]],
        request_id: str,
    ) -> ev.Evaluation:
        model_id, version = names.parse_model_version(model_version, "evaluation.model_version")
        source = ev.parse_source(dataset, "evaluation.dataset")
        ds.check_split_number(split, "evaluation.split")
        ev.check_metrics(metrics)
        ev.check_items(items)
        fingerprint = canonical.sha256_hex(
            canonical.dumps([model_version, dataset, split, metrics, config, list(items)])
        )

        def insert(session: Any) -> str:
            uid = self.repo.insert_evaluation(
                session, model_id, version, source, split, metrics, config, items
            )
            return names.evaluation_name(uid)

        stored = self.repo.idempotent("CreateEvaluation", request_id, fingerprint, insert)
        return self.get_evaluation(stored)

    def get_evaluation(self, name: str) -> ev.Evaluation:
        return self.repo.get_evaluation(names.parse(name, "evaluations", "name", names.UID_PATTERN))

    def list_evaluations(
        self, model: str, dataset: str, size: int, token: str
    ) -> Page[ev.Evaluation]:
        """Newest first; `model` is a model or one of its versions, `dataset` a dataset or an
        eval set (each empty: any)."""
        model_id, version = "", None
        if model.startswith("models/") and "/versions/" in model:
            model_id, version = names.parse_model_version(model, "model")
        elif model:
            model_id = names.parse(model, "models", "model")
        source = ev.parse_source(dataset, "dataset") if dataset else ""
        limit = pagination.page_size(size)
        key = [model, dataset]
        before = pagination.decode(token, key)
        items, last = self.repo.list_evaluations(
            model_id, version, source, None if before is None else int(before), limit
        )
        return Page.of(items, last, key)

    def list_evaluation_items(
        self, name: str, size: int, token: str
    ) -> Page[tuple[str, dict[str, Any]]]:
        uid = names.parse(name, "evaluations", "evaluation", names.UID_PATTERN)
        limit = pagination.page_size(size)
        after = pagination.decode(token, [uid])
        items, last = self.repo.list_evaluation_items(
            uid, -1 if after is None else int(after), limit
        )
        return Page.of(items, last, [uid])

    def get_leaderboard(
        self, dataset: str, metric: str, lower_is_better: bool, split: int, size: int, token: str
    ) -> tuple[Page[ev.LeaderboardRow], int]:
        """A page of ranked rows and the rank of its first row."""
        source = ev.parse_source(dataset, "dataset")
        if not metric:
            raise InvalidArgument.field("metric", "is required")
        check_chars(metric, "metric", None)
        ds.check_split_number(split, "split")
        limit = pagination.page_size(size)
        key = [source, metric, lower_is_better, split]
        offset = int(pagination.decode(token, key) or 0)
        ranked = ev.rank(
            self.repo.leaderboard_rows(source, metric, split), lower_is_better=lower_is_better
        )
        more = offset + limit < len(ranked)
        page = Page.of(ranked[offset : offset + limit], offset + limit if more else None, key)
        return page, offset + 1
