"""Import and export through a real registry and the CLI; bad model directories are refused by
the registry with INVALID_ARGUMENT and leave nothing registered."""

from __future__ import annotations

import io
import json
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from click.testing import Result

from tests.models.interchange import helpers
from tunix_rt.client.registry import RegistryClient
from tunix_rt.models.interchange import safetensors_io
from tunix_rt.models.interchange.archive import CONTENT_TYPE, pack_model_dir
from tunix_rt.v1 import registry_service_pb2 as pb

Cli = Callable[..., Result]

pytestmark = helpers.PYTESTMARK


def _register(registry: RegistryClient, model: str, directory: Path, alias: str) -> str:
    artifact = registry.upload_artifact(pack_model_dir(directory), content_type=CONTENT_TYPE)
    return registry.create_model_version(model, artifact.artifact.name, aliases=[alias]).name


def test_import_then_export_round_trips(
    cli: Cli, registry: RegistryClient, tag: str, tmp_path: Path
) -> None:
    import transformers

    hf = helpers.hf_model("qwen3")
    source = helpers.save_hf_dir(hf, helpers.tokenizer(), tmp_path / "hf")

    result = cli("models", "import", source, "--name", tag, "--alias", "hf")
    assert result.exit_code == 0, result.output
    version = registry.resolve(f"{tag}@hf")
    assert result.output.strip() == version.name
    assert dict(version.provenance) == {"imported_from": str(source), "source": "huggingface"}

    result = cli("models", "export", f"{tag}@hf", tmp_path / "out")
    assert result.exit_code == 0, result.output
    original = safetensors_io.load(source / "model.safetensors")
    exported = safetensors_io.load(tmp_path / "out" / "model.safetensors")
    assert sorted(exported) == sorted(original)
    for name, value in original.items():
        np.testing.assert_array_equal(exported[name], value)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"))
    ids = helpers.token_ids(300)
    np.testing.assert_allclose(
        helpers.torch_logits(loaded, ids), helpers.torch_logits(hf, ids), atol=helpers.ATOL, rtol=0
    )
    assert transformers.AutoTokenizer.from_pretrained(str(tmp_path / "out")).eos_token_id == 2


def test_jax_adapter_version_exports_merged_with_its_base(
    cli: Cli, registry: RegistryClient, tag: str, tmp_path: Path
) -> None:
    """A JAX-trained adapter version: the export downloads its base version, merges, and plain
    transformers computes the adapted JAX model's logits."""
    import transformers

    base_name = f"{tag}-base"
    adapted, base_dir, adapter_dir = helpers.jax_adapter_dirs(tmp_path)
    base_version = _register(registry, base_name, base_dir, "v1")
    # The training worker records the base version's name in the adapter's config.
    config = json.loads((adapter_dir / "config.json").read_text())
    config["tunix_rt"]["adapter"]["base"] = base_version
    (adapter_dir / "config.json").write_text(json.dumps(config))
    _register(registry, tag, adapter_dir, "tuned")

    result = cli("models", "export", f"{tag}@tuned", tmp_path / "out")
    assert result.exit_code == 0, result.output
    loaded = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"))
    ids = helpers.token_ids(512)
    np.testing.assert_allclose(
        helpers.torch_logits(loaded, ids),
        helpers.jax_logits(adapted, ids),
        atol=helpers.ATOL,
        rtol=0,
    )


def test_cli_import_reports_a_bad_directory_and_registers_nothing(
    cli: Cli, registry: RegistryClient, tag: str, tmp_path: Path
) -> None:
    source = helpers.save_hf_dir(helpers.hf_model("llama3"), helpers.tokenizer(), tmp_path / "hf")
    (source / "tokenizer.json").unlink()
    result = cli("models", "import", source, "--name", tag)
    assert result.exit_code == 1
    assert "tokenizer.json: missing" in result.output
    assert [m.name for m in registry.list_models() if m.name == f"models/{tag}"] == []


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def good_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    directory = tmp_path_factory.mktemp("good")
    helpers.save_hf_dir(helpers.hf_model("llama3"), helpers.tokenizer(), directory)
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def _wrong_shape(files: dict[str, bytes]) -> dict[str, bytes]:
    config = json.loads(files["config.json"])
    return {**files, "config.json": json.dumps({**config, "intermediate_size": 96}).encode()}


def _unknown_type(files: dict[str, bytes]) -> dict[str, bytes]:
    config = json.loads(files["config.json"])
    return {**files, "config.json": json.dumps({**config, "model_type": "mamba"}).encode()}


def _config(**changes: Any) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    """A breakage that sets (value) or drops (None) config.json keys."""

    def breakage(files: dict[str, bytes]) -> dict[str, bytes]:
        config = {**json.loads(files["config.json"]), **changes}
        config = {k: v for k, v in config.items() if v is not None}
        return {**files, "config.json": json.dumps(config).encode()}

    return breakage


