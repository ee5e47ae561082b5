"""Model-directory validation (config.json and safetensors headers only) and import preparation,
on directories written with numpy: no framework needed."""

from __future__ import annotations

import functools
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.models.interchange import helpers
from tunix_rt.common.errors import InvalidArgument
from tunix_rt.models import presets
from tunix_rt.models.interchange import layout, safetensors_io
from tunix_rt.models.interchange.archive import pack_model_dir
from tunix_rt.models.interchange.hf_import import prepare_import
from tunix_rt.models.interchange.model_config import hf_config, read_config, write_config
from tunix_rt.models.interchange.validate import validate_model_dir, validate_tar
from tunix_rt.models.presets import ArchitectureConfig


def _tensors(arch: ArchitectureConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(seed)
    return {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in layout.expected_tensors(arch).items()
    }


def hf_dir(path: Path, preset: str = "qwen2-tiny", **config: Any) -> Path:
    """A plain Hugging Face directory (no `tunix_rt` section) of the preset's shapes."""
    arch = presets.get(preset).config
    path.mkdir(parents=True)
    raw = {**hf_config(arch, bos_id=1, eos_id=2, pad_id=0), **config}
    (path / "config.json").write_text(json.dumps(raw))
    save_file(_tensors(arch), str(path / "model.safetensors"), metadata={"format": "pt"})
    helpers.tokenizer().save(path)
    return path


def violations(check: Callable[[], object]) -> dict[str, str]:
    """{field: its descriptions joined by ' | '} of the InvalidArgument `check` raises."""
    with pytest.raises(InvalidArgument) as caught:
        check()
    found: dict[str, list[str]] = {}
    for v in caught.value.violations:
        found.setdefault(v.field, []).append(v.description)
    return {field: " | ".join(texts) for field, texts in found.items()}


def test_valid_directories_pass(tmp_path: Path) -> None:
    for preset in ("llama3-tiny", "qwen2-tiny", "qwen3-tiny"):
        summary = validate_model_dir(hf_dir(tmp_path / preset, preset))
        assert summary.architecture == presets.get(preset).config
        assert summary.kind == "full"


def test_missing_files(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "m")
    (directory / "tokenizer.json").unlink()
    (directory / "model.safetensors").unlink()
    found = violations(lambda: validate_model_dir(directory))
    assert set(found) == {"tokenizer.json", "weights"}
    assert "missing" in found["weights"]
    (directory / "config.json").unlink()
    assert "config.json" in violations(lambda: validate_model_dir(directory))


def test_unparsable_config_and_unknown_architecture(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "m")
    (directory / "config.json").write_text("{not json")
    assert "not valid JSON" in violations(lambda: validate_model_dir(directory))["config.json"]
    (directory / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    found = violations(lambda: validate_model_dir(directory))
    assert "unknown architecture 'gpt2'" in found["config.json.model_type"]


def test_shape_missing_unexpected_and_dtype(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "m", num_key_value_heads=4)  # the tensors have 2 kv heads
    found = violations(lambda: validate_model_dir(directory))
    assert found["weights.model.layers.0.self_attn.k_proj.weight"] == (
        "has shape [64, 128], expected [128, 128] from config.json"
    )

    arch = presets.get("qwen2-tiny").config
    tensors = _tensors(arch)
    del tensors["model.layers.1.self_attn.q_proj.bias"]
    tensors["model.layers.0.self_attn.q_norm.weight"] = np.ones(32, np.float32)
    tensors["model.norm.weight"] = np.ones(128, np.int32)
    directory = hf_dir(tmp_path / "n")
    save_file(tensors, str(directory / "model.safetensors"))
    found = violations(lambda: validate_model_dir(directory))
    assert "model.layers.1.self_attn.q_proj.bias" in found["weights"]  # missing
    assert "model.layers.0.self_attn.q_norm.weight" in found["weights"]  # unexpected
    assert "model.norm.weight (I32)" in found["weights"]  # not a float


def test_unsupported_features_and_disagreeing_sections(tmp_path: Path) -> None:
    directory = hf_dir(
        tmp_path / "m",
        "llama3-tiny",
        rope_parameters={"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0},
        hidden_act="gelu",
    )
    found = violations(lambda: validate_model_dir(directory))
    assert set(found) == {"config.json.rope_parameters", "config.json.hidden_act"}

    ours = tmp_path / "ours"
    tok = helpers.tokenizer()
    arch = presets.get("llama3-tiny").config
    write_config(
        ours,
        arch,
        tokenizer_ids={"bos": 1, "eos": 2, "pad": 0},
        tokenizer_description=tok.describe(),
        backend="jax",
        chat_template="plain",
        training_step=0,
    )
    tok.save(ours)
    save_file(_tensors(arch), str(ours / "model.safetensors"))
    validate_model_dir(ours)
    raw = json.loads((ours / "config.json").read_text())
    (ours / "config.json").write_text(json.dumps({**raw, "hidden_size": 64}))
    found = violations(lambda: validate_model_dir(ours))
    assert "hidden_size" in " ".join(found)


def test_tied_checkpoint_may_repeat_lm_head(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "m", "llama3-tiny", tie_word_embeddings=True)
    assert validate_model_dir(directory).architecture.tie_embeddings


def test_adapter_directory_needs_its_adapter_file(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "m")
    raw = json.loads((directory / "config.json").read_text())
    arch = presets.get("qwen2-tiny").config
    ours = {"architecture": arch.to_json(), "adapter": {"format": "peft", "rank": 4}}
    (directory / "config.json").write_text(json.dumps({**raw, "tunix_rt": ours}))
    found = violations(lambda: validate_model_dir(directory))
    assert set(found) == {"adapter_model.safetensors", "adapter_config.json"}


def test_tar_of_a_directory(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "m")
    validate_tar(io.BytesIO(pack_model_dir(directory)), "model_version.artifact")
    (directory / "tokenizer.json").unlink()
    found = violations(
        lambda: validate_tar(io.BytesIO(pack_model_dir(directory)), "model_version.artifact")
    )
    assert set(found) == {"model_version.artifact.tokenizer.json"}
    found = violations(lambda: validate_tar(io.BytesIO(b"weights"), "model_version.artifact"))
    assert "not a tar archive" in found["model_version.artifact"]


def _with_members(directory: Path, *extra: tarfile.TarInfo) -> bytes:
    """The packed directory with `extra` members appended."""
    buffer = io.BytesIO(pack_model_dir(directory))
    with tarfile.open(fileobj=buffer, mode="a") as archive:
        for member in extra:
            archive.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return buffer.getvalue()


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 1
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, size if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "says"),
    [
        (_member("../x"), "member '../x' escapes the model directory"),
        (_member("sub/../../x"), "member 'sub/../../x' escapes the model directory"),
        (_member("/etc/x"), "member '/etc/x' is an absolute path"),
        (_member("link", tarfile.SYMTYPE, "/etc/passwd"), "member 'link' is a symbolic link"),
        (_member("inside", tarfile.SYMTYPE, "config.json"), "member 'inside' is a symbolic link"),
        (_member("hard", tarfile.LNKTYPE, "config.json"), "member 'hard' is a hard link"),
        (_member("dev", tarfile.CHRTYPE), "member 'dev' is not a regular file or directory"),
        (_member("fifo", tarfile.FIFOTYPE), "member 'fifo' is not a regular file or directory"),
        (_member("config.json/x"), "member 'config.json/x' needs a file and a directory"),
        (_member("x" * 5000 + "/../../y"), "member '" + "x" * 120 + "...' escapes"),
    ],
    ids=[
        "dotdot",
        "dotdot-inside",
        "absolute",
        "symlink-out",
        "symlink-in",
        "hardlink",
        "device",
        "fifo",
        "under-a-file",
        "long-name",
    ],
)
def test_tar_members_outside_the_directory_are_refused(
    tmp_path: Path, member: tarfile.TarInfo, says: str
) -> None:
    # Issue 10, finding 7: such tars were registered, and unpacking them failed later.
    data = _with_members(hf_dir(tmp_path / "m"), member)
    found = violations(lambda: validate_tar(io.BytesIO(data), "model_version.artifact"))
    assert set(found) == {"model_version.artifact"}
    assert says in found["model_version.artifact"]
    assert len(found["model_version.artifact"]) < 300


def test_tar_members_that_make_a_file_and_a_directory_of_one_path_are_refused(
    tmp_path: Path,
) -> None:
    directory = hf_dir(tmp_path / "m")
    for first, second in [("sub/x", "sub"), ("sub", "sub/x")]:
        data = io.BytesIO(_with_members(directory, _member(first), _member(second)))
        found = violations(functools.partial(validate_tar, data, "model_version.artifact"))
        assert found == {
            "model_version.artifact": f"member {second!r} needs a file and a directory at one path"
        }
    dir_then_file = _with_members(directory, _member("sub", tarfile.DIRTYPE), _member("sub"))
    found = violations(lambda: validate_tar(io.BytesIO(dir_then_file), "model_version.artifact"))
    assert "member 'sub' needs a file and a directory" in found["model_version.artifact"]


def test_tar_member_problems_are_listed_up_to_five(tmp_path: Path) -> None:
    members = [_member(f"../x{n}") for n in range(8)]
    data = _with_members(hf_dir(tmp_path / "m"), *members)
    found = violations(lambda: validate_tar(io.BytesIO(data), "model_version.artifact"))
    assert found["model_version.artifact"].count("escapes") == 5
    assert "and 3 more such members" in found["model_version.artifact"]


def test_tar_with_directories_and_dot_prefixes_passes(tmp_path: Path) -> None:
    # What `tar cf model.tar -C dir .` writes: `./`, `./sub/`, `./config.json` ...
    directory = hf_dir(tmp_path / "m")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(directory, arcname=".")
    validate_tar(io.BytesIO(buffer.getvalue()), "model_version.artifact")


def test_prepare_import_merges_shards_and_adds_our_section(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "hf", "llama3-tiny")
    tensors = safetensors_io.load(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    names = sorted(tensors)
    half = len(names) // 2
    for n, part in enumerate((names[:half], names[half:]), start=1):
        save_file(
            {k: tensors[k].astype(np.float16) for k in part},
            str(directory / f"model-0000{n}-of-00002.safetensors"),
        )
    out = prepare_import(directory, tmp_path / "out", chat_template="chatml")
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    config = read_config(out)
    assert config.architecture == presets.get("llama3-tiny").config
    assert (config.backend, config.chat_template) == ("hf", "chatml")
    imported = safetensors_io.load(out / "model.safetensors")
    assert sorted(imported) == names
    for name in names:
        np.testing.assert_array_equal(imported[name], tensors[name].astype(np.float16))
    validate_model_dir(out)


def _with_header(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrites model.norm.weight's header entry of `directory`'s weights, data unchanged."""
    path = directory / "model.safetensors"
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    change(header["model.norm.weight"])
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda t: t.update(shape=[True]), "dimensions are integers"),
        (lambda t: t.update(shape=[-128]), "dimensions are integers"),
        (lambda t: t.update(shape=[64]), "takes 256 bytes"),  # 128 floats stored
        (lambda t: t.update(data_offsets=[0]), "expected [start, end]"),
        (lambda t: t.update(dtype="Q7"), "unknown dtype"),
    ],
    ids=["bool-dimension", "negative-dimension", "size-mismatch", "one-offset", "unknown-dtype"],
)
def test_malformed_headers_name_the_file(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], says: str
) -> None:
    directory = hf_dir(tmp_path / "m", "llama3-tiny")
    _with_header(directory, change)
    found = violations(lambda: validate_model_dir(directory))
    # Only the file: its tensors are not also reported missing.
    assert set(found) == {"model.safetensors"}
    assert says in found["model.safetensors"]


def test_weights_longer_or_shorter_than_their_header(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "m", "llama3-tiny")
    weights = directory / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data + b"\0" * 4)
    assert (
        "longer than its tensors"
        in violations(lambda: validate_model_dir(directory))["model.safetensors"]
    )
    weights.write_bytes(data[:-4])
    found = violations(lambda: validate_tar(io.BytesIO(pack_model_dir(directory)), "artifact"))
    assert set(found) == {"artifact.model.safetensors"}
    assert f"is truncated: {len(data) - 4} bytes" in found["artifact.model.safetensors"]
    with pytest.raises(safetensors_io.HeaderError, match="truncated"):
        safetensors_io.load(weights)


def test_non_positive_sizes_are_violations_not_crashes(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "m", "llama3-tiny", num_attention_heads=0, head_dim=None)
    found = violations(lambda: validate_model_dir(directory))
    assert found == {"config.json.num_attention_heads": "must be a positive integer, got 0"}

    ours = hf_dir(tmp_path / "ours", "llama3-tiny")
    raw = json.loads((ours / "config.json").read_text())
    arch = {**presets.get("llama3-tiny").config.to_json(), "num_kv_heads": 0, "head_dim": "16"}
    (ours / "config.json").write_text(json.dumps({**raw, "tunix_rt": {"architecture": arch}}))
    found = violations(lambda: validate_model_dir(ours))
    assert set(found) == {
        "config.json.tunix_rt.architecture.num_kv_heads",
        "config.json.tunix_rt.architecture.head_dim",
    }


def test_special_ids_must_be_tokens(tmp_path: Path) -> None:
    directory = hf_dir(tmp_path / "m", "llama3-tiny", bos_token_id=99999, eos_token_id=[2, 5000])
    found = violations(lambda: prepare_import(directory, tmp_path / "out"))
    assert found == {
        "config.json.bos_token_id": "token id 99999 is not in tokenizer.json",
        "config.json.eos_token_id": "token id 5000 is not in tokenizer.json",
    }
    assert not (tmp_path / "out").exists()
