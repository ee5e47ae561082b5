"""Eval set use cases: create, get, list and delete eval sets; list their items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunix_rt.common import canonical, pagination
from tunix_rt.registry import eval_sets as es
from tunix_rt.registry import names
from tunix_rt.registry.storage.base import now
from tunix_rt.registry.storage.repository import Repository
from tunix_rt.registry.use_cases.page import Page


class EvalSets:
    """The eval set use cases over the repository."""

    def __init__(self, repository: Repository) -> None:
        self.repo = repository

    def create_eval_set(
        self,
        eval_set_id: str,
        description: str,
        items: Sequence[es.EvalSetItem],
        request_id: str,
    ) -> es.EvalSet:
        names.check_id(eval_set_id, "eval_set_id")
        es.validate(description, items)
        eval_set = es.EvalSet(
            eval_set_id=eval_set_id,
            description=description,
            item_count=len(items),
            counts=es.counts(items),
            content_hash=es.content_hash(items),
            create_time=now(),
        )
        fingerprint = canonical.sha256_hex(
            canonical.dumps([eval_set_id, description, eval_set.content_hash])
        )

        def insert(session: Any) -> str:
            self.repo.insert_eval_set(session, eval_set, items)
            return names.eval_set_name(eval_set_id)

        self.repo.idempotent("CreateEvalSet", request_id, fingerprint, insert)
        return self.repo.get_eval_set(eval_set_id)

    def get_eval_set(self, name: str) -> es.EvalSet:
        return self.repo.get_eval_set(names.parse_eval_set(name, "name"))

    def list_eval_sets(self, size: int, token: str) -> Page[es.EvalSet]:
        limit = pagination.page_size(size)
        before = pagination.decode(token, ["evalSets"])
        items, last = self.repo.list_eval_sets(None if before is None else int(before), limit)
        return Page.of(items, last, ["evalSets"])

    def list_eval_set_items(self, name: str, size: int, token: str) -> Page[es.EvalSetItem]:
        eval_set_id = names.parse_eval_set(name, "eval_set")
        limit = pagination.page_size(size)
        after = pagination.decode(token, [eval_set_id])
        items, last = self.repo.list_eval_set_items(
            eval_set_id, -1 if after is None else int(after), limit
        )
        return Page.of(items, last, [eval_set_id])

    def delete_eval_set(self, name: str) -> None:
        self.repo.delete_eval_set(names.parse_eval_set(name, "name"))
