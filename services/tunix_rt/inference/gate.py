"""The regression gate: compares a candidate's metrics with a baseline's, metric by metric.

Pure functions over metric maps and the gate's proto messages; finding or making the baseline's
evaluation is the evaluation module's job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from tunix_rt.common.errors import FieldViolation, InvalidArgument
from tunix_rt.v1 import regression_gate_pb2 as gpb

HIGHER = gpb.METRIC_DIRECTION_HIGHER_IS_BETTER
LOWER = gpb.METRIC_DIRECTION_LOWER_IS_BETTER
# Metric names (before any `/category=...` breakdown) where a smaller value is an improvement.
_LOWER_IS_BETTER = re.compile(
    r"(^|_)(loss|perplexity|latency|latency_seconds|seconds|time|error|errors|error_rate)$"
    r"|^mean_latency_seconds$|^mean_completion_tokens$|^mean_reasoning_tokens$"
)


def default_direction(metric: str) -> gpb.MetricDirection:
    """The direction of a metric the caller left unspecified: lower is better for losses,
    latencies, error counts and token costs, higher for everything else (accuracies, rates)."""
    base = metric.split("/", 1)[0]
    return LOWER if _LOWER_IS_BETTER.search(base) else HIGHER


def check(gate: gpb.RegressionGate, field: str = "regression_gate") -> None:
    """Raises InvalidArgument naming each bad field of a requested gate."""
    violations = []
    if not gate.baseline and not gate.baseline_evaluation:
        violations.append(FieldViolation(f"{field}.baseline", "is required"))
    if not gate.thresholds:
        violations.append(FieldViolation(f"{field}.thresholds", "needs at least one metric"))
    seen: set[str] = set()
    for n, threshold in enumerate(gate.thresholds):
        where = f"{field}.thresholds[{n}]"
        if not threshold.metric:
            violations.append(FieldViolation(f"{where}.metric", "is required"))
        elif threshold.metric in seen:
            violations.append(FieldViolation(f"{where}.metric", "is listed twice"))
        seen.add(threshold.metric)
        if threshold.direction not in (0, HIGHER, LOWER):
            violations.append(FieldViolation(f"{where}.direction", "is not a MetricDirection"))
        for name in ("max_regression", "max_relative_regression"):
            if threshold.HasField(name):
                value = getattr(threshold, name)
                if not math.isfinite(value) or value < 0:
                    violations.append(FieldViolation(f"{where}.{name}", "must be at least 0"))
    if violations:
        raise InvalidArgument.fields(violations)


def compare(
    gate: gpb.RegressionGate,
    baseline: Mapping[str, float],
    candidate: Mapping[str, float],
) -> gpb.RegressionGateResult:
    """The gate's outcome: one comparison per metric both sides hold, gated metrics first in
    request order, then the rest by name. A gated metric missing on either side fails."""
    result = gpb.RegressionGateResult(passed=True)
    gated = {t.metric: t for t in gate.thresholds}
    for threshold in gate.thresholds:
        metric = threshold.metric
        if metric not in baseline or metric not in candidate:
            # Nothing to compare means nothing proves the metric did not worsen.
            result.comparisons.append(
                gpb.MetricComparison(
                    metric=metric,
                    direction=_direction(metric, threshold),
                    baseline_value=baseline.get(metric, 0.0),
                    candidate_value=candidate.get(metric, 0.0),
                    gated=True,
                    passed=False,
                )
            )
            result.passed = False
            continue
        comparison = _compare(metric, threshold, baseline[metric], candidate[metric])
        result.comparisons.append(comparison)
        result.passed = result.passed and comparison.passed
    for metric in sorted(set(baseline) & set(candidate) - set(gated)):
        result.comparisons.append(_compare(metric, None, baseline[metric], candidate[metric]))
    return result


def _direction(metric: str, threshold: gpb.MetricThreshold | None) -> gpb.MetricDirection:
    if threshold is not None and threshold.direction in (HIGHER, LOWER):
        return threshold.direction
    return default_direction(metric)


def _compare(
    metric: str, threshold: gpb.MetricThreshold | None, base: float, cand: float
) -> gpb.MetricComparison:
    direction = _direction(metric, threshold)
    regression = (base - cand) if direction == HIGHER else (cand - base)
    relative = regression / abs(base) if base != 0 else (0.0 if regression <= 0 else math.inf)
    passed = True
    if threshold is not None:
        limits_set = threshold.HasField("max_regression") or threshold.HasField(
            "max_relative_regression"
        )
        # A tiny tolerance keeps float noise (0.1 + 0.2 style) from failing an exact threshold.
        eps = 1e-12
        if threshold.HasField("max_regression") and regression > threshold.max_regression + eps:
            passed = False
        if (
            threshold.HasField("max_relative_regression")
            and relative > threshold.max_relative_regression + eps
        ):
            passed = False
        if not limits_set and regression > eps:
            passed = False
    return gpb.MetricComparison(
        metric=metric,
        direction=direction,
        baseline_value=base,
        candidate_value=cand,
        regression=regression,
        relative_regression=relative,
        gated=threshold is not None,
        passed=passed,
    )
