"""The registry client's calls on evaluations, leaderboards and eval sets."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tunix_rt.client import names
from tunix_rt.client.registry.base import DEFAULT_PAGE_SIZE, RegistryCalls
from tunix_rt.client.service_client import capped_page_size, pages, request_id_or_new
from tunix_rt.v1 import dataset_pb2, eval_set_pb2, evaluation_pb2
from tunix_rt.v1 import registry_service_pb2 as pb

EVAL_SETS = "evalSets/"


def eval_set_name(name: str) -> str:
    """`evalSets/{id}` for an id or a full name."""
    return names.full_name("evalSets", name)


def evaluated_on(name: str) -> str:
    """What evaluations are on: an eval set name (`evalSets/...`) as is, else a dataset name."""
    return name.strip() if name.strip().startswith(EVAL_SETS) else names.dataset(name)


class EvaluationCalls(RegistryCalls):
    """Evaluations of model versions and their items, leaderboards, and eval sets (prompts with
    expected answers)."""

    def get_evaluation(self, name: str) -> evaluation_pb2.Evaluation:
        request = pb.GetEvaluationRequest(name=names.evaluation(name))
        response: pb.GetEvaluationResponse = self._stub.GetEvaluation(request, timeout=self.timeout)
        return response.evaluation

    def list_evaluations(
        self,
        *,
        model: str | None = None,
        dataset: str | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[evaluation_pb2.Evaluation]:
        """Evaluations, newest first; `model` is a model (any version) or `model/version`."""
        model_filter = (names.model_version(model) or names.model(model)) if model else ""

        def fetch(token: str) -> tuple[Sequence[evaluation_pb2.Evaluation], str]:
            request = pb.ListEvaluationsRequest(
                model=model_filter,
                dataset=evaluated_on(dataset) if dataset else "",
                page_size=capped_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListEvaluationsResponse = self._stub.ListEvaluations(
                request, timeout=self.timeout
            )
            return response.evaluations, response.next_page_token

        return pages(fetch, limit)

    def list_evaluation_items(
        self, evaluation: str, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[evaluation_pb2.EvaluationItem]:
        def fetch(token: str) -> tuple[Sequence[evaluation_pb2.EvaluationItem], str]:
            request = pb.ListEvaluationItemsRequest(
                evaluation=names.evaluation(evaluation),
                page_size=capped_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListEvaluationItemsResponse = self._stub.ListEvaluationItems(
                request, timeout=self.timeout
            )
            return response.items, response.next_page_token

        return pages(fetch, limit)

    def leaderboard(
        self,
        dataset: str,
        metric: str,
        *,
        lower_is_better: bool = False,
        split: dataset_pb2.DatasetSplit = dataset_pb2.DATASET_SPLIT_UNSPECIFIED,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[evaluation_pb2.LeaderboardEntry]:
        """Model versions ranked by `metric` on the dataset, best first."""

        def fetch(token: str) -> tuple[Sequence[evaluation_pb2.LeaderboardEntry], str]:
            request = pb.GetLeaderboardRequest(
                dataset=evaluated_on(dataset),
                metric=metric,
                lower_is_better=lower_is_better,
                split=split,
                page_size=capped_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.GetLeaderboardResponse = self._stub.GetLeaderboard(
                request, timeout=self.timeout
            )
            return response.entries, response.next_page_token

        return pages(fetch, limit)

    # Eval sets.

    def create_eval_set(
        self,
        eval_set_id: str,
        items: Sequence[eval_set_pb2.EvalSetItem],
        *,
        description: str = "",
        request_id: str | None = None,
    ) -> eval_set_pb2.EvalSet:
        """Creates an eval set with all its items in one call."""
        request = pb.CreateEvalSetRequest(
            eval_set_id=eval_set_id.removeprefix(EVAL_SETS),
            eval_set=eval_set_pb2.EvalSet(description=description),
            items=items,
            request_id=request_id_or_new(request_id),
        )
        response: pb.CreateEvalSetResponse = self._stub.CreateEvalSet(request, timeout=self.timeout)
        return response.eval_set

    def get_eval_set(self, name: str) -> eval_set_pb2.EvalSet:
        request = pb.GetEvalSetRequest(name=eval_set_name(name))
        response: pb.GetEvalSetResponse = self._stub.GetEvalSet(request, timeout=self.timeout)
        return response.eval_set

    def list_eval_sets(
        self, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[eval_set_pb2.EvalSet]:
        """Eval sets, newest first."""

        def fetch(token: str) -> tuple[Sequence[eval_set_pb2.EvalSet], str]:
            request = pb.ListEvalSetsRequest(
                page_size=capped_page_size(page_size, limit), page_token=token
            )
            response: pb.ListEvalSetsResponse = self._stub.ListEvalSets(
                request, timeout=self.timeout
            )
            return response.eval_sets, response.next_page_token

        return pages(fetch, limit)

    def list_eval_set_items(
        self, eval_set: str, *, limit: int | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[eval_set_pb2.EvalSetItem]:
        """An eval set's items, in order."""

        def fetch(token: str) -> tuple[Sequence[eval_set_pb2.EvalSetItem], str]:
            request = pb.ListEvalSetItemsRequest(
                eval_set=eval_set_name(eval_set),
                page_size=capped_page_size(page_size, limit),
                page_token=token,
            )
            response: pb.ListEvalSetItemsResponse = self._stub.ListEvalSetItems(
                request, timeout=self.timeout
            )
            return response.items, response.next_page_token

        return pages(fetch, limit)

    def delete_eval_set(self, name: str) -> None:
        self._stub.DeleteEvalSet(
            pb.DeleteEvalSetRequest(name=eval_set_name(name)), timeout=self.timeout
        )
