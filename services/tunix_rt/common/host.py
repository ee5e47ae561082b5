"""What this host is, in words: benchmarks print it beside their figures (the CPU behind a shared
VM changes over time) and a CPU training run's provenance records it as its device kind."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (`AMD EPYC 9B14`) from /proc/cpuinfo; elsewhere what `platform`
    knows (often only the architecture)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, which a container or taskset narrows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe_cpu() -> str:
    """`<model>, <n> cores`: the line a benchmark prints."""
    return f"{cpu_model()}, {cpu_cores()} cores"
