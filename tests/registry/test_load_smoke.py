"""bench/registry_load.py kept working: its core (start the registry, drive clients, SIGKILL,
restart, read back) run small on SQLite, so the maintainer's load test cannot rot unnoticed."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "registry_load.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("registry_load", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_two_clients_for_two_seconds_lose_nothing_across_a_sigkill() -> None:
    script = load_script()
    config = script.LoadConfig(database="sqlite", clients=2, seconds=2.0, batch=20)
    report = asyncio.run(script.run_load(config))
    assert report.failures == [], report.failures
    assert report.acknowledged["traces"] > 0
    assert report.readable == report.acknowledged
    assert sum(report.errors.values()) == 0
    assert report.latencies["BatchCreateTraces"]
    assert len(report.rss_mib) >= 2
