"""Prompts too long for the model's context, through the real service (issue 10, finding 6): a
prompt over the chars bound is refused without being tokenized, so its memory and time stay flat
however many arrive; the bound is tight and never refuses a prompt that fits; Generate,
GenerateStream and ModelInfer share it. `chars_per_token` itself is checked on real tokenizers
of every kind it must refuse to bound."""

from __future__ import annotations

import re
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import grpc
import pytest
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers

from tests.inference.conftest import JAX_WARNINGS, MODEL, InferenceStack
from tests.registry.helpers import bad_request_fields
from tunix_rt.inference import prompt_bound
from tunix_rt.models.tokenizer import TextTokenizer
from tunix_rt.v1 import inference_pb2
from tunix_rt.v1 import inference_service_pb2 as pb
from tunix_rt.v1 import oip_grpc_service_pb2 as oip

pytestmark = JAX_WARNINGS

CANDIDATE = f"{MODEL}@candidate"
CONTEXT = 512  # the tiny preset's context length
HUGE = 999_999  # under the service's 1,000,000-char limit on a prompt
CHARS_REFUSAL = re.compile(r"prompt is (\d+) chars.*context length is (\d+) tokens")
TOKENS_REFUSAL = re.compile(r"prompt is (\d+) tokens.*context length is (\d+) tokens")


def generate_request(prompt: str) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        model=CANDIDATE,
        prompt=prompt,
        raw_prompt=True,
        sampling=inference_pb2.SamplingParams(max_new_tokens=1),
    )


def refusal(stack: InferenceStack, prompt: str) -> str:
    """The details of Generate's INVALID_ARGUMENT for `prompt` (naming `prompt`)."""
    with pytest.raises(grpc.RpcError) as caught:
        stack.stub.Generate(generate_request(prompt), timeout=60)
    assert bad_request_fields(caught.value) == ["prompt"]
    return caught.value.details() or ""


