"""protos/tunix_rt.binpb, the descriptor set a client in another language loads instead of
protos/: it holds every file it imports and matches the generated Python code
(`scripts/gen_protos.py --check` keeps it fresh; test_grpc_tooling calls a registry with it)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor

import tunix_rt.v1

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = ROOT / "protos" / "tunix_rt.binpb"


def load() -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())


def test_every_import_is_in_the_set() -> None:
    files = load().file
    names = {f.name for f in files}
    assert {"google/rpc/status.proto", "google/rpc/error_details.proto"} <= names
    for file in files:
        assert set(file.dependency) <= names, file.name
    # A pool of its own (nothing of the default pool) builds from the set alone, in its order.
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.Add(file)
    assert pool.FindMessageTypeByName("google.rpc.Status").fields_by_name["details"]


def generated_files() -> list[FileDescriptor]:
    """The files of the generated tunix_rt.v1 modules (imported, so in the default pool)."""
    return [
        importlib.import_module(f"tunix_rt.v1.{module.name}").DESCRIPTOR
        for module in pkgutil.iter_modules(tunix_rt.v1.__path__)
        if module.name.endswith("_pb2")
    ]


def test_the_set_holds_every_service() -> None:
    in_set = {f"{f.package}.{s.name}" for f in load().file for s in f.service}
    assert in_set == {s.full_name for f in generated_files() for s in f.services_by_name.values()}
    assert {
        "tunix_rt.v1.RegistryService",
        "tunix_rt.v1.TrainingService",
        "tunix_rt.v1.InferenceService",
        "inference.GRPCInferenceService",
    } <= in_set


def without_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        without_json_names(message.nested_type)


def test_the_set_matches_the_generated_code() -> None:
    generated_files()
    # The generated code's own descriptors carry no comments, and protoc leaves the default JSON
    # names out where buf writes them; everything else must be equal.
    for file in load().file:
        if not file.name.startswith("tunix_rt/v1/"):
            continue
        generated = descriptor_pb2.FileDescriptorProto()
        descriptor_pool.Default().FindFileByName(file.name).CopyToProto(generated)
        file.ClearField("source_code_info")
        without_json_names(file.message_type)
        assert file == generated, f"{file.name} differs; run scripts/gen_protos.py"
