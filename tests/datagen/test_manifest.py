"""Manifests of generated datasets: the hash is that of the canonical JSONL bytes, the counts
and uniqueness figures are those of the rows, and a registry description gives it back."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any

from tunix_rt import datagen
from tunix_rt.datagen.manifest import description, manifest_bytes


def _manifest(
    rows: int, seed: int, families: list[str] | None = None
) -> tuple[dict[str, Any], bytes]:
    stream = datagen.stream(rows, seed, families, dataset="m")
    tally = datagen.Tally()
    data = b"".join(tally.line(trace) for trace in stream)
    body = datagen.generated_manifest(
        name="m",
        stream=stream,
        tally=tally,
        held_out={"name": datagen.DEFAULT_HELD_OUT, "prompts": 200},
        created_by="test",
    )
    return body, data


def test_the_manifest_describes_the_rows() -> None:
    body, data = _manifest(1500, 9, ["convert_temperature", "addition"])
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines()]
    assert data == datagen.to_jsonl(
        datagen.generate(1500, 9, ["convert_temperature", "addition"], dataset="m")
    )
    assert body["rows"] == len(rows) == 1500
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (body["generator"], body["generator_version"], body["seed"]) == (
        "tunix_rt.datagen",
        "2.0.0",  # the default trace format, v2
        9,
    )
    assert body["families"] == ["addition", "convert_temperature"]
    counts = body["counts"]
    assert isinstance(counts, dict)
    for key in ("category", "task_type", "difficulty"):
        assert counts[key] == dict(Counter(r["meta"][key] for r in rows)), key
    unique = body["unique_prompts"]
    assert isinstance(unique, dict)
    per_family = unique["per_family"]
    for task_type, figures in per_family.items():
        prompts = [r["prompt"] for r in rows if r["meta"]["task_type"] == task_type]
        assert figures["unique"] == len(set(prompts))
        assert figures["unique"] + figures["repeated"] == len(prompts)
    assert per_family["addition"] == {"unique": 750, "repeated": 0, "exhausted": []}
    assert per_family["convert_temperature"]["repeated"] > 0
    held_out = body["held_out"]
    assert isinstance(held_out, dict)
    assert held_out["name"] == "reasoning-eval-v1" and held_out["prompts"] == 200


def test_the_same_arguments_give_the_same_manifest_bytes() -> None:
    first, _ = _manifest(800, 3)
    again, _ = _manifest(800, 3)
    assert manifest_bytes(first) == manifest_bytes(again)
    other, _ = _manifest(800, 4)
    assert other["sha256"] != first["sha256"]


def test_a_description_gives_its_manifest_back() -> None:
    body, _ = _manifest(20, 1)
    text = description("20 generated traces", body)
    assert text.splitlines()[0] == "20 generated traces"
    assert datagen.manifest_from_description(text) == body
    assert datagen.manifest_from_description("a plain description") is None