def rss_bytes() -> int:
    """This process's resident set (the servers of `inference_stack` run in it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def tokenizer_of(stack: InferenceStack) -> Tokenizer:
    return TextTokenizer.load(stack.model_dirs[0]).tokenizer


def test_huge_prompts_are_refused_without_growing_memory(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    prompt = "x" * HUGE
    with ThreadPoolExecutor(4) as pool:  # four in flight at once, as in the issue
        # A first round loads the model and starts the threads (and their malloc arenas).
        list(pool.map(lambda _: refusal(stack, prompt), range(8)))
        before = rss_bytes()
        started = time.monotonic()
        details = list(pool.map(lambda _: refusal(stack, prompt), range(24)))
        elapsed = time.monotonic() - started
    grown = rss_bytes() - before
    for detail in details:
        lengths = CHARS_REFUSAL.search(detail)
        assert lengths is not None, detail
        assert (int(lengths.group(1)), int(lengths.group(2))) == (HUGE, CONTEXT)
    # Tokenized, these took over a second each and left ~300 MiB with the allocator; refused by
    # their length, they take milliseconds and leave only the noise of 1 MB messages.
    assert grown < 96 << 20, f"RSS grew {grown >> 20} MiB over 24 refusals"
    assert elapsed < 10, f"24 refusals took {elapsed:.1f} s"


def test_the_bound_is_tight_and_a_prompt_that_fits_is_served(
    inference_stack: InferenceStack,
) -> None:
    stack = inference_stack
    tokenizer = tokenizer_of(stack)
    per_token = prompt_bound.chars_per_token(tokenizer)
    assert per_token is not None
    limit = prompt_bound.prompt_chars_limit(per_token, CONTEXT)
    assert limit == (CONTEXT - 1) * per_token
    # The longest vocabulary entry as text, which repeated is one token per copy: the densest
    # prompt there is, so `limit` chars of it are exactly CONTEXT - 1 tokens.
    word = next(
        text
        for entry in sorted(tokenizer.get_vocab(), key=len, reverse=True)
        if len(text := tokenizer.decode([tokenizer.token_to_id(entry)])) == len(entry)
        and len(tokenizer.encode(text * 3, add_special_tokens=False).ids) == 3
    )
    assert len(word) == per_token, "the longest token should repeat as itself"

    fits = word * (CONTEXT - 2)  # with BOS, CONTEXT - 1 tokens: room for one more
    served = stack.stub.Generate(generate_request(fits), timeout=120)
    assert served.summary.usage.prompt_tokens == CONTEXT - 1
    assert len(fits) == limit - per_token

    at_limit = word * (CONTEXT - 1)  # not refused by its length, but one token too many
    assert len(at_limit) == limit
    lengths = TOKENS_REFUSAL.search(refusal(stack, at_limit))
    assert lengths is not None and int(lengths.group(1)) == CONTEXT

    over = at_limit + word[:1]  # one char past the bound: refused without tokenizing
    lengths = CHARS_REFUSAL.search(refusal(stack, over))
    assert lengths is not None and int(lengths.group(1)) == limit + 1


def test_stream_and_model_infer_refuse_huge_prompts(inference_stack: InferenceStack) -> None:
    stack = inference_stack
    with pytest.raises(grpc.RpcError) as caught:
        list(stack.stub.GenerateStream(generate_request("y" * HUGE), timeout=60))
    assert bad_request_fields(caught.value) == ["prompt"]
    assert CHARS_REFUSAL.search(caught.value.details() or "")

    request = oip.ModelInferRequest(model_name=MODEL, model_version="1")
    tensor = request.inputs.add(name="text_input", datatype="BYTES", shape=[2])
    tensor.contents.bytes_contents.extend([b"What is 2 + 3?", b"z" * HUGE])
    with pytest.raises(grpc.RpcError) as caught:
        stack.oip_stub.ModelInfer(request, timeout=60)
    assert bad_request_fields(caught.value) == ["prompt"]
    assert CHARS_REFUSAL.search(caught.value.details() or "")


def test_a_chat_template_counts_toward_the_bound(inference_stack: InferenceStack) -> None:
    # Rendered, a prompt is longer than the caller's text; the bound applies to what is
    # tokenized, so the refusal reports the rendered length.
    request = generate_request("x" * HUGE)
    request.raw_prompt = False
    with pytest.raises(grpc.RpcError) as caught:
        inference_stack.stub.Generate(request, timeout=60)
    lengths = CHARS_REFUSAL.search(caught.value.details() or "")
    assert lengths is not None and int(lengths.group(1)) > HUGE


def bpe(vocab: dict[str, int], **options: object) -> Tokenizer:
    return Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", **options))


VOCAB = {"<unk>": 0, "a": 1, "b": 2, "abcdef": 3}


def test_chars_per_token_of_tokenizer_parts() -> None:
    plain = bpe(VOCAB)
    assert prompt_bound.chars_per_token(plain) == 6
    plain.add_special_tokens(["<|longest special|>"])
    assert prompt_bound.chars_per_token(plain) == len("<|longest special|>")

    nfc = bpe(VOCAB)
    nfc.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(" ", "_")])
    assert prompt_bound.chars_per_token(nfc) == 6 * prompt_bound.NFC_SHRINK
    shrinking_replace = bpe(VOCAB)
    shrinking_replace.normalizer = normalizers.Replace("abc", "x")
    assert prompt_bound.chars_per_token(shrinking_replace) == 6 * 3

    llama_like = bpe(VOCAB, byte_fallback=True, fuse_unk=True)
    llama_like.pre_tokenizer = pre_tokenizers.Metaspace()
    assert prompt_bound.chars_per_token(llama_like) == 6
    nfkc = bpe(VOCAB)
    nfkc.normalizer = normalizers.Sequence([normalizers.Lowercase(), normalizers.NFKC()])
    assert prompt_bound.chars_per_token(nfkc) == 6 * prompt_bound.NFKC_SHRINK

    # Each of these can turn input of any length into few tokens, so no bound exists.
    unbounded = [bpe(VOCAB, fuse_unk=True), Tokenizer(models.WordLevel(VOCAB, unk_token="<unk>"))]
    for normalizer in (normalizers.Strip(), normalizers.StripAccents()):
        tokenizer = bpe(VOCAB)
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizer])
        unbounded.append(tokenizer)
    for pre_tokenizer in (pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(" ", "removed")):
        tokenizer = bpe(VOCAB)
        tokenizer.pre_tokenizer = pre_tokenizer
        unbounded.append(tokenizer)
    stripping = bpe(VOCAB)
    stripping.add_special_tokens([AddedToken("<mask>", lstrip=True)])
    truncating = bpe(VOCAB)
    truncating.enable_truncation(16)
    unbounded += [stripping, truncating]
    assert [prompt_bound.chars_per_token(t) for t in unbounded] == [None] * len(unbounded)


def test_normalization_shrink_factors_hold() -> None:
    def longest(form: Literal["NFD", "NFKD"]) -> int:
        return max(
            len(unicodedata.normalize(form, chr(c)))
            for c in range(0x110000)
            if not 0xD800 <= c < 0xE000
        )

    assert longest("NFD") <= prompt_bound.NFC_SHRINK
    assert longest("NFKD") <= prompt_bound.NFKC_SHRINK
