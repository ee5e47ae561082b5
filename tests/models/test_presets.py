"""Architecture presets and their overrides."""

from __future__ import annotations

import pytest

from tunix_rt.common.errors import InvalidArgument
from tunix_rt.models import presets


def test_every_preset_is_listed_and_found() -> None:
    assert {"llama3-tiny", "llama3-small", "llama3-2.5m", "qwen2-tiny", "qwen3-tiny"} <= set(
        presets.names()
    )
    for name in presets.names():
        assert presets.get(name).name == name
    with pytest.raises(KeyError):
        presets.get("gpt-5")


def test_the_benchmark_and_test_presets_have_the_documented_sizes() -> None:
    tiny = presets.get("llama3-tiny").config
    assert (tiny.num_layers, tiny.hidden_size, tiny.num_heads, tiny.vocab_size) == (2, 128, 4, 512)
    assert (tiny.intermediate_size, tiny.context_length) == (512, 512)
    bench = presets.get("llama3-2.5m").config
    assert (bench.num_layers, bench.hidden_size, bench.vocab_size) == (2, 256, 1024)
    assert 2_500_000 < presets.parameter_count(bench) < 2_700_000


def test_overrides_apply_and_struct_numbers_count_as_integers() -> None:
    config = presets.apply_overrides(presets.get("llama3-tiny"), {"num_layers": 3.0, "norm_eps": 1})
    assert config.num_layers == 3 and isinstance(config.num_layers, int)
    assert config.norm_eps == 1.0
    assert config.hidden_size == 128  # untouched


def _fields(exc: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return {v.field: v.description for v in exc.value.violations}


def test_an_unknown_key_is_named() -> None:
    with pytest.raises(InvalidArgument) as exc:
        presets.apply_overrides(presets.get("llama3-tiny"), {"n_layers": 2})
    assert "training_job.architecture_overrides.n_layers" in _fields(exc)
    assert "num_layers" in exc.value.message  # the message lists the valid keys


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_layers", "2"),
        ("num_layers", 2.5),
        ("num_layers", True),
        ("num_layers", 0),
        ("norm_eps", "small"),
        ("tie_embeddings", 1),
        ("family", "qwen2"),
    ],
)
def test_a_wrong_value_is_named(key: str, value: object) -> None:
    with pytest.raises(InvalidArgument) as exc:
        presets.apply_overrides(presets.get("llama3-tiny"), {key: value})
    assert list(_fields(exc)) == [f"training_job.architecture_overrides.{key}"]


def test_every_bad_key_is_reported_at_once() -> None:
    with pytest.raises(InvalidArgument) as exc:
        presets.apply_overrides(presets.get("llama3-tiny"), {"bogus": 1, "num_heads": "x"})
    assert set(_fields(exc)) == {
        "training_job.architecture_overrides.bogus",
        "training_job.architecture_overrides.num_heads",
    }


def test_inconsistent_heads_are_refused() -> None:
    with pytest.raises(InvalidArgument) as exc:
        presets.apply_overrides(presets.get("llama3-tiny"), {"num_kv_heads": 3})
    assert "training_job.architecture_overrides.num_kv_heads" in _fields(exc)


def test_config_json_round_trip() -> None:
    config = presets.get("qwen3-tiny").config
    assert presets.ArchitectureConfig.from_json(config.to_json()) == config


def test_protos_describe_each_preset() -> None:
    protos = presets.as_protos()
    assert [p.name for p in protos] == presets.names()
    small = next(p for p in protos if p.name == "llama3-small")
    assert small.family == "llama3"
    assert small.parameter_count == presets.parameter_count(presets.get("llama3-small").config)
    assert small.config["num_layers"] == small.num_layers
