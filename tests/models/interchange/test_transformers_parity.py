"""Plain transformers reproduces tunix-rt: a model registered as training registers it, exported
with `tunix-rt models export`, loaded with AutoTokenizer / AutoModelForCausalLM and prompted with
`apply_chat_template` generates greedily exactly the text `Generate` of the real inference service
gives, for every family and every chat template. The exported tokenizer adds BOS as training and
the engines do, and the exported directory imports back with its chat template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.inference.conftest import (
    JAX_WARNINGS,
    InferenceStack,
    inference_stack,  # noqa: F401 (the session's registry and inference service)
    make_model_dir,
    register_model,
)
from tests.models.interchange import helpers
from tunix_rt.client.cli import main
from tunix_rt.common.rendering import CHAT_TEMPLATES, render_prompt
from tunix_rt.models.interchange.hf_export import write_tokenizer_files
from tunix_rt.models.interchange.hf_import import prepare_import
from tunix_rt.models.interchange.model_config import read_config
from tunix_rt.models.tokenizer import TextTokenizer
from tunix_rt.v1 import inference_pb2
from tunix_rt.v1 import inference_service_pb2 as pb
from tunix_rt.v1 import registry_service_pb2 as rpb

pytestmark = [*helpers.PYTESTMARK, *JAX_WARNINGS]

PROMPT = "What is 12 + 30?"
STEPS = 24
# (preset, chat template): every family, and every chat template at least once.
CASES = [
    ("llama3-tiny", "llama3"),
    ("qwen2-tiny", "chatml"),
    ("qwen3-tiny", "plain"),
    ("llama3-tiny", "gemma"),
]


def test_every_chat_template_is_exercised() -> None:
    assert {template for _, template in CASES} == set(CHAT_TEMPLATES)


def engine_ids(tok: TextTokenizer, text: str) -> list[int]:
    """What the engines feed the model for a rendered prompt (BatchedEngine.encode_prompt), and
    what training puts before the target (packing.encode_examples)."""
    return [tok.bos_id(), *tok.encode(text)]


@pytest.mark.parametrize("template", sorted(CHAT_TEMPLATES))
def test_exported_tokenizer_gives_the_engines_ids(template: str, tmp_path: Path) -> None:
    import transformers

    tok = helpers.tokenizer()
    ids = {"bos": tok.bos_id(), "eos": tok.eos_id(), "pad": tok.pad_id()}
    write_tokenizer_files(tmp_path, tok.save(tmp_path / "source"), ids, 128, template)
    hf: Any = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    # A prompt holding a special token's text tokenizes alike on both sides.
    for prompt in (PROMPT, "The lazy dog <eos> jumps. é"):
        rendered = render_prompt(prompt, template)
        messages = [{"role": "user", "content": prompt}]
        assert hf.chat_template is not None
        text = hf.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert text == hf.bos_token + rendered
        encoded = hf.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
        assert encoded["input_ids"] == engine_ids(tok, rendered)
        # Plain `tokenizer(text)` adds BOS too (the post-processor), as Llama tokenizers do.
        assert hf(rendered)["input_ids"] == engine_ids(tok, rendered)


def _generate(stack: InferenceStack, model: str) -> pb.GenerateResponse:
    # The JAX engine (the default backend of these JAX-written directories); float32 on CPU, and
    # for these seeds and steps no two top logits are close enough for rounding to swap them.
    sampling = inference_pb2.SamplingParams(temperature=0.0, max_new_tokens=STEPS)
    response: pb.GenerateResponse = stack.stub.Generate(
        pb.GenerateRequest(model=model, prompt=PROMPT, sampling=sampling), timeout=180
    )
    return response


def _transformers_generate(hf_dir: Path) -> tuple[str, int, int]:
    """Greedy text, prompt length and completion length (without EOS) of plain transformers on
    `hf_dir`, prompted the way a Hugging Face user prompts a chat model."""
    import torch
    import transformers

    tokenizer: Any = transformers.AutoTokenizer.from_pretrained(str(hf_dir))
    model: Any = transformers.AutoModelForCausalLM.from_pretrained(str(hf_dir))
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=STEPS, do_sample=False)
    length = int(inputs["input_ids"].shape[1])
    completion = out[0, length:]
    if completion[-1] == tokenizer.eos_token_id:  # tunix-rt counts EOS, transformers keeps it
        completion = completion[:-1]
    return str(tokenizer.decode(completion, skip_special_tokens=True)), length, len(completion)


@pytest.mark.parametrize(("preset", "template"), CASES)
def test_transformers_generate_matches_tunix_rt_generate(
    inference_stack: InferenceStack,  # noqa: F811
    preset: str,
    template: str,
    tmp_path: Path,
) -> None:
    stack = inference_stack
    model = f"parity-{preset}-{template}"
    model_dir = make_model_dir(tmp_path / "model", seed=3, chat_template=template, preset=preset)
    stack.registry_stub.CreateModel(rpb.CreateModelRequest(model_id=model))
    register_model(stack.registry_stub, model_dir, model, ("parity",))
    reference = f"{model}@parity"
    try:
        response = _generate(stack, reference)
    finally:
        stack.stub.UnloadModel(pb.UnloadModelRequest(model=reference), timeout=60)
    usage = response.summary.usage
    assert usage.completion_tokens >= 8  # enough tokens for the comparison to mean something

    result = CliRunner().invoke(
        main,
        [
            "--registry",
            str(stack.registry.address),
            "models",
            "export",
            reference,
            str(tmp_path / "hf"),
        ],
    )
    assert result.exit_code == 0, result.output
    text, prompt_tokens, completion_tokens = _transformers_generate(tmp_path / "hf")
    assert (prompt_tokens, text) == (usage.prompt_tokens, response.text)
    assert completion_tokens in (usage.completion_tokens, usage.completion_tokens - 1)

    # The export imports back as the same model: its template, and the tokenizer tunix-rt reads.
    back = prepare_import(tmp_path / "hf", tmp_path / "back", chat_template=None)
    assert read_config(back).chat_template == template
    rendered = render_prompt(PROMPT, template)
    assert engine_ids(TextTokenizer.load(back), rendered) == engine_ids(
        TextTokenizer.load(model_dir), rendered
    )
