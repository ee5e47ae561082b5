"""The shape of the tree (DESIGN.md "Layout"): which package may import which, and module size.

The import directions are import-linter contracts in pyproject.toml (`[tool.importlinter]`):
launcher → {registry, training, inference} → models → common, the three services never import
each other, clients/ and services/ never import each other, and framework-free code never
imports JAX or torch. `lint-imports` runs here so that `make test` enforces them.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# Modules allowed past the size limits below, each with the reason. Keep it short.
MODULE_LINES = 500
FUNCTION_LINES = 80
LONG_MODULES: dict[str, str] = {
    "clients/tunix_rt/datagen/families.py": "the task catalog is one module so that a catalog with "
    "another trace format can replace it whole while formats are compared (issue 13)",
}
LONG_FUNCTIONS: dict[str, str] = {}


def _source_files() -> list[Path]:
    """Hand-written Python of the services, the client and the trace generator (generated code
    aside)."""
    files = sorted((ROOT / "services").rglob("*.py"))
    files += sorted((ROOT / "clients" / "tunix_rt" / "client").rglob("*.py"))
    files += sorted((ROOT / "clients" / "tunix_rt" / "datagen").rglob("*.py"))
    return files


def test_import_contracts_hold() -> None:
    # `tunix_rt` is a namespace spread over clients/ and services/; the editable install's
    # finder cannot be walked by import-linter, so the two source roots go on the path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["services", "clients"])}
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_top_level_package_is_in_the_layers() -> None:
    """A new package under services/ must be placed in the layers contract, not float free."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layered = {
        name.strip()
        for contract in config["contracts"]
        if contract["type"] == "layers"
        for layer in contract["layers"]
        for name in layer.split("|")
    }
    packages = {
        f"tunix_rt.{p.name}"
        for p in (ROOT / "services" / "tunix_rt").iterdir()
        if (p / "__init__.py").exists()
    }
    assert packages, "no service packages found"
    assert packages <= layered, f"not in the layers contract: {sorted(packages - layered)}"


def test_modules_and_functions_stay_readable() -> None:
    """No module over MODULE_LINES lines and no function over FUNCTION_LINES lines, unless it is
    listed above with a reason (STYLE.md: files small enough to read in one sitting)."""
    long_modules, long_functions = [], []
    for path in _source_files():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        if len(text.splitlines()) > MODULE_LINES and rel not in LONG_MODULES:
            long_modules.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                key = f"{rel}::{node.name}"
                if length > FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    long_functions.append(f"{key}: {length} lines")
    assert not long_modules, long_modules
    assert not long_functions, long_functions
