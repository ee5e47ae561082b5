"""tunix-rt's chat templates (tunix_rt.common.rendering) as the Jinja templates transformers runs
in `tokenizer.apply_chat_template`, and the BOS post-processor of an exported tokenizer.

The engines feed a model `[BOS] + encode(render_prompt(prompt, template))` (training does the
same, then the target and EOS). transformers tokenizes a rendered chat with
`add_special_tokens=False`, so the Jinja template itself starts with `{{ bos_token }}`; plain
`tokenizer(text)` adds BOS through the tokenizer's post-processor, as Llama tokenizers do. For one
user message with `add_generation_prompt=True` the Jinja template renders exactly
`bos_token + render_prompt(content, name)`.

A rendering template is split into a preamble (once, before the first turn), the user turn around
`{prompt}`, and the opening of the model's turn (its tail); an assistant message is that opening,
its content and EOS, as training ends every target with EOS. Other roles (system, tool) have no
place in these formats and raise.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from tunix_rt.common.rendering import CHAT_TEMPLATES, DEFAULT_TEMPLATE

if TYPE_CHECKING:
    from tokenizers.processors import PostProcessor

# Where each template's user turn ends and the model's turn begins (the template's tail). A
# template missing here renders as one user turn, which still reproduces the single-turn prompt.
ASSISTANT_OPENINGS = {
    "plain": "Reasoning:\n",
    "chatml": "<|im_start|>assistant\n",
    "llama3": "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "gemma": "<start_of_turn>model\n",
}
PREAMBLES = {"llama3": "<|begin_of_text|>"}  # text once before the first turn


def _literal(text: str) -> str:
    """A Jinja expression printing `text` as is: a string literal (Jinja unescapes the JSON
    escapes), so no text sits between tags where trim_blocks / lstrip_blocks would eat it."""
    return "{{ " + json.dumps(text) + " }}"


def template_parts(name: str) -> tuple[str, str, str, str]:
    """(preamble, before the content, after it, the model's turn opening) of the rendering
    template `name` (an unknown name is the default template, as the inference service does)."""
    text = CHAT_TEMPLATES.get(name, CHAT_TEMPLATES[DEFAULT_TEMPLATE])
    preamble = PREAMBLES.get(name, "")
    opening = ASSISTANT_OPENINGS.get(name, "")
    if not (text.startswith(preamble) and text.endswith(opening)):
        raise ValueError(f"chat template {name!r} does not start / end as its split says")
    before, after = text[len(preamble) : len(text) - len(opening)].split("{prompt}")
    return preamble, before, after, opening


def jinja_chat_template(name: str) -> str:
    """The Jinja chat template (transformers' `tokenizer_config.json` key `chat_template`) of the
    rendering template `name`."""
    preamble, before, after, opening = template_parts(name)
    content = "{{ message['content'] }}"
    return (
        "{{ bos_token }}"
        + _literal(preamble)
        + "{% for message in messages %}"
        + "{% if message['role'] == 'user' %}"
        + _literal(before)
        + content
        + _literal(after)
        + "{% elif message['role'] == 'assistant' %}"
        + _literal(opening)
        + content
        + "{{ eos_token }}"
        + "{% else %}"
        + "{{ raise_exception('tunix-rt chat templates have user and assistant turns only, not '"
        + " + message['role']) }}"
        + "{% endif %}"
        + "{% endfor %}"
        + "{% if add_generation_prompt %}"
        + _literal(opening)
        + "{% endif %}"
    )


def template_name(jinja: object) -> str | None:
    """The rendering template whose Jinja template `jinja` is (an exported directory's), else
    None."""
    for name in CHAT_TEMPLATES:
        if jinja == jinja_chat_template(name):
            return name
    return None


def bos_post_processor(bos_token: str, bos_id: int) -> PostProcessor:
    """A `tokenizers` post-processor that puts BOS before each sequence (what transformers writes
    for `add_bos_token`), so `tokenizer(text)` gives the ids the engines feed the model."""
    from tokenizers import processors

    return processors.TemplateProcessing(
        single=f"{bos_token}:0 $A:0",
        pair=f"{bos_token}:0 $A:0 {bos_token}:1 $B:1",
        special_tokens=[(bos_token, bos_id)],
    )
