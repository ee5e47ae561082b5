"""Checks that a model directory (ours or a plain Hugging Face one) is complete and consistent,
reading only config.json and the safetensors headers, so the registry can afford it on every
registration. Everything wrong is reported at once, as InvalidArgument field violations.

    validate_model_dir(Path("ckpt"))          # a directory on disk
    validate_tar(open("model.tar", "rb"), field="model_version.artifact")   # a packed one
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from tunix_rt.common.errors import FieldViolation, InvalidArgument
from tunix_rt.models.interchange import layout, safetensors_io
from tunix_rt.models.interchange.archive import member_problems
from tunix_rt.models.interchange.model_config import (
    ADAPTER_FILE,
    CONFIG_FILE,
    FAMILIES,
    ConfigKeyError,
    architecture_from_hf,
    size_problems,
    unsupported_features,
)
from tunix_rt.models.presets import ArchitectureConfig

TOKENIZER_FILE = "tokenizer.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
MAX_CONFIG_BYTES = 1 << 20
# Real tokenizer.json files are a few MB; beyond this the special-token check is skipped.
MAX_TOKENIZER_BYTES = 64 << 20
_LISTED = 5  # how many tensor names a message lists before "and N more"


class Source(Protocol):
    """The files of a model directory, wherever they are stored."""

    def names(self) -> set[str]: ...

    def open(self, name: str) -> IO[bytes]: ...

    def size(self, name: str) -> int: ...


@dataclass(frozen=True)
class Summary:
    """What a valid directory holds."""

    architecture: ArchitectureConfig
    config: dict[str, Any]
    kind: str  # "full" | "adapter" (tunix names) | "peft"
    weight_files: tuple[str, ...]


class DirSource:
    def __init__(self, path: Path) -> None:
        self.path = path

    def names(self) -> set[str]:
        return {p.name for p in self.path.iterdir() if p.is_file()}

    def open(self, name: str) -> IO[bytes]:
        return open(self.path / name, "rb")

    def size(self, name: str) -> int:
        return (self.path / name).stat().st_size


class TarSource:
    """Top-level regular files of a tar archive (`./name` counts as `name`)."""

    def __init__(self, archive: tarfile.TarFile) -> None:
        self.archive = archive
        self.members = {
            m.name.removeprefix("./"): m
            for m in archive.getmembers()
            if m.isfile() and "/" not in m.name.removeprefix("./")
        }

    def names(self) -> set[str]:
        return set(self.members)

    def open(self, name: str) -> IO[bytes]:
        handle = self.archive.extractfile(self.members[name])
        if handle is None:  # only for non-files, which `members` excludes
            raise FileNotFoundError(name)
        return handle

    def size(self, name: str) -> int:
        return int(self.members[name].size)


def _join(names: list[str]) -> str:
    more = len(names) - _LISTED
    return ", ".join(names[:_LISTED]) + (f" and {more} more" if more > 0 else "")


class _Checker:
    def __init__(self, source: Source, field: str) -> None:
        self.source, self.field = source, field
        self.violations: list[FieldViolation] = []
        self.unreadable = False  # some weights file is not a whole safetensors file

    def fail(self, where: str, message: str) -> None:
        field = f"{self.field}.{where}" if self.field else where
        self.violations.append(FieldViolation(field, message))

    def config(self, files: set[str]) -> dict[str, Any] | None:
        if CONFIG_FILE not in files:
            self.fail(CONFIG_FILE, "missing: a model directory needs config.json")
            return None
        with self.source.open(CONFIG_FILE) as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            self.fail(CONFIG_FILE, f"larger than {MAX_CONFIG_BYTES} bytes")
            return None
        try:
            config = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            self.fail(CONFIG_FILE, f"is not valid JSON ({error})")
            return None
        if not isinstance(config, dict):
            self.fail(CONFIG_FILE, "is not a JSON object")
            return None
        return config

    def architecture(self, config: dict[str, Any]) -> ArchitectureConfig | None:
        model_type = config.get("model_type")
        if model_type not in FAMILIES:
            self.fail(
                f"{CONFIG_FILE}.model_type",
                f"unknown architecture {model_type!r}; supported: {', '.join(sorted(FAMILIES))}",
            )
            return None
        for key, why in unsupported_features(config):
            self.fail(f"{CONFIG_FILE}.{key}", why)
        ours = config.get("tunix_rt")
        try:
            if isinstance(ours, dict):
                arch = ArchitectureConfig.from_json(ours["architecture"])
            else:
                arch = architecture_from_hf(config)
        except ConfigKeyError as error:
            self.fail(f"{CONFIG_FILE}.{error.key}", str(error).removeprefix(error.key + " "))
            return None
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            self.fail(CONFIG_FILE, f"does not describe the architecture: {error!r}")
            return None
        # Checked before anything divides by a head count or builds a shape from a size.
        bad_sizes = size_problems(arch)
        for key, why in bad_sizes:
            self.fail(f"{CONFIG_FILE}.tunix_rt.architecture.{key}", why)
        if bad_sizes:
            return None
        if isinstance(ours, dict):
            self.agree(config, arch)
        if arch.num_heads % arch.num_kv_heads:
            self.fail(f"{CONFIG_FILE}.num_key_value_heads", "must divide num_attention_heads")
        return arch

    def agree(self, config: dict[str, Any], arch: ArchitectureConfig) -> None:
        """Our `tunix_rt.architecture` and the HF keys (what transformers reads) must agree."""
        try:
            hf = architecture_from_hf(config).to_json()
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            self.fail(CONFIG_FILE, f"Hugging Face keys are incomplete: {error!r}")
            return
        for key, value in arch.to_json().items():
            if hf[key] != value:
                self.fail(
                    f"{CONFIG_FILE}.tunix_rt.architecture.{key}",
                    f"is {value!r} but the Hugging Face keys say {hf[key]!r}",
                )

    def headers(self, files: list[str]) -> dict[str, tuple[str, tuple[int, ...]]]:
        found: dict[str, tuple[str, tuple[int, ...]]] = {}
        for name in files:
            try:
                with self.source.open(name) as handle:
                    header = safetensors_io.read_header(handle)
                    data_start = handle.tell()
            except safetensors_io.HeaderError as error:
                self.fail(name, f"is not a safetensors file: {error}")
                self.unreadable = True
                continue
            # The header alone says nothing of the data: a truncated file has a whole header.
            want, size = data_start + safetensors_io.data_end(header), self.source.size(name)
            if size != want:
                problem = "truncated" if size < want else "longer than its tensors"
                self.fail(name, f"is {problem}: {size} bytes, its header describes {want}")
                self.unreadable = True
                continue
            for tensor, entry in header.items():
                found[tensor] = (entry["dtype"], tuple(int(d) for d in entry["shape"]))
        non_float = sorted(
            f"{t} ({dtype})"
            for t, (dtype, _) in found.items()
            if dtype not in safetensors_io.FLOAT_DTYPES
        )
        if non_float:
            self.fail("weights", f"tensors must be float (F32/F16/BF16): {_join(non_float)}")
        return found

    def full_weights(self, arch: ArchitectureConfig, files: set[str]) -> tuple[str, ...]:
        weight_files = sorted(n for n in files if n.endswith(".safetensors"))
        weight_files = [n for n in weight_files if n not in (ADAPTER_FILE, PEFT_WEIGHTS)]
        if not weight_files:
            self.fail("weights", "missing: no *.safetensors weights file (model.safetensors)")
            return ()
        found = self.headers(weight_files)
        expected = layout.expected_tensors(arch)
        allowed = {**expected, **layout.optional_tensors(arch)}
        missing = sorted(set(expected) - set(found))
        if missing and not self.unreadable:  # a bad file's tensors are reported as the file
            self.fail("weights", f"missing tensors: {_join(missing)}")
        unexpected = sorted(
            t for t in found if t not in allowed and not layout.IGNORED.fullmatch(t)
        )
        if unexpected:
            self.fail("weights", f"unexpected tensors for {arch.family}: {_join(unexpected)}")
        for tensor in sorted(set(found) & set(allowed)):
            shape, want = found[tensor][1], allowed[tensor]
            if shape != want:
                self.fail(
                    f"weights.{tensor}",
                    f"has shape {list(shape)}, expected {list(want)} from config.json",
                )
        return tuple(weight_files)

    def special_tokens(self, config: dict[str, Any]) -> None:
        """The bos/eos/pad ids of the config are tokens of tokenizer.json (export writes their
        token strings, and generation stops on eos). Parsed as plain JSON: no tokenizer
        library in the registry."""
        named = _special_token_ids(config)
        if not named:
            return
        with self.source.open(TOKENIZER_FILE) as handle:
            raw = handle.read(MAX_TOKENIZER_BYTES + 1)
        if len(raw) > MAX_TOKENIZER_BYTES:
            return
        try:
            known = token_ids(json.loads(raw))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            self.fail(TOKENIZER_FILE, f"is not valid JSON ({error})")
            return
        if known is None:  # a model type whose vocabulary layout we do not know
            return
        for key, value in named:
            if not isinstance(value, int) or isinstance(value, bool):
                self.fail(f"{CONFIG_FILE}.{key}", f"must be an integer token id, got {value!r}")
            elif value not in known:
                self.fail(f"{CONFIG_FILE}.{key}", f"token id {value} is not in {TOKENIZER_FILE}")

    def adapter_weights(self, config: dict[str, Any], files: set[str]) -> tuple[str, str]:
        adapter = config["tunix_rt"]["adapter"]
        peft = isinstance(adapter, dict) and adapter.get("format") == "peft"
        needed = [PEFT_WEIGHTS, PEFT_CONFIG] if peft else [ADAPTER_FILE]
        for name in needed:
            if name not in files:
                self.fail(name, "missing: the config names a LoRA adapter")
        if all(n in files for n in needed):
            found = self.headers([needed[0]])
            if not found:
                self.fail(needed[0], "holds no tensors")
        return ("peft" if peft else "adapter"), needed[0]


def _special_token_ids(config: dict[str, Any]) -> list[tuple[str, object]]:
    """(config key, id) of the special tokens, from where hf_export.special_ids reads them: our
    `tunix_rt.tokenizer` when it names all three, else the HF keys that are set."""
    ours = config.get("tunix_rt")
    tokenizer = ours.get("tokenizer") if isinstance(ours, dict) else None
    if isinstance(tokenizer, dict) and all(f"{k}_id" in tokenizer for k in ("bos", "eos", "pad")):
        return [(f"tunix_rt.tokenizer.{k}_id", tokenizer[f"{k}_id"]) for k in ("bos", "eos", "pad")]
    named: list[tuple[str, object]] = []
    for k in ("bos", "eos", "pad"):
        value = config.get(f"{k}_token_id")
        values = value if isinstance(value, list) else [value]  # eos may be a list
        named.extend((f"{k}_token_id", v) for v in values if v is not None)
    return named


def token_ids(tokenizer: object) -> set[int] | None:
    """The ids a parsed tokenizer.json knows (its model's vocabulary plus added tokens); None
    for a layout this does not understand."""
    if not isinstance(tokenizer, dict):
        return None
    model = tokenizer.get("model")
    vocab = model.get("vocab") if isinstance(model, dict) else None
    added = {
        t["id"]
        for t in tokenizer.get("added_tokens") or []
        if isinstance(t, dict) and isinstance(t.get("id"), int)
    }
    if isinstance(vocab, dict):  # BPE, WordPiece, WordLevel: token -> id
        return {i for i in vocab.values() if isinstance(i, int)} | added
    if isinstance(vocab, list):  # Unigram: [token, score] pairs, ids by position
        return set(range(len(vocab))) | added
    return None


def validate_source(source: Source, field: str = "") -> Summary:
    """Checks the directory `source` holds; InvalidArgument listing every problem, each under
    `field.<file or key>`."""
    checker = _Checker(source, field)
    files = source.names()
    config = checker.config(files)
    if TOKENIZER_FILE not in files:
        checker.fail(TOKENIZER_FILE, "missing: a model directory needs its tokenizer")
    arch = checker.architecture(config) if config is not None else None
    if config is not None and TOKENIZER_FILE in files:
        checker.special_tokens(config)
    kind = "full"
    weight_files: tuple[str, ...] = ()
    if config is not None and arch is not None:
        ours = config.get("tunix_rt")
        if isinstance(ours, dict) and ours.get("adapter") is not None:
            kind, adapter_file = checker.adapter_weights(config, files)
            weight_files = (adapter_file,)
        else:
            weight_files = checker.full_weights(arch, files)
    if checker.violations or config is None or arch is None:
        raise InvalidArgument.fields(checker.violations)
    return Summary(arch, config, kind, weight_files)


def validate_model_dir(path: Path, field: str = "") -> Summary:
    """`validate_source` of a directory on disk."""
    if not path.is_dir():
        raise InvalidArgument.field(field or "path", f"{path} is not a directory")
    return validate_source(DirSource(path), field)


def validate_tar(handle: IO[bytes], field: str = "") -> Summary:
    """`validate_source` of a tar of a model directory (as registered), reading only the config
    and the safetensors headers, after checking that every member is a plain file or directory
    inside it (`archive.member_problems`)."""
    where = field or "archive"
    try:
        with tarfile.open(fileobj=handle, mode="r:") as archive:
            problems = [f"member {name} {why}" for name, why in member_problems(archive)]
            if problems:
                more = len(problems) - _LISTED
                shown = problems[:_LISTED] + ([f"and {more} more such members"] if more > 0 else [])
                raise InvalidArgument.fields([FieldViolation(where, text) for text in shown])
            return validate_source(TarSource(archive), field)
    except tarfile.TarError as error:
        raise InvalidArgument.field(where, f"is not a tar archive ({error})") from None
