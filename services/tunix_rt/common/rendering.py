"""Rendering traces as supervised fine-tuning examples: a prompt text and a target text.

Shared by the registry (dataset export), training (tokenization) and inference (prompting and
answer extraction), so that all three agree on exactly one format. The target is the steps, one per
line, then `Answer: X`; the chat template wraps only the prompt, because the model learns to
continue it with the target.
"""

from __future__ import annotations

from collections.abc import Sequence

ANSWER_PREFIX = "Answer: "

# Each template has one `{prompt}` slot and ends where the model's turn begins.
CHAT_TEMPLATES: dict[str, str] = {
    "plain": "Question: {prompt}\nReasoning:\n",
    "chatml": "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n",
    "llama3": (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "gemma": "<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n",
}
DEFAULT_TEMPLATE = "plain"


def render_prompt(prompt: str, template: str = DEFAULT_TEMPLATE) -> str:
    """The prompt text with the named chat template applied; KeyError for an unknown name."""
    return CHAT_TEMPLATES[template].replace("{prompt}", prompt)


def render_target(step_contents: Sequence[str], final_answer: str) -> str:
    """The target text: each step on its own line, then `Answer: X`."""
    lines = [content.replace("\n", " ") for content in step_contents]
    lines.append(ANSWER_PREFIX + final_answer)
    return "\n".join(lines)
