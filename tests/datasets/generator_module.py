"""datasets/generator.py, the script that writes and checks the shipped files, imported by path
for the dataset tests; and the task families it draws from (tunix_rt.datagen.families).

There is no importable `datasets` package (and that name belongs to Hugging Face's library), so
the script is loaded from its file under a name no other module can take.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from tunix_rt.datagen import families

__all__ = ["GENERATOR_PATH", "families", "generator"]

GENERATOR_PATH = Path(__file__).resolve().parents[2] / "datasets" / "generator.py"


def _load_generator() -> ModuleType:
    name = "tunix_rt_datasets_generator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:  # mypy resolves the script from the repository root
    from datasets import generator
else:
    generator = _load_generator()
