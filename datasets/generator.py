"""Write or check tunix-rt's shipped reasoning-trace datasets, made by ``tunix_rt.datagen``.

Regenerate every shipped file (the three ``reasoning-*-v1.jsonl`` trace datasets, the
``reasoning-evalset-v1.jsonl`` eval set, and their manifests)::

    .venv/bin/python datasets/generator.py

Check that the shipped files are exactly what the generator produces (exit status 1 if not)::

    .venv/bin/python datasets/generator.py --check

The generator itself is the installed package ``tunix_rt.datagen`` (its ``shipped`` module
declares these files); ``tunix-rt datasets generate`` makes other datasets with it, straight into
the registry. This script only writes and compares files, and re-exports what the dataset tests
and older scripts read from it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tunix_rt.datagen import families as catalog
from tunix_rt.datagen.generation import generate
from tunix_rt.datagen.rows import Meta, serialize, to_jsonl, validate_trace
from tunix_rt.datagen.shipped import (
    CREATED_BY,
    EVAL_SET_SPECS,
    SPECS,
    V1_IDENTITY,
    DatasetSpec,
    EvalSetSpec,
    build_all,
    eval_items,
    stale_files,
)

# Named in every row of the v1 files; kept although the code moved to tunix_rt.datagen.
GENERATOR = V1_IDENTITY.name
GENERATOR_VERSION = V1_IDENTITY.version
DATASET_DIR = Path(__file__).resolve().parent

__all__ = [
    "CREATED_BY",
    "DATASET_DIR",
    "EVAL_SET_SPECS",
    "GENERATOR",
    "GENERATOR_VERSION",
    "SPECS",
    "DatasetSpec",
    "EvalSetSpec",
    "Meta",
    "build_all",
    "catalog",
    "eval_items",
    "generate",
    "main",
    "serialize",
    "to_jsonl",
    "validate_trace",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DATASET_DIR,
        help="where the files go (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate in memory and exit 1 if any file in --out-dir differs; write nothing",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out_dir
    files = build_all()
    if args.check:
        stale = stale_files(files, out_dir)
        for name in stale:
            print(f"differs from the generator: {out_dir / name}", file=sys.stderr)
        if stale:
            print(f"regenerate with: {CREATED_BY}", file=sys.stderr)
            return 1
        print(f"all {len(files)} files in {out_dir} match the generator")
        return 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
        print(f"wrote {out_dir / name} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