def _truncated(files: dict[str, bytes]) -> dict[str, bytes]:
    weights = files["model.safetensors"]
    return {**files, "model.safetensors": weights[: len(weights) // 2]}


def _header(
    change: Callable[[dict[str, Any]], None],
) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    """A breakage that edits the safetensors header of one tensor, data left as it is."""

    def breakage(files: dict[str, bytes]) -> dict[str, bytes]:
        raw = files["model.safetensors"]
        (size,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + size])
        change(header["model.norm.weight"])
        text = json.dumps(header).encode()
        return {**files, "model.safetensors": struct.pack("<Q", len(text)) + text + raw[8 + size :]}

    return breakage


@pytest.mark.parametrize(
    ("breakage", "field", "says"),
    [
        (lambda f: {k: v for k, v in f.items() if k != "model.safetensors"}, "weights", "missing"),
        (lambda f: {k: v for k, v in f.items() if k != "config.json"}, "config.json", "missing"),
        (_wrong_shape, "weights.model.layers.0.mlp.up_proj.weight", "expected [96, 64]"),
        (_unknown_type, "config.json.model_type", "unknown architecture 'mamba'"),
        (lambda f: {"model.bin": b"x"}, "config.json", "missing"),
        (_truncated, "model.safetensors", "is truncated"),
        (
            _header(lambda t: t.update(shape=[None])),
            "model.safetensors",
            "dimensions are integers",
        ),
        (
            _header(lambda t: t.update(data_offsets=t["data_offsets"][::-1])),
            "model.safetensors",
            "data_offsets",
        ),
        (
            _config(num_attention_heads=0, head_dim=None),
            "config.json.num_attention_heads",
            "must be a positive integer, got 0",
        ),
        (
            _config(num_key_value_heads=0),
            "config.json.num_key_value_heads",
            "must be a positive integer, got 0",
        ),
        (
            _config(bos_token_id=99999),
            "config.json.bos_token_id",
            "token id 99999 is not in tokenizer.json",
        ),
    ],
    ids=[
        "no-weights",
        "no-config",
        "wrong-shape",
        "unknown-type",
        "not-a-model",
        "truncated-weights",
        "non-integer-dimension",
        "wrong-data-offsets",
        "zero-heads",
        "zero-kv-heads",
        "bos-not-a-token",
    ],
)
def test_registry_refuses_a_bad_model_directory(
    registry: RegistryClient,
    tag: str,
    good_files: dict[str, bytes],
    breakage: Callable[[dict[str, bytes]], dict[str, bytes]],
    field: str,
    says: str,
) -> None:
    registry.stub.CreateModel(pb.CreateModelRequest(model_id=tag))
    artifact = registry.upload_artifact(_tar(breakage(good_files)), content_type=CONTENT_TYPE)
    with pytest.raises(grpc.RpcError) as caught:
        registry.create_model_version(tag, artifact.artifact.name)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"model_version.artifact.{field}: " in caught.value.details()
    assert says in caught.value.details()
    assert list(registry.list_model_versions(tag)) == []


@pytest.mark.parametrize(
    ("name", "kind", "link", "says"),
    [
        ("../escape", tarfile.REGTYPE, "", "member '../escape' escapes the model directory"),
        ("/abs", tarfile.REGTYPE, "", "member '/abs' is an absolute path"),
        ("link", tarfile.SYMTYPE, "../../etc/passwd", "member 'link' is a symbolic link"),
        ("hard", tarfile.LNKTYPE, "config.json", "member 'hard' is a hard link"),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink"],
)
def test_registry_refuses_a_tar_whose_members_escape(
    registry: RegistryClient,
    tag: str,
    good_files: dict[str, bytes],
    name: str,
    kind: bytes,
    link: str,
    says: str,
) -> None:
    """Issue 10, finding 7: such a version was registered and `models export` then failed with a
    traceback; now nothing is created."""
    extra = tarfile.TarInfo(name)
    extra.type, extra.linkname = kind, link
    buffer = io.BytesIO(_tar(good_files))
    with tarfile.open(fileobj=buffer, mode="a") as archive:
        archive.addfile(extra, io.BytesIO(b"") if extra.isfile() else None)
    registry.stub.CreateModel(pb.CreateModelRequest(model_id=tag))
    artifact = registry.upload_artifact(buffer.getvalue(), content_type=CONTENT_TYPE)
    with pytest.raises(grpc.RpcError) as caught:
        registry.create_model_version(tag, artifact.artifact.name)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"model_version.artifact: {says}" in caught.value.details()
    assert list(registry.list_model_versions(tag)) == []


def test_registry_accepts_a_valid_directory_and_other_artifacts(
    registry: RegistryClient, tag: str, good_files: dict[str, bytes]
) -> None:
    artifact = registry.upload_artifact(_tar(good_files), content_type=CONTENT_TYPE)
    assert registry.create_model_version(tag, artifact.artifact.name).version == 1
    # Only tars are model directories: other artifacts are registered as they are.
    other = registry.upload_artifact(b"opaque weights", content_type="application/octet-stream")
    assert registry.create_model_version(tag, other.artifact.name).version == 2


def test_cli_export_reports_a_version_it_cannot_export(
    cli: Cli, registry: RegistryClient, tag: str, good_files: dict[str, bytes], tmp_path: Path
) -> None:
    """A tar registered as an opaque artifact skips the registry's checks; exporting it is a
    one-line error, not a traceback."""
    # notes.txt: bytes of their own (artifacts are stored by content, with their first type).
    bad = {**_config(bos_token_id=99999)(good_files), "notes.txt": tag.encode()}
    artifact = registry.upload_artifact(_tar(bad), content_type="application/octet-stream")
    registry.create_model_version(tag, artifact.artifact.name)
    result = cli("models", "export", f"{tag}/1", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert "cannot export" in result.output
    assert "bos_token_id 99999 is not in tokenizer.json" in result.output
