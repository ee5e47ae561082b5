"""Regenerates the Python messages, gRPC stubs and .pyi stubs under clients/ from protos/, and
protos/tunix_rt.binpb, the self-contained descriptor set for clients in other languages.

Run: `.venv/bin/python scripts/gen_protos.py` (or `make protos`). `--check` regenerates into a
temporary directory and fails when the committed code or descriptor set differs, which is what
CI runs (`make lint`).
It also copies the google/rpc protos from the installed googleapis-common-protos package into
build/proto-deps/, the second module of buf.yaml, because buf cannot fetch them without a network.

The Open Inference Protocol proto (protos/inference/grpc_service.proto, package `inference`) is
generated as `tunix_rt.v1.oip_grpc_service_pb2`: it is staged under tunix_rt/v1/ for protoc so
the generated stub imports it from our package instead of a top-level `inference` module, while
its proto package, and so the wire names (`/inference.GRPCInferenceService/ModelInfer`), stay the
protocol's.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import google.rpc
import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "clients"
PACKAGE_DIR = Path("tunix_rt") / "v1"
DEPS = ROOT / "build" / "proto-deps"
OIP_PROTO = PROTOS / "inference" / "grpc_service.proto"
OIP_STAGED = PACKAGE_DIR / "oip_grpc_service.proto"
DESCRIPTOR_SET = PROTOS / "tunix_rt.binpb"


def copy_deps() -> Path:
    """Copies google/rpc/*.proto into build/proto-deps and returns that directory."""
    target = DEPS / "google" / "rpc"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("status.proto", "error_details.proto", "code.proto"):
        src = Path(next(iter(google.rpc.__path__))) / name
        shutil.copyfile(src, target / name)
    return DEPS


def generate(out: Path) -> None:
    """Runs protoc (from grpcio-tools) over every proto into `out`."""
    deps = copy_deps()
    wkt = Path(next(iter(grpc_tools.__path__))) / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / PACKAGE_DIR).glob("*.proto"))
    with tempfile.TemporaryDirectory() as staging:
        staged = Path(staging) / OIP_STAGED
        staged.parent.mkdir(parents=True)
        shutil.copyfile(OIP_PROTO, staged)
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{staging}",
            f"-I{deps}",
            f"-I{wkt}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *sources,
            str(staged),
        ]
        (out / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
        subprocess.run(cmd, check=True, cwd=PROTOS)
    # An explicit package marker so mypy and setuptools treat the generated code as a package.
    (out / PACKAGE_DIR / "__init__.py").write_text('"""Generated protobuf code: do not edit."""\n')


def build_descriptor_set(target: Path) -> None:
    """Writes the descriptor set of protos/ and all its imports to `target` with buf."""
    copy_deps()
    # buf-bin installs buf beside the virtualenv's python, which need not be on PATH.
    beside_python = Path(sys.executable).with_name("buf")
    buf = str(beside_python) if beside_python.exists() else shutil.which("buf")
    if buf is None:
        raise SystemExit("buf is not installed: run `make bootstrap` (it comes with buf-bin)")
    cmd = [buf, "build", "--as-file-descriptor-set", "-o", str(target)]
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code is stale")
    args = parser.parse_args()
    if not args.check:
        for old in (OUT / PACKAGE_DIR).glob("*_pb2*.py*"):
            old.unlink()
        generate(OUT)
        build_descriptor_set(DESCRIPTOR_SET)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh, committed = Path(tmp) / PACKAGE_DIR, OUT / PACKAGE_DIR
        names = sorted({p.name for p in fresh.iterdir()} | {p.name for p in committed.iterdir()})
        names = [n for n in names if n != "__pycache__"]
        _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
        stale = [str((OUT / PACKAGE_DIR / name).relative_to(ROOT)) for name in mismatch + errors]
        fresh_set = Path(tmp) / DESCRIPTOR_SET.name
        build_descriptor_set(fresh_set)
        if not DESCRIPTOR_SET.exists() or not filecmp.cmp(fresh_set, DESCRIPTOR_SET, shallow=False):
            stale.append(str(DESCRIPTOR_SET.relative_to(ROOT)))
        if stale:
            print(f"generated code is stale: {stale}; run scripts/gen_protos.py")
            return 1
    print("generated code and descriptor set are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
