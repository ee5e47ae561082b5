"""The learning-rate schedule both backends use (backends/adamw.py): its shape, and the same values
on the host (Python ints: the torch loop and the reported metric) and traced inside jit (how
optax calls it on the JAX backend)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from tunix_rt.training.backends.adamw import make_schedule
from tunix_rt.training.spec import Hyperparameters

PEAK, RATIO, TOTAL, WARMUP = 1e-3, 0.2, 50, 5


def _hyper(kind: str) -> Hyperparameters:
    return Hyperparameters(schedule=kind, learning_rate=PEAK, min_learning_rate_ratio=RATIO)


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_a_traced_count_gets_the_hosts_values(kind: str) -> None:
    schedule = make_schedule(_hyper(kind), TOTAL, WARMUP)
    on_host = [schedule(s) for s in range(TOTAL)]
    assert all(isinstance(v, float) for v in on_host)
    traced = jax.jit(schedule)
    assert [float(traced(jnp.int32(s))) for s in range(TOTAL)] == pytest.approx(on_host)


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_warmup_rises_to_the_peak_then_decays_to_the_floor(kind: str) -> None:
    schedule = make_schedule(_hyper(kind), TOTAL, WARMUP)
    # The first update already gets peak / warmup, the last warmup update the peak.
    assert [schedule(s) for s in range(WARMUP)] == pytest.approx(
        [PEAK * (s + 1) / WARMUP for s in range(WARMUP)]
    )
    assert schedule(WARMUP) == pytest.approx(PEAK)
    decay = [schedule(s) for s in range(WARMUP, TOTAL)]
    assert decay == sorted(decay, reverse=True)
    floor = PEAK if kind == "constant" else PEAK * RATIO
    assert schedule(TOTAL - 1) == pytest.approx(floor)
    assert schedule(TOTAL + 10) == pytest.approx(floor)  # past the end it stays there
    if kind == "cosine":
        middle = WARMUP + (TOTAL - WARMUP - 1) / 2
        assert schedule(middle) == pytest.approx(PEAK * RATIO + (PEAK - PEAK * RATIO) / 2)


def test_no_warmup_starts_at_the_peak() -> None:
    schedule = make_schedule(_hyper("linear"), 10, 0)
    assert schedule(0) == pytest.approx(PEAK)
    assert schedule(9) == pytest.approx(PEAK * RATIO)
