"""What every backend reports when training ends, besides the model directory: the model
version's metrics and the library versions for its provenance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import metadata


def library_versions(names: Sequence[str]) -> dict[str, str]:
    """The installed version of each distribution ("absent" when it is not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def final_metrics(
    last: dict[str, float], final_eval: dict[str, float], tokens_per_second: float | None
) -> dict[str, float]:
    """The model version's metrics: the last step's loss and grad norm, the final evaluation and
    the mean training throughput; non-finite values left out."""
    out = {k: v for k, v in last.items() if k in ("loss", "grad_norm")}
    out.update(final_eval)
    if tokens_per_second is not None:
        out["train_tokens_per_second"] = tokens_per_second
    return {k: v for k, v in out.items() if math.isfinite(v)}
