"""Model FLOPs utilisation in a job's metric stream, the same for both backends.

`MfuReporter` wraps a backend's Reporter: to every step's metrics that carry `tokens_per_second`
(non-padding tokens trained per second) it adds

    model_flops_per_token      forward + backward FLOPs of one trained token (models.flops);
                               with the first such step of the attempt only: it never changes
    achieved_flops_per_second  model_flops_per_token * tokens_per_second
    mfu                        achieved ÷ (the peak of one of the job's devices * their count),
                               the bfloat16 peak when the job computes in bfloat16, else float32

and leaves every other event as it is. The peak comes from the training service's device
inventory (training.peak_flops). No framework imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunix_rt.models.flops import training_flops
from tunix_rt.models.lora import LoraSpec
from tunix_rt.models.presets import ArchitectureConfig
from tunix_rt.training import peak_flops
from tunix_rt.training.backends.base import Reporter


@dataclass(frozen=True)
class FlopsMeter:
    """What turns a job's tokens/s into FLOP/s and MFU."""

    flops_per_token: int
    attention_share: float  # of flops_per_token (models.flops: the row-length convention)
    peak: peak_flops.Peak | None  # one device's; None when unknown (no `mfu` then)
    device_count: int
    bfloat16: bool  # the job's matmuls run in bfloat16

    @classmethod
    def of(
        cls,
        arch: ArchitectureConfig,
        seq_len: int,
        lora: LoraSpec | None,
        *,
        kind: str,
        device_count: int,
        device_name: str,
        bfloat16: bool,
        processes: int = 1,
    ) -> FlopsMeter:
        """The meter of a job training `arch` on `[B, seq_len]` rows on `device_count` devices
        of `kind` (`gpu`/`cpu`) named `device_name`, over `processes` processes that each hold
        the devices the service handed this one (peak_flops.for_job)."""
        counted = training_flops(arch, seq_len, lora)
        peak, count = peak_flops.for_job(kind, device_count, device_name, processes)
        return cls(counted.per_token, counted.attention_share, peak, count, bfloat16)

    @property
    def peak_flops_per_second(self) -> float:
        """The job's peak: one device's (in its compute dtype) * the devices; 0 when unknown."""
        if self.peak is None:
            return 0.0
        return self.peak.for_dtype(self.bfloat16) * self.device_count

    def values(self, tokens_per_second: float) -> dict[str, float]:
        achieved = self.flops_per_token * tokens_per_second
        out = {"achieved_flops_per_second": achieved}
        if self.peak_flops_per_second > 0:
            out["mfu"] = achieved / self.peak_flops_per_second
        return out

    def provenance(self, mean_tokens_per_second: float | None) -> dict[str, Any]:
        """The model version's record of the count, the peak used and the mean MFU."""
        out: dict[str, Any] = {
            "model_flops_per_token": self.flops_per_token,
            "model_flops_attention_share": round(self.attention_share, 4),
            "peak_flops_per_second": self.peak_flops_per_second,
            "peak_flops_dtype": "bfloat16" if self.bfloat16 else "float32",
            "peak_flops_source": self.peak.source if self.peak else "unknown",
        }
        if mean_tokens_per_second is not None:
            out.update({f"mean_{k}": v for k, v in self.values(mean_tokens_per_second).items()})
        return out


class MfuReporter:
    """A Reporter that adds the meter's metrics to each step's throughput (module docstring)."""

    def __init__(self, inner: Reporter, meter: FlopsMeter) -> None:
        self.inner, self.meter = inner, meter
        self._announced = False

    def metrics(self, step: int, values: dict[str, float]) -> None:
        rate = values.get("tokens_per_second")
        if rate is not None:
            values = {**values, **self.meter.values(rate)}
            if not self._announced:
                values["model_flops_per_token"] = float(self.meter.flops_per_token)
                self._announced = True
        self.inner.metrics(step, values)

    def log(self, message: str, level: str = "INFO") -> None:
        self.inner.log(message, level)

    def phase(self, phase: str) -> None:
        self.inner.phase(phase)

    def progress(self, step: int, total_steps: int, epoch: float) -> None:
        self.inner.progress(step, total_steps, epoch)

    def checkpoint(self, step: int, path: str, metrics: dict[str, float]) -> None:
        self.inner.checkpoint(step, path, metrics)

    def should_stop(self) -> bool:
        return self.inner.should_stop()
